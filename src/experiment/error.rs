//! `ExperimentError`: every way an experiment file can fail; each names the file, and the field,
//! the rule and the value where there is one. The numeric field rules are `crate::validate`'s.

use std::path::PathBuf;

use crate::validate::{FieldError, FileError};

#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    Field(#[from] FieldError),
    #[error(
        "{}: field `data.source` must be embedded:mnist-10k, idx:DIR or cifar10:DIR, got \"{value}\"",
        path.display()
    )]
    UnknownDataSource { path: PathBuf, value: String },
    #[error("{}: `[model]` needs `arch` (a network of the zoo: mlp, lenet5, cnn6, resnet20, mobilenet, mobilenetv2, vit) or `onnx` (a model file), exactly one", path.display())]
    ModelSource { path: PathBuf },
    #[error("{}: `model.input_mean` and `model.input_std` go together, and only with `model.onnx` (zoo networks standardize by their training data)", path.display())]
    ModelNorm { path: PathBuf },
    #[error("{}: `model.train` applies only with `model.onnx` (a zoo network always trains)", path.display())]
    ModelTrain { path: PathBuf },
    #[error("{}: `[attack]` configures no attack: give fgsm_eps or pgd_eps", path.display())]
    NoAttack { path: PathBuf },
    #[error("{}: `front_test.eps` must list at least one radius (or set `front_test.enabled = false`)", path.display())]
    NoFrontEps { path: PathBuf },
    #[error("{}: field `reward.robust_eps` must be \"max\", \"auc\" or a radius the attack suite takes a worst case at ({radii:?}: `attack.pgd_eps`, or `attack.fgsm_eps` without PGD), got {value}", path.display())]
    RobustEps {
        path: PathBuf,
        value: f32,
        radii: Vec<f32>,
    },
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
    #[error("{}: give `bits.formats` (or `bits.w_formats`/`bits.a_formats`) or integer widths (`bits.choices`, `bits.min`/`bits.max`), not both", path.display())]
    FormatsWithWidths { path: PathBuf },
    #[error("{}: field `{field}` must list formats such as \"int8\" or \"fp8e4m3\" ({rule}), got \"{value}\"", path.display())]
    BadFormat {
        path: PathBuf,
        field: &'static str,
        value: String,
        rule: String,
    },
    #[error("{}: `{field}` leaves its operand no format (weights take int1..int8, the float formats and int4g32/int4g128; activations int1..int16 and the float formats)", path.display())]
    NoFormats { path: PathBuf, field: &'static str },
    #[error("{}: with `bits.tie = true` weights and activations need the same formats", path.display())]
    TiedFormats { path: PathBuf },
    #[error("{}: give `{fraction}` (a fraction of uniform 8/8) or `{absolute}`, not both", path.display())]
    BothBudgets {
        path: PathBuf,
        fraction: &'static str,
        absolute: &'static str,
    },
    #[error("{}: field `search.cost` must be \"latency\", \"energy\" or \"size\" (the cost the agents rank by), got \"{value}\"", path.display())]
    NotACost { path: PathBuf, value: &'static str },
    #[error("{}: field `quant.percentile` must be in (0, 100], got {value}", path.display())]
    PercentileOutOfRange { path: PathBuf, value: f32 },
    #[error(transparent)]
    Layer(#[from] LayerError),
}

/// Why an `extends` chain or a command-line override could not be applied (here beside
/// `ExperimentError`, which it wraps and is wrapped by, so the two files need not import each
/// other).
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("{}: `extends` must be a file name in quotes, got {value}", file.display())]
    ExtendsNotAString { file: PathBuf, value: String },
    #[error("{}: `extends = \"{parent}\"`: cannot read {}: {source}", child.display(), resolved.display())]
    MissingParent {
        child: PathBuf,
        parent: String,
        resolved: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: `extends` makes a cycle: {chain}", file.display())]
    Cycle { file: PathBuf, chain: String },
    #[error("{flag}: expected {expected}")]
    BadFlag {
        flag: String,
        expected: &'static str,
    },
    #[error("{flag}: `{key}` is not a table, so it has no `{field}`")]
    NotATable {
        flag: String,
        key: String,
        field: String,
    },
    #[error("{flag}: {source}")]
    Rejected {
        flag: String,
        source: Box<ExperimentError>,
    },
}
