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
use crate::env::{Budget, SearchSpace};

pub struct Exhaustive {
    /// The feasible policies, in proposal order.
    policies: Vec<Vec<(u8, u8)>>,
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
                size: space.size().map_or("more than 2^128".into(), |s| s.to_string()),
                bitwidths: space.values().to_vec(),
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
pub fn feasible(space: &SearchSpace, budget: &Budget) -> Vec<Vec<(u8, u8)>> {
    let values = space.values();
    let mut digits = vec![0usize; space.operands()];
    let mut out = Vec::new();
    loop {
        let bits: Vec<(u8, u8)> = if space.tie() {
            digits.iter().map(|&d| (values[d], values[d])).collect()
        } else {
            digits
                .chunks(2)
                .map(|c| (values[c[0]], values[c[1]]))
                .collect()
        };
        if budget.holds(&space.price(&bits)) {
            out.push(bits);
        }
        // Advance the odometer: the last digit turns fastest.
        let Some(i) = digits.iter().rposition(|&d| d + 1 < values.len()) else {
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

