//! Training: FP32 training with AdamW, top-1 evaluation, the cached FP32 baseline, and the
//! quantization-aware fine-tune with its Lipschitz penalty.

mod adamw;
mod baseline;
mod finetune;
mod fp32;
mod penalty;

pub use adamw::FusedAdamW;
pub use baseline::{
    baseline_dir, load_baseline, train_baseline, Baseline, BaselineMetrics, BaselineSpec,
};
pub use finetune::{finetune, FinetuneConfig, FinetuneReport, LrSchedule};
pub use fp32::{accuracy, loss, progress_bar, train_fp32, EpochReport, TrainConfig};
pub use penalty::orthogonality_penalty;

use std::path::PathBuf;

use crate::data::DataError;
use crate::model::ModelError;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Model(Box<ModelError>),
    #[error(transparent)]
    Data(Box<DataError>),
    #[error("tensor error: {0}")]
    Tensor(Box<candle_core::Error>),
    #[error("training diverged at epoch {epoch}, step {step}: loss is {loss}")]
    Diverged {
        epoch: usize,
        step: usize,
        loss: f32,
    },
    #[error("fine-tune diverged at step {step}: loss is {loss}")]
    FinetuneDiverged { step: usize, loss: f32 },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
}

crate::errors::boxed_from!(
    TrainError;
    Model: ModelError,
    Data: DataError,
    Tensor: candle_core::Error
);
