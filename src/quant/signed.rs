//! The signed activation grid, for layers whose inputs can be negative (a transformer's linear
//! layers read LayerNorm, attention and GELU outputs): symmetric with clip `c`,
//!
//! ```text
//! L = 2^(a−1) − 1 steps a side (1 at a = 1: ternary),  q(x) = sign(x) · q⁺(|x|)
//! ```
//!
//! where `q⁺` is the unsigned grid of `a − 1` bits over [0, c] (`ActGrid`): the signed a-bit
//! integer codes −L..L with zero point 0, as a QDQ int8 pair stores them. The clip of |x| at
//! `a − 1` bits is therefore exactly the signed grid's (`calibrate_layer_signed`). Backward is
//! the identity (straight-through), as for the unsigned grid.

use candle_core::Tensor;

use super::{calibrate_layer, ActGrid, ClipMethod, Format, Kind, LayerClips};

/// The unsigned grid of the positive half of the signed `bits`-bit grid.
pub fn signed_half(bits: u8, clip: f32) -> ActGrid {
    ActGrid {
        bits: bits.saturating_sub(1).max(1),
        clip,
    }
}

/// Steps a side of the signed `bits`-bit grid (`L` in the module doc).
pub fn signed_levels(bits: u8) -> u32 {
    (1u32 << signed_half(bits, 0.0).bits) - 1
}

/// Quantizes `x` to the signed `bits`-bit grid with clip `clip`.
pub fn quantize_act_signed_values(x: &[f32], bits: u8, clip: f32) -> Vec<f32> {
    let mut out: Vec<f32> = x.iter().map(|v| v.abs()).collect();
    signed_half(bits, clip).quantize_in_place(&mut out);
    (out.iter_mut().zip(x)).for_each(|(q, &v)| *q = q.copysign(v));
    out
}

/// Fake-quantizes an activation tensor to the signed grid over [−clip, clip]; full precision
/// returns it unchanged.
pub fn fake_quant_act_signed(x: &Tensor, bits: Format, clip: f32) -> candle_core::Result<Tensor> {
    match bits.kind() {
        Kind::Int(bits) => {
            super::fake::straight_through(x, "fake-quant-act-signed", move |x, _| {
                quantize_act_signed_values(x, bits, clip)
            })
        }
        // A minifloat is signed already: the same quantizer as an unsigned operand's.
        Kind::Float(m) => super::fake::fake_quant_act_float(x, m, clip),
        Kind::Full | Kind::GroupInt { .. } => Ok(x.clone()),
    }
}

/// Clips for bits 1..=8 of the signed grid from observed values: each width's clip is the
/// unsigned clip of |x| at its half's width.
pub fn calibrate_layer_signed(values: &[f32], method: ClipMethod) -> LayerClips {
    let abs: Vec<f32> = values.iter().map(|v| v.abs()).collect();
    let half = calibrate_layer(&abs, method);
    std::array::from_fn(|i| half[signed_half(i as u8 + 1, 0.0).bits as usize - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_grid_is_symmetric_with_zero() {
        // 3 bits, clip 1.5: L = 3 steps a side of 0.5; the values past the clip saturate.
        let x = [-2.0, -0.74, -0.2, 0.0, 0.26, 0.76, 1.6];
        let q = quantize_act_signed_values(&x, 3, 1.5);
        assert_eq!(q, [-1.5, -0.5, -0.0, 0.0, 0.5, 1.0, 1.5]);
        assert_eq!(signed_levels(3), 3);
        assert_eq!(signed_levels(8), 127);
        // 1 bit has no symmetric grid of two levels: it runs ternary, as 2 bits do.
        assert_eq!(signed_levels(1), 1);
        assert_eq!(
            quantize_act_signed_values(&x, 1, 1.0)[..3],
            [-1.0, -1.0, -0.0]
        );
    }

    #[test]
    fn signed_clip_is_the_half_grids_clip_of_the_magnitudes() {
        let v: Vec<f32> = (-50..=100).map(|i| i as f32).collect();
        let c = calibrate_layer_signed(&v, ClipMethod::Max);
        assert_eq!(c, [100.0; 8]);
        let mse = calibrate_layer_signed(&v, ClipMethod::Mse);
        let abs: Vec<f32> = v.iter().map(|x| x.abs()).collect();
        let half = calibrate_layer(&abs, ClipMethod::Mse);
        assert_eq!((mse[0], mse[1], mse[7]), (half[0], half[0], half[6]));
    }

    #[test]
    fn gradient_passes_straight_through() {
        let x = candle_core::Var::new(&[-3.0f32, 0.3, 2.0], &candle_core::Device::Cpu).unwrap();
        let bits = Format::new(4).unwrap();
        let y = fake_quant_act_signed(x.as_tensor(), bits, 1.0).unwrap();
        let g = y.sum_all().unwrap().backward().unwrap();
        let dx = g.get(x.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(dx, [1.0, 1.0, 1.0]);
    }
}
