//! Fast CPU kernels as candle custom ops (f32, NCHW), one folder per concept: convolution (`conv`:
//! conv2d with bias, ReLU and the input's activation quantizer fused, run as a direct stride-1
//! convolution with AVX-512 or AVX2 register tiles, else im2col + `gemm`; depthwise; conv + ReLU +
//! max-pool fused), pooling (`pool`: max-pool with a backward that routes the gradient to the
//! window's maximum), normalization (`norm`: BatchNorm on batch statistics, with the ReLU, ReLU6 or
//! the residual join after it fused, and with the conv before it in FP32 training) and linear algebra (`linalg`: linear with bias and ReLU fused,
//! the `gemm` wrapper, the Lipschitz penalty's `‖W Wᵀ − I‖²`), a residual block's join (`residual`:
//! `relu(a + b)`), ReLU6 (`relu6`, candle's clamp without its temporaries); the plumbing they share
//! beside them. Each backward computes only the gradients whose arguments track one, and every
//! reduction runs in a fixed order, so results do not depend on the thread count.
//!
//! Why not candle's own ops: its conv2d backward always computes the input gradient through a
//! slow transposed convolution, and its `max_pool2d` backward scales the gradient by
//! (#maxima)/k² instead of routing it (docs/candle-notes.md).

mod activation;
pub(crate) mod conv;
mod instruction_set;
mod linalg;
mod norm;
mod parallel;
mod pool;
mod relu6;
mod residual;
mod storage;
#[cfg(test)]
pub(crate) mod test_util;

pub use activation::Activation;
pub use conv::{conv2d, conv2d_quantized, conv2d_relu_pool, depthwise_conv2d};
pub use linalg::{linear, orthogonality};
pub use norm::{batch_norm_train, batch_norm_train_then, conv_bn_train, BnThen, ConvKind};
pub use parallel::threads;
pub use pool::{max_pool2d, max_pool2d_window, Window};
pub use relu6::relu6;
pub use residual::add_relu;
