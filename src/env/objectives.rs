//! What the agents rank scored policies by, resolved once from the experiment:
//!
//! - accuracy, always;
//! - robust accuracy, when the reward weighs it (`[reward] robustness` > 0);
//! - the costs: `[search] cost` when the experiment names one, else every cost it budgets
//!   (latency, energy, size, in that order), else latency.
//!
//! A point is the objectives' values in that order: accuracy and robust accuracy as scored,
//! each cost from the policy's `Price`. The agents that rank by a front (mbrl's hypervolume,
//! NSGA-II's ranks) use all of them; greedy trades accuracy against the first cost.

use serde::{Deserialize, Serialize};

use super::budget::BudgetConfig;
use crate::hardware::Price;
use crate::pareto::{Objective, Sense};

/// The objectives, in order: accuracy, then robust accuracy if it counts, then the costs.
/// Serialized as the list of their names (config.json's `objectives`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Objectives(Vec<Objective>);

impl Objectives {
    /// The rule of the module doc. `cost` is `[search] cost` (a cost objective; the
    /// experiment's check refuses anything else).
    pub fn resolve(budget: &BudgetConfig, robust: bool, cost: Option<Objective>) -> Self {
        let budgeted = [
            (Objective::Latency, budget.latency.is_some()),
            (Objective::Energy, budget.energy.is_some()),
            (Objective::Size, budget.size.is_some()),
        ];
        let mut costs: Vec<Objective> = match cost {
            Some(c) => vec![c],
            None => budgeted.iter().filter(|b| b.1).map(|b| b.0).collect(),
        };
        if costs.is_empty() {
            costs.push(Objective::Latency);
        }
        Self::of(robust, &costs)
    }

    /// Accuracy, robust accuracy if `robust`, then `costs` (cost objectives, in order, each
    /// once; anything else is left out).
    pub fn of(robust: bool, costs: &[Objective]) -> Self {
        let mut list = vec![Objective::Accuracy];
        if robust {
            list.push(Objective::RobustAccuracy);
        }
        for &c in costs {
            if c.is_cost() && !list.contains(&c) {
                list.push(c);
            }
        }
        Objectives(list)
    }

    pub fn list(&self) -> &[Objective] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether robust accuracy is one of them (always the second when it is).
    pub fn robust(&self) -> bool {
        self.0.contains(&Objective::RobustAccuracy)
    }

    /// How many leading objectives are scores (learned by a model) rather than costs (exact).
    pub fn scores(&self) -> usize {
        self.0.iter().take_while(|o| !o.is_cost()).count()
    }

    /// The cost objectives, in order (at least one).
    pub fn costs(&self) -> impl Iterator<Item = Objective> + '_ {
        self.0.iter().copied().filter(|o| o.is_cost())
    }

    pub fn senses(&self) -> Vec<Sense> {
        self.0.iter().map(|o| o.sense()).collect()
    }

    /// A scored policy's point: `accuracy`, `robust` (credited robust accuracy) if it counts,
    /// then each cost from `price`.
    pub fn point(&self, accuracy: f64, robust: f64, price: &Price) -> Vec<f64> {
        (self.0.iter())
            .map(|&o| match o {
                Objective::Accuracy => accuracy,
                Objective::RobustAccuracy => robust,
                cost => cost_of(cost, price),
            })
            .collect()
    }

    /// Each cost of `price`, in order.
    pub fn cost_point(&self, price: &Price) -> Vec<f64> {
        self.costs().map(|c| cost_of(c, price)).collect()
    }
}

/// The objectives of an experiment with no budget, no `cost` and a robustness term in its
/// reward: accuracy, robust accuracy, latency.
impl Default for Objectives {
    fn default() -> Self {
        Objectives::resolve(&BudgetConfig::default(), true, None)
    }
}

/// The value of a cost objective in `price` (0 for a score, which a price does not hold).
pub fn cost_of(cost: Objective, price: &Price) -> f64 {
    match cost {
        Objective::Latency => price.latency_s,
        Objective::Energy => price.energy_j,
        Objective::Size => price.size_bytes,
        Objective::Accuracy | Objective::RobustAccuracy => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::Limit;
    use Objective::*;

    fn budget(latency: bool, energy: bool, size: bool) -> BudgetConfig {
        let l = |on: bool| on.then_some(Limit::Fraction(0.5));
        BudgetConfig {
            latency: l(latency),
            energy: l(energy),
            size: l(size),
        }
    }

    #[test]
    fn the_budgeted_costs_are_the_objectives() {
        let o = Objectives::resolve(&budget(true, false, false), true, None);
        assert_eq!(o.list(), [Accuracy, RobustAccuracy, Latency]);
        let o = Objectives::resolve(&budget(false, true, false), true, None);
        assert_eq!(o.list(), [Accuracy, RobustAccuracy, Energy]);
        let o = Objectives::resolve(&budget(true, true, true), true, None);
        assert_eq!(o.list(), [Accuracy, RobustAccuracy, Latency, Energy, Size]);
    }

    #[test]
    fn latency_when_nothing_is_budgeted() {
        let o = Objectives::resolve(&budget(false, false, false), true, None);
        assert_eq!(o.list(), [Accuracy, RobustAccuracy, Latency]);
    }

    #[test]
    fn an_explicit_cost_overrides_the_budgets() {
        let o = Objectives::resolve(&budget(true, false, true), true, Some(Energy));
        assert_eq!(o.list(), [Accuracy, RobustAccuracy, Energy]);
    }

    #[test]
    fn robust_accuracy_only_when_the_reward_weighs_it() {
        let o = Objectives::resolve(&budget(true, false, false), false, None);
        assert_eq!(o.list(), [Accuracy, Latency]);
        assert_eq!((o.robust(), o.scores()), (false, 1));
    }

    #[test]
    fn a_point_follows_the_order() {
        let price = Price {
            latency_s: 1.0,
            energy_j: 2.0,
            size_bytes: 3.0,
        };
        let o = Objectives::resolve(&budget(false, true, true), true, None);
        assert_eq!(o.point(0.9, 0.5, &price), [0.9, 0.5, 2.0, 3.0]);
        assert_eq!(o.cost_point(&price), [2.0, 3.0]);
        assert_eq!(
            serde_json::to_string(&o).unwrap(),
            r#"["accuracy","robust_accuracy","energy","size"]"#
        );
    }
}
