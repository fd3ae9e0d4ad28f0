//! Experiment files: an unchecked TOML struct, `check()` with one error variant per rule, and
//! the validated `Experiment` the command line and the run orchestration accept.
//!
//! Inside, dependencies point one way: `raw` (the whole file and its `check()`) uses `robust` and
//! `search` (the unchecked tables and their checks), `validated` (the composed `Experiment`) and
//! `error`; this file only declares them and reads a file through `raw`.

mod error;
mod raw;
mod robust;
mod search;
mod validated;

pub use error::ExperimentError;
pub use raw::{RawData, RawExperiment, RawModel, RawQuant, RawTrain};
pub use robust::{DqConfig, RawAttack, RawFinetune};
pub use search::{BitsRange, RawBudget, RewardConfig, SearchConfig};
pub use validated::Experiment;

use std::path::Path;

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
