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
use crate::hardware::Price;
use crate::model::LayerShape;
pub use crate::quant::Operand;
use crate::quant::{Format, LayerBits, Policy};

/// Number of features in a step's state (see `SearchSpace::state`).
pub const STATE_DIM: usize = 14;

pub struct SearchSpace {
    pub layers: Vec<LayerShape>,
    /// The lowest and highest declared bitwidths.
    pub min_bits: u8,
    pub max_bits: u8,
    /// Per operand (weight, activation), the declared formats, ascending: the bins actions
    /// map to. With `tie` both are the weight's.
    declared: [Vec<Format>; 2],
    /// Weight bits = activation bits on every layer.
    tie: bool,
    /// The formats the device actually runs for either operand's declared ones, ascending: a
    /// declared integer width the profile does not support is rounded up to the next one it
    /// does (32 if none); a named format (fp8, group-wise int4, ...) stays itself, priced as
    /// the device runs it.
    values: Vec<Format>,
    /// Per layer and operand (weight, activation), the width each of `values` runs as: itself,
    /// or the wider one that prices the same (and holds it) once dominated widths are pruned;
    /// a value the operand was not declared with runs as the next option above it (else the
    /// last).
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

#[path = "space_build.rs"]
mod build;

impl SearchSpace {
    pub fn steps(&self) -> usize {
        2 * self.layers.len()
    }

    fn n_bits(&self, operand: Operand) -> usize {
        self.declared[self.op(operand).index()].len()
    }

    /// The operand whose options `operand` takes: the weight's when tied.
    fn op(&self, operand: Operand) -> Operand {
        if self.tie {
            Operand::Weight
        } else {
            operand
        }
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
        &self.options[layer][self.op(operand).index()]
    }

    /// Each layer at the lowest format each of its operands may take: the cheapest policy
    /// (a narrower format never prices above a wider one that holds it).
    pub fn floor_policy(&self) -> Policy {
        (0..self.layers.len())
            .map(|l| {
                let w = self.options(l, Operand::Weight)[0];
                LayerBits::new(w, self.options(l, Operand::Activation)[0])
            })
            .collect()
    }

    /// Whether a named format (anything but integers and full precision) is in the space.
    pub fn has_named_formats(&self) -> bool {
        self.values.iter().any(|v| !v.is_plain())
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
            // j stands in for i only if it holds every value i can (a wider integer; fp16
            // for fp8), both are options of the operand, and no price of `on` tells them apart.
            let declared =
                |op: Operand, i: usize| self.options[l][op.index()].contains(&self.values[i]);
            let stands = |op: Operand, i: usize, j: usize| {
                declared(op, i) && declared(op, j) && self.values[j].holds(self.values[i])
            };
            let map: [Vec<usize>; 2] = if self.tie {
                let tied = runs_as(n, |i, j| {
                    stands(Operand::Weight, i, j) && same_price(&price(i, i), &price(j, j), &on)
                });
                [tied.clone(), tied]
            } else {
                [
                    runs_as(n, |i, j| {
                        stands(Operand::Weight, i, j)
                            && (0..n).all(|k| same_price(&price(i, k), &price(j, k), &on))
                    }),
                    runs_as(n, |i, j| {
                        stands(Operand::Activation, i, j)
                            && (0..n).all(|k| same_price(&price(k, i), &price(k, j), &on))
                    }),
                ]
            };
            // A value the operand was not declared with keeps running as it did (the next
            // option above), then as whatever that option now runs as.
            let runs: [Vec<Format>; 2] = [Operand::Weight, Operand::Activation].map(|op| {
                let m = &map[op.index()];
                (0..n)
                    .map(|i| match declared(op, i) {
                        true => self.values[m[i]],
                        false => {
                            let to = self.runs_as[l][op.index()][i];
                            let k = self.values.iter().position(|&v| v == to).unwrap_or(i);
                            self.values[m[k]]
                        }
                    })
                    .collect()
            });
            // An operand keeps the options that still run as themselves.
            self.options[l] = [Operand::Weight, Operand::Activation].map(|op| {
                (0..n)
                    .filter(|&i| declared(op, i) && runs[op.index()][i] == self.values[i])
                    .map(|i| self.values[i])
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
    /// `Format::width`) rounded up to an integer width the device runs; above them all, the
    /// highest format.
    pub fn run_bits(&self, width: u8) -> Format {
        (self.values.iter().copied())
            .filter(|v| v.is_plain())
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
        if let Some(i) = self.values.iter().position(|&v| v == bits) {
            return i;
        }
        let b = self.run_bits(bits.width());
        self.values.iter().position(|&v| v == b).unwrap_or(0)
    }

    /// Equal-width bins over `operand`'s n declared formats: [0, 1/n) → the first, ...,
    /// [(n-1)/n, 1] → the last, then an integer rounded up to a width the device runs. For
    /// min..=max that is one bin per bitwidth, as HAQ maps its actions.
    pub fn action_to_bits(&self, action: f32, operand: Operand) -> Format {
        let declared = &self.declared[self.op(operand).index()];
        let n = declared.len();
        let idx = ((action.clamp(0.0, 1.0) * n as f32).floor() as usize).min(n - 1);
        self.values[self.index(declared[idx])]
    }

    /// The centre of the bin of `bits` (the inverse of `action_to_bits` on run formats): the
    /// bin of `operand`'s lowest declared format at or above it (the last bin above them all).
    pub fn bits_to_action(&self, bits: Format, operand: Operand) -> f32 {
        let declared = &self.declared[self.op(operand).index()];
        let idx = (declared.iter().position(|&d| d >= bits)).unwrap_or(declared.len() - 1);
        (idx as f32 + 0.5) / self.n_bits(operand) as f32
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
            let floor = |op| self.options(l, op)[0];
            let bits = LayerBits::new(
                w.unwrap_or(floor(Operand::Weight)),
                a.unwrap_or(floor(Operand::Activation)),
            );
            let p = resource(&self.layer_price(l, bits));
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
