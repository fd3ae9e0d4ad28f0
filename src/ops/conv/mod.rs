//! Convolution: the conv2d op (`conv2d.rs`) and the two ways it is computed — the direct
//! stride-1 convolution on zero-bordered planes (`direct/`, its planes in `planes.rs`) and the
//! column path, im2col + gemm (`im2col_gemm.rs`, its column matrices in `im2col.rs`) — their
//! shared shape arithmetic (`geometry.rs`), the depthwise convolution on the direct path's
//! kernels (`depthwise/`), and convolution + ReLU + max-pool as one op (`conv_relu_pool.rs`).

mod conv2d;
mod conv_relu_pool;
mod depthwise;
pub(crate) mod direct;
mod geometry;
mod im2col;
mod im2col_gemm;
mod planes;

pub(crate) use conv2d::Conv2d;
pub use conv2d::{conv2d, conv2d_quantized};
pub use conv_relu_pool::conv2d_relu_pool;
pub use depthwise::depthwise_conv2d;
pub(crate) use depthwise::Depthwise;
