//! Pooling: max-pooling as a custom op with its scalar loops (`max_pool.rs`) and the vector
//! versions of its 2 × 2 kernel (`avx512.rs`, `avx2.rs`).

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod max_pool;

pub use max_pool::max_pool2d;
pub(crate) use max_pool::{pool_example, unpool};
