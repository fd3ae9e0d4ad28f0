//! Hard budgets on latency, energy and size, and the budget wall that lowers bits until every
//! budget holds.
//!
//! The wall's rule: while some budget is violated, lower by one bit the operand (weight or
//! activation of one layer) whose lowering saves the most, where the saving is the sum over the
//! violated budgets of (price drop / budget); ties go to the later layer (HAQ sweeps from the
//! last layer to the first). "One bit" is one step down the widths the layer's operand may take
//! (the declared ones as the device runs them, less pruned dominated ones); in a tied space a
//! layer's weight and activation step down together.
//! Apart from rounding up to what the device runs (and, when tied, giving the activation the
//! weight's bits) it never raises a bit. Lowering a bit that saves nothing (e.g. 4 → 3 on a
//! device that runs 3 bits as 4) is only chosen when nothing else saves anything.

use serde::Serialize;

use super::space::{Operand, SearchSpace};
use super::EnvError;
use crate::hardware::Price;
use crate::quant::{LayerBits, Policy};

/// Resolved, absolute budgets; `None` = unconstrained.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Budget {
    pub latency_s: Option<f64>,
    pub energy_j: Option<f64>,
    pub size_bytes: Option<f64>,
}

/// A budget as written in an experiment: a fraction of uniform 8/8, or an absolute value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Limit {
    Fraction(f64),
    Absolute(f64),
}

impl Limit {
    fn resolve(self, uniform8: f64) -> f64 {
        match self {
            Limit::Fraction(f) => f * uniform8,
            Limit::Absolute(v) => v,
        }
    }
}

/// The `[budget]` table, validated.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct BudgetConfig {
    pub latency: Option<Limit>,
    pub energy: Option<Limit>,
    pub size: Option<Limit>,
}

type Getter = fn(&Price) -> f64;
const RESOURCES: [(&str, Getter); 3] = [
    ("latency", |p| p.latency_s),
    ("energy", |p| p.energy_j),
    ("size", |p| p.size_bytes),
];

impl Budget {
    /// Absolute budgets on this space's device; errors before any training if even every
    /// operand at the minimum bitwidth misses a budget.
    pub fn resolve(cfg: &BudgetConfig, space: &SearchSpace) -> Result<Budget, EnvError> {
        let u = space.uniform8;
        let b = Budget {
            latency_s: cfg.latency.map(|l| l.resolve(u.latency_s)),
            energy_j: cfg.energy.map(|l| l.resolve(u.energy_j)),
            size_bytes: cfg.size.map(|l| l.resolve(u.size_bytes)),
        };
        let floor = space.price(&space.floor_policy());
        for (i, (name, get)) in RESOURCES.iter().enumerate() {
            if let Some(limit) = b.limits()[i] {
                if get(&floor) > limit {
                    return Err(EnvError::InfeasibleBudget {
                        resource: name,
                        budget: limit,
                        floor: get(&floor),
                        uniform8: get(&u),
                        min_bits: space.floor(),
                    });
                }
            }
        }
        Ok(b)
    }

    fn limits(&self) -> [Option<f64>; 3] {
        [self.latency_s, self.energy_j, self.size_bytes]
    }

    pub fn holds(&self, p: &Price) -> bool {
        self.limits()
            .iter()
            .zip(RESOURCES)
            .all(|(l, (_, get))| l.is_none_or(|l| get(p) <= l))
    }

    /// The resource the agent's state tracks: the first budget set (latency, energy, size),
    /// else latency relative to uniform 8/8.
    pub fn primary(&self, space: &SearchSpace) -> (Getter, f64) {
        for (l, (_, get)) in self.limits().iter().zip(RESOURCES) {
            if let Some(l) = l {
                return (get, *l);
            }
        }
        (RESOURCES[0].1, space.uniform8.latency_s)
    }

    /// The budget on a cost objective (`None`: unconstrained, or not a cost).
    pub fn limit(&self, cost: crate::pareto::Objective) -> Option<f64> {
        use crate::pareto::Objective;
        match cost {
            Objective::Latency => self.latency_s,
            Objective::Energy => self.energy_j,
            Objective::Size => self.size_bytes,
            Objective::Accuracy | Objective::RobustAccuracy => None,
        }
    }

    /// Normalized saving of going from `from` to `to`, over the budgets `from` violates.
    fn saving(&self, from: &Price, to: &Price) -> f64 {
        self.limits()
            .iter()
            .zip(RESOURCES)
            .filter_map(|(l, (_, get))| {
                l.filter(|&l| get(from) > l)
                    .map(|l| (get(from) - get(to)) / l)
            })
            .sum()
    }

    /// Rounds every operand up to a bitwidth the device runs (the mode it would actually run
    /// in; in a tied space the activation takes the weight's), then lowers bits until every
    /// budget holds (see the module doc for the rule).
    pub fn wall(&self, space: &SearchSpace, policy: &mut Policy) {
        for (l, b) in policy.layers_mut().iter_mut().enumerate() {
            *b = space.run_layer(l, *b);
        }
        loop {
            let now = space.price(policy);
            if self.holds(&now) {
                return;
            }
            let mut best: Option<(f64, usize, LayerBits)> = None;
            for (l, &b) in policy.iter().enumerate().rev() {
                let lower = |bits, op| space.lower(l, op, bits);
                let candidates = if space.tie() {
                    [lower(b.w, Operand::Weight).map(LayerBits::uniform), None]
                } else {
                    [
                        lower(b.w, Operand::Weight).map(|w| LayerBits::new(w, b.a)),
                        lower(b.a, Operand::Activation).map(|a| LayerBits::new(b.w, a)),
                    ]
                };
                for cand in candidates.into_iter().flatten() {
                    let after = now - space.layer_price(l, b) + space.layer_price(l, cand);
                    let s = self.saving(&now, &after);
                    if best.is_none_or(|(b, _, _)| s > b) {
                        best = Some((s, l, cand));
                    }
                }
            }
            match best {
                Some((_, l, cand)) => policy.layers_mut()[l] = cand,
                // Everything is at the floor: `resolve` guarantees this meets the budgets.
                None => return,
            }
        }
    }
}
