//! The `[bits]` (a range or a list of bitwidths, optionally tied), `[budget]`, `[reward]` and `[search]` tables of an experiment.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::ExperimentError;
use crate::env::{BudgetConfig, Limit};
use crate::quant::Bits;
use crate::validate::{non_negative, positive, positive_count};

/// The `[bits]` table as written: a range (`min`, `max`; 2..=8 by default) or an explicit
/// list (`choices = [2, 4, 8]`), and `tie` (weight bits = activation bits per layer).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawBits {
    pub min: Option<u8>,
    pub max: Option<u8>,
    pub choices: Option<Vec<u8>>,
    #[serde(default)]
    pub tie: bool,
}

/// The bitwidths the search may use, validated (from `RawBits::check`). `min`/`max` span the
/// declared bitwidths; `choices`, when given, is the sorted list itself. Serialized into
/// config.json's experiment without `choices`/`tie` when they are absent/false, so a default
/// experiment writes what it always did.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BitsRange {
    pub min: u8,
    pub max: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub choices: Option<Vec<u8>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tie: bool,
}

impl Default for BitsRange {
    fn default() -> Self {
        BitsRange {
            min: 2,
            max: 8,
            choices: None,
            tie: false,
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

/// Reward = accuracy·100·(acc − acc_fp32) + robustness·100·(rob − rob_fp32), per point.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RewardConfig {
    pub accuracy: f64,
    pub robustness: f64,
}

impl Default for RewardConfig {
    fn default() -> Self {
        RewardConfig {
            accuracy: 0.1,
            robustness: 0.05,
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
    /// Score uniform min..=max-bit policies as reference markers before the first episode.
    pub references: bool,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            episodes: 60,
            attack_examples: 200,
            references: true,
        }
    }
}

impl RawBits {
    /// Rules: `choices` is not given with `min`/`max`, is non-empty, each in 1..=8 or 32, with no
    /// duplicates (it is sorted here); else min and max in 1..=8, min ≤ max.
    pub fn check(self, path: &Path) -> Result<BitsRange, ExperimentError> {
        let Some(mut choices) = self.choices else {
            return range(path, self.min.unwrap_or(2), self.max.unwrap_or(8), self.tie);
        };
        if self.min.is_some() || self.max.is_some() {
            return Err(ExperimentError::ChoicesWithRange {
                path: path.to_path_buf(),
            });
        }
        for &v in &choices {
            if Bits::new(v).is_err() {
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
            tie: self.tie,
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
        tie,
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
    pub fn check(self, path: &Path) -> Result<Self, ExperimentError> {
        non_negative(path, "reward.accuracy", self.accuracy)?;
        non_negative(path, "reward.robustness", self.robustness)?;
        Ok(self)
    }
}

impl SearchConfig {
    pub fn check(self, path: &Path) -> Result<Self, ExperimentError> {
        positive_count(path, "search.episodes", self.episodes)?;
        positive_count(path, "search.attack_examples", self.attack_examples)?;
        Ok(self)
    }
}
