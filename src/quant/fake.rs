//! Linear fake-quantizers with a straight-through estimator, as fused custom ops.
//!
//! Weights: symmetric per output channel (dim 0), `n = 2^(b-1) - 1` levels each side,
//! `s = max|w_c| / n`, `q = clamp(round(w / s), -n, n) · s`; 1 bit is `sign(w) · mean|w_c|`
//! (there is no symmetric 1-bit grid with zero). Activations: unsigned with clip `c`,
//! `L = 2^a - 1`, `q = round(clamp(x, 0, c) / c · L) · c / L`.
//! Group-wise integers (`int4g32`) take the weight grid per group of consecutive inputs of a
//! channel; minifloat weights round per channel after scaling (`minifloat.rs`), and minifloat
//! activations round after one scale mapping the clip to the format's largest finite value.
//! The backward pass is the identity, which is exactly `x + (q(x) - x).detach()`: the scale is
//! detached too, and one fused pass avoids the temporaries of the detach formulation.

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};

use super::{Format, Kind, Minifloat};

/// Quantizes `w` (row-major, `channels` rows) per row, symmetric, to `bits` (1..=8).
pub fn quantize_weight_values(w: &[f32], channels: usize, bits: u8) -> Vec<f32> {
    let per = w.len().checked_div(channels).unwrap_or(0);
    let mut out = Vec::with_capacity(w.len());
    for row in w.chunks(per.max(1)) {
        if bits == 1 {
            let mean = row.iter().map(|v| v.abs()).sum::<f32>() / row.len() as f32;
            out.extend(
                row.iter()
                    .map(|&v| if v == 0.0 { 0.0 } else { mean * v.signum() }),
            );
            continue;
        }
        let n = ((1u32 << (bits - 1)) - 1) as f32;
        let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
        if max == 0.0 {
            // An all-zero channel stays zero rather than dividing by a zero scale.
            out.extend(std::iter::repeat_n(0.0, row.len()));
            continue;
        }
        let s = max / n;
        out.extend(row.iter().map(|&v| round(v / s).clamp(-n, n) * s));
    }
    out
}

/// Quantizes `w` (row-major, `channels` rows) with one symmetric `bits` grid per group of
/// `group` consecutive values of a row (the last group of a row may be shorter; a row shorter
/// than `group` is one group), as `quantize_weight_values` quantizes a row.
pub fn quantize_weight_groups(w: &[f32], channels: usize, bits: u8, group: usize) -> Vec<f32> {
    let per = w.len().checked_div(channels).unwrap_or(0).max(1);
    let mut out = Vec::with_capacity(w.len());
    for row in w.chunks(per) {
        for g in row.chunks(group.max(1)) {
            out.extend(quantize_weight_values(g, 1, bits));
        }
    }
    out
}

/// Quantizes `w` (row-major, `channels` rows) to `format` as the weight fake-quantizer does.
pub fn quantize_weight_format(w: &[f32], channels: usize, format: Format) -> Vec<f32> {
    match format.kind() {
        Kind::Full => w.to_vec(),
        Kind::Int(bits) => quantize_weight_values(w, channels, bits),
        Kind::GroupInt { bits, group } => quantize_weight_groups(w, channels, bits, group),
        Kind::Float(m) if scaled(m) => super::quantize_minifloat_scaled(w, channels, m),
        Kind::Float(m) => m.round_values(w),
    }
}

/// Whether a minifloat is scaled into its range before rounding: fp8, whose range is narrow,
/// is (per channel for weights, by the clip for activations, as fp8 deployments scale);
/// fp16 and bf16 are plain casts, as deployments run them.
pub fn scaled(m: Minifloat) -> bool {
    m.bits() <= 8
}

/// Per output channel: the integer codes and the scale of bitsearch's weight quantizer
/// (`quantize_weight_values`: symmetric, `n = 2^(b−1) − 1` levels a side, scale
/// max|w_c| / n; 1 bit: sign × mean|w_c|). The codes are read off the quantizer's own values,
/// so the file holds exactly the grid the fine-tune used.
pub fn weight_codes(w: &[f32], channels: usize, bits: u8) -> (Vec<i8>, Vec<f32>) {
    let values = quantize_weight_values(w, channels, bits);
    let per = w.len().checked_div(channels).unwrap_or(0).max(1);
    let (mut codes, mut scales) = (Vec::with_capacity(w.len()), Vec::with_capacity(channels));
    for (row, q) in w.chunks(per).zip(values.chunks(per)) {
        let scale = match bits {
            1 => row.iter().map(|v| v.abs()).sum::<f32>() / row.len() as f32,
            _ => row.iter().fold(0f32, |m, v| m.max(v.abs())) / ((1u32 << (bits - 1)) - 1) as f32,
        };
        let scale = if scale > 0.0 { scale } else { 1.0 };
        codes.extend(q.iter().map(|&v| (v / scale).round() as i8));
        scales.push(scale);
    }
    (codes, scales)
}

/// The activation quantizer's grid: `2^bits − 1` steps over [0, clip]. `ops::conv2d` applies it
/// to a convolution's input while copying that input into its planes, so a quantized layer needs
/// no separate pass (and no gradient buffer) for its input.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ActGrid {
    /// 1..=8.
    pub bits: u8,
    pub clip: f32,
}

impl ActGrid {
    /// `x[i] = q(x[i])`. Zeros stay +0, so zero borders around the values can be included.
    pub fn quantize_in_place(&self, x: &mut [f32]) {
        if self.clip <= 0.0 || !self.clip.is_finite() {
            x.fill(0.0);
            return;
        }
        let step = self.clip / ((1u32 << self.bits) - 1) as f32;
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F, checked just above.
            return unsafe { quantize_avx512(x, self.clip, step) };
        }
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe { quantize_avx2(x, self.clip, step) };
        }
        quantize_portable(x, self.clip, step);
    }
}

/// The activation quantizer's loop, which the compiler vectorizes. Inlined into every caller,
/// so each gets its own vector width; the operations are exact IEEE ones (no fused
/// multiply-add), so both give the same bits.
#[inline(always)]
fn quantize_portable(x: &mut [f32], clip: f32, step: f32) {
    for v in x {
        *v = round(v.clamp(0.0, clip) / step) * step;
    }
}

/// `quantize_portable` compiled for AVX-512: 16 values per division where the baseline build
/// has 4 (the quantizer runs inside every convolution's input copy, so its width matters).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn quantize_avx512(x: &mut [f32], clip: f32, step: f32) {
    quantize_portable(x, clip, step);
}

/// `quantize_portable` compiled for AVX2 (8 values per division), for CPUs without AVX-512.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn quantize_avx2(x: &mut [f32], clip: f32, step: f32) {
    quantize_portable(x, clip, step);
}

/// Quantizes non-negative activations to `bits` (1..=8) levels over [0, clip].
pub fn quantize_act_values(x: &[f32], bits: u8, clip: f32) -> Vec<f32> {
    let mut out = x.to_vec();
    ActGrid { bits, clip }.quantize_in_place(&mut out);
    out
}

/// `v.round()` (half away from zero) in operations the compiler vectorizes: `f32::round` is a
/// call to libm's `roundf` per element on baseline x86-64. Exact for every f32: `a - trunc(a)` has no rounding error, and values from
/// 2^23 up are integers already.
#[allow(clippy::neg_cmp_op_on_partial_ord)]
#[inline]
fn round(v: f32) -> f32 {
    let a = v.abs();
    // In range by the `min` (NaN becomes 2^23 there), so the unchecked conversion is one
    // vector instruction; the saturating `as` has a scalar fix-up path that blocks vectorizing.
    // SAFETY: `a.min(2^23)` is finite and below i32::MAX.
    let t = unsafe { a.min(8_388_608.0).to_int_unchecked::<i32>() } as f32;
    let r = if a - t >= 0.5 { t + 1.0 } else { t };
    // NaN and infinities fall through here too, and stay what they were.
    let r = if !(a < 8_388_608.0) { a } else { r };
    r.copysign(v)
}

/// A fake-quantizer as a custom op: `f` maps the contiguous input and its number of rows (dim
/// 0) to the quantized values, and the backward pass is the identity (straight-through).
struct StraightThrough<F> {
    name: &'static str,
    f: F,
}

impl<F: Fn(&[f32], usize) -> Vec<f32> + Send + Sync> CustomOp1 for StraightThrough<F> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = input_slice(s, l)?;
        let rows = l.dims().first().copied().unwrap_or(1);
        Ok((CpuStorage::F32((self.f)(x, rows)), l.shape().clone()))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad.clone()))
    }
}

/// `x` through the fake-quantizer `f` (`StraightThrough`), named `name` in candle's graph.
pub(super) fn straight_through(
    x: &Tensor,
    name: &'static str,
    f: impl Fn(&[f32], usize) -> Vec<f32> + Send + Sync + 'static,
) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op1(StraightThrough { name, f })
}

/// Contiguous f32 view of a custom op's input.
fn input_slice<'a>(storage: &'a CpuStorage, layout: &Layout) -> candle_core::Result<&'a [f32]> {
    let data = storage.as_slice::<f32>()?;
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("fake-quantizer input must be contiguous"),
    }
}

/// Fake-quantizes a weight tensor per output channel (per group for group-wise formats); full
/// precision returns it unchanged.
pub fn fake_quant_weight(w: &Tensor, format: Format) -> candle_core::Result<Tensor> {
    if format.is_full() {
        return Ok(w.clone());
    }
    straight_through(w, "fake-quant-weight", move |w, rows| {
        quantize_weight_format(w, rows, format)
    })
}

/// Fake-quantizes an activation tensor: an integer format over [0, clip], a minifloat scaled
/// so that `clip` meets its largest finite value (fp8) or cast (fp16, bf16); full precision
/// returns it unchanged.
pub fn fake_quant_act(x: &Tensor, format: Format, clip: f32) -> candle_core::Result<Tensor> {
    match format.kind() {
        Kind::Int(bits) => straight_through(x, "fake-quant-act", move |x, _| {
            quantize_act_values(x, bits, clip)
        }),
        Kind::Float(m) => fake_quant_act_float(x, m, clip),
        Kind::Full | Kind::GroupInt { .. } => Ok(x.clone()),
    }
}

/// A minifloat activation: `s = clip / max_finite` for a scaled format (1 when the clip is not
/// positive), `q = round(x / s) · s`, saturating at ± the clip; straight-through gradient.
pub fn fake_quant_act_float(x: &Tensor, m: Minifloat, clip: f32) -> candle_core::Result<Tensor> {
    let scale = match scaled(m) && clip > 0.0 {
        true => clip / m.max_finite(),
        false => 1.0,
    };
    straight_through(x, "fake-quant-act-float", move |x, _| {
        quantize_act_float_values(x, m, scale)
    })
}

/// The values `fake_quant_act_float` computes.
pub fn quantize_act_float_values(x: &[f32], m: Minifloat, scale: f32) -> Vec<f32> {
    x.iter().map(|&v| m.round(v / scale) * scale).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn fast_round_is_f32_round() {
        // Halves, the largest float below one half (0.49999997: adding 0.5 to it rounds up),
        // signed zeros, the integer range's edges, infinities, and a sweep of random values.
        let mut values = vec![
            0.5,
            1.5,
            2.5,
            -0.5,
            -2.5,
            0.49999997,
            -0.49999997,
            0.0,
            -0.0,
            8_388_607.5,
            8_388_608.0,
            3e9,
            -3e9,
            f32::MAX,
            f32::MIN,
            f32::INFINITY,
            f32::NEG_INFINITY,
        ];
        let mut x = 0x2545_f491_u32;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            values.push((x as f32 / u32::MAX as f32 - 0.5) * 600.0);
        }
        for v in values {
            let (got, want) = (round(v), v.round());
            assert!(
                got.to_bits() == want.to_bits(),
                "round({v}) = {got}, want {want}"
            );
        }
        assert!(round(f32::NAN).is_nan());
    }

    #[test]
    fn two_bit_weight_grid_is_minus_one_zero_one_times_max() {
        // n = 1, s = max = 1.0: round(w) clamped to [-1, 1].
        let q = quantize_weight_values(&[-1.0, -0.4, 0.2, 0.6, 1.0], 1, 2);
        assert_eq!(q, vec![-1.0, -0.0, 0.0, 1.0, 1.0]);
    }

    #[test]
    fn three_bit_weight_grid_has_three_levels_each_side() {
        // n = 3, s = 0.9 / 3 = 0.3: 0.9→3, -0.5→round(-1.667)=-2, 0.1→round(0.333)=0, 0.46→round(1.533)=2
        let q = quantize_weight_values(&[0.9, -0.5, 0.1, 0.46], 1, 3);
        let want = [0.9, -0.6, 0.0, 0.6];
        for (a, b) in q.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{q:?}");
        }
    }

    #[test]
    fn weights_are_scaled_per_channel_and_zero_channels_stay_zero() {
        // channel 0 max 2 (2-bit: s=2), channel 1 all zero, channel 2 max 0.5 (s=0.5)
        let q = quantize_weight_values(&[2.0, 0.9, 0.0, 0.0, -0.5, 0.2], 3, 2);
        assert_eq!(q, vec![2.0, 0.0, 0.0, 0.0, -0.5, 0.0]);
        assert!(q.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn constant_tensor_is_exact() {
        for bits in 2..=8 {
            assert_eq!(quantize_weight_values(&[0.5; 6], 2, bits), vec![0.5; 6]);
        }
        // 1 bit: sign times the mean magnitude.
        assert_eq!(quantize_weight_values(&[0.5, -1.5], 1, 1), vec![1.0, -1.0]);
    }

    /// The vector builds of the activation quantizer this CPU can run give the portable
    /// loop's bits (they differ only in width), on values around every level and past clip.
    #[test]
    fn vector_quantizers_give_the_portable_bits() {
        let x: Vec<f32> = (0..4099)
            .map(|i| (i as f32 * 0.37).sin() * 2.5 + 0.9)
            .collect();
        for (bits, clip) in [(2u8, 1.0f32), (4, 2.7), (8, 3.3)] {
            let step = clip / ((1u32 << bits) - 1) as f32;
            let mut want = x.clone();
            quantize_portable(&mut want, clip, step);
            let mut got = vec![];
            #[cfg(target_arch = "x86_64")]
            {
                if std::is_x86_feature_detected!("avx512f") {
                    let mut v = x.clone();
                    // SAFETY: the CPU has AVX-512F, checked just above.
                    unsafe { quantize_avx512(&mut v, clip, step) };
                    got.push(("avx512", v));
                }
                if std::is_x86_feature_detected!("avx2") {
                    let mut v = x.clone();
                    // SAFETY: the CPU has AVX2, checked just above.
                    unsafe { quantize_avx2(&mut v, clip, step) };
                    got.push(("avx2", v));
                }
            }
            for (name, v) in got {
                let bits_of = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits_of(&v), bits_of(&want), "{name} {bits} bits");
            }
        }
    }

    #[test]
    fn activation_grid_is_unsigned_and_clipped() {
        // 2 bits, clip 3: levels 0, 1, 2, 3; negative values go to 0, values above clip to 3.
        let q = quantize_act_values(&[-1.0, 0.4, 0.6, 1.49, 2.6, 7.0], 2, 3.0);
        assert_eq!(q, vec![0.0, 0.0, 1.0, 1.0, 3.0, 3.0]);
        // 3 bits, clip 1: step 1/7; 0.55 * 7 = 3.85 rounds to 4.
        let q = quantize_act_values(&[0.55], 3, 1.0);
        assert!((q[0] - 4.0 / 7.0).abs() < 1e-6);
        assert_eq!(quantize_act_values(&[1.0, 2.0], 4, 0.0), vec![0.0, 0.0]);
    }

    #[test]
    fn gradient_passes_straight_through() {
        let dev = Device::Cpu;
        let w = Var::new(&[[0.3f32, -0.7], [0.1, 0.2]], &dev).unwrap();
        let x = Var::new(&[0.2f32, 5.0], &dev).unwrap();
        let coef = Tensor::new(&[[1f32, 2.], [3., 4.]], &dev).unwrap();
        let lw = (fake_quant_weight(w.as_tensor(), Format::new(2).unwrap()).unwrap() * &coef)
            .unwrap()
            .sum_all()
            .unwrap();
        let g = lw.backward().unwrap();
        assert_eq!(
            g.get(&w).unwrap().to_vec2::<f32>().unwrap(),
            vec![vec![1., 2.], vec![3., 4.]]
        );
        let lx = (fake_quant_act(x.as_tensor(), Format::new(2).unwrap(), 1.0).unwrap() * 3.0)
            .unwrap()
            .sum_all()
            .unwrap();
        let g = lx.backward().unwrap();
        // identity STE: gradient 3 everywhere, also where the value was clipped
        assert_eq!(g.get(&x).unwrap().to_vec1::<f32>().unwrap(), vec![3., 3.]);
    }

    #[test]
    fn full_precision_is_the_identity() {
        let t = Tensor::new(&[0.123f32, -4.5], &Device::Cpu).unwrap();
        let q = fake_quant_weight(&t, Format::FULL).unwrap();
        assert_eq!(q.to_vec1::<f32>().unwrap(), vec![0.123, -4.5]);
    }

    #[test]
    fn group_int4_scales_each_group_of_a_row() {
        // One row of 6: groups of 4 and 2; each group's largest magnitude is exact on its grid.
        let w = [0.7, -0.1, 0.35, 0.05, 10.0, -3.0];
        let q = quantize_weight_format(&w, 1, Format::INT4_G32);
        assert_eq!(
            q,
            quantize_weight_values(&w, 1, 4),
            "a row shorter than its group is one group"
        );
        let q = quantize_weight_groups(&w, 1, 4, 4);
        let (first, second) = (
            quantize_weight_values(&w[..4], 1, 4),
            quantize_weight_values(&w[4..], 1, 4),
        );
        assert_eq!(q, [first, second].concat());
        assert_eq!((q[0], q[4]), (0.7, 10.0));
        // Two rows of 4 with group 2: four groups, none sharing a scale.
        let w2 = [1.0, 0.5, 100.0, 1.0, 0.01, 0.002, 3.0, -3.0];
        let q2 = quantize_weight_groups(&w2, 2, 4, 2);
        assert_eq!(
            (q2[0], q2[2], q2[6]),
            (1.0, 100.0, 3.0),
            "each group's max is exact"
        );
        assert!(
            (q2[1] - 0.5).abs() <= 0.5 / 7.0,
            "the small group keeps its resolution"
        );
        assert_eq!(
            q2[4], 0.01,
            "beside 3.0 in one per-channel grid of 7 levels it would be 0"
        );
        assert_eq!(quantize_weight_values(&w2[4..], 1, 4)[0], 0.0);
    }

    #[test]
    fn float_formats_scale_as_deployments_do() {
        let dev = Device::Cpu;
        // fp16 activations are a plain cast: an fp16 value stays, an f32 one rounds.
        let x = Tensor::new(&[1.5f32, 1.0 + 1.0 / 4096.0, 70000.0], &dev).unwrap();
        let q: Vec<f32> = fake_quant_act(&x, Format::FP16, 2.0)
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(q, [1.5, 1.0, 65504.0], "round to nearest even, saturating");
        // fp8e4m3 activations: the clip meets 448, beyond it saturates to the clip.
        let x = Tensor::new(&[3.0f32, 5.0, -5.0, 0.0], &dev).unwrap();
        let q: Vec<f32> = fake_quant_act(&x, Format::FP8_E4M3, 3.0)
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(q, [3.0, 3.0, -3.0, 0.0]);
        // fp8 weights: one scale per output channel, as quantize_minifloat_scaled.
        let w = [0.3f32, -0.2, 0.1, 50.0, 1.0, -7.0];
        let expected = crate::quant::quantize_minifloat_scaled(&w, 2, Minifloat::FP8_E4M3FN);
        assert_eq!(quantize_weight_format(&w, 2, Format::FP8_E4M3), expected);
        assert_eq!(
            expected[0], 0.3,
            "each channel's largest magnitude is exact"
        );
        assert_eq!(expected[3], 50.0);
    }
}
