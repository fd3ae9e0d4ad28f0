//! The validated `Experiment`: each module's own config, composed. Only the command line and the
//! run orchestration (the search, the DQ study) see the whole of it; everything below takes its
//! own part (`exp.train`, `exp.attack`, `exp.quant`, …).

use std::path::PathBuf;

use serde::Serialize;

use super::front_test::FrontTestConfig;
use super::robust::DqConfig;
use super::search::{BitsRange, RewardConfig, SearchConfig};
use crate::calib::QuantConfig;
use crate::data::DataConfig;
use crate::env::BudgetConfig;
use crate::model::ModelConfig;
use crate::robust::AttackConfig;
use crate::train::{BaselineSpec, FinetuneConfig, TrainConfig};

/// A validated experiment; serialized as the `experiment` of a run's config.json.
#[derive(Debug, Clone, Serialize)]
pub struct Experiment {
    pub name: String,
    /// The file it was read from.
    pub path: PathBuf,
    pub data: DataConfig,
    pub model: ModelConfig,
    pub train: TrainConfig,
    pub quant: QuantConfig,
    pub finetune: FinetuneConfig,
    pub attack: AttackConfig,
    /// The strong suite the final front is re-scored with on the test split.
    pub front_test: FrontTestConfig,
    pub dq: DqConfig,
    pub bits: BitsRange,
    pub budget: BudgetConfig,
    pub reward: RewardConfig,
    pub search: SearchConfig,
    /// Command-line overrides applied on top of the file (`--set train.epochs=2`), in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<String>,
}

impl Experiment {
    /// What its FP32 baseline depends on (the cache key of `train::train_baseline`).
    pub fn baseline(&self) -> BaselineSpec<'_> {
        BaselineSpec {
            model: &self.model,
            data: &self.data,
            train: &self.train,
        }
    }
}
