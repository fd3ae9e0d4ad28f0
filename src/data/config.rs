//! `DataConfig`: the validated `[data]` table of an experiment — where the data comes from, how
//! much validation to carve from train, and the split seed.

use serde::Serialize;

use super::{DataError, DataSource, Dataset};

#[derive(Debug, Clone, Serialize)]
pub struct DataConfig {
    #[serde(serialize_with = "display")]
    pub source: DataSource,
    pub validation: usize,
    pub seed: u64,
}

fn display<T: std::fmt::Display, S: serde::Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

impl DataConfig {
    /// Reads the data and carves the validation split.
    pub fn load(&self) -> Result<Dataset, DataError> {
        let (train, test) = self.source.load()?;
        Dataset::from_raw(train, test, self.validation, self.seed)
    }
}
