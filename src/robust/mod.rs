//! Robustness: FGSM and PGD through the straight-through estimator, the transfer attack from the
//! FP32 model, the gradient-free Square attack, gradient-masking checks, spectral norms (the
//! Lipschitz bound), and error amplification. It measures a model; it never trains one (the
//! Lipschitz penalty is a fine-tune loss term in `train`, the DQ study that fine-tunes is `dq`).

mod amplification;
mod attack;
mod breakdown;
mod lipschitz;
mod masking;
mod measure;
mod square;
mod stage_cost;
mod suite;

pub use amplification::{amplification, mean_relative_distance, LayerDistance};
pub use attack::{
    correct, fgsm, fgsm_step, input_grad, pgd, pgd_from, pgd_start_noise, zero_gradients,
    Classifier, Pgd, QuantizedModel,
};
pub use breakdown::{Breakdown, BREAKDOWN_FORMAT};
pub use lipschitz::{lipschitz_bound, spectral_norm};
pub use masking::{Checks, Masking, CHECKS_FORMAT, GRADIENT_FREE_TOLERANCE};
pub use measure::{MeasureName, RobustMeasure};
pub use square::square;
pub use stage_cost::{Stage, StageCost, SuiteCost};
pub use suite::{
    craft_transfer, fp32_transfer, headline_eps, robust_radii, run_suite, AttackConfig, AttackKind,
    AttackResult, Coverage, EpsWorst, SquareRun, SquareScope, SuiteReport, TransferSet,
};

use crate::model::ModelError;

#[derive(Debug, thiserror::Error)]
pub enum RobustError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("tensor error: {0}")]
    Tensor(#[from] candle_core::Error),
}
