//! The exhaustive oracle: proposes every policy of a small declared space exactly once, in a
//! fixed order, so a search scores the space's true Pareto front to measure other agents by.
//!
//! It enumerates only the policies that already meet the budgets. A policy over budget would
//! be lowered by the wall onto a feasible policy that is enumerated anyway, so proposing it
//! would only score that policy twice. The order is an odometer over the operands (weight then
//! activation per layer, or one bitwidth per layer in a tied space), first layer most
//! significant, bitwidths ascending; a search with fewer episodes than policies scores the first
//! ones in that order, and one with more ends when every policy is scored (`Agent::policies`).
//! A space with more policies than `limit` (before the budget filter) is refused when the agent
//! is built, which the search does before any training.

use rand::rngs::StdRng;

use super::{Agent, AgentError, Context, ExhaustiveConfig, Proposal};
use crate::env::{Budget, Operand, SearchSpace};
use crate::quant::{Format, LayerBits, Policy};

pub struct Exhaustive {
    /// The feasible policies, in proposal order.
    policies: Vec<Policy>,
    /// The number of policies before the budget filter (at most the limit).
    space: usize,
    next: usize,
}

impl Exhaustive {
    /// Enumerates the space, or refuses it if it holds more than `cfg.limit` policies.
    pub fn new(cfg: &ExhaustiveConfig, ctx: &Context) -> Result<Self, AgentError> {
        let space = ctx.space;
        let size = space.size().filter(|&s| s <= cfg.limit as u128);
        let Some(size) = size else {
            return Err(AgentError::SpaceTooLarge {
                size: space
                    .size()
                    .map_or("more than 2^128".into(), |s| s.to_string()),
                bitwidths: space.widths().iter().map(|b| b.to_string()).collect(),
                operands: space.operands(),
                per: if space.tie() { "layer" } else { "operand" },
                limit: cfg.limit,
            });
        };
        Ok(Exhaustive {
            policies: feasible(space, ctx.budget),
            space: size as usize,
            next: 0,
        })
    }
}

/// Every policy of the space that meets the budget, in odometer order.
pub fn feasible(space: &SearchSpace, budget: &Budget) -> Vec<Policy> {
    // The options of each digit: one per layer when tied, else weight then activation.
    let options: Vec<&[Format]> = (0..space.operands())
        .map(|t| match space.tie() {
            true => space.options(t, Operand::Weight),
            false => space.options(t / 2, Operand::of_step(t)),
        })
        .collect();
    let mut digits = vec![0usize; space.operands()];
    let mut out = Vec::new();
    loop {
        let width = |t: usize| options[t][digits[t]];
        let bits: Policy = if space.tie() {
            (0..digits.len())
                .map(|t| LayerBits::uniform(width(t)))
                .collect()
        } else {
            (0..digits.len() / 2)
                .map(|l| LayerBits::new(width(2 * l), width(2 * l + 1)))
                .collect()
        };
        if budget.holds(&space.price(&bits)) {
            out.push(bits);
        }
        // Advance the odometer: the last digit turns fastest.
        let Some(i) = (0..digits.len()).rposition(|t| digits[t] + 1 < options[t].len()) else {
            return out;
        };
        digits[i] += 1;
        digits[i + 1..].fill(0);
    }
}

impl Agent for Exhaustive {
    fn name(&self) -> &'static str {
        "exhaustive"
    }

    /// Its proposals do not depend on what it learns: a batch is the same proposals in a row.
    fn batches(&self) -> bool {
        true
    }

    fn policies(&self) -> Option<usize> {
        Some(self.policies.len())
    }

    fn propose(&mut self, ctx: &Context, _rng: &mut StdRng) -> Result<Proposal, AgentError> {
        let bits = self
            .policies
            .get(self.next)
            .ok_or(AgentError::Exhausted {
                policies: self.policies.len(),
            })?
            .clone();
        self.next += 1;
        Ok(Proposal::from_bits(ctx.space, bits))
    }

    fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "agent": "exhaustive",
            "space": self.space,
            "feasible": self.policies.len(),
            "proposed": self.next,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use rand::SeedableRng;

    use super::*;
    use crate::env::{BudgetConfig, Limit, Objectives};
    use crate::hardware::{resolve_profile, Profile};
    use crate::model::Arch;

    fn space(choices: &[u8], tie: bool) -> SearchSpace {
        let p = Profile::load(&resolve_profile("bitfusion").unwrap()).unwrap();
        let layers = Arch::Lenet5.layer_shapes((1, 28, 28), 10).unwrap();
        SearchSpace::with_choices(layers, choices, tie, &p, &|b| p.supports(b)).unwrap()
    }

    fn latency(space: &SearchSpace, fraction: f64) -> Budget {
        let cfg = BudgetConfig {
            latency: Some(Limit::Fraction(fraction)),
            ..Default::default()
        };
        Budget::resolve(&cfg, space).unwrap()
    }

    /// Every proposal of an agent built on `ctx`, until it says it has no more.
    fn propose_all(ctx: &Context) -> Vec<Policy> {
        let mut agent = Exhaustive::new(&ExhaustiveConfig { limit: 4096 }, ctx).unwrap();
        let n = agent.policies().unwrap();
        let mut rng = StdRng::seed_from_u64(0);
        let out: Vec<_> = (0..n)
            .map(|_| agent.propose(ctx, &mut rng).unwrap().bits)
            .collect();
        assert!(matches!(
            agent.propose(ctx, &mut rng),
            Err(AgentError::Exhausted { policies }) if policies == n
        ));
        out
    }

    #[test]
    fn enumerates_exactly_the_declared_tied_space() {
        let s = space(&[2, 4, 8], true);
        let all = propose_all(&Context {
            space: &s,
            budget: &Budget::default(),
            objectives: &Objectives::default(),
        });
        assert_eq!(all.len(), 243, "3^5 LeNet-5 policies");
        assert_eq!(
            all.iter().collect::<HashSet<_>>().len(),
            243,
            "no duplicates"
        );
        for p in &all {
            assert_eq!(p.len(), 5);
            assert!(
                p.iter()
                    .all(|l| l.w == l.a && [2, 4, 8].contains(&l.w.width())),
                "{p} is outside the tied {{2, 4, 8}} space"
            );
        }
        let order: Vec<String> = [0, 1, 242].map(|i| all[i].to_string()).into();
        assert_eq!(
            order[0], "2/2,2/2,2/2,2/2,2/2",
            "odometer order starts at the floor"
        );
        assert_eq!(order[1], "2/2,2/2,2/2,2/2,4/4");
        assert_eq!(order[2], "8/8,8/8,8/8,8/8,8/8");
    }

    #[test]
    fn enumerates_exactly_the_declared_untied_space() {
        let s = space(&[2, 8], false);
        let all = propose_all(&Context {
            space: &s,
            budget: &Budget::default(),
            objectives: &Objectives::default(),
        });
        assert_eq!(all.len(), 1 << 10, "2 bitwidths on 10 operands");
        assert_eq!(all.iter().collect::<HashSet<_>>().len(), 1 << 10);
        assert!(all.iter().flatten().any(|l| l.w != l.a), "untied");
        assert!(all
            .iter()
            .flatten()
            .all(|l| [2, 8].contains(&l.w.width()) && [2, 8].contains(&l.a.width())));
    }

    #[test]
    fn only_policies_within_budget_are_enumerated_and_the_wall_keeps_them() {
        let s = space(&[2, 4, 8], true);
        let b = latency(&s, 0.5);
        let all = propose_all(&Context {
            space: &s,
            budget: &b,
            objectives: &Objectives::default(),
        });
        // Count the feasible ones independently: decode 0..243 in base 3.
        let expected = (0..243)
            .filter(|&i: &usize| {
                let bits: Policy = (0..5)
                    .map(|l| [2, 4, 8][i / 3usize.pow(4 - l) % 3])
                    .map(|v| LayerBits::uniform(crate::quant::Format::new(v).unwrap()))
                    .collect();
                b.holds(&s.price(&bits))
            })
            .count();
        assert!(expected > 0 && expected < 243, "{expected}");
        assert_eq!(all.len(), expected);
        for p in &all {
            let mut walled = p.clone();
            b.wall(&s, &mut walled);
            assert_eq!(&walled, p, "a feasible policy is trained as proposed");
        }
    }

    #[test]
    fn a_space_above_the_limit_is_refused_with_its_size() {
        let s = space(&[2, 3, 4, 5, 6, 7, 8], false);
        let ctx = Context {
            space: &s,
            budget: &Budget::default(),
            objectives: &Objectives::default(),
        };
        let e = match Exhaustive::new(&ExhaustiveConfig { limit: 4096 }, &ctx) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("7^10 policies accepted under a limit of 4096"),
        };
        for part in ["282475249", "4096", "choices", "tie = true", "limit"] {
            assert!(e.contains(part), "{part} missing from: {e}");
        }
        let tied = space(&[2, 4, 8], true);
        let ctx = Context {
            space: &tied,
            budget: &Budget::default(),
            objectives: &Objectives::default(),
        };
        assert!(Exhaustive::new(&ExhaustiveConfig { limit: 242 }, &ctx).is_err());
        assert!(Exhaustive::new(&ExhaustiveConfig { limit: 243 }, &ctx).is_ok());
    }
}
