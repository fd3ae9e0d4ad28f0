//! Fast CPU kernels as candle custom ops (f32, NCHW): conv2d with bias and ReLU fused (stride 1
//! as a direct convolution with AVX-512 or AVX2 register tiles, else im2col + `gemm`), linear with bias
//! and ReLU fused,
//! max-pool with a backward that routes the gradient to the window's maximum, and the Lipschitz
//! penalty's `||W Wᵀ − I||²`. Each backward computes only the gradients whose arguments track
//! one, and every reduction runs in a fixed order, so results do not depend on the thread count.
//!
//! Why not candle's own ops: its conv2d backward always computes the input gradient through a
//! slow transposed convolution, and its `max_pool2d` backward scales the gradient by
//! (#maxima)/k² instead of routing it (docs/candle-notes.md says how each was measured).

mod batch_norm;
mod columns;
mod conv2d;
mod conv_pool;
mod depthwise;
mod direct;
mod direct_conv;
mod gram;
mod im2col;
mod linear;
mod matmul;
mod max_pool;
mod par;
mod storage;
#[cfg(test)]
mod test_util;
mod wide;

pub use batch_norm::batch_norm_train;
pub use conv2d::{conv2d, conv2d_quantized};
pub use conv_pool::conv2d_relu_pool;
pub use depthwise::depthwise_conv2d;
pub use gram::orthogonality;
pub use linear::linear;
pub use max_pool::max_pool2d;
pub use par::threads;
