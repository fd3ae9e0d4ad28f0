//! Normalization: BatchNorm on batch statistics (FP32 training) as one custom op.

mod batch_norm;

pub use batch_norm::batch_norm_train;
