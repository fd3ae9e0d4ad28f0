//! Experiment files: an unchecked TOML struct, `check()` with one error variant per rule, and
//! the validated `Experiment` the command line and the run orchestration accept.
//!
//! Inside, dependencies point one way: `layered` (`extends` chains and command-line overrides on
//! the TOML value) uses `raw` (the whole file and its `check()`), which uses `robust`,
//! `front` and `search` (the unchecked tables and their checks), `validated` (the composed `Experiment`) and
//! `error`; this file only declares them and reads a file through `layered`.

/// The smallest valid experiment file (data, model, training), shared by this module's tests.
#[cfg(test)]
macro_rules! minimal_experiment {
    () => {
        r#"
name = "t"
[data]
source = "embedded:mnist-10k"
validation = 1000
[model]
arch = "lenet5"
[train]
epochs = 8
batch = 64
lr = 1e-3
"#
    };
}

mod error;
mod fidelity;
mod formats;
mod front_test;
mod layered;
mod raw;
mod robust;
mod search;
mod validated;

pub use error::{ExperimentError, LayerError};
pub use formats::FormatSpace;
pub use front_test::{FrontTestConfig, RawFrontTest};
pub use layered::Overrides;
pub use raw::{RawData, RawExperiment, RawModel, RawQuant, RawTrain};
pub use robust::{DqConfig, RawAttack, RawFinetune};
pub use search::{BitsRange, Fidelities, LowFidelity, RawBudget, RewardConfig, SearchConfig};
pub use validated::Experiment;

use std::path::Path;

impl Experiment {
    /// Reads and validates an experiment file (and the files its `extends` chain names).
    pub fn load(path: &Path) -> Result<Self, ExperimentError> {
        Self::load_with(path, &Overrides::default())
    }

    /// Like `load`, with command-line overrides applied before validation.
    pub fn load_with(path: &Path, overrides: &Overrides) -> Result<Self, ExperimentError> {
        layered::load(path, overrides)
    }

    /// Parses and validates TOML text; `path` names the file in errors and anchors relative paths.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ExperimentError> {
        layered::from_text(text, path)
    }
}
