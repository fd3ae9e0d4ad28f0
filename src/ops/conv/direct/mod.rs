//! The direct stride-1 convolution: its three passes over NCHW tensors (`passes.rs`) and the
//! register-tiled kernels they run (`kernels.rs`: operands, dispatch and the portable
//! reference; `avx512.rs` and `avx2.rs`: the vector versions).

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
pub(crate) mod kernels;
mod passes;

pub(crate) use passes::{Direct, Upstream};
