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

/// ReLU6 as candle's `clamp(0, 6)` computes it (`maximum(0)` then `minimum(6)`): the same bits,
/// signed zeros and NaN included.
#[inline(always)]
pub(crate) fn relu6_candle(v: f32) -> f32 {
    let m = if v < 0.0 { 0.0 } else { v };
    if m > RELU6_CAP {
        RELU6_CAP
    } else {
        m
    }
}

/// The gradient reaching `v` through `relu6_candle` from its output's gradient `g`, as
/// candle's backward of `maximum` then `minimum` leaves it in zero-filled slots: a tie with a
/// bound (`v` = 0 or 6) passes half the gradient, as candle splits it between the two operands.
#[inline(always)]
pub(crate) fn relu6_candle_pass(g: f32, v: f32) -> f32 {
    let m = if v < 0.0 { 0.0 } else { v };
    let y = if m > RELU6_CAP { RELU6_CAP } else { m };
    let is = |c: bool| if c { 1.0f32 } else { 0.0 };
    // candle divides by 1 or 2; multiplying by 1 or 0.5 is the same correctly rounded value
    // (a power of two), without a division.
    let halved = |c: bool| if c { 0.5f32 } else { 1.0 };
    let gm = 0.0 + (is(y == m) * g) * halved(y == RELU6_CAP);
    (is(m == v) * gm) * halved(m == 0.0)
}
