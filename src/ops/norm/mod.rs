//! Normalization: BatchNorm on batch statistics (FP32 training) as one custom op, with a ReLU, a ReLU6
//! or a residual block's join fused after it.

mod backward;
mod batch_norm;
mod conv_bn;
mod passes;

pub use batch_norm::{batch_norm_train, batch_norm_train_then, BnThen};
pub use conv_bn::{conv_bn_train, ConvKind};
