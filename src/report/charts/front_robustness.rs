//! The front on the test split: robust accuracy (the per-example worst case of the strong suite)
//! against eps, one line per policy of front-test.csv, from its clean accuracy at eps 0; the
//! points of a policy a masking check flagged are crossed out.

use crate::rundir::FrontTest;

use super::lines::{Legend, Line, LinesChart};

/// Robust accuracy (%) against eps for every policy of `front`.
pub fn front_chart(front: &FrontTest) -> LinesChart {
    let mut categories = vec!["0 (clean)".to_string()];
    categories.extend(front.eps.iter().map(|e| e.to_string()));
    let curve = |r: &crate::rundir::FrontTestRow| -> Vec<(usize, f64)> {
        let clean = std::iter::once(r.clean_accuracy);
        (clean.chain(r.robust.iter().copied()).enumerate())
            .map(|(i, v)| (i, 100.0 * v))
            .collect()
    };
    let lines = (front.rows.iter())
        .map(|r| Line {
            label: format!("episode {}: {}", r.episode, r.policy),
            points: curve(r),
        })
        .collect();
    let flagged: Vec<(usize, f64)> = (front.rows.iter())
        .filter(|r| !r.masking.is_empty())
        .flat_map(curve)
        .collect();
    LinesChart {
        stem: "front-test-eps".to_string(),
        title: "The front on the test split: robust accuracy vs eps".to_string(),
        x_desc: "eps (L∞ radius)".to_string(),
        y_desc: "robust accuracy, worst case (%)".to_string(),
        categories,
        lines,
        flagged: (!flagged.is_empty()).then(|| ("gradient masking flagged".to_string(), flagged)),
        y_range: Some((0.0, 105.0)),
        legend: Legend::LowerLeft,
    }
}
