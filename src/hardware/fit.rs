//! Fitting a profile's free constants to a reference cycle table on a subset of layers, so the
//! other layers can test the fit. The constants are the roofline's three rates, as multipliers
//! of the profile's own (r_c on the compute rate — `binary_macs_per_cycle`, `fusion_units` or a
//! mode's `macs_per_cycle` — r_m on `memory.bandwidth_gb_per_s`) and the per-layer overhead o:
//!
//! ```text
//! latency(l, w, a) = max(compute(l, w, a) / r_c, memory(l, w, a) / r_m) + o      (cycles)
//! minimise         mean over the fitted layers and every (w, a) of (ln latency − ln table)²
//! ```
//!
//! by a grid search over log2 r_c, log2 r_m and log2 o, coarse (steps of 1 over 2^-12..2^6 for
//! the rates and 2^0..2^17 cycles for o) and then twice finer around the best point (steps of
//! 1/4, then 1/16). The buffer size (which decides weight re-reads) and the compute model's
//! shape (w·a binary MACs for bit-serial) are not fitted: they are the model being tested.

use serde::Serialize;

use super::agreement::{Grid, Roofline};

/// The fitted constants and the residual they leave on the fitted layers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Fit {
    /// Multiplier of the profile's compute rate.
    pub compute_rate: f64,
    /// Multiplier of the profile's bandwidth.
    pub bandwidth: f64,
    /// Per-layer overhead, in cycles.
    pub overhead: f64,
    /// √ mean squared log error on the fitted layers.
    pub residual: f64,
}

impl Fit {
    /// The roofline with these constants.
    pub fn apply(&self, roofline: &Roofline) -> Roofline {
        roofline.scaled(self.compute_rate, self.bandwidth, self.overhead)
    }
}

/// Fits r_c, r_m and o on the layers `train` (see the module's formula).
pub fn fit(roofline: &Roofline, table: &Grid, train: &[usize]) -> Fit {
    let points: Vec<(f64, f64, f64)> = (train.iter())
        .flat_map(|&l| table.pairs().map(move |(w, a)| (l, w, a)))
        .map(|(l, w, a)| {
            let c = roofline.compute.at(l, w, a);
            (c, roofline.memory.at(l, w, a), table.at(l, w, a).ln())
        })
        .collect();
    let error = |x: [f64; 3]| {
        let (c, m, o) = (x[0].exp2(), x[1].exp2(), x[2].exp2());
        let sum: f64 = (points.iter())
            .map(|&(pc, pm, t)| ((pc / c).max(pm / m) + o).ln() - t)
            .map(|d| d * d)
            .sum();
        sum / points.len().max(1) as f64
    };
    // Coarse: every point of the box; finer: ±4 steps around the best so far.
    let mut best = ([0.0, 0.0, 0.0], f64::INFINITY);
    let coarse = |lo: f64, hi: f64| (0..=((hi - lo) as usize)).map(move |i| lo + i as f64);
    for c in coarse(-12.0, 6.0) {
        for m in coarse(-12.0, 6.0) {
            for o in coarse(0.0, 17.0) {
                let e = error([c, m, o]);
                if e < best.1 {
                    best = ([c, m, o], e);
                }
            }
        }
    }
    for step in [0.25, 0.0625] {
        let centre = best.0;
        let around = |i: usize| (-4..=4).map(move |k| centre[i] + f64::from(k) * step);
        for c in around(0) {
            for m in around(1) {
                for o in around(2) {
                    let e = error([c, m, o]);
                    if e < best.1 {
                        best = ([c, m, o], e);
                    }
                }
            }
        }
    }
    let [c, m, o] = best.0;
    Fit {
        compute_rate: c.exp2(),
        bandwidth: m.exp2(),
        overhead: o.exp2(),
        residual: best.1.sqrt(),
    }
}
