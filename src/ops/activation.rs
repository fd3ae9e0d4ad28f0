//! The rectifier an op applies to its output, `y = clamp(v, 0, cap)` (ReLU: no cap; ReLU6:
//! cap 6), and its gradient mask: a gradient passes where the output lies strictly inside the
//! clamp (`0 < y`, and `y < cap` for ReLU6) and is +0 elsewhere, read from the output alone, as
//! PyTorch's `relu` and `relu6` (hardtanh) backward take it.

/// The rectifier fused at the end of an op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Identity,
    Relu,
    /// `min(max(v, 0), 6)` (MobileNet's).
    Relu6,
}

/// ReLU6's cap.
pub(crate) const RELU6_CAP: f32 = 6.0;

impl Activation {
    /// The activation of a pre-activation value. `v.max(0.0)` maps NaN to 0, as the vector
    /// kernels' `max(v, 0)` does.
    #[inline(always)]
    pub(crate) fn apply(self, v: f32) -> f32 {
        match self {
            Activation::Identity => v,
            Activation::Relu => v.max(0.0),
            Activation::Relu6 => v.clamp(0.0, RELU6_CAP),
        }
    }

    /// The gradient `g` of an output `y` passed back through the activation.
    #[inline(always)]
    pub(crate) fn pass(self, g: f32, y: f32) -> f32 {
        match self {
            Activation::Identity => g,
            Activation::Relu => relu_pass(g, y),
            Activation::Relu6 => keep(g, y > 0.0 && y < RELU6_CAP),
        }
    }
}

/// `v` where `y > 0`, else +0: a bit mask rather than a branch, so loops over it vectorize.
#[inline(always)]
pub(crate) fn relu_pass(v: f32, y: f32) -> f32 {
    keep(v, y > 0.0)
}

/// `v` if `pass`, else +0, without a branch.
#[inline(always)]
fn keep(v: f32, pass: bool) -> f32 {
    f32::from_bits(v.to_bits() & (pass as u32).wrapping_neg())
}
