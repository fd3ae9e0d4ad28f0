//! `ExperimentError`: every way an experiment file can fail; each names the file, and the field,
//! the rule and the value where there is one. The numeric field rules are `crate::validate`'s.

use std::path::PathBuf;

use crate::validate::FieldError;

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
    #[error(transparent)]
    Field(#[from] FieldError),
    #[error("{}: field `name` must not be empty", path.display())]
    EmptyName { path: PathBuf },
    #[error(
        "{}: field `data.source` must be embedded:mnist-10k, idx:DIR or cifar10:DIR, got \"{value}\"",
        path.display()
    )]
    UnknownDataSource { path: PathBuf, value: String },
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
    #[error("{}: `bits.choices` must not be empty", path.display())]
    NoChoices { path: PathBuf },
    #[error("{}: `bits.choices` lists {value} twice", path.display())]
    DuplicateChoice { path: PathBuf, value: u8 },
    #[error("{}: give `bits.choices` or `bits.min`/`bits.max`, not both", path.display())]
    ChoicesWithRange { path: PathBuf },
    #[error("{}: give `{fraction}` (a fraction of uniform 8/8) or `{absolute}`, not both", path.display())]
    BothBudgets {
        path: PathBuf,
        fraction: &'static str,
        absolute: &'static str,
    },
    #[error("{}: field `quant.percentile` must be in (0, 100], got {value}", path.display())]
    PercentileOutOfRange { path: PathBuf, value: f32 },
}
