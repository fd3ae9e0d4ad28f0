//! The direct stride-1 convolution: its passes over NCHW tensors (`passes.rs`: the shapes, the
//! forward and the input gradient; `weight_grad.rs`: the weight gradient) and the
//! register-tiled kernels they run (`kernels.rs`: operands, dispatch and the portable
//! reference; `avx512.rs` and `avx2.rs`: the vector versions).

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
pub(crate) mod kernels;
mod passes;
mod weight_grad;

pub(crate) use passes::{Direct, Upstream};
