//! The activation quantizers of a QDQ export, for a layer's input and an attention matmul's two
//! operands, each computing what the fake-quantizer (`quant::fake_quant_act`, or
//! `fake_quant_act_signed` for a signed operand) does:
//!
//! - integers: Clip → QuantizeLinear → DequantizeLinear on the unsigned grid `[0, clip]`
//!   (uint8/UINT4 codes; 9 to 16 bits in uint16 at opset 21) or the signed grid
//!   `[−clip, clip]` (int8/INT4/int16 codes in [−L, L], `quant::signed_levels`; at opset 21
//!   their type named by `output_dtype` instead of a zero point, `int_qdq` says why);
//! - fp8 (opset 21): QuantizeLinear (saturating, its FLOAT8 type named by `output_dtype`) →
//!   DequantizeLinear with the scale `clip / max_finite`, signed values kept;
//! - fp16, bf16: Clip to ± the largest finite value → Cast to FLOAT16/BFLOAT16 → Cast back, the
//!   Clip making the cast saturate as the fake-quantizer does (ONNX's Cast to them overflows to
//!   infinity and its `saturate` attribute is for float8 only).

use super::super::proto::tensor_proto::DataType;
use super::weights::{minifloat_type, needs_opset};
use super::{int, Opset, Out};
use crate::model::graph::{Dims, Node};
use crate::model::{Model, ModelError};
use crate::quant::{minifloat_scaled, signed_levels, Format, Kind, LayerQuant, Minifloat};

impl Out {
    /// `x` through the activation quantizer of `format` with `clip` (signed or unsigned); full
    /// precision leaves it.
    pub(super) fn qdq(
        &mut self,
        layer: &str,
        x: &str,
        format: Format,
        clip: f32,
        signed: bool,
    ) -> Result<String, ModelError> {
        match format.kind() {
            // A group-wise format is the model's for weights only: on an attention matmul's
            // second operand (an activation) it leaves the values unquantized there too.
            Kind::Full | Kind::GroupInt { .. } => Ok(x.to_string()),
            Kind::Int(bits) => self.int_qdq(layer, x, format, bits, clip, signed),
            Kind::Float(m) if minifloat_scaled(m) => self.fp8_qdq(layer, x, format, m, clip),
            Kind::Float(m) => Ok(self.cast_qdq(x, m)),
        }
    }

    /// The integer grid of `bits` over `[0, clip]` (or `[−clip, clip]` when `signed`).
    fn int_qdq(
        &mut self,
        layer: &str,
        x: &str,
        format: Format,
        bits: u8,
        clip: f32,
        signed: bool,
    ) -> Result<String, ModelError> {
        check_clip(layer, clip)?;
        let kind = match (bits, self.opset, signed) {
            (..=4, Opset::V21, false) => DataType::Uint4,
            (..=4, Opset::V21, true) => DataType::Int4,
            (..=8, _, false) => DataType::Uint8,
            (..=8, _, true) => DataType::Int8,
            (_, Opset::V21, false) => DataType::Uint16,
            (_, Opset::V21, true) => DataType::Int16,
            (_, v13, _) => return Err(needs_opset(layer, format, v13, "16-bit QuantizeLinear")),
        };
        let levels = match signed {
            true => signed_levels(bits),
            false => (1u32 << bits) - 1,
        };
        // A clip of 0 (an input that calibration never saw above 0, such as a dead ReLU's)
        // quantizes everything to 0: Clip(0, 0) does, and then any positive step keeps it.
        let step = match clip {
            0.0 => 1.0,
            clip => clip / levels as f32,
        };
        let low = if signed { -clip } else { 0.0 };
        let four_bit = matches!(kind, DataType::Uint4 | DataType::Int4);
        // The same clamp as Min then Max before a UINT4 QuantizeLinear: ONNX Runtime 1.32's
        // ClipQuantFusion (all optimizations) fails the session on a Clip before a UINT4
        // zero point ("Unexpected data type" in GetQConstantLowerUpper).
        // An unsigned 8-bit grid fills its uint8 container and needs no clamp: QuantizeLinear
        // saturates to [0, 255] itself, which is the same clamp, and the bare Q is what
        // runtimes fuse into integer kernels. A clip of 0 needs it (step 1). Not so UINT4's
        // 4-bit grid: without the clamp in the way, ORT 1.32 moves the Q above a MaxPool and
        // then has no MaxPool kernel for its 4-bit codes; nor uint16's, for the same reason.
        let fills = !signed && clip > 0.0 && kind == DataType::Uint8 && bits == 8;
        let clipped = match four_bit {
            _ if fills => x.to_string(),
            false => {
                let (lo, hi) = (self.scalar_f32(low), self.scalar_f32(clip));
                self.node("Clip", &[x, &lo, &hi], vec![])
            }
            true => {
                let (lo, hi) = (self.scalar_f32(low), self.scalar_f32(clip));
                let below = self.node("Min", &[x, &hi], vec![]);
                self.node("Max", &[&below, &lo], vec![])
            }
        };
        let scale = self.scalar_f32(step);
        // Signed codes at opset 21 name their type (`output_dtype`) instead of a zero point:
        // ONNX Runtime 1.32 copies a quantizer past a Reshape or Transpose with an explicit
        // `output_dtype`, then turns int8 zero points into uint8 ones (QDQS8ToU8) and leaves
        // the copy's type behind, which fails the session; a quantizer without a zero point
        // is left alone.
        if signed && self.opset == Opset::V21 {
            let typed = vec![int("output_dtype", kind as i64)];
            let codes = self.node("QuantizeLinear", &[&clipped, &scale], typed);
            return Ok(self.node("DequantizeLinear", &[&codes, &scale], vec![]));
        }
        let zero_bytes = match kind {
            DataType::Uint16 | DataType::Int16 => 2,
            _ => 1,
        };
        let zero = self.init("zero_point", &[], kind, vec![0; zero_bytes]);
        let codes = self.node("QuantizeLinear", &[&clipped, &scale, &zero], vec![]);
        Ok(self.node("DequantizeLinear", &[&codes, &scale, &zero], vec![]))
    }

    /// fp8 with one scale mapping `clip` to the format's largest finite value (1 when the clip
    /// is 0, as `quant::fake_quant_act_float`); QuantizeLinear rounds to nearest even and
    /// saturates beyond it, as `Minifloat::round` does. No zero point: ONNX Runtime 1.32
    /// (ReluQuantFusion) deletes a Relu ahead of a QuantizeLinear whose zero point is neither
    /// int8 nor uint8, as if the quantizer clamped at zero, which fp8's does not.
    fn fp8_qdq(
        &mut self,
        layer: &str,
        x: &str,
        format: Format,
        m: Minifloat,
        clip: f32,
    ) -> Result<String, ModelError> {
        if self.opset != Opset::V21 {
            return Err(needs_opset(
                layer,
                format,
                self.opset,
                "FLOAT8 QuantizeLinear",
            ));
        }
        check_clip(layer, clip)?;
        let step = match clip > 0.0 {
            true => clip / m.max_finite(),
            false => 1.0,
        };
        let scale = self.scalar_f32(step);
        let q = vec![
            int("output_dtype", minifloat_type(m) as i64),
            int("saturate", 1),
        ];
        let codes = self.node("QuantizeLinear", &[x, &scale], q);
        Ok(self.node("DequantizeLinear", &[&codes, &scale], vec![]))
    }

    /// fp16 or bf16 unscaled: clamped to ± the largest finite value, cast to the format and
    /// back.
    fn cast_qdq(&mut self, x: &str, m: Minifloat) -> String {
        let top = m.max_finite();
        let (lo, hi) = (self.scalar_f32(-top), self.scalar_f32(top));
        let clamped = self.node("Clip", &[x, &lo, &hi], vec![]);
        let narrow = vec![int("to", minifloat_type(m) as i64)];
        let cast = self.node("Cast", &[&clamped], narrow);
        self.node("Cast", &[&cast], vec![int("to", DataType::Float as i64)])
    }

    /// An attention matmul layer's two operands after their quantizers (`model::attention`):
    /// the first on the layer's input grid at `a` bits, the second signed at `w` bits.
    pub(super) fn quantized_operands(
        &mut self,
        model: &Model,
        li: usize,
        node: &Node,
        names: &[String],
        lq: LayerQuant,
        dims: &[Dims],
    ) -> Result<Vec<String>, ModelError> {
        let (&[a, b], Some(layer)) = (node.inputs.as_slice(), model.shapes().get(li)) else {
            return Err(super::tokens::bad(0, "a matmul of two operands"));
        };
        let first = self.quantized_input(model, li, &names[a], lq, dims[a])?;
        let second = self.qdq(&layer.name, &names[b], lq.bits.w, lq.operand_clip, true)?;
        Ok(vec![first, second])
    }

    /// A layer's input after its activation quantizer (and, for the first layer, the input
    /// standardization bitsearch applies after it).
    pub(super) fn quantized_input(
        &mut self,
        model: &Model,
        li: usize,
        src: &str,
        lq: LayerQuant,
        shape: Dims,
    ) -> Result<String, ModelError> {
        let signed = model.signed_inputs().get(li).copied().unwrap_or(false);
        let name = model.shapes().get(li).map_or("", |s| s.name.as_str());
        let mut x = self.qdq(name, src, lq.bits.a, lq.clip, signed)?;
        let norm = model.input_norm();
        let identity = norm.mean.iter().all(|&m| m == 0.0) && norm.std.iter().all(|&s| s == 1.0);
        if li == 0 && !identity {
            let (c, h, w) = model.input();
            let per = |v: &[f32]| -> Vec<f32> {
                v.iter()
                    .flat_map(|&m| std::iter::repeat_n(m, h * w))
                    .collect()
            };
            let dims: Vec<usize> = match shape {
                Dims::Map(..) => vec![1, c, h, w],
                Dims::Flat(n) => vec![1, n],
                Dims::Seq(t, d) => vec![1, t, d],
            };
            let mean = self.f32s("input_mean", &dims, &per(&norm.mean));
            let std = self.f32s("input_std", &dims, &per(&norm.std));
            let centered = self.node("Sub", &[&x, &mean], vec![]);
            x = self.node("Div", &[&centered, &std], vec![]);
        }
        Ok(x)
    }
}

/// A QuantizeLinear scale is built from the clip: it must be finite and not negative.
fn check_clip(layer: &str, clip: f32) -> Result<(), ModelError> {
    match clip >= 0.0 && clip.is_finite() {
        true => Ok(()),
        false => Err(ModelError::Layer {
            layer: layer.to_string(),
            what: format!(
                "activation clip {clip} cannot be exported (a QuantizeLinear scale must be positive)"
            ),
        }),
    }
}
