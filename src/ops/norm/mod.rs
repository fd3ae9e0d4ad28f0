//! Normalization: BatchNorm on batch statistics (FP32 training) as one custom op, with a ReLU, a ReLU6
//! or a residual block's join fused after it.

mod backward;
mod batch_norm;
mod passes;

pub use batch_norm::{batch_norm_train, batch_norm_train_then, BnThen};
