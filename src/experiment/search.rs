//! The `[bits]`, `[budget]`, `[reward]` and `[search]` tables of an experiment.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::ExperimentError;
use crate::env::{BudgetConfig, Limit};
use crate::validate::{non_negative, positive, positive_count};

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BitsRange {
    pub min: u8,
    pub max: u8,
}

impl Default for BitsRange {
    fn default() -> Self {
        BitsRange { min: 2, max: 8 }
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

impl BitsRange {
    pub fn check(self, path: &Path) -> Result<Self, ExperimentError> {
        for (field, v) in [("bits.min", self.min), ("bits.max", self.max)] {
            if !(1..=8).contains(&v) {
                return Err(ExperimentError::BitsOutOfRange {
                    path: path.to_path_buf(),
                    field,
                    value: v as i64,
                });
            }
        }
        if self.min > self.max {
            return Err(ExperimentError::MinAboveMax {
                path: path.to_path_buf(),
                min: self.min,
                max: self.max,
            });
        }
        Ok(self)
    }
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
