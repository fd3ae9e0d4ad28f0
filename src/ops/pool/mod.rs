//! Pooling: max-pooling as a custom op with its scalar loops (`max_pool.rs`) and the vector
//! versions of its 2 × 2 kernel (`avx512.rs`, `avx2.rs`); overlapping, padded and ceil-mode
//! windows (`window.rs`).

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod max_pool;
mod window;

pub use max_pool::max_pool2d;
pub(crate) use max_pool::{pool_example, unpool};
pub use window::{max_pool2d_window, Window};
