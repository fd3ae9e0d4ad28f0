//! Robustness: FGSM and PGD through the straight-through estimator, the transfer attack from the
//! FP32 model, gradient-masking checks, the Lipschitz penalty and spectral norms, and error
//! amplification.

mod amplification;
mod attack;
mod dq;
mod lipschitz;
mod square;
mod suite;

pub use amplification::{amplification, mean_relative_distance, LayerDistance};
pub use attack::{correct, fgsm, input_grad, pgd, zero_gradients, Classifier, Pgd, QuantizedModel};
pub use dq::{calibrate, dq_header, dq_record, rises_as_bits_fall, run_dq, write_dq, DqRow};
pub use lipschitz::{lipschitz_bound, orthogonality_penalty, spectral_norm};
pub use square::square;
pub use suite::{
    craft_transfer, headline_eps, run_suite, AttackConfig, AttackKind, AttackResult, Masking,
    SuiteReport, TransferSet,
};

use crate::model::ModelError;

#[derive(Debug, thiserror::Error)]
pub enum RobustError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("tensor error: {0}")]
    Tensor(#[from] candle_core::Error),
}
