//! Dominated widths (`[bits] prune_dominated`, on by default). Per layer and operand, a width
//! is dominated when a wider one of the space costs exactly the same, whatever the other
//! operand's width: the wider one is expected to be at least as accurate for nothing more, so
//! the search drops the narrower one and a policy naming it runs at the wider one (as a
//! width the device does not support runs at the next one it does).
//!
//! "Costs the same" compares every cost the device models, latency and energy, exactly (the
//! same arithmetic gives the same float). Size, the weights at their own bitwidths, differs with
//! every weight width, so it is compared only when the experiment ranks or budgets it: then a
//! 3-bit weight, smaller than a 4-bit one, is kept. On Bit Fusion, whose fusion units run 3
//! bits as 4 and 5–7 as 8, the default space keeps 2, 4 and 8; on a bit-serial device (BISMO)
//! every width costs differently and all are kept. In a tied space a layer's single width is
//! compared as (w, w).

use super::budget::Budget;
use super::objectives::{cost_of, Objectives};
use crate::hardware::Price;
use crate::pareto::Objective;

/// The costs compared: latency and energy, and size when the objectives or a budget hold it.
pub(super) fn compared(objectives: &Objectives, budget: &Budget) -> Vec<Objective> {
    let mut out = vec![Objective::Latency, Objective::Energy];
    if objectives.costs().any(|c| c == Objective::Size) || budget.size_bytes.is_some() {
        out.push(Objective::Size);
    }
    out
}

/// Whether two prices agree exactly on every cost of `on`.
pub(super) fn same_price(a: &Price, b: &Price, on: &[Objective]) -> bool {
    on.iter().all(|&c| cost_of(c, a) == cost_of(c, b))
}

/// For `n` widths in ascending order, the index each one runs as: the widest `j` with
/// `same(i, j)` (itself when no wider one costs the same). `same` must be an equivalence, so
/// the widest of each class runs as itself and is kept.
pub(super) fn runs_as(n: usize, same: impl Fn(usize, usize) -> bool) -> Vec<usize> {
    (0..n)
        .map(|i| (i..n).rev().find(|&j| same(i, j)).unwrap_or(i))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_width_runs_as_the_widest_that_costs_the_same() {
        // Costs of widths 2..=8 as Bit Fusion prices them: 2 | 3, 4 | 5, 6, 7, 8.
        let cost = [2, 4, 4, 8, 8, 8, 8];
        assert_eq!(runs_as(7, |i, j| cost[i] == cost[j]), [0, 2, 2, 6, 6, 6, 6]);
        assert_eq!(runs_as(3, |i, j| i == j), [0, 1, 2], "all distinct");
    }

    #[test]
    fn size_is_compared_only_when_ranked_or_budgeted() {
        let latency = Objectives::of(true, &[Objective::Latency]);
        let size = Objectives::of(true, &[Objective::Size]);
        let none = Budget::default();
        let sized = Budget {
            size_bytes: Some(1.0),
            ..Budget::default()
        };
        let lat_energy = [Objective::Latency, Objective::Energy];
        assert_eq!(compared(&latency, &none), lat_energy);
        assert_eq!(compared(&size, &none)[2..], [Objective::Size]);
        assert_eq!(compared(&latency, &sized)[2..], [Objective::Size]);
    }
}
