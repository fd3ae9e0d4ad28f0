use super::*;
use candle_core::{Device, Var};

/// (input, PyTorch's `x.to(dtype).float()`) as f32 bits, from scripts/minifloat_fixture.py.
fn fixture(bytes: &[u8]) -> Vec<(u32, u32)> {
    assert_eq!(bytes.len() % 8, 0, "fixture is u32 pairs");
    let word = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    bytes
        .chunks_exact(8)
        .map(|c| (word(&c[..4]), word(&c[4..])))
        .collect()
}

/// Every fixture input rounds to PyTorch's bits exactly; `min` guards against an empty or
/// truncated file passing vacuously.
fn assert_matches_pytorch(format: Minifloat, bytes: &[u8], min: usize) {
    let pairs = fixture(bytes);
    assert!(pairs.len() >= min, "{} pairs, want ≥ {min}", pairs.len());
    let wrong: Vec<String> = pairs
        .iter()
        .filter(|&&(x, want)| format.round(f32::from_bits(x)).to_bits() != want)
        .map(|&(x, want)| {
            let got = format.round(f32::from_bits(x));
            format!(
                "{:e} ({x:08x}): got {got:e} ({:08x}), PyTorch {:e} ({want:08x})",
                f32::from_bits(x),
                got.to_bits(),
                f32::from_bits(want)
            )
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} differ from PyTorch, e.g.\n{}",
        wrong.len(),
        pairs.len(),
        wrong[..wrong.len().min(8)].join("\n")
    );
}

// Counts are what scripts/minifloat_fixture.py printed when it wrote the files.

#[test]
fn fp8_e4m3fn_matches_pytorch_bit_for_bit() {
    let bytes = include_bytes!("../../tests/data/minifloat/fp8_e4m3fn.bin");
    assert_matches_pytorch(Minifloat::FP8_E4M3FN, bytes, 1818);
}

#[test]
fn fp8_e5m2_matches_pytorch_bit_for_bit() {
    let bytes = include_bytes!("../../tests/data/minifloat/fp8_e5m2.bin");
    assert_matches_pytorch(Minifloat::FP8_E5M2, bytes, 1794);
}

#[test]
fn fp16_matches_pytorch_bit_for_bit() {
    let bytes = include_bytes!("../../tests/data/minifloat/fp16.bin");
    assert_matches_pytorch(Minifloat::FP16, bytes, 6978);
}

#[test]
fn bf16_matches_pytorch_bit_for_bit() {
    let bytes = include_bytes!("../../tests/data/minifloat/bf16.bin");
    assert_matches_pytorch(Minifloat::BF16, bytes, 7096);
}

#[test]
fn formats_have_their_published_extremes() {
    // OCP 8-bit floating point spec (e4m3fn, e5m2), IEEE 754 binary16, bfloat16 (f32's top
    // exponent with 7 mantissa bits: 0x7f7f0000).
    let cases = [
        (Minifloat::FP8_E4M3FN, 448.0, 2f32.powi(-9), 8),
        (Minifloat::FP8_E5M2, 57344.0, 2f32.powi(-16), 8),
        (Minifloat::FP16, 65504.0, 2f32.powi(-24), 16),
        (
            Minifloat::BF16,
            f32::from_bits(0x7f7f_0000),
            2f32.powi(-133),
            16,
        ),
    ];
    for (format, max, min, bits) in cases {
        assert_eq!(format.max_finite(), max, "{format:?}");
        assert_eq!(format.min_positive(), min, "{format:?}");
        assert_eq!(format.bits(), bits, "{format:?}");
        let checked = Minifloat::new(
            format.exp_bits(),
            format.man_bits(),
            format.bias(),
            format.specials(),
        );
        assert_eq!(checked, Ok(format));
    }
}

#[test]
fn values_beyond_max_finite_saturate() {
    // Each format's rounding edge (max + ulp/2) and beyond: PyTorch gives NaN (e4m3fn) or inf
    // past the edge; bitsearch gives ±max_finite, as ONNX's saturate=1.
    let edges = [
        (Minifloat::FP8_E4M3FN, 464.0),
        (Minifloat::FP8_E5M2, 61440.0),
        (Minifloat::FP16, 65520.0),
        (Minifloat::BF16, f32::from_bits(0x7f7f_8000)),
    ];
    for (format, edge) in edges {
        let max = format.max_finite();
        for x in [edge, edge * 1.5, f32::MAX, f32::INFINITY] {
            assert_eq!(format.round(x), max, "{format:?} {x:e}");
            assert_eq!(format.round(-x), -max, "{format:?} -{x:e}");
        }
        assert_eq!(format.round(max), max);
    }
}

#[test]
fn nan_stays_nan() {
    let quiet = f32::NAN;
    let signalling = f32::from_bits(0x7f80_0001);
    let negative = f32::from_bits(0xffc0_0000);
    for format in [
        Minifloat::FP8_E4M3FN,
        Minifloat::FP8_E5M2,
        Minifloat::FP16,
        Minifloat::BF16,
    ] {
        for x in [quiet, signalling, negative] {
            assert!(format.round(x).is_nan(), "{format:?} {:08x}", x.to_bits());
        }
    }
}

#[test]
fn zeros_and_underflow_keep_their_sign() {
    for format in [
        Minifloat::FP8_E4M3FN,
        Minifloat::FP8_E5M2,
        Minifloat::FP16,
        Minifloat::BF16,
    ] {
        let tiny = format.min_positive() / 4.0;
        assert_eq!(format.round(-0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(format.round(0.0).to_bits(), 0);
        assert_eq!(format.round(-tiny).to_bits(), (-0.0f32).to_bits());
        // Half the smallest subnormal is a tie between 0 (even) and it: 0 wins.
        let half = format.min_positive() / 2.0;
        assert_eq!(format.round(-half).to_bits(), (-0.0f32).to_bits());
    }
}

#[test]
fn ties_go_to_the_even_neighbour() {
    // e4m3fn around 1: neighbours 1, 1.125, 1.25. 1.0625 ties to 1 (mantissa 000), 1.1875
    // ties to 1.25 (mantissa 010); just past a tie rounds to the nearer one.
    let f = Minifloat::FP8_E4M3FN;
    assert_eq!(f.round(1.0625), 1.0);
    assert_eq!(f.round(1.1875), 1.25);
    assert_eq!(f.round(f32::from_bits(1.0625f32.to_bits() + 1)), 1.125);
    // Subnormals (step 2^-9): 3.5 · 2^-9 ties to 4 · 2^-9 = the smallest normal 2^-7.
    assert_eq!(f.round(3.5 * 2f32.powi(-9)), 2f32.powi(-7));
}

#[test]
fn exponent_bits_must_fit_f32() {
    assert_eq!(
        Minifloat::new(9, 3, 7, Specials::Ieee),
        Err(MinifloatError::ExponentBits { value: 9 })
    );
    assert_eq!(
        Minifloat::new(1, 3, 0, Specials::Ieee),
        Err(MinifloatError::ExponentBits { value: 1 })
    );
}

#[test]
fn mantissa_bits_must_fit_f32() {
    assert_eq!(
        Minifloat::new(4, 24, 7, Specials::Ieee),
        Err(MinifloatError::MantissaBits { value: 24 })
    );
    assert_eq!(
        Minifloat::new(4, 0, 7, Specials::NanOnly),
        Err(MinifloatError::MantissaBits { value: 0 })
    );
}

#[test]
fn exponent_range_must_fit_f32() {
    // 8 exponent bits with bias 126: exponents [-125, 128], past f32's 127.
    assert_eq!(
        Minifloat::new(8, 7, 126, Specials::Ieee),
        Err(MinifloatError::ExponentRange {
            bias: 126,
            min: -125,
            max: 128
        })
    );
    assert!(Minifloat::new(8, 7, 128, Specials::Ieee).is_err());
}

#[test]
fn rounding_is_idempotent_and_monotone() {
    // A sweep of random f32 bit patterns, both signs, every exponent: rounding a rounded value
    // changes nothing, and sorted inputs stay sorted.
    let mut state = 0x9e37_79b9_u32;
    let mut xs: Vec<f32> = (0..20_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            f32::from_bits(state)
        })
        .filter(|x| !x.is_nan())
        .collect();
    xs.sort_by(f32::total_cmp);
    for format in [
        Minifloat::FP8_E4M3FN,
        Minifloat::FP8_E5M2,
        Minifloat::FP16,
        Minifloat::BF16,
    ] {
        let ys = format.round_values(&xs);
        for (x, y) in xs.iter().zip(&ys) {
            assert_eq!(format.round(*y).to_bits(), y.to_bits(), "{format:?} {x:e}");
        }
        assert!(ys.windows(2).all(|w| w[0] <= w[1]), "{format:?}");
    }
}

#[test]
fn tensor_op_rounds_forward_and_passes_gradient_straight_through() {
    let dev = Device::Cpu;
    let x = Var::new(&[1.0625f32, -500.0, 0.3, -0.0], &dev).unwrap();
    let q = fake_quant_minifloat(x.as_tensor(), Minifloat::FP8_E4M3FN).unwrap();
    let want = Minifloat::FP8_E4M3FN.round_values(&[1.0625, -500.0, 0.3, -0.0]);
    assert_eq!(q.to_vec1::<f32>().unwrap(), want);
    let g = (q * 3.0).unwrap().sum_all().unwrap().backward().unwrap();
    // Identity STE: gradient 3 everywhere, also where the value saturated.
    assert_eq!(g.get(&x).unwrap().to_vec1::<f32>().unwrap(), vec![3.0; 4]);
}

#[test]
fn scaled_rounding_maps_each_channel_max_to_max_finite() {
    let f = Minifloat::FP8_E4M3FN;
    // Channel 0 max 2 (scale 2/448), channel 1 all zero, channel 2 max 1000 (scale 1000/448).
    let x = [2.0, 0.7, -0.01, 0.0, -0.0, 0.0, -1000.0, 3.0, 0.5];
    let q = quantize_minifloat_scaled(&x, 3, f);
    for (row, qrow) in x.chunks(3).zip(q.chunks(3)) {
        let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
        if max == 0.0 {
            assert!(qrow.iter().all(|v| *v == 0.0), "{qrow:?}");
            continue;
        }
        let s = max / f.max_finite();
        for (&v, &r) in row.iter().zip(qrow) {
            // On the scaled grid (up to the rounding of `r / s` itself), within half a
            // quantum (relative 2^-4) of the input.
            let code = r / s;
            assert!(
                (f.round(code) - code).abs() <= code.abs() * 1e-6,
                "{v} -> {r}"
            );
            assert!(
                (r - v).abs() <= v.abs() / 16.0 + f.min_positive() * s,
                "{v} -> {r}"
            );
        }
        assert!((qrow.iter().fold(0f32, |m, v| m.max(v.abs())) - max).abs() <= max * 1e-6);
    }
    let t = Tensor::new(&x, &Device::Cpu)
        .unwrap()
        .reshape((3, 3))
        .unwrap();
    let qt = fake_quant_minifloat_scaled(&t, f).unwrap();
    let flat = qt.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(flat, q);
}
