//! The text report of `profiles agreement`: rank correlations, policy ratios, a summary by
//! layer kind and the layers that disagree most, per profile, unfitted then held out.

use bitsearch::hardware::{Agreement, Bound, LayerAgreement};

use super::agreement::View;

/// Prints every profile's comparison; `worst` layers are listed per criterion.
pub fn print(view: &View, worst: usize) {
    for p in &view.profiles {
        let a = p.unfitted;
        println!(
            "{} on {} against {} (cycles at {} MHz): {} layers, nothing fitted",
            view.model,
            p.profile,
            view.table,
            p.clock_hz / 1e6,
            a.layers.len()
        );
        print_agreement(a);
        print_kinds(&a.per_layer);
        print_worst(&a.per_layer, worst);
        if let Some((half, fit, units, held)) = &p.fitted {
            let fitted_on = a.layers.len() - held.layers.len();
            println!(
                "  fitted on the {fitted_on} {} layers: {units} (x{:.4} compute rate, x{:.4} \
                 bandwidth); residual on them {:.3}",
                format!("{half:?}").to_lowercase(),
                fit.compute_rate,
                fit.bandwidth,
                fit.residual
            );
            println!(
                "  held out, the other {} layers, fitted:",
                held.layers.len()
            );
            print_agreement(held);
            print_kinds(&held.per_layer);
            print_worst(&held.per_layer, worst);
        }
        println!();
    }
}

fn rho(r: Option<f64>) -> String {
    r.map_or_else(|| "n/a".into(), |r| format!("{r:.2}"))
}

fn print_agreement(a: &Agreement) {
    let uniform: Vec<String> = [8, 6, 4, 2]
        .iter()
        .map(|&b| format!("{b}/{b} {}", rho(a.rho_at(b))))
        .collect();
    let mut pairs: Vec<((u8, u8), f64)> = (a.rho.iter())
        .filter_map(|&(p, r)| r.map(|r| (p, r)))
        .collect();
    pairs.sort_by(|x, y| x.1.total_cmp(&y.1));
    let at = |i: usize| pairs.get(i).map(|&((w, a), r)| format!("{r:.2} ({w}/{a})"));
    let spread = match (
        at(0),
        at(pairs.len() / 2),
        at(pairs.len().saturating_sub(1)),
    ) {
        (Some(lo), Some(mid), Some(hi)) => format!("min {lo}, median {mid}, max {hi}"),
        _ => "n/a".into(),
    };
    println!(
        "  Spearman rho of per-layer latency: {}",
        uniform.join(", ")
    );
    println!("    over the {} (w, a) pairs: {spread}", a.rho.len());
    println!("    pooled over every (layer, w, a): {}", rho(a.rho_pooled));
    println!(
        "  roofline total at 8/8 = {:.3} x the table's; residual (rms of ln roofline/table) {:.3}",
        a.level, a.residual
    );
    println!(
        "  {:<28} {:>9} {:>9} {:>8}",
        "cost relative to 8/8", "roofline", "table", "error"
    );
    for p in &a.policies {
        println!(
            "    {:<26} {:>9.3} {:>9.3} {:>+7.1}%",
            p.name,
            p.roofline,
            p.table,
            100.0 * p.error
        );
    }
}

/// Per kind: layers, shares of the 8/8 total, mean exponents, and how many the roofline calls
/// memory-bound at 8/8 and at 2/2.
fn print_kinds(layers: &[LayerAgreement]) {
    println!(
        "  {:<6} {:>6} {:>21} {:>17} {:>17} {:>18}",
        "kind",
        "layers",
        "share roofline/table",
        "exp w roof/table",
        "exp a roof/table",
        "memory-bound 8/8, 2/2"
    );
    for kind in ["conv", "dw", "pw", "fc", "matmul"] {
        let group: Vec<&LayerAgreement> = layers.iter().filter(|l| l.kind == kind).collect();
        if group.is_empty() {
            continue;
        }
        let n = group.len() as f64;
        let sum = |f: fn(&LayerAgreement) -> f64| group.iter().map(|l| f(l)).sum::<f64>();
        let memory = |f: fn(&LayerAgreement) -> Bound| {
            group.iter().filter(|l| f(l) == Bound::Memory).count()
        };
        println!(
            "  {:<6} {:>6} {:>9.1}% / {:>5.1}% {:>8.2} / {:>5.2} {:>8.2} / {:>5.2} {:>10}, {}",
            kind,
            group.len(),
            100.0 * sum(|l| l.share_roofline),
            100.0 * sum(|l| l.share_table),
            sum(|l| l.exponent_w_roofline) / n,
            sum(|l| l.exponent_w_table) / n,
            sum(|l| l.exponent_a_roofline) / n,
            sum(|l| l.exponent_a_table) / n,
            memory(|l| l.bound8),
            memory(|l| l.bound2),
        );
    }
}

/// The layers whose share of the 8/8 total, and whose bit scaling, differ most.
fn print_worst(layers: &[LayerAgreement], worst: usize) {
    let mut by_share: Vec<&LayerAgreement> = layers.iter().collect();
    let share_gap = |l: &LayerAgreement| (l.share_roofline / l.share_table).ln().abs();
    by_share.sort_by(|x, y| share_gap(y).total_cmp(&share_gap(x)));
    println!("  layers whose share of the 8/8 total differs most (roofline vs table):");
    for l in by_share.iter().take(worst) {
        println!(
            "    {:<12} {:<4} {:>6.2}% vs {:>6.2}% (x{:.2}); {}",
            l.name,
            l.kind,
            100.0 * l.share_roofline,
            100.0 * l.share_table,
            l.share_roofline / l.share_table,
            scaling(l)
        );
    }
    let mut by_scaling: Vec<&LayerAgreement> = layers.iter().collect();
    let scaling_gap = |l: &LayerAgreement| {
        (l.exponent_w_roofline - l.exponent_w_table).abs()
            + (l.exponent_a_roofline - l.exponent_a_table).abs()
    };
    by_scaling.sort_by(|x, y| scaling_gap(y).total_cmp(&scaling_gap(x)));
    println!("  layers whose bit scaling differs most:");
    for l in by_scaling.iter().take(worst) {
        println!("    {:<12} {:<4} {}", l.name, l.kind, scaling(l));
    }
}

fn scaling(l: &LayerAgreement) -> String {
    format!(
        "exponent w {:.2} vs {:.2}, a {:.2} vs {:.2}; roofline {}-bound at 8/8, {} at 2/2",
        l.exponent_w_roofline,
        l.exponent_w_table,
        l.exponent_a_roofline,
        l.exponent_a_table,
        format!("{:?}", l.bound8).to_lowercase(),
        format!("{:?}", l.bound2).to_lowercase()
    )
}
