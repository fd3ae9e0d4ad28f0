//! How well a profile's roofline agrees with a reference cycle table (`CycleTable`) simulated
//! on the same model, layer by layer and policy by policy, over a chosen set of layers:
//!
//! ```text
//! ρ(w, a)       = Spearman(roofline latency of layer l at w/a, table cycles of l at w/a), over l
//! ρ pooled      = Spearman over every (layer, w, a) the table has
//! ratio(P)      = Σ_l latency(l, P_l) / Σ_l latency(l, 8/8), for the roofline and the table
//! ratio error   = ratio_roofline(P) / ratio_table(P) − 1
//! level         = Σ_l roofline cycles(l, 8/8) / Σ_l table cycles(l, 8/8)
//! residual      = √ mean over (l, w, a) of (ln roofline cycles − ln table cycles)²
//! share(l)      = the layer's fraction of its model's 8/8 total (roofline and table apart)
//! exponent_w(l) = log2(latency(l, 8/8) / latency(l, 4/8)), exponent_a likewise with a
//! ```
//!
//! Ranks and ratios need no clock; the level and the residual compare cycles, so the roofline's
//! seconds are turned into cycles at the table's clock. An exponent is 1 where the latency
//! doubles with the operand's width (bit-serial compute, or that operand's traffic dominating),
//! 0 where the width does not matter.

use serde::Serialize;

use super::cost::Bound;
use super::cycle_table::CycleTable;
use super::error::HardwareError;
use super::profile::Profile;
use crate::model::{LayerKind, LayerShape};
use crate::quant::{Format, LayerBits, Policy};

/// A latency per (layer, w, a) for w, a in 1..=widths, in cycles.
#[derive(Debug, Clone)]
pub struct Grid {
    widths: u8,
    values: Vec<f64>,
}

impl Grid {
    /// The table's cycles.
    pub fn from_table(t: &CycleTable) -> Grid {
        Grid {
            widths: t.widths(),
            values: t.raw().iter().map(|&c| c as f64).collect(),
        }
    }

    pub fn at(&self, layer: usize, w: u8, a: u8) -> f64 {
        let b = usize::from(self.widths);
        self.values[(layer * b + usize::from(w) - 1) * b + usize::from(a) - 1]
    }

    pub fn widths(&self) -> u8 {
        self.widths
    }

    /// Every (w, a) pair the grid holds, w outer.
    pub fn pairs(&self) -> impl Iterator<Item = (u8, u8)> + '_ {
        (1..=self.widths).flat_map(move |w| (1..=self.widths).map(move |a| (w, a)))
    }
}

/// `b` as `Format` (1..=8 always are).
fn bits_of(b: u8) -> Format {
    Format::new(b).unwrap_or(Format::FULL)
}

/// A profile's roofline terms per (layer, w, a), apart, so that its constants can be rescaled
/// (`hardware::fit`): latency = max(compute, memory) + overhead, all in cycles.
#[derive(Debug, Clone)]
pub struct Roofline {
    pub compute: Grid,
    pub memory: Grid,
    pub overhead: f64,
}

impl Roofline {
    /// The profile's model (its measured table ignored) on `layers` at widths 1..=`widths`,
    /// in cycles of `clock_hz`.
    pub fn of(
        profile: &Profile,
        layers: &[LayerShape],
        widths: u8,
        clock_hz: f64,
    ) -> Result<Roofline, HardwareError> {
        let (mut compute, mut memory) = (Vec::new(), Vec::new());
        for layer in layers {
            for w in 1..=widths {
                for a in 1..=widths {
                    let cost = profile.model_cost(layer, LayerBits::new(bits_of(w), bits_of(a)))?;
                    compute.push(cost.compute_s * clock_hz);
                    memory.push(cost.memory_s * clock_hz);
                }
            }
        }
        let grid = |values| Grid { widths, values };
        Ok(Roofline {
            compute: grid(compute),
            memory: grid(memory),
            overhead: profile.overhead_s() * clock_hz,
        })
    }

    /// The same roofline with compute time divided by `compute_rate`, memory time by
    /// `bandwidth`, and `overhead` cycles per layer (`hardware::fit`).
    pub fn scaled(&self, compute_rate: f64, bandwidth: f64, overhead: f64) -> Roofline {
        let scale = |g: &Grid, by: f64| Grid {
            widths: g.widths,
            values: g.values.iter().map(|v| v / by).collect(),
        };
        Roofline {
            compute: scale(&self.compute, compute_rate),
            memory: scale(&self.memory, bandwidth),
            overhead,
        }
    }

    /// max(compute, memory) + overhead, per (layer, w, a).
    pub fn latency(&self) -> Grid {
        let values = (self.compute.values.iter().zip(&self.memory.values))
            .map(|(c, m)| c.max(*m) + self.overhead)
            .collect();
        Grid {
            widths: self.compute.widths,
            values,
        }
    }

    pub fn bound(&self, layer: usize, w: u8, a: u8) -> Bound {
        match self.compute.at(layer, w, a) >= self.memory.at(layer, w, a) {
            true => Bound::Compute,
            false => Bound::Memory,
        }
    }
}

/// One policy's cost relative to uniform 8/8, on the roofline and on the table.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyRatio {
    pub name: String,
    pub roofline: f64,
    pub table: f64,
    /// roofline / table − 1.
    pub error: f64,
}

/// One layer's place in both models.
#[derive(Debug, Clone, Serialize)]
pub struct LayerAgreement {
    pub index: usize,
    pub name: String,
    /// `conv`, `dw` (depthwise), `pw` (1x1) or `fc`.
    pub kind: &'static str,
    pub share_roofline: f64,
    pub share_table: f64,
    pub exponent_w_roofline: f64,
    pub exponent_a_roofline: f64,
    pub exponent_w_table: f64,
    pub exponent_a_table: f64,
    /// The roofline's bound at 8/8 and at 2/2.
    pub bound8: Bound,
    pub bound2: Bound,
}

/// The agreement over a set of layers.
#[derive(Debug, Clone, Serialize)]
pub struct Agreement {
    pub layers: Vec<usize>,
    /// ρ(w, a) for every pair of the table, w outer (`None` where one side is constant).
    pub rho: Vec<((u8, u8), Option<f64>)>,
    pub rho_pooled: Option<f64>,
    pub level: f64,
    pub residual: f64,
    pub policies: Vec<PolicyRatio>,
    pub per_layer: Vec<LayerAgreement>,
}

impl Agreement {
    /// ρ at uniform b/b.
    pub fn rho_at(&self, b: u8) -> Option<f64> {
        self.rho
            .iter()
            .find(|(p, _)| *p == (b, b))
            .and_then(|r| r.1)
    }
}

/// Compares `roofline`'s latency with `table` over the layers `subset` of `layers`, and prices
/// each of `policies` (one entry per layer of the model; full precision is read as the widest
/// width).
pub fn agreement(
    roofline: &Roofline,
    table: &Grid,
    layers: &[LayerShape],
    subset: &[usize],
    policies: &[(String, Policy)],
) -> Agreement {
    let b = table.widths();
    let predicted = &roofline.latency();
    let rho = (table.pairs())
        .map(|(w, a)| {
            let x: Vec<f64> = subset.iter().map(|&l| predicted.at(l, w, a)).collect();
            let y: Vec<f64> = subset.iter().map(|&l| table.at(l, w, a)).collect();
            ((w, a), spearman(&x, &y))
        })
        .collect();
    let points: Vec<(f64, f64)> = (subset.iter())
        .flat_map(|&l| table.pairs().map(move |(w, a)| (l, w, a)))
        .map(|(l, w, a)| (predicted.at(l, w, a), table.at(l, w, a)))
        .collect();
    let (x, y): (Vec<f64>, Vec<f64>) = points.iter().copied().unzip();
    let residual = (points.iter())
        .map(|(p, t)| (p.ln() - t.ln()).powi(2))
        .sum::<f64>()
        / points.len().max(1) as f64;
    let total = |g: &Grid| subset.iter().map(|&l| g.at(l, b, b)).sum::<f64>();
    let policies = (policies.iter())
        .map(|(name, policy)| {
            let cost = |g: &Grid| policy_total(g, policy, subset) / total(g);
            let (roofline, table) = (cost(predicted), cost(table));
            PolicyRatio {
                name: name.clone(),
                roofline,
                table,
                error: roofline / table - 1.0,
            }
        })
        .collect();
    let per_layer = (subset.iter())
        .map(|&l| layer_agreement(l, &layers[l], roofline, predicted, table, total))
        .collect();
    Agreement {
        layers: subset.to_vec(),
        rho,
        rho_pooled: spearman(&x, &y),
        level: total(predicted) / total(table),
        residual: residual.sqrt(),
        policies,
        per_layer,
    }
}

/// Σ over `subset` of the grid at the policy's bits (full precision as the widest width).
fn policy_total(g: &Grid, policy: &Policy, subset: &[usize]) -> f64 {
    let clamp = |b: Format| b.width().min(g.widths());
    (subset.iter())
        .filter_map(|&l| policy.layers().get(l).map(|bits| (l, bits)))
        .map(|(l, bits)| g.at(l, clamp(bits.w), clamp(bits.a)))
        .sum()
}

fn layer_agreement(
    l: usize,
    layer: &LayerShape,
    roofline: &Roofline,
    predicted: &Grid,
    table: &Grid,
    total: impl Fn(&Grid) -> f64,
) -> LayerAgreement {
    let b = table.widths();
    let half = (b / 2).max(1);
    let exponent = |g: &Grid, w: u8, a: u8| (g.at(l, b, b) / g.at(l, w, a)).log2();
    LayerAgreement {
        index: l,
        name: layer.name.clone(),
        kind: kind(layer),
        share_roofline: predicted.at(l, b, b) / total(predicted),
        share_table: table.at(l, b, b) / total(table),
        exponent_w_roofline: exponent(predicted, half, b),
        exponent_a_roofline: exponent(predicted, b, half),
        exponent_w_table: exponent(table, half, b),
        exponent_a_table: exponent(table, b, half),
        bound8: roofline.bound(l, b, b),
        bound2: roofline.bound(l, 2.min(b), 2.min(b)),
    }
}

/// What a layer is, as the comparison groups layers.
pub fn kind(layer: &LayerShape) -> &'static str {
    match layer.kind {
        LayerKind::Linear => "fc",
        LayerKind::Matmul => "matmul",
        LayerKind::Conv if layer.is_depthwise() => "dw",
        LayerKind::Conv if layer.kernel == 1 => "pw",
        LayerKind::Conv => "conv",
    }
}

/// Spearman's rank correlation (ties share their mean rank); `None` for fewer than two points
/// or a side without spread.
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.len() != y.len() || x.len() < 2 {
        return None;
    }
    let (rx, ry) = (ranks(x), ranks(y));
    let n = rx.len() as f64;
    let (mx, my) = (rx.iter().sum::<f64>() / n, ry.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in rx.iter().zip(&ry) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    (sxx > 0.0 && syy > 0.0).then(|| sxy / (sxx * syy).sqrt())
}

/// 1-based ranks, equal values sharing the mean of their ranks.
fn ranks(x: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&i, &j| x[i].total_cmp(&x[j]));
    let mut ranks = vec![0.0; x.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start;
        while end + 1 < order.len() && x[order[end + 1]] == x[order[start]] {
            end += 1;
        }
        let mean = (start + end) as f64 / 2.0 + 1.0;
        for &i in &order[start..=end] {
            ranks[i] = mean;
        }
        start = end + 1;
    }
    ranks
}

/// `count` policies for `layers` layers with every w and a drawn uniformly from `lo..=hi`, from
/// a fixed seed (the same policies on every machine with this crate's rand).
pub fn random_policies(count: usize, layers: usize, lo: u8, hi: u8, seed: u64) -> Vec<Policy> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..count)
        .map(|_| {
            let mut draw = || bits_of(rng.random_range(lo..=hi));
            Policy::new(
                (0..layers)
                    .map(|_| LayerBits::new(draw(), draw()))
                    .collect(),
            )
        })
        .collect()
}

#[cfg(test)]
#[path = "agreement_tests.rs"]
mod tests;
