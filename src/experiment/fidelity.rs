//! `[search] fidelity` and `[search.low]`: whether a search may score policies at a low
//! fidelity as well as the full one, and the low fidelity's recipe (fractions of the
//! experiment's fine-tune steps and attacked examples) and fixed cost.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::ExperimentError;
use super::Experiment;
use crate::fidelity::Fidelity;
use crate::train::FinetuneConfig;
use crate::validate::{fraction, positive};

impl Experiment {
    /// The fine-tune a policy gets at `fidelity`: `[finetune]`, with `[search.low] steps` of its
    /// steps at the low fidelity (the learning-rate schedule spans those steps).
    pub fn finetune_at(&self, fidelity: Fidelity) -> FinetuneConfig {
        match fidelity {
            Fidelity::Full => self.finetune.clone(),
            Fidelity::Low => FinetuneConfig {
                steps: LowFidelity::scale(self.finetune.steps, self.search.low.steps),
                ..self.finetune.clone()
            },
        }
    }

    /// The validation examples the search's suite attacks at `fidelity`: the first
    /// `attack_examples`, or `[search.low] examples` of them.
    pub fn attack_examples_at(&self, fidelity: Fidelity) -> usize {
        let n = self.search.attack_examples;
        match fidelity {
            Fidelity::Full => n,
            Fidelity::Low => LowFidelity::scale(n, self.search.low.examples),
        }
    }
}

/// `[search] fidelity`: the fidelities the search may score a policy at.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Fidelities {
    /// Every policy scored with the whole recipe.
    #[default]
    Full,
    /// Full, or low where the agent chooses it (mbrl; the other agents score everything full).
    Multi,
}

impl Fidelities {
    pub fn is_full(&self) -> bool {
        *self == Fidelities::Full
    }
}

/// `[search.low]`: the low fidelity, the same scorer with fewer fine-tune steps and fewer
/// attacked examples, and the fixed cost the agent prices a low score at (a fraction of a full
/// score's; fixed rather than measured so the log is deterministic).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LowFidelity {
    /// Fine-tune steps, a fraction of `[finetune] steps` (at least one step).
    pub steps: f64,
    /// Attacked validation examples, a fraction of `attack_examples` (at least one).
    pub examples: f64,
    /// A low score's cost as a fraction of a full score's.
    pub cost: f64,
}

impl Default for LowFidelity {
    fn default() -> Self {
        LowFidelity {
            steps: 0.25,
            examples: 0.25,
            cost: 0.25,
        }
    }
}

impl LowFidelity {
    pub fn is_default(&self) -> bool {
        *self == LowFidelity::default()
    }

    /// `full` scaled by `fraction`, rounded, at least one.
    pub fn scale(full: usize, fraction: f64) -> usize {
        ((full as f64 * fraction).round() as usize).max(1)
    }

    /// Rules: each of steps, examples and cost in (0, 1].
    pub(super) fn check(self, path: &Path) -> Result<Self, ExperimentError> {
        for (field, v) in [
            ("search.low.steps", self.steps),
            ("search.low.examples", self.examples),
            ("search.low.cost", self.cost),
        ] {
            positive(path, field, v)?;
            fraction(path, field, v)?;
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::experiment::Experiment;

    const GOOD: &str = "name = \"t\"\n[data]\nsource = \"embedded:mnist-10k\"\nvalidation = 1000\n[model]\narch = \"lenet5\"\n[train]\nepochs = 8\nbatch = 64\nlr = 1e-3\n";

    fn search(table: &str) -> Result<Experiment, ExperimentError> {
        Experiment::from_toml(&format!("{GOOD}{table}\n"), Path::new("exp.toml"))
    }

    #[test]
    fn low_fidelity_fractions_must_be_in_0_to_1() {
        for (table, field) in [
            ("[search.low]\nsteps = 0.0", "search.low.steps"),
            ("[search.low]\nexamples = 1.5", "search.low.examples"),
            ("[search.low]\ncost = -0.1", "search.low.cost"),
        ] {
            let e = search(table).unwrap_err().to_string();
            assert!(e.contains("exp.toml") && e.contains(field), "{table}: {e}");
        }
        assert!(search("[search]\nfidelity = \"cheap\"").is_err());
        let multi = search("[search]\nfidelity = \"multi\"\n[search.low]\ncost = 1.0").unwrap();
        assert_eq!(multi.search.fidelity, Fidelities::Multi);
        assert_eq!(multi.search.low.cost, 1.0);
    }

    /// Left at its defaults, the option is absent from the experiment's JSON (config.json), so
    /// a run started before it existed resumes.
    #[test]
    fn full_fidelity_at_the_defaults_leaves_config_json_as_it_was() {
        let json = serde_json::to_value(search("").unwrap().search).unwrap();
        assert!(
            json.get("fidelity").is_none() && json.get("low").is_none(),
            "{json}"
        );
        let multi = search("[search]\nfidelity = \"multi\"").unwrap();
        assert_eq!(
            serde_json::to_value(multi.search).unwrap()["fidelity"],
            "multi"
        );
    }

    #[test]
    fn the_low_recipe_scales_steps_and_examples_and_full_is_the_experiment_s() {
        let exp = search("[search.low]\nsteps = 0.5\nexamples = 0.1").unwrap();
        assert_eq!(exp.finetune_at(Fidelity::Full), exp.finetune);
        let low = exp.finetune_at(Fidelity::Low);
        assert_eq!(low.steps, LowFidelity::scale(exp.finetune.steps, 0.5));
        assert_ne!(low.steps, exp.finetune.steps);
        assert_eq!(
            exp.attack_examples_at(Fidelity::Full),
            exp.search.attack_examples
        );
        assert_eq!(exp.attack_examples_at(Fidelity::Low), 20);
    }

    #[test]
    fn scale_rounds_and_keeps_at_least_one() {
        assert_eq!(LowFidelity::scale(100, 0.25), 25);
        assert_eq!(LowFidelity::scale(3, 0.1), 1);
        assert_eq!(LowFidelity::scale(200, 1.0), 200);
    }
}
