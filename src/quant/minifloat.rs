//! Minifloat formats (fp16, bf16, fp8 e4m3fn and e5m2) and rounding an f32 to the nearest
//! value of one, as a fake-quantizer with a straight-through estimator.
//!
//! A format with `e` exponent bits, `m` mantissa bits and bias `B` holds `±1.f · 2^E` for
//! `E` in `[1 − B, E_max]` (normals) and `±0.f · 2^(1 − B)` (subnormals, gradual underflow),
//! `f` being `m` bits. Rounding is round-to-nearest, ties to even, as IEEE 754 casts do:
//! the quantum at `|x|` is `2^(max(E(x), 1 − B) − m)`.
//!
//! Out of range the rounding saturates, as ONNX QuantizeLinear and Cast do with
//! `saturate=1`: a value above the largest finite one (infinities included) becomes
//! `±max_finite`. PyTorch's casts do not: past the rounding edge (`max + ulp/2`) they give NaN
//! for e4m3fn and ±inf for e5m2, fp16 and bf16. NaN stays NaN and `−0.0` keeps its sign.
//!
//! The rounding works on the f32's bits (integer shifts, no table, no float arithmetic), so it
//! is exact for every input; tests/data/minifloat holds PyTorch's results it is checked against.

use candle_core::Tensor;

use super::fake::straight_through;

/// Errors from describing a minifloat format.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MinifloatError {
    #[error("a minifloat needs 2..=8 exponent bits (f32 holds at most 8), got {value}")]
    ExponentBits { value: u32 },
    #[error("a minifloat needs 1..=23 mantissa bits (f32 holds at most 23), got {value}")]
    MantissaBits { value: u32 },
    #[error(
        "a minifloat's exponents must lie in f32's normal range [-126, 127]: bias {bias} gives \
         [{min}, {max}]"
    )]
    ExponentRange { bias: i32, min: i32, max: i32 },
}

/// What the format's all-ones exponent encodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Specials {
    /// IEEE 754: the all-ones exponent is ±inf (mantissa 0) and NaN; the largest finite value
    /// has the exponent below it (fp16, bf16, fp8 e5m2).
    Ieee,
    /// OCP "fn" (finite, NaN): no infinities; only the all-ones exponent with the all-ones
    /// mantissa is NaN, so the all-ones exponent holds finite values too (fp8 e4m3fn).
    NanOnly,
}

/// A binary floating-point format narrower than f32. Fields are private so every value is one
/// `new` checked: its values are then all f32 values, which the rounding relies on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Minifloat {
    exp_bits: u32,
    man_bits: u32,
    bias: i32,
    specials: Specials,
}

impl Minifloat {
    /// IEEE 754 half precision: max finite 65504.
    pub const FP16: Minifloat = Minifloat::unchecked(5, 10, 15, Specials::Ieee);
    /// bfloat16: f32's exponent with 7 mantissa bits; max finite ≈ 3.39e38.
    pub const BF16: Minifloat = Minifloat::unchecked(8, 7, 127, Specials::Ieee);
    /// OCP fp8 E4M3 ("e4m3fn"): no infinities, one NaN pattern a sign; max finite 448.
    pub const FP8_E4M3FN: Minifloat = Minifloat::unchecked(4, 3, 7, Specials::NanOnly);
    /// OCP fp8 E5M2: IEEE-like with infinities; max finite 57344.
    pub const FP8_E5M2: Minifloat = Minifloat::unchecked(5, 2, 15, Specials::Ieee);

    const fn unchecked(exp_bits: u32, man_bits: u32, bias: i32, specials: Specials) -> Self {
        Minifloat {
            exp_bits,
            man_bits,
            bias,
            specials,
        }
    }

    /// A format, checked to fit inside f32: every value of it is then an f32 value, normal or
    /// subnormal, so rounding can build its result from bits without a second rounding.
    pub fn new(
        exp_bits: u32,
        man_bits: u32,
        bias: i32,
        specials: Specials,
    ) -> Result<Self, MinifloatError> {
        if !(2..=8).contains(&exp_bits) {
            return Err(MinifloatError::ExponentBits { value: exp_bits });
        }
        if !(1..=23).contains(&man_bits) {
            return Err(MinifloatError::MantissaBits { value: man_bits });
        }
        let format = Minifloat::unchecked(exp_bits, man_bits, bias, specials);
        let (min, max) = (format.min_exponent(), format.max_exponent());
        if min < -126 || max > 127 {
            return Err(MinifloatError::ExponentRange { bias, min, max });
        }
        Ok(format)
    }

    pub fn exp_bits(&self) -> u32 {
        self.exp_bits
    }

    pub fn man_bits(&self) -> u32 {
        self.man_bits
    }

    pub fn bias(&self) -> i32 {
        self.bias
    }

    pub fn specials(&self) -> Specials {
        self.specials
    }

    /// Total width in bits, sign included.
    /// Whether every value of `other` is one of this format's: its exponent and mantissa
    /// fields are each at least as wide (fp16 and bf16 hold either fp8; neither holds the other).
    pub fn holds(&self, other: Minifloat) -> bool {
        self.exp_bits >= other.exp_bits && self.man_bits >= other.man_bits
    }

    pub fn bits(&self) -> u32 {
        1 + self.exp_bits + self.man_bits
    }

    /// The smallest normal exponent, `1 − bias`; below it the quantum stays `2^(1−bias−m)`.
    fn min_exponent(&self) -> i32 {
        1 - self.bias
    }

    /// The exponent of the largest finite value.
    fn max_exponent(&self) -> i32 {
        let all_ones = (1i32 << self.exp_bits) - 1;
        match self.specials {
            Specials::Ieee => all_ones - 1 - self.bias,
            Specials::NanOnly => all_ones - self.bias,
        }
    }

    /// The largest finite value: all-ones mantissa under the top finite exponent, one less
    /// under "fn" where the all-ones mantissa is the NaN.
    pub fn max_finite(&self) -> f32 {
        let ones = (1u32 << (self.man_bits + 1)) - 1;
        let significand = match self.specials {
            Specials::Ieee => ones,
            Specials::NanOnly => ones - 1,
        };
        let exp = self.max_exponent() - self.man_bits as i32;
        f32::from_bits(compose(significand, exp))
    }

    /// The smallest positive (subnormal) value, `2^(1 − bias − m)`.
    pub fn min_positive(&self) -> f32 {
        f32::from_bits(compose(1, self.min_exponent() - self.man_bits as i32))
    }

    /// `x` rounded to the nearest value of the format, ties to even, saturating to
    /// `±max_finite` above it (infinities too); NaN stays NaN, zeros keep their sign.
    pub fn round(&self, x: f32) -> f32 {
        let bits = x.to_bits();
        let sign = bits & 0x8000_0000;
        let mag = bits & 0x7fff_ffff;
        if mag > 0x7f80_0000 {
            return x;
        }
        // f32 bits of non-negative values order like the values. Rounding is monotone and
        // max_finite is a value of the format, so everything at or above it rounds (and
        // saturates) to it, and everything below it rounds to at most it: no overflow below.
        let max = self.max_finite().to_bits();
        if mag >= max {
            return f32::from_bits(sign | max);
        }
        // |x| = significand · 2^lsb, with the implicit bit for normals; an f32 subnormal has
        // exponent field 0 and the same lsb as the smallest normals.
        let field = (mag >> 23) as i32;
        let fraction = mag & 0x007f_ffff;
        let (significand, lsb) = match field {
            0 => (fraction, -149),
            _ => (fraction | 0x0080_0000, field - 150),
        };
        // The format's quantum at |x|: 2^(E − m), with E floored at the smallest normal
        // exponent so subnormals keep a fixed step (gradual underflow).
        let exponent = (field - 127).max(-126);
        let quantum = exponent.max(self.min_exponent()) - self.man_bits as i32;
        // quantum ≥ lsb: m ≤ 23 and the smallest normal exponent ≥ −126 (checked in `new`).
        // Past 25 dropped bits the 24-bit significand is below half a quantum anyway.
        let shift = ((quantum - lsb) as u32).min(25);
        let kept = round_half_even(significand, shift);
        if kept == 0 {
            return f32::from_bits(sign);
        }
        f32::from_bits(sign | compose(kept, quantum))
    }

    /// Rounds every element in place (`round` on each).
    pub fn round_slice(&self, xs: &mut [f32]) {
        for x in xs {
            *x = self.round(*x);
        }
    }

    /// The rounded values of `xs`.
    pub fn round_values(&self, xs: &[f32]) -> Vec<f32> {
        xs.iter().map(|&x| self.round(x)).collect()
    }
}

/// `significand >> shift`, rounded to nearest with ties to the even result (`shift` ≤ 31).
fn round_half_even(significand: u32, shift: u32) -> u32 {
    if shift == 0 {
        return significand;
    }
    let kept = significand >> shift;
    let dropped = significand & ((1u32 << shift) - 1);
    let half = 1u32 << (shift - 1);
    if dropped > half || (dropped == half && kept & 1 == 1) {
        kept + 1
    } else {
        kept
    }
}

/// The f32 bits of `significand · 2^exp` (significand > 0). The caller guarantees the value is
/// an f32 value (normal or subnormal), so every shift below drops only zero bits.
fn compose(significand: u32, exp: i32) -> u32 {
    // Move the leading one to bit 23, the implicit bit of a normal f32.
    let lead = 31 - significand.leading_zeros() as i32;
    let up = 23 - lead;
    let significand = if up >= 0 {
        significand << up
    } else {
        significand >> -up
    };
    // significand ∈ [2^23, 2^24), so the value is 1.f · 2^(exp − up + 23).
    let biased = exp - up + 23 + 127;
    if biased >= 1 {
        ((biased as u32) << 23) | (significand & 0x007f_ffff)
    } else {
        // Subnormal: fraction · 2^−149, i.e. shifted right by the exponent's shortfall.
        significand >> (1 - biased)
    }
}

/// Rounds each value to a minifloat after scaling it into the format's range, per channel:
/// `s_c = max|x_c| / max_finite`, `q = round(x / s_c) · s_c`, as fp8 deployments scale a
/// tensor so its largest magnitude meets the format's largest finite value. `x` is row-major
/// with `channels` rows (1 for one scale per tensor). An all-zero channel stays zero; a
/// channel holding inf or NaN gets scale 1 (the values are rounded unscaled).
pub fn quantize_minifloat_scaled(x: &[f32], channels: usize, format: Minifloat) -> Vec<f32> {
    let per = x.len().checked_div(channels).unwrap_or(0).max(1);
    let top = format.max_finite();
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks(per) {
        let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
        if max == 0.0 {
            out.extend(row.iter().map(|v| 0.0f32.copysign(*v)));
            continue;
        }
        let s = if max.is_finite() { max / top } else { 1.0 };
        out.extend(row.iter().map(|&v| format.round(v / s) * s));
    }
    out
}

/// Fake-quantizes a tensor to a minifloat format, unscaled, with a straight-through gradient.
pub fn fake_quant_minifloat(x: &Tensor, format: Minifloat) -> candle_core::Result<Tensor> {
    // The identity backward, as the integer fake-quantizers': the rounding is piecewise
    // constant, and a saturated value passes its gradient too.
    straight_through(x, "fake-quant-minifloat", move |x, _| {
        format.round_values(x)
    })
}

/// Fake-quantizes a tensor to a minifloat format with one scale per output channel (dim 0)
/// mapping each channel's max |x| to the format's largest finite value; straight-through
/// gradient.
pub fn fake_quant_minifloat_scaled(x: &Tensor, format: Minifloat) -> candle_core::Result<Tensor> {
    // The scale is detached, as the integer weight quantizer's is.
    straight_through(x, "fake-quant-minifloat-scaled", move |x, rows| {
        quantize_minifloat_scaled(x, rows, format)
    })
}

#[cfg(test)]
#[path = "minifloat_tests.rs"]
mod tests;
