use std::path::Path;

use super::*;
use crate::hardware::{fit, Fit, BUILTIN_PROFILE_DIR};
use crate::model::Arch;
use crate::npy::tests::HAQ_TABLE;

/// x = [1, 2, 2, 3] ranks as [1, 2.5, 2.5, 4]; against [1, 2, 3, 4] by hand: Σdxdy = 4.5,
/// Σdx² = 4.5, Σdy² = 5, ρ = 4.5 / √22.5 = 0.948683.
#[test]
fn spearman_shares_ranks_between_ties() {
    let rho = spearman(&[1.0, 2.0, 2.0, 3.0], &[1.0, 2.0, 3.0, 4.0]).unwrap();
    assert!((rho - 0.948683).abs() < 1e-6, "{rho}");
    assert_eq!(spearman(&[1.0, 5.0, 9.0], &[3.0, 2.0, 1.0]), Some(-1.0));
    assert_eq!(spearman(&[1.0, 1.0], &[1.0, 2.0]), None);
    assert_eq!(spearman(&[1.0], &[1.0]), None);
}

fn haq() -> (Vec<LayerShape>, Roofline, Grid) {
    let layers = Arch::Mobilenetv2.layer_shapes((3, 224, 224), 1000).unwrap();
    let profile = Profile::load(&Path::new(BUILTIN_PROFILE_DIR).join("bismo-cloud.toml")).unwrap();
    let table = CycleTable::load(Path::new(HAQ_TABLE)).unwrap();
    let roofline = Roofline::of(&profile, &layers, 8, 200e6).unwrap();
    (layers, roofline, Grid::from_table(&table))
}

/// A table made by a roofline with known constants is fitted back to them, with no residual.
#[test]
fn the_fit_recovers_a_rooflines_own_constants() {
    let (_, roofline, _) = haq();
    let truth = Fit {
        compute_rate: 0.25,
        bandwidth: 0.5,
        overhead: 256.0,
        residual: 0.0,
    };
    let table = truth.apply(&roofline).latency();
    let even: Vec<usize> = (0..53).step_by(2).collect();
    let got = fit(&roofline, &table, &even);
    assert!((got.compute_rate / 0.25).log2().abs() < 0.07, "{got:?}");
    assert!((got.bandwidth / 0.5).log2().abs() < 0.07, "{got:?}");
    assert!((got.overhead / 256.0).log2().abs() < 0.07, "{got:?}");
    assert!(got.residual < 0.05, "{got:?}");
}

/// Uniform 8/8 is 1 on both sides by definition; HAQ's published policy ("0.6x latency") costs
/// 0.596 of 8/8 on its own table (tests/data/haq/README.md, computed with Python's struct).
#[test]
fn policy_ratios_are_relative_to_uniform_8() {
    let (layers, roofline, table) = haq();
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/haq/haq-mobilenetv2-0.6.policy"
    ))
    .unwrap();
    let policies = [
        (
            "8/8".to_string(),
            Policy::uniform(53, Format::new(8).unwrap()),
        ),
        ("haq".to_string(), Policy::parse(&text).unwrap()),
    ];
    let all: Vec<usize> = (0..53).collect();
    let a = agreement(&roofline, &table, &layers, &all, &policies);
    assert_eq!((a.policies[0].roofline, a.policies[0].table), (1.0, 1.0));
    assert!(
        (a.policies[1].table - 0.5965).abs() < 1e-4,
        "{:?}",
        a.policies[1]
    );
    let shares: f64 = a.per_layer.iter().map(|l| l.share_table).sum();
    assert!((shares - 1.0).abs() < 1e-12);
    assert_eq!(a.per_layer[1].kind, "dw");
    assert_eq!(a.per_layer[52].kind, "fc");
}

#[test]
fn random_policies_follow_their_seed() {
    let a = random_policies(3, 53, 2, 8, 7);
    assert_eq!(a, random_policies(3, 53, 2, 8, 7));
    assert_ne!(a, random_policies(3, 53, 2, 8, 8));
    let all = a.iter().flat_map(|p| p.layers().iter());
    assert!(all
        .clone()
        .all(|b| (2..=8).contains(&b.w.width()) && (2..=8).contains(&b.a.width())));
}

/// docs/haq-table.md's headline figures for bismo-cloud, unfitted, recomputed from the committed
/// table: pooled rank correlation 0.54, 0.14 at 8/8, and uniform 4/4 predicted at 0.295 of 8/8
/// where the table says 0.397 (-25.7%).
#[test]
fn bismo_cloud_against_haqs_table_as_documented() {
    let (layers, roofline, table) = haq();
    let policies = [(
        "4/4".to_string(),
        Policy::uniform(53, Format::new(4).unwrap()),
    )];
    let all: Vec<usize> = (0..53).collect();
    let a = agreement(&roofline, &table, &layers, &all, &policies);
    let two = |x: Option<f64>| format!("{:.2}", x.unwrap());
    assert_eq!(two(a.rho_pooled), "0.54");
    assert_eq!(two(a.rho_at(8)), "0.14");
    let p = &a.policies[0];
    let got = format!("{:.3} {:.3} {:+.1}", p.roofline, p.table, 100.0 * p.error);
    assert_eq!(got, "0.295 0.397 -25.7");
}
