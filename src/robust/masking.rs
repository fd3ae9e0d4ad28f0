//! The gradient-masking checks: signs that an attack suite's number is inflated because the
//! attacks fail, not because the model is robust. Any check that fires flags the policy, and the
//! search credits a flagged policy with no robustness (docs/run-directory.md).

use serde::Serialize;

use super::suite::{AttackKind, AttackResult, SquareRun};

/// Square breaking more than this fraction of all examples that every gradient attack left
/// standing flags masking: the gradient attacks miss what a gradient-free one finds.
pub const GRADIENT_FREE_TOLERANCE: f64 = 0.02;

/// Signs that a white-box number is inflated by gradient masking.
#[derive(Debug, Clone, Serialize)]
pub struct Masking {
    /// Fraction of examples whose input gradient at the clean point is exactly zero.
    pub zero_grad_fraction: f64,
    /// FGSM or PGD accuracy rose as eps grew.
    pub eps_rise: bool,
    /// PGD (white-box) accuracy above the transfer accuracy at the same eps.
    pub above_transfer: bool,
    /// The largest fraction of all examples, over the radii, that only the Square attack broke.
    pub gradient_free_gain: f64,
    /// `gradient_free_gain` above `GRADIENT_FREE_TOLERANCE`.
    pub above_gradient_free: bool,
}

impl Masking {
    pub fn flagged(&self) -> bool {
        !self.fired().is_empty()
    }

    /// The checks that fired.
    pub fn fired(&self) -> Checks {
        let bits = [
            self.zero_grad_fraction > 0.0,
            self.eps_rise,
            self.above_transfer,
            self.above_gradient_free,
        ];
        Checks(
            (bits.iter().enumerate())
                .filter(|(_, &b)| b)
                .fold(0, |acc, (i, _)| acc | 1 << i),
        )
    }
}

/// The names of the checks, in the order `Checks` stores them.
const NAMES: [&str; 4] = ["zero_grad", "eps_rise", "above_transfer", "gradient_free"];

/// What the text form of `Checks` must look like, for errors.
pub const CHECKS_FORMAT: &str = "`none` or check names joined by `+`";

/// Which checks fired, as a small set: what episodes.csv's `masking` column holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checks(u8);

impl Checks {
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The names of the checks in the set.
    pub fn names(self) -> Vec<&'static str> {
        (NAMES.iter().enumerate())
            .filter(|(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, n)| *n)
            .collect()
    }

    /// Parses `none` or names joined by `+`; None for anything else.
    pub fn parse(text: &str) -> Option<Checks> {
        if text == "none" {
            return Some(Checks(0));
        }
        text.split('+').try_fold(Checks(0), |acc, name| {
            let i = NAMES.iter().position(|n| *n == name)?;
            Some(Checks(acc.0 | 1 << i))
        })
    }
}

impl std::fmt::Display for Checks {
    /// `none`, or the names joined by `+` (no comma: it is a CSV field).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.names() {
            n if n.is_empty() => write!(f, "none"),
            n => write!(f, "{}", n.join("+")),
        }
    }
}

pub(super) fn masking_checks(
    attacks: &[AttackResult],
    zero_grad_fraction: f64,
    square: &[SquareRun],
    examples: usize,
) -> Masking {
    let rises = |kind: AttackKind| {
        let mut v: Vec<&AttackResult> = attacks.iter().filter(|a| a.kind == kind).collect();
        v.sort_by(|a, b| a.eps.total_cmp(&b.eps));
        v.windows(2).any(|w| w[1].accuracy > w[0].accuracy)
    };
    let pgd_above_transfer = (attacks.iter().filter(|a| a.kind == AttackKind::Pgd)).any(|p| {
        (attacks.iter())
            .any(|t| t.kind == AttackKind::Transfer && t.eps == p.eps && p.accuracy > t.accuracy)
    });
    let gain = square
        .iter()
        .map(|s| s.broken as f64 / examples.max(1) as f64)
        .fold(0.0, f64::max);
    Masking {
        zero_grad_fraction,
        eps_rise: rises(AttackKind::Fgsm) || rises(AttackKind::Pgd),
        above_transfer: pgd_above_transfer,
        gradient_free_gain: gain,
        above_gradient_free: gain > GRADIENT_FREE_TOLERANCE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_print_and_parse_back() {
        let m = Masking {
            zero_grad_fraction: 0.01,
            eps_rise: false,
            above_transfer: false,
            gradient_free_gain: 0.05,
            above_gradient_free: true,
        };
        let c = m.fired();
        assert_eq!(c.to_string(), "zero_grad+gradient_free");
        assert_eq!(Checks::parse(&c.to_string()), Some(c));
        assert_eq!(Checks::parse("none"), Some(Checks::default()));
        assert_eq!(Checks::parse("zero_grad+typo"), None);
        assert!(!m.fired().is_empty() && m.flagged());
    }
}
