//! The Defensive-Quantization charts: robust accuracy (worst case) against bits, one line per
//! beta (beta 0 = no Lipschitz fine-tune), and error amplification per layer, one line per
//! (bits, beta).

use crate::report::style::{beta_label, bits_label};
use crate::rundir::DqDir;

use super::lines::{Legend, Line, LinesChart};

/// Robust accuracy (%) against bits, one line per beta; points with suspected gradient masking
/// are crossed out.
pub fn robustness_chart(dq: &DqDir) -> LinesChart {
    let mut bits: Vec<u8> = dq.rows.iter().map(|r| r.bits).collect();
    bits.sort_unstable();
    bits.dedup();
    let at = |b: u8| bits.iter().position(|&x| x == b).unwrap_or(0);
    let lines = dq
        .betas()
        .into_iter()
        .map(|beta| {
            let mut points: Vec<(usize, f64)> = (dq.rows.iter())
                .filter(|r| r.beta == beta)
                .map(|r| (at(r.bits), 100.0 * r.worst_case))
                .collect();
            points.sort_by_key(|p| p.0);
            let suffix = if beta == 0.0 {
                " (no Lipschitz fine-tune)"
            } else {
                ""
            };
            Line {
                label: format!("β = {}{suffix}", beta_label(beta)),
                points,
            }
        })
        .collect();
    let flagged: Vec<(usize, f64)> = (dq.rows.iter())
        .filter(|r| r.masking_suspected())
        .map(|r| (at(r.bits), 100.0 * r.worst_case))
        .collect();
    LinesChart {
        stem: "dq-robustness".to_string(),
        title: "Robust accuracy (worst case over the attack suite) vs bits".to_string(),
        x_desc: "bits (weights and activations)".to_string(),
        y_desc: "robust accuracy (%)".to_string(),
        categories: bits.iter().map(|&b| bits_label(b)).collect(),
        lines,
        flagged: (!flagged.is_empty()).then(|| ("gradient masking suspected".to_string(), flagged)),
        y_range: Some((0.0, 105.0)),
        legend: Legend::UpperLeft,
    }
}

/// Error amplification: relative distance between clean and adversarial activations per layer.
pub fn amplification_chart(dq: &DqDir) -> LinesChart {
    let rows = &dq.amplification;
    let n = rows.iter().map(|r| r.index + 1).max().unwrap_or(0);
    let mut categories: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    for r in rows {
        if let Some(c) = categories.get_mut(r.index) {
            c.clone_from(&r.layer);
        }
    }
    let mut keys: Vec<(u8, f64)> = rows.iter().map(|r| (r.bits, r.beta)).collect();
    keys.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    keys.dedup();
    let lines = keys
        .into_iter()
        .map(|(bits, beta)| {
            let mut points: Vec<(usize, f64)> = (rows.iter())
                .filter(|r| r.bits == bits && r.beta == beta)
                .map(|r| (r.index, r.distance))
                .collect();
            points.sort_by_key(|p| p.0);
            let b = match bits {
                32 => "FP32".to_string(),
                b => format!("{b}-bit"),
            };
            Line {
                label: format!("{b}, β = {}", beta_label(beta)),
                points,
            }
        })
        .collect();
    LinesChart {
        stem: "dq-amplification".to_string(),
        title: "Error amplification: ‖h(x) − h(x_adv)‖ / ‖h(x)‖ per layer".to_string(),
        x_desc: "layer".to_string(),
        y_desc: "relative distance".to_string(),
        categories,
        lines,
        flagged: None,
        y_range: None,
        legend: Legend::UpperLeft,
    }
}
