//! The search space of HAQ's environment: one step per quantizable layer and operand (weight
//! step, then activation step), continuous actions in [0,1] mapped to the declared bitwidths by
//! equal-width bins, every layer priced at every (w, a) once on the target profile, and the
//! state each step shows the agent. The declared bitwidths are min..=max or an explicit list
//! (`[bits] choices`); with `tie`, a layer's activation bits follow its weight bits.
//!
//! The widths a layer's operand may take (`options`) are the declared ones as the device runs
//! them (rounded up to a supported width), less, after `prune_dominated`, those the device
//! prices exactly like a wider one (`prune.rs`). `run_layer` maps any bits onto them.

use super::budget::Budget;
use super::objectives::Objectives;
use super::prune::{compared, runs_as, same_price};
use super::EnvError;
use crate::hardware::{CostModel, Price};
use crate::model::{LayerKind, LayerShape};
use crate::quant::{Format, LayerBits, Policy};

/// Number of features in a step's state (see `SearchSpace::state`).
pub const STATE_DIM: usize = 14;

/// One of a layer's two quantized operands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operand {
    Weight,
    Activation,
}

impl Operand {
    /// Step `t` of a layer's walk: even steps are weights.
    pub fn of_step(t: usize) -> Operand {
        if t.is_multiple_of(2) {
            Operand::Weight
        } else {
            Operand::Activation
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

pub struct SearchSpace {
    pub layers: Vec<LayerShape>,
    /// The lowest and highest declared bitwidths.
    pub min_bits: u8,
    pub max_bits: u8,
    /// The declared bitwidths, ascending: the bins actions map to.
    declared: Vec<Format>,
    /// Weight bits = activation bits on every layer.
    tie: bool,
    /// The bitwidths the device actually runs for the declared ones, ascending: a declared
    /// bitwidth the profile does not support is rounded up to the next one it does (32 if none).
    values: Vec<Format>,
    /// Per layer and operand (weight, activation), the width each of `values` runs as: itself,
    /// or the wider one that prices the same once dominated widths are pruned.
    runs_as: Vec<[Vec<Format>; 2]>,
    /// Per layer and operand, the widths a policy may take: the `values` that run as
    /// themselves, ascending.
    options: Vec<[Vec<Format>; 2]>,
    /// Whether `prune_dominated` has run.
    pruned: bool,
    /// prices[layer][i * values.len() + j] for (values[i], values[j])
    prices: Vec<Vec<Price>>,
    /// Static features per step, min–max normalized over steps.
    features: Vec<[f32; 11]>,
    pub uniform8: Price,
    /// Full precision on every layer (the FP32 reference). Every device prices it: precision-
    /// modes profiles need a 32/32 mode and measured tables a 32/32 row, so a failure here is
    /// an error, never a zero price.
    pub full: Price,
}

impl SearchSpace {
    /// The space of min..=max bits on every operand, untied (see `with_choices`).
    pub fn new(
        layers: Vec<LayerShape>,
        min_bits: u8,
        max_bits: u8,
        device: &dyn CostModel,
        supports: &dyn Fn(Format) -> bool,
    ) -> Result<Self, EnvError> {
        let declared: Vec<u8> = (min_bits..=max_bits).collect();
        Self::with_choices(layers, &declared, false, device, supports)
    }

    /// Prices every layer at every (w, a) the device runs for the `declared` bitwidths (a
    /// missing entry is an error); `supports` says which bitwidths the device runs natively.
    /// `declared` is non-empty and in 1..=8 (the experiment checks both; a width outside is an
    /// error here too); it is sorted here.
    pub fn with_choices(
        layers: Vec<LayerShape>,
        declared: &[u8],
        tie: bool,
        device: &dyn CostModel,
        supports: &dyn Fn(Format) -> bool,
    ) -> Result<Self, EnvError> {
        let mut declared = (declared.iter())
            .map(|&b| Format::new(b))
            .collect::<Result<Vec<Format>, _>>()?;
        declared.sort_unstable();
        declared.dedup();
        let (Some(&min_bits), Some(&max_bits)) = (declared.first(), declared.last()) else {
            return Err(EnvError::NoBits);
        };
        let round_up = |b: Format| {
            (b.width()..=Format::MAX)
                .filter_map(|v| Format::new(v).ok())
                .find(|&v| supports(v))
                .unwrap_or(Format::FULL)
        };
        let mut values: Vec<Format> = declared.iter().map(|&b| round_up(b)).collect();
        values.dedup();
        let mut prices = Vec::with_capacity(layers.len());
        for l in &layers {
            let mut row = Vec::with_capacity(values.len() * values.len());
            for &w in &values {
                for &a in &values {
                    row.push(price(device, l, LayerBits::new(w, a))?);
                }
            }
            prices.push(row);
        }
        let eight = LayerBits::uniform(Format::new(8)?);
        let mut uniform8 = Price::default();
        for l in &layers {
            uniform8 = uniform8 + price(device, l, eight)?;
        }
        let mut full = Price::default();
        for l in &layers {
            full = full + price(device, l, LayerBits::uniform(Format::FULL))?;
        }
        let features = normalized_features(&layers);
        let every = [values.clone(), values.clone()];
        Ok(SearchSpace {
            runs_as: vec![every.clone(); layers.len()],
            options: vec![every; layers.len()],
            pruned: false,
            layers,
            min_bits: min_bits.width(),
            max_bits: max_bits.width(),
            declared,
            tie,
            values,
            prices,
            features,
            uniform8,
            full,
        })
    }

    pub fn steps(&self) -> usize {
        2 * self.layers.len()
    }

    fn n_bits(&self) -> usize {
        self.declared.len()
    }

    /// Whether a layer's activation bits follow its weight bits.
    pub fn tie(&self) -> bool {
        self.tie
    }

    /// The number of free choices in a policy: one per layer when tied, else two.
    pub fn operands(&self) -> usize {
        if self.tie {
            self.layers.len()
        } else {
            self.steps()
        }
    }

    /// How many distinct policies the space holds (the product of every operand's number of
    /// options, one per layer when tied); `None` if that overflows u128.
    pub fn size(&self) -> Option<u128> {
        (self.options.iter()).try_fold(1u128, |n, [w, a]| {
            let per_layer = if self.tie { w.len() } else { w.len() * a.len() };
            n.checked_mul(per_layer as u128)
        })
    }

    /// The bitwidths the device runs, ascending (the declared ones rounded up to supported
    /// ones), before dominated ones are pruned: what references and sensitivities cover.
    pub fn values(&self) -> &[Format] {
        &self.values
    }

    /// The widths layer `layer`'s `operand` may take, ascending (in a tied space the
    /// activation's are the weight's).
    pub fn options(&self, layer: usize, operand: Operand) -> &[Format] {
        let op = if self.tie { Operand::Weight } else { operand };
        &self.options[layer][op.index()]
    }

    /// Every width some operand may take, ascending.
    pub fn widths(&self) -> Vec<Format> {
        let mut out: Vec<Format> = self.options.iter().flatten().flatten().copied().collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Whether dominated widths were pruned (`prune_dominated`).
    pub fn pruned(&self) -> bool {
        self.pruned
    }

    /// Drops, per layer and operand, every width the device prices exactly like a wider one
    /// (`prune.rs` has the rule; `objectives` and `budget` say whether size is compared).
    pub fn prune_dominated(&mut self, objectives: &Objectives, budget: &Budget) {
        let on = compared(objectives, budget);
        let n = self.values.len();
        for l in 0..self.layers.len() {
            let price = |i: usize, j: usize| self.prices[l][i * n + j];
            let map: [Vec<usize>; 2] = if self.tie {
                let tied = runs_as(n, |i, j| same_price(&price(i, i), &price(j, j), &on));
                [tied.clone(), tied]
            } else {
                [
                    runs_as(n, |i, j| {
                        (0..n).all(|k| same_price(&price(i, k), &price(j, k), &on))
                    }),
                    runs_as(n, |i, j| {
                        (0..n).all(|k| same_price(&price(k, i), &price(k, j), &on))
                    }),
                ]
            };
            let runs: [Vec<Format>; 2] = map.map(|m| m.iter().map(|&j| self.values[j]).collect());
            self.options[l] = runs.clone().map(|r| {
                (self.values.iter().zip(&r))
                    .filter(|(v, to)| v == to)
                    .map(|(v, _)| *v)
                    .collect()
            });
            self.runs_as[l] = runs;
        }
        self.pruned = true;
    }

    /// The lowest bitwidth the device runs in the range.
    pub fn floor(&self) -> Format {
        self.values[0]
    }

    /// The highest bitwidth the device runs in the range.
    pub fn ceiling(&self) -> Format {
        self.values[self.values.len() - 1]
    }

    /// A width of `width` bits (any number: one drawn between `min_bits` and `max_bits`, or
    /// `Format::get`) rounded up to a bitwidth the device runs; above them all, the highest.
    pub fn run_bits(&self, width: u8) -> Format {
        (self.values.iter().copied())
            .find(|v| v.width() >= width)
            .unwrap_or(self.ceiling())
    }

    /// Layer `layer`'s bits as the device runs them in this space: each rounded up
    /// (`run_bits`), then a pruned width to the wider one that prices the same; with `tie` the
    /// activation takes the weight's bits.
    pub fn run_layer(&self, layer: usize, bits: LayerBits) -> LayerBits {
        let run = |b: Format, op: Operand| self.runs_as[layer][op.index()][self.index(b)];
        let w = run(bits.w, Operand::Weight);
        let a = if self.tie {
            w
        } else {
            run(bits.a, Operand::Activation)
        };
        LayerBits::new(w, a)
    }

    /// Every layer of `policy` as the device runs it here (`run_layer`).
    pub fn run_policy(&self, policy: &Policy) -> Policy {
        (policy.iter().enumerate())
            .map(|(l, &b)| self.run_layer(l, b))
            .collect()
    }

    /// Whether `policy` is one of the space's policies: one entry per layer, each as the device
    /// runs it here (`run_layer` changes nothing).
    pub fn contains(&self, policy: &Policy) -> bool {
        policy.len() == self.layers.len() && &self.run_policy(policy) == policy
    }

    /// The next lower width layer `layer`'s `operand` may take, if any.
    pub fn lower(&self, layer: usize, operand: Operand, bits: Format) -> Option<Format> {
        let options = self.options(layer, operand);
        options.iter().copied().rev().find(|&v| v < bits)
    }

    /// Position of a run bitwidth in `values()` (of its rounding, for any other bitwidth).
    pub fn index(&self, bits: Format) -> usize {
        let b = self.run_bits(bits.width());
        self.values.iter().position(|&v| v == b).unwrap_or(0)
    }

    /// Equal-width bins over the n declared bitwidths: [0, 1/n) → the first, ..., [(n-1)/n, 1]
    /// → the last, then rounded up to a bitwidth the device runs. For min..=max that is one bin
    /// per bitwidth, as HAQ maps its actions.
    pub fn action_to_bits(&self, action: f32) -> Format {
        let n = self.n_bits();
        let idx = ((action.clamp(0.0, 1.0) * n as f32).floor() as usize).min(n - 1);
        self.run_bits(self.declared[idx].width())
    }

    /// The centre of the bin of `bits` (the inverse of `action_to_bits` on run bitwidths): the
    /// bin of the lowest declared bitwidth at or above it (the last bin above them all).
    pub fn bits_to_action(&self, bits: Format) -> f32 {
        let idx = self
            .declared
            .iter()
            .position(|&d| d >= bits)
            .unwrap_or(self.n_bits() - 1);
        (idx as f32 + 0.5) / self.n_bits() as f32
    }

    /// Layer `layer`'s price at `bits`, each operand as the device runs it (`run_bits`).
    pub fn layer_price(&self, layer: usize, bits: LayerBits) -> Price {
        let n = self.values.len();
        self.prices[layer][self.index(bits.w) * n + self.index(bits.a)]
    }

    /// The price of a policy: the sum of its layers' prices.
    pub fn price(&self, policy: &Policy) -> Price {
        (policy.iter().enumerate()).fold(Price::default(), |p, (l, &b)| p + self.layer_price(l, b))
    }

    /// The agent's view of step `t` (layer t/2; weight step if t is even): 11 normalized static
    /// features (layer index, conv, depthwise, in/out channels, kernel, stride, input feature
    /// size, params, MACs, weight-or-activation), the previous action, and the `resource` spent
    /// by decided operands (`decided`, one per step so far) and still to come (undecided
    /// operands at the floor bitwidth), over `budget`.
    pub fn state(
        &self,
        t: usize,
        prev_action: f32,
        decided: &[Format],
        resource: impl Fn(&Price) -> f64,
        budget: f64,
    ) -> [f32; STATE_DIM] {
        let mut s = [0f32; STATE_DIM];
        s[..11].copy_from_slice(&self.features[t]);
        s[11] = prev_action;
        let (mut spent, mut to_come) = (0.0, 0.0);
        for l in 0..self.layers.len() {
            let w = decided.get(2 * l).copied();
            let a = decided.get(2 * l + 1).copied();
            let floor = self.floor();
            let p = resource(
                &self.layer_price(l, LayerBits::new(w.unwrap_or(floor), a.unwrap_or(floor))),
            );
            if w.is_some() {
                spent += p;
            } else {
                to_come += p;
            }
        }
        let b = if budget > 0.0 { budget } else { 1.0 };
        s[12] = (spent / b) as f32;
        s[13] = (to_come / b) as f32;
        s
    }
}

fn price(device: &dyn CostModel, l: &LayerShape, bits: LayerBits) -> Result<Price, EnvError> {
    let c = device.layer_cost(l, bits)?;
    // Stored parameters only: an attention matmul's operands are activations, not model size.
    let size_bytes =
        l.weight_count() as f64 * bits.w.width() as f64 / 8.0 + 4.0 * l.bias_count() as f64;
    Ok(Price {
        latency_s: c.latency_s,
        energy_j: c.energy_j,
        size_bytes,
    })
}

fn normalized_features(layers: &[LayerShape]) -> Vec<[f32; 11]> {
    let mut raw: Vec<[f32; 11]> = Vec::with_capacity(2 * layers.len());
    for (i, l) in layers.iter().enumerate() {
        for operand in [0f32, 1.0] {
            raw.push([
                i as f32,
                (l.kind == LayerKind::Conv) as u8 as f32,
                l.is_depthwise() as u8 as f32,
                l.in_ch as f32,
                l.out_ch as f32,
                l.kernel as f32,
                l.stride as f32,
                (l.in_hw.0 * l.in_hw.1) as f32,
                l.params as f32,
                l.macs as f32,
                operand,
            ]);
        }
    }
    for f in 0..11 {
        let (lo, hi) = raw.iter().fold((f32::MAX, f32::MIN), |(lo, hi), r| {
            (lo.min(r[f]), hi.max(r[f]))
        });
        for r in raw.iter_mut() {
            r[f] = if hi > lo {
                (r[f] - lo) / (hi - lo)
            } else {
                0.0
            };
        }
    }
    raw
}
