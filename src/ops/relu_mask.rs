//! The fused ReLU's gradient mask, shared by the convolution and the pooling: a gradient passes
//! where the ReLU's output is positive and is +0 elsewhere.

/// `v` where `y > 0`, else +0: a bit mask rather than a branch, so loops over it vectorize.
#[inline(always)]
pub(crate) fn relu_pass(v: f32, y: f32) -> f32 {
    f32::from_bits(v.to_bits() & ((y > 0.0) as u32).wrapping_neg())
}
