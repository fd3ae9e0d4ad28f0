//! The `[front_test]` table of an experiment: the strong attack suite the final Pareto front is
//! re-scored with on the test split (front-test.csv). It is `[attack]` with an eps sweep (PGD at
//! each radius), more PGD restarts and steps, a full Square budget, and its own example count.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::ExperimentError;
use crate::robust::{AttackConfig, SquareScope};
use crate::validate::{distinct, fraction, positive, positive_count};

/// Defaults: eps 0.05, 0.1, 0.2; 3 restarts; twice `[attack]`'s PGD steps; 1,000 Square queries
/// (the budget of the Square paper's MNIST runs and of `bitsearch eval`); `[attack]`'s examples.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawFrontTest {
    /// Re-score the front after the search (false: front-test.csv is not written).
    pub enabled: bool,
    /// The radii of the sweep; PGD, transfer and Square run at each.
    pub eps: Vec<f32>,
    pub restarts: usize,
    /// `None`: 2 × `attack.pgd_steps`.
    pub pgd_steps: Option<usize>,
    /// Square queries per example at each radius, on the gradient attacks' survivors (0 = off).
    pub square_queries: usize,
    /// Test examples attacked; `None`: `attack.examples`.
    pub examples: Option<usize>,
}

impl Default for RawFrontTest {
    fn default() -> Self {
        RawFrontTest {
            enabled: true,
            eps: vec![0.05, 0.1, 0.2],
            restarts: 3,
            pgd_steps: None,
            square_queries: 1000,
            examples: None,
        }
    }
}

/// The validated `[front_test]`: whether to run it, and the strong suite as an `AttackConfig`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FrontTestConfig {
    pub enabled: bool,
    pub attack: AttackConfig,
}

impl RawFrontTest {
    /// Rules: `eps` is not empty and each radius is in (0, 1]; `restarts`, `pgd_steps` and
    /// `examples` are at least one. The suite is `attack` with those replaced, Square on the
    /// gradient survivors (the same worst case as on every example, for a fraction of the queries).
    pub fn check(
        &self,
        path: &Path,
        attack: &AttackConfig,
    ) -> Result<FrontTestConfig, ExperimentError> {
        if self.eps.is_empty() {
            return Err(ExperimentError::NoFrontEps {
                path: path.to_path_buf(),
            });
        }
        for &eps in &self.eps {
            positive(path, "front_test.eps", eps)?;
            fraction(path, "front_test.eps", eps)?;
        }
        distinct(path, "front_test.eps", &self.eps)?;
        positive_count(path, "front_test.restarts", self.restarts)?;
        let pgd_steps = self.pgd_steps.unwrap_or(2 * attack.pgd_steps);
        positive_count(path, "front_test.pgd_steps", pgd_steps)?;
        let examples = self.examples.unwrap_or(attack.examples);
        positive_count(path, "front_test.examples", examples)?;
        Ok(FrontTestConfig {
            enabled: self.enabled,
            attack: AttackConfig {
                pgd_eps: self.eps.clone(),
                restarts: self.restarts,
                pgd_steps,
                square_queries: self.square_queries,
                square_scope: SquareScope::Survivors,
                examples,
                ..attack.clone()
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::experiment::{Experiment, ExperimentError};
    use crate::robust::SquareScope;

    const GOOD: &str = minimal_experiment!();

    fn check(extra: &str) -> Result<Experiment, ExperimentError> {
        Experiment::from_toml(&format!("{GOOD}{extra}"), Path::new("exp.toml"))
    }

    fn err(extra: &str) -> String {
        check(extra).unwrap_err().to_string()
    }

    #[test]
    fn defaults_derive_the_strong_suite_from_attack() {
        let e = check("[attack]\npgd_steps = 7\nexamples = 123\nfgsm_eps = [0.1]\n").unwrap();
        let f = &e.front_test;
        assert!(f.enabled);
        assert_eq!(f.attack.pgd_eps, vec![0.05, 0.1, 0.2]);
        assert_eq!(f.attack.restarts, 3);
        assert_eq!(f.attack.pgd_steps, 14, "2 x attack.pgd_steps");
        assert_eq!(f.attack.square_queries, 1000);
        assert_eq!(f.attack.square_scope, SquareScope::Survivors);
        assert_eq!(f.attack.examples, 123);
        assert_eq!(f.attack.fgsm_eps, vec![0.1], "the rest is [attack]'s");
    }

    #[test]
    fn given_fields_replace_the_defaults() {
        let e = check(
            "[front_test]\nenabled = false\neps = [0.2, 0.1]\nrestarts = 1\npgd_steps = 5\n\
             square_queries = 20\nexamples = 50\n",
        )
        .unwrap();
        let a = &e.front_test.attack;
        assert!(!e.front_test.enabled);
        assert_eq!(
            (
                a.pgd_eps.clone(),
                a.restarts,
                a.pgd_steps,
                a.square_queries,
                a.examples
            ),
            (vec![0.2, 0.1], 1, 5, 20, 50)
        );
    }

    #[test]
    fn front_eps_must_not_be_empty() {
        let e = err("[front_test]\neps = []\n");
        assert!(
            e.contains("exp.toml") && e.contains("front_test.eps"),
            "{e}"
        );
    }

    #[test]
    fn front_eps_must_be_in_0_excluded_to_1() {
        let zero = err("[front_test]\neps = [0.1, 0.0]\n");
        assert!(
            zero.contains("front_test.eps") && zero.contains("greater than zero, got 0"),
            "{zero}"
        );
        let big = err("[front_test]\neps = [1.5]\n");
        assert!(
            big.contains("front_test.eps") && big.contains("in [0, 1], got 1.5"),
            "{big}"
        );
    }

    #[test]
    fn front_restarts_must_be_positive() {
        let e = err("[front_test]\nrestarts = 0\n");
        assert!(e.contains("front_test.restarts") && e.contains(" 0"), "{e}");
    }

    #[test]
    fn front_pgd_steps_must_be_positive() {
        let e = err("[front_test]\npgd_steps = 0\n");
        assert!(
            e.contains("front_test.pgd_steps") && e.contains(" 0"),
            "{e}"
        );
    }

    #[test]
    fn front_examples_must_be_positive() {
        let e = err("[front_test]\nexamples = 0\n");
        assert!(e.contains("front_test.examples") && e.contains(" 0"), "{e}");
    }

    #[test]
    fn unknown_front_field_is_rejected() {
        assert!(err("[front_test]\nrestart = 2\n").contains("restart"));
    }
}
