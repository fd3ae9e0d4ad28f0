//! HAWQ-style sensitivity + knapsack. Before the search (`prepare`), each operand's sensitivity
//! at each bitwidth is measured once through the search's probe: the validation loss increase
//! when only that operand (one layer's weight or input) is quantized, the rest full precision,
//! no fine-tune; it is kept as sensitivity.json. The policy minimizing
//! the summed sensitivity under a bound on the experiment's first cost (`Context::objectives`:
//! its budget, or uniform 8/8's cost when it has none) is then an exact knapsack, solved by
//! dynamic programming with each layer's cost rounded *up* to 1/`buckets` of the bound (so the
//! solution always fits; any other budgets are left to the budget wall). Episode k proposes the
//! optimum for a bound swept from that one down to `sweep_to` of it, each distinct solution
//! once, cycling when the episodes outnumber them. Sensitivity measures accuracy only: greedy
//! has no model of robust accuracy. A solution that is one of the run's uniform references
//! (`Agent::observe_reference`) is already scored: it is dropped, unless it is the only one.

use rand::rngs::StdRng;
use serde::Serialize;

use super::{Agent, AgentError, Context, Feedback, GreedyConfig, Measurement, Probe, Proposal};
use crate::env::{cost_of, Operand, Price, SearchSpace};
use crate::pareto::Objective;
use crate::quant::{Format, LayerBits, Policy};

/// Loss increase per layer and run bitwidth (indexed like `SearchSpace::values`), for weights
/// and activations.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sensitivity {
    pub w: Vec<Vec<f64>>,
    pub a: Vec<Vec<f64>>,
}

pub struct Greedy {
    cfg: GreedyConfig,
    solutions: Vec<Policy>,
    next: usize,
}

/// Points of the budget sweep; the distinct optima among them are the proposals.
const SWEEP_POINTS: usize = 200;

impl Greedy {
    /// An agent without proposals until `prepare` has measured the sensitivities.
    pub fn new(cfg: GreedyConfig) -> Self {
        Greedy {
            cfg,
            solutions: Vec::new(),
            next: 0,
        }
    }

    /// The distinct knapsack optima over the budget sweep, given the sensitivities.
    fn solve(&mut self, ctx: &Context, sens: &Sensitivity) {
        let cost = ctx.objectives.costs().next().unwrap_or(Objective::Latency);
        let budget = (ctx.budget.limit(cost)).unwrap_or_else(|| cost_of(cost, &ctx.space.uniform8));
        let resource = |p: &Price| cost_of(cost, p);
        let mut solutions: Vec<Policy> = Vec::new();
        for i in 0..SWEEP_POINTS {
            let f = 1.0 - (1.0 - self.cfg.sweep_to) * i as f64 / (SWEEP_POINTS - 1) as f64;
            if let Some(s) = knapsack(ctx.space, sens, resource, budget * f, self.cfg.buckets) {
                if !solutions.contains(&s) {
                    solutions.push(s);
                }
            }
        }
        if solutions.is_empty() {
            // Even the swept budgets admit nothing at this resolution: start from the floor.
            solutions.push(ctx.space.floor_policy());
        }
        self.solutions = solutions;
    }

    pub fn solutions(&self) -> &[Policy] {
        &self.solutions
    }
}

/// Each operand's validation-loss increase at each bitwidth the device runs, with only it
/// quantized (no fine-tune).
pub fn sensitivity(space: &SearchSpace, probe: &Probe) -> Result<Sensitivity, AgentError> {
    let n = space.layers.len();
    let full = Policy::uniform(n, Format::FULL);
    let loss = |bits: &Policy| probe(bits).map_err(AgentError::Probe);
    let base = loss(&full)?;
    let mut s = Sensitivity {
        w: vec![Vec::new(); n],
        a: vec![Vec::new(); n],
    };
    for l in 0..n {
        // A format an operand cannot take (group-wise int4 activations, int16 weights) is
        // never an option of it: not probed, infinitely sensitive.
        for &b in space.values() {
            let mut bits = full.clone();
            bits.layers_mut()[l].w = b;
            s.w[l].push(match b.allowed_for(Operand::Weight) {
                true => loss(&bits)? - base,
                false => f64::INFINITY,
            });
            bits.layers_mut()[l] = LayerBits::new(Format::FULL, b);
            s.a[l].push(match b.allowed_for(Operand::Activation) {
                true => loss(&bits)? - base,
                false => f64::INFINITY,
            });
        }
    }
    Ok(s)
}

/// A knapsack state: summed sensitivity and the bits chosen for the layers so far.
type Partial = (f64, Vec<LayerBits>);

/// The policy minimizing Σ sensitivity with Σ cost ≤ `budget`, or None if nothing fits.
pub fn knapsack(
    space: &SearchSpace,
    sens: &Sensitivity,
    cost: impl Fn(&Price) -> f64,
    budget: f64,
    buckets: usize,
) -> Option<Policy> {
    let cap = buckets;
    let unit = budget / buckets as f64;
    // best[c] = (sensitivity, choices) over layers so far with total units exactly c.
    let mut best: Vec<Option<Partial>> = vec![None; cap + 1];
    best[0] = Some((0.0, Vec::new()));
    for l in 0..space.layers.len() {
        let mut next: Vec<Option<Partial>> = vec![None; cap + 1];
        for (c, entry) in best.iter().enumerate() {
            let Some((s, choice)) = entry else { continue };
            for &w in space.options(l, Operand::Weight) {
                for &a in space.options(l, Operand::Activation) {
                    let wa = LayerBits::new(w, a);
                    let units = (cost(&space.layer_price(l, wa)) / unit).ceil() as usize;
                    let (c2, i, j) = (c + units, space.index(w), space.index(a));
                    if c2 > cap {
                        continue;
                    }
                    let s2 = s + sens.w[l][i] + sens.a[l][j];
                    if next[c2].as_ref().is_none_or(|(b, _)| s2 < *b) {
                        let mut ch = choice.clone();
                        ch.push(wa);
                        next[c2] = Some((s2, ch));
                    }
                }
            }
        }
        best = next;
    }
    best.into_iter()
        .flatten()
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| Policy::new(c))
}

impl Agent for Greedy {
    fn name(&self) -> &'static str {
        "greedy"
    }

    /// Its proposals do not depend on what it learns: a batch is the same proposals in a row.
    fn batches(&self) -> bool {
        true
    }

    fn prepare(&mut self, ctx: &Context, probe: &Probe) -> Result<Option<Measurement>, AgentError> {
        let sens = sensitivity(ctx.space, probe)?;
        self.solve(ctx, &sens);
        Ok(Some(Measurement {
            file: "sensitivity.json",
            json: serde_json::json!({ "w": sens.w, "a": sens.a }),
        }))
    }

    fn observe_reference(&mut self, ctx: &Context, f: &Feedback) -> Result<(), AgentError> {
        let walled = |s: &Policy| {
            let mut w = s.clone();
            ctx.budget.wall(ctx.space, &mut w);
            w
        };
        let kept: Vec<Policy> = (self.solutions.iter())
            .filter(|s| walled(s) != f.walled)
            .cloned()
            .collect();
        if !kept.is_empty() {
            self.solutions = kept;
        }
        Ok(())
    }

    fn propose(&mut self, ctx: &Context, _: &mut StdRng) -> Result<Proposal, AgentError> {
        if self.solutions.is_empty() {
            return Err(AgentError::NoSensitivity);
        }
        let bits = self.solutions[self.next % self.solutions.len()].clone();
        self.next += 1;
        Ok(Proposal::from_bits(ctx.space, bits))
    }

    fn summary(&self) -> serde_json::Value {
        serde_json::json!({ "agent": "greedy", "proposed": self.next, "distinct_solutions": self.solutions.len() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::{Budget, BudgetConfig, Limit, Objectives};
    use crate::hardware::{resolve_profile, Profile};
    use crate::model::Arch;
    use rand::SeedableRng;

    #[test]
    fn prepare_measures_sensitivity_through_the_probe_before_any_proposal() {
        let p = Profile::load(&resolve_profile("bitfusion").unwrap()).unwrap();
        let layers = Arch::Lenet5.layer_shapes((1, 28, 28), 10).unwrap();
        let space = SearchSpace::new(layers, 2, 8, &p, &|b| p.supports(b)).unwrap();
        let cfg = BudgetConfig {
            latency: Some(Limit::Fraction(0.5)),
            ..BudgetConfig::default()
        };
        let budget = Budget::resolve(&cfg, &space).unwrap();
        let objectives = Objectives::resolve(&cfg, true, None);
        let ctx = Context {
            space: &space,
            budget: &budget,
            objectives: &objectives,
        };
        let mut g = Greedy::new(GreedyConfig {
            buckets: 500,
            sweep_to: 0.6,
        });
        let mut rng = StdRng::seed_from_u64(0);
        assert!(matches!(
            g.propose(&ctx, &mut rng),
            Err(AgentError::NoSensitivity)
        ));
        // A made-up loss: each operand below 8 bits adds (8 - bits) / 100.
        let probe: &Probe = &|bits: &Policy| {
            let below8 = |b: Format| 8u8.saturating_sub(b.width().min(8));
            Ok(bits
                .iter()
                .map(|l| (below8(l.w) + below8(l.a)) as f64 / 100.0)
                .sum())
        };
        let m = g.prepare(&ctx, probe).unwrap().unwrap();
        assert_eq!(m.file, "sensitivity.json");
        let w = m.json["w"][0].as_array().unwrap();
        assert_eq!(w.len(), space.values().len());
        // 2 bits on conv1's weights: 6 bits below 8 → 0.06 above full precision.
        assert!((w[0].as_f64().unwrap() - 0.06).abs() < 1e-12, "{w:?}");
        let bits = g.propose(&ctx, &mut rng).unwrap().bits;
        assert!(budget.holds(&space.price(&bits)), "{bits}");
        // A solution the run's references already scored is not proposed again.
        let n = g.solutions().len();
        let first = g.solutions()[0].clone();
        let reference = Feedback {
            reward: 0.0,
            price: space.price(&first),
            scores: Some([0.9, 0.5]),
            walled: first.clone(),
            fidelity: crate::fidelity::Fidelity::Full,
        };
        g.observe_reference(&ctx, &reference).unwrap();
        assert_eq!(g.solutions().len(), n - 1);
        assert!(!g.solutions().contains(&first));
        // Under an energy budget the knapsack bounds energy, the experiment's cost.
        let cfg = BudgetConfig {
            energy: Some(Limit::Fraction(0.5)),
            ..BudgetConfig::default()
        };
        let budget = Budget::resolve(&cfg, &space).unwrap();
        let objectives = Objectives::resolve(&cfg, true, None);
        let ctx = Context {
            space: &space,
            budget: &budget,
            objectives: &objectives,
        };
        g.prepare(&ctx, probe).unwrap();
        for _ in 0..g.solutions().len() {
            let bits = g.propose(&ctx, &mut rng).unwrap().bits;
            assert!(
                budget.holds(&space.price(&bits)),
                "{bits} misses the energy budget"
            );
        }
    }
}
