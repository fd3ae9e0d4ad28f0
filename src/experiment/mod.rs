//! Experiment files: an unchecked TOML struct, `check()` with one error variant per rule, and
//! the validated `Experiment` the rest of bitsearch accepts.

mod raw;
mod robust;
mod search;

pub use raw::{RawData, RawExperiment, RawModel, RawQuant, RawTrain};
pub use robust::{DqConfig, RawAttack, RawFinetune};
pub use search::{BitsRange, RawBudget, RewardConfig, SearchConfig};

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::data::DataSource;
use crate::model::Arch;
use crate::quant::ClipMethod;

/// Errors in an experiment file; each names the file, the field, the rule and the value.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("{}: field `{field}` must be greater than zero, got {value}", path.display())]
    NotPositive {
        path: PathBuf,
        field: &'static str,
        value: String,
    },
    #[error("{}: field `{field}` must not be negative, got {value}", path.display())]
    Negative {
        path: PathBuf,
        field: &'static str,
        value: String,
    },
    #[error("{}: field `{field}` must be a finite number, got {value}", path.display())]
    NotFinite {
        path: PathBuf,
        field: &'static str,
        value: String,
    },
    #[error("{}: field `name` must not be empty", path.display())]
    EmptyName { path: PathBuf },
    #[error(
        "{}: field `data.source` must be embedded:mnist-10k, idx:DIR or cifar10:DIR, got \"{value}\"",
        path.display()
    )]
    UnknownDataSource { path: PathBuf, value: String },
    #[error("{}: field `{field}` must hold attack radii in (0, 1], got {value}", path.display())]
    EpsOutOfRange {
        path: PathBuf,
        field: &'static str,
        value: f32,
    },
    #[error("{}: field `{field}` must be in (0, 1], got {value}", path.display())]
    NotAFraction {
        path: PathBuf,
        field: &'static str,
        value: f32,
    },
    #[error("{}: `[attack]` configures no attack: give fgsm_eps or pgd_eps", path.display())]
    NoAttack { path: PathBuf },
    #[error("{}: field `{field}` must hold bitwidths 1..=8 or 32, got {value}", path.display())]
    BitsOutOfRange {
        path: PathBuf,
        field: &'static str,
        value: i64,
    },
    #[error("{}: `bits.min` ({min}) must not exceed `bits.max` ({max})", path.display())]
    MinAboveMax { path: PathBuf, min: u8, max: u8 },
    #[error("{}: give `{fraction}` (a fraction of uniform 8/8) or `{absolute}`, not both", path.display())]
    BothBudgets {
        path: PathBuf,
        fraction: &'static str,
        absolute: &'static str,
    },
    #[error("{}: field `quant.percentile` must be in (0, 100], got {value}", path.display())]
    PercentileOutOfRange { path: PathBuf, value: f32 },
}

/// Data settings: where from, how much validation to carve from train, the split seed.
#[derive(Debug, Clone, Serialize)]
pub struct DataConfig {
    #[serde(serialize_with = "display")]
    pub source: DataSource,
    pub validation: usize,
    pub seed: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelConfig {
    pub arch: Arch,
    /// Seed of the weight initialization.
    pub seed: u64,
}

/// The FP32 baseline's training.
#[derive(Debug, Clone, Serialize)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch: usize,
    pub lr: f64,
    pub weight_decay: f64,
    /// Seed of the per-epoch shuffles.
    pub seed: u64,
}

/// Activation-clip calibration.
#[derive(Debug, Clone, Serialize)]
pub struct QuantConfig {
    pub act_clip: ClipMethod,
    /// Training examples in the calibration batch.
    pub calibration: usize,
}

/// A validated experiment.
#[derive(Debug, Clone, Serialize)]
pub struct Experiment {
    pub name: String,
    /// The file it was read from.
    pub path: PathBuf,
    pub data: DataConfig,
    pub model: ModelConfig,
    pub train: TrainConfig,
    pub quant: QuantConfig,
    pub finetune: crate::train::FinetuneConfig,
    pub attack: crate::robust::AttackConfig,
    pub dq: DqConfig,
    pub bits: BitsRange,
    pub budget: crate::env::BudgetConfig,
    pub reward: RewardConfig,
    pub search: SearchConfig,
}

fn display<T: std::fmt::Display, S: serde::Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

impl DataConfig {
    /// Reads the data and carves the validation split.
    pub fn load(&self) -> Result<crate::data::Dataset, crate::data::DataError> {
        let (train, test) = self.source.load()?;
        crate::data::Dataset::from_raw(train, test, self.validation, self.seed)
    }
}

impl Experiment {
    /// Reads and validates an experiment file.
    pub fn load(path: &Path) -> Result<Self, ExperimentError> {
        let text = std::fs::read_to_string(path).map_err(|source| ExperimentError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    /// Parses and validates TOML text; `path` names the file in errors and anchors relative paths.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ExperimentError> {
        let raw: RawExperiment = toml::from_str(text).map_err(|e| ExperimentError::Parse {
            path: path.to_path_buf(),
            source: Box::new(e),
        })?;
        raw.check(path)
    }
}
