//! The `[bits]` (a range or a list of bitwidths, optionally tied, dominated widths pruned),
//! `[budget]`, `[reward]` and `[search]` tables of an experiment, and the objectives the agents
//! rank by, resolved from them (`Experiment::objectives`).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::ExperimentError;
pub use super::fidelity::{Fidelities, LowFidelity};
use super::formats::{FormatSpace, RawFormat, RawFormats};
use crate::env::{BudgetConfig, Limit, Objectives};
use crate::pareto::Objective;
use crate::quant::Format;
use crate::robust::{robust_radii, AttackConfig, RobustMeasure};
use crate::validate::{non_negative, positive, positive_count};

/// The `[bits]` table as written: a range (`min`, `max`; 2..=8 by default), an explicit
/// list (`choices = [2, 4, 8]`) or number formats (`formats`, per operand `w_formats` /
/// `a_formats`: `formats.rs`), `tie` (weight bits = activation bits per layer) and
/// `prune_dominated` (drop a width the device prices like a wider one; default true).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawBits {
    pub min: Option<u8>,
    pub max: Option<u8>,
    pub choices: Option<Vec<u8>>,
    pub formats: Option<Vec<RawFormat>>,
    pub w_formats: Option<Vec<RawFormat>>,
    pub a_formats: Option<Vec<RawFormat>>,
    #[serde(default)]
    pub tie: bool,
    pub prune_dominated: Option<bool>,
}

/// The bitwidths the search may use, validated (from `RawBits::check`). `min`/`max` span the
/// declared bitwidths; `choices`, when given, is the sorted list itself. Serialized into
/// config.json's experiment without `choices`/`tie`/`prune_dominated` when they are at their
/// defaults (absent/false/true), so a default experiment writes what it always did.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BitsRange {
    pub min: u8,
    pub max: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub choices: Option<Vec<u8>>,
    /// Number formats per operand (`min`/`max` then span their widths); absent for widths.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub formats: Option<FormatSpace>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tie: bool,
    /// Whether the search space drops, per layer and operand, each width the device prices
    /// exactly like a wider one (`env::SearchSpace::prune_dominated` has the rule).
    #[serde(skip_serializing_if = "is_true")]
    pub prune_dominated: bool,
}

fn is_true(b: &bool) -> bool {
    *b
}

impl Default for BitsRange {
    fn default() -> Self {
        BitsRange {
            min: 2,
            max: 8,
            choices: None,
            formats: None,
            tie: false,
            prune_dominated: true,
        }
    }
}

impl BitsRange {
    /// The declared bitwidths, ascending: `choices`, else min..=max.
    pub fn declared(&self) -> Vec<u8> {
        match &self.choices {
            Some(c) => c.clone(),
            None => (self.min..=self.max).collect(),
        }
    }

    /// The formats each operand (weight, activation) may take: `formats`, else the declared
    /// bitwidths for both. Each list ascending; a declared width that is not a format cannot
    /// occur (`RawBits::check`), and is left out.
    pub fn declared_formats(&self) -> [Vec<Format>; 2] {
        match &self.formats {
            Some(f) => [f.weight.clone(), f.activation.clone()],
            None => {
                let ints: Vec<Format> = (self.declared().into_iter())
                    .filter_map(|b| Format::new(b).ok())
                    .collect();
                [ints.clone(), ints]
            }
        }
    }
}

/// Each budget is a fraction of uniform 8/8 on the profile (`latency = 0.5`) or absolute
/// (`latency_s`, `energy_j`, `size_bytes`); not both for one resource.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBudget {
    pub latency: Option<f64>,
    pub latency_s: Option<f64>,
    pub energy: Option<f64>,
    pub energy_j: Option<f64>,
    pub size: Option<f64>,
    pub size_bytes: Option<f64>,
}

/// Reward = accuracy·100·(acc − acc_fp32) + robustness·100·(rob − rob_fp32), per point, where
/// rob is the worst-case robust accuracy `robust_eps` names.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RewardConfig {
    pub accuracy: f64,
    pub robustness: f64,
    /// A PGD radius of `[attack]`, "max" (the largest) or "auc" (area under the curve).
    pub robust_eps: RobustMeasure,
}

impl Default for RewardConfig {
    fn default() -> Self {
        RewardConfig {
            accuracy: 0.1,
            robustness: 0.05,
            robust_eps: RobustMeasure::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SearchConfig {
    /// Episodes when `--episodes` is not given.
    pub episodes: usize,
    /// Validation examples the attack suite scores each episode on (a fixed subset).
    pub attack_examples: usize,
    /// Score uniform min..=max-bit policies as reference markers before the first episode
    /// (and give them to the agent as data).
    pub references: bool,
    /// The cost the agents rank by (`latency`, `energy` or `size`), when it is not the
    /// budgeted ones (`Objectives::resolve`). Absent from config.json when not given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<Objective>,
    /// Whether policies are scored at full fidelity only, or also at the low one (`low`) where
    /// the agent models both (mbrl). Absent from config.json when `full`, so a run started
    /// before the option resumes.
    #[serde(skip_serializing_if = "Fidelities::is_full")]
    pub fidelity: Fidelities,
    /// The low fidelity's recipe and cost; absent from config.json at its defaults.
    #[serde(skip_serializing_if = "LowFidelity::is_default")]
    pub low: LowFidelity,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            episodes: 60,
            attack_examples: 200,
            references: true,
            cost: None,
            fidelity: Fidelities::Full,
            low: LowFidelity::default(),
        }
    }
}

impl RawBits {
    /// Rules: `choices` is not given with `min`/`max`, is non-empty, each in 1..=8 or 32, with no
    /// duplicates (it is sorted here); else min and max in 1..=8, min ≤ max.
    pub fn check(self, path: &Path) -> Result<BitsRange, ExperimentError> {
        let prune_dominated = self.prune_dominated.unwrap_or(true);
        let raw = RawFormats {
            formats: self.formats.clone(),
            w_formats: self.w_formats.clone(),
            a_formats: self.a_formats.clone(),
        };
        if raw.given() {
            if self.min.is_some() || self.max.is_some() || self.choices.is_some() {
                return Err(ExperimentError::FormatsWithWidths {
                    path: path.to_path_buf(),
                });
            }
            let space = raw.check(path, self.tie)?;
            let widths = space
                .weight
                .iter()
                .chain(&space.activation)
                .map(|f| f.width());
            let (min, max) = widths.fold((u8::MAX, 0), |(lo, hi), w| (lo.min(w), hi.max(w)));
            return Ok(BitsRange {
                min,
                max,
                choices: None,
                formats: Some(space),
                tie: self.tie,
                prune_dominated,
            });
        }
        let Some(mut choices) = self.choices else {
            let r = range(path, self.min.unwrap_or(2), self.max.unwrap_or(8), self.tie)?;
            return Ok(BitsRange {
                prune_dominated,
                ..r
            });
        };
        if self.min.is_some() || self.max.is_some() {
            return Err(ExperimentError::ChoicesWithRange {
                path: path.to_path_buf(),
            });
        }
        for &v in &choices {
            // Integer widths the search space and the profiles' tables span, or unquantized.
            if !((Format::MIN..=Format::MAX).contains(&v) || v == Format::FULL_VALUE) {
                return Err(ExperimentError::BitsOutOfRange {
                    path: path.to_path_buf(),
                    field: "bits.choices",
                    value: v as i64,
                });
            }
        }
        choices.sort_unstable();
        if let Some(w) = choices.windows(2).find(|w| w[0] == w[1]) {
            return Err(ExperimentError::DuplicateChoice {
                path: path.to_path_buf(),
                value: w[0],
            });
        }
        let (Some(&min), Some(&max)) = (choices.first(), choices.last()) else {
            return Err(ExperimentError::NoChoices {
                path: path.to_path_buf(),
            });
        };
        Ok(BitsRange {
            min,
            max,
            choices: Some(choices),
            formats: None,
            tie: self.tie,
            prune_dominated,
        })
    }
}

fn range(path: &Path, min: u8, max: u8, tie: bool) -> Result<BitsRange, ExperimentError> {
    for (field, v) in [("bits.min", min), ("bits.max", max)] {
        if !(1..=8).contains(&v) {
            return Err(ExperimentError::BitsOutOfRange {
                path: path.to_path_buf(),
                field,
                value: v as i64,
            });
        }
    }
    if min > max {
        return Err(ExperimentError::MinAboveMax {
            path: path.to_path_buf(),
            min,
            max,
        });
    }
    Ok(BitsRange {
        min,
        max,
        choices: None,
        formats: None,
        tie,
        prune_dominated: true,
    })
}

impl RawBudget {
    pub fn check(&self, path: &Path) -> Result<BudgetConfig, ExperimentError> {
        let one = |frac_field: &'static str,
                   frac: Option<f64>,
                   abs_field: &'static str,
                   abs: Option<f64>|
         -> Result<Option<Limit>, ExperimentError> {
            match (frac, abs) {
                (Some(_), Some(_)) => Err(ExperimentError::BothBudgets {
                    path: path.to_path_buf(),
                    fraction: frac_field,
                    absolute: abs_field,
                }),
                (Some(f), None) => Ok(Some(Limit::Fraction(positive(path, frac_field, f)?))),
                (None, Some(a)) => Ok(Some(Limit::Absolute(positive(path, abs_field, a)?))),
                (None, None) => Ok(None),
            }
        };
        Ok(BudgetConfig {
            latency: one(
                "budget.latency",
                self.latency,
                "budget.latency_s",
                self.latency_s,
            )?,
            energy: one(
                "budget.energy",
                self.energy,
                "budget.energy_j",
                self.energy_j,
            )?,
            size: one(
                "budget.size",
                self.size,
                "budget.size_bytes",
                self.size_bytes,
            )?,
        })
    }
}

impl RewardConfig {
    /// Checks the weights, and that a radius is one the attack suite takes a worst case at.
    pub fn check(self, path: &Path, attack: &AttackConfig) -> Result<Self, ExperimentError> {
        non_negative(path, "reward.accuracy", self.accuracy)?;
        non_negative(path, "reward.robustness", self.robustness)?;
        let radii = robust_radii(attack);
        if let RobustMeasure::Eps(eps) = self.robust_eps {
            if !radii.contains(&eps) {
                return Err(ExperimentError::RobustEps {
                    path: path.to_path_buf(),
                    value: eps,
                    radii,
                });
            }
        }
        Ok(self)
    }
}

impl SearchConfig {
    /// Rules: episodes and attack_examples > 0; `[search.low]`'s fractions in (0, 1]; `cost`
    /// names a cost, not a score.
    pub fn check(self, path: &Path) -> Result<Self, ExperimentError> {
        positive_count(path, "search.episodes", self.episodes)?;
        positive_count(path, "search.attack_examples", self.attack_examples)?;
        self.low.check(path)?;
        if let Some(c) = self.cost.filter(|c| !c.is_cost()) {
            return Err(ExperimentError::NotACost {
                path: path.to_path_buf(),
                value: c.column(),
            });
        }
        Ok(self)
    }
}

impl super::Experiment {
    /// What the agents rank scored policies by (see `env::Objectives`): accuracy, robust
    /// accuracy when `[reward] robustness` > 0, and `[search] cost` or the budgeted costs.
    pub fn objectives(&self) -> Objectives {
        Objectives::resolve(&self.budget, self.reward.robustness > 0.0, self.search.cost)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::experiment::{BitsRange, Experiment, ExperimentError};

    const GOOD: &str = "name = \"t\"\n[data]\nsource = \"embedded:mnist-10k\"\nvalidation = 1000\n[model]\narch = \"lenet5\"\n[train]\nepochs = 8\nbatch = 64\nlr = 1e-3\n";

    fn bits(table: &str) -> Result<BitsRange, ExperimentError> {
        Experiment::from_toml(&format!("{GOOD}[bits]\n{table}\n"), Path::new("exp.toml"))
            .map(|e| e.bits)
    }

    fn err(table: &str) -> String {
        bits(table).unwrap_err().to_string()
    }

    #[test]
    fn default_bits_are_2_to_8_untied_and_serialize_as_before() {
        let b = bits("").unwrap();
        assert_eq!(b, BitsRange::default());
        assert_eq!(b.declared(), vec![2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(
            serde_json::to_string(&b).unwrap(),
            r#"{"min":2,"max":8}"#,
            "config.json's experiment is unchanged for a default experiment"
        );
    }

    #[test]
    fn choices_must_not_be_empty() {
        let e = err("choices = []");
        assert!(
            e.contains("exp.toml") && e.contains("bits.choices") && e.contains("empty"),
            "{e}"
        );
    }

    #[test]
    fn choices_must_be_1_to_8_or_32() {
        for bad in ["0", "9", "16"] {
            let e = err(&format!("choices = [2, {bad}]"));
            assert!(e.contains("bits.choices") && e.contains(bad), "{e}");
        }
        assert_eq!(
            bits("choices = [1, 8, 32]").unwrap().declared(),
            vec![1, 8, 32]
        );
    }

    #[test]
    fn choices_must_not_repeat() {
        let e = err("choices = [4, 2, 4]");
        assert!(e.contains("bits.choices") && e.contains("4 twice"), "{e}");
    }

    #[test]
    fn choices_are_sorted_on_load() {
        let b = bits("choices = [8, 2, 4]\ntie = true").unwrap();
        assert_eq!(b.choices, Some(vec![2, 4, 8]));
        assert_eq!((b.min, b.max, b.tie), (2, 8, true));
        assert_eq!(
            serde_json::to_string(&b).unwrap(),
            r#"{"min":2,"max":8,"choices":[2,4,8],"tie":true}"#
        );
    }

    #[test]
    fn choices_exclude_min_and_max() {
        for table in ["choices = [2, 4]\nmin = 2", "choices = [2, 4]\nmax = 4"] {
            let e = err(table);
            assert!(e.contains("bits.choices") && e.contains("bits.min"), "{e}");
        }
    }

    #[test]
    fn tie_applies_to_a_range_too() {
        let b = bits("min = 4\nmax = 8\ntie = true").unwrap();
        assert_eq!((b.declared(), b.tie), (vec![4, 5, 6, 7, 8], true));
    }

    #[test]
    fn dominated_widths_are_pruned_unless_switched_off() {
        assert!(bits("").unwrap().prune_dominated);
        let off = bits("prune_dominated = false").unwrap();
        assert!(!off.prune_dominated);
        assert_eq!(
            serde_json::to_string(&off).unwrap(),
            r#"{"min":2,"max":8,"prune_dominated":false}"#,
            "recorded only when it differs from the default"
        );
        assert!(
            !bits("choices = [2, 4]\nprune_dominated = false")
                .unwrap()
                .prune_dominated
        );
    }

    fn search(table: &str) -> Result<Experiment, ExperimentError> {
        Experiment::from_toml(&format!("{GOOD}{table}\n"), Path::new("exp.toml"))
    }

    #[test]
    fn cost_must_be_a_cost() {
        let e = search("[search]\ncost = \"robust_accuracy\"")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("exp.toml") && e.contains("search.cost") && e.contains("robust_accuracy"),
            "{e}"
        );
        assert!(search("[search]\ncost = \"speed\"").is_err());
    }

    #[test]
    fn the_objectives_follow_reward_budget_and_cost() {
        use crate::pareto::Objective::*;
        let o = |t: &str| search(t).unwrap().objectives().list().to_vec();
        assert_eq!(
            o(""),
            [Accuracy, RobustAccuracy, Latency],
            "nothing budgeted"
        );
        assert_eq!(
            o("[budget]\nenergy = 0.5\nsize = 0.5"),
            [Accuracy, RobustAccuracy, Energy, Size]
        );
        assert_eq!(
            o("[budget]\nlatency = 0.5\n[search]\ncost = \"energy\""),
            [Accuracy, RobustAccuracy, Energy]
        );
        assert_eq!(
            o("[budget]\nlatency = 0.5\n[reward]\nrobustness = 0.0"),
            [Accuracy, Latency]
        );
    }

    #[test]
    fn min_cannot_exceed_max() {
        assert!(err("min = 6\nmax = 4").contains("must not exceed"));
        assert!(err("max = 9").contains("bits.max"));
    }

    #[test]
    fn the_small_experiment_declares_243_tied_policies() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/lenet5-mnist-small.toml");
        let e = Experiment::load(&path).unwrap();
        assert_eq!((e.bits.declared(), e.bits.tie), (vec![2, 4, 8], true));
        let default = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/lenet5-mnist.toml");
        let d = Experiment::load(&default).unwrap();
        assert_eq!(
            (e.search, e.reward, e.budget),
            (d.search, d.reward, d.budget),
            "otherwise the default experiment"
        );
    }
}
