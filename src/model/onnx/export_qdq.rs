//! The activation quantizers of a QDQ export: Clip → QuantizeLinear → DequantizeLinear on the
//! unsigned grid `[0, clip]` (uint8/UINT4 codes) or the signed grid `[−clip, clip]` (int8/INT4
//! codes in [−L, L], `quant::signed_levels`), for a layer's input and an attention matmul's two
//! operands.

use super::super::proto::tensor_proto::DataType;
use super::Out;
use crate::model::graph::{Dims, Node};
use crate::model::{Model, ModelError};
use crate::quant::{signed_levels, Format, LayerQuant};

/// The error for a format the QDQ export does not write yet.
pub(super) fn not_exported(layer: &str, format: Format) -> ModelError {
    ModelError::Layer {
        layer: layer.to_string(),
        what: format!(
            "{} cannot be exported to ONNX yet (integer formats up to 8 bits can)",
            format.name()
        ),
    }
}

impl Out {
    /// `x` through Clip → QuantizeLinear → DequantizeLinear on the activation grid of `bits`
    /// with `clip` (signed or unsigned); full precision leaves it.
    pub(super) fn qdq(
        &mut self,
        layer: &str,
        x: &str,
        bits: Format,
        clip: f32,
        signed: bool,
    ) -> Result<String, ModelError> {
        let Some(bits) = bits.int_bits() else {
            return match bits.is_full() {
                true => Ok(x.to_string()),
                false => Err(not_exported(layer, bits)),
            };
        };
        if !(clip >= 0.0 && clip.is_finite()) {
            return Err(ModelError::Layer {
                layer: layer.to_string(),
                what: format!("activation clip {clip} cannot be exported (a QuantizeLinear scale must be positive)"),
            });
        }
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
        let four_bit = self.opset.four_bit(bits);
        // The same clamp as Min then Max before a UINT4 QuantizeLinear: ONNX Runtime 1.32's
        // ClipQuantFusion (all optimizations) fails the session on a Clip before a UINT4
        // zero point ("Unexpected data type" in GetQConstantLowerUpper).
        // An unsigned 8-bit grid fills its uint8 container and needs no clamp: QuantizeLinear
        // saturates to [0, 255] itself, which is the same clamp, and the bare Q is what
        // runtimes fuse into integer kernels. A clip of 0 needs it (step 1). Not so UINT4's
        // 4-bit grid: without the clamp in the way, ORT 1.32 moves the Q above a MaxPool and
        // then has no MaxPool kernel for its 4-bit codes.
        let fills = !signed && clip > 0.0 && bits == 8 && !four_bit;
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
        let kind = match (four_bit, signed) {
            (true, false) => DataType::Uint4,
            (false, false) => DataType::Uint8,
            (true, true) => DataType::Int4,
            (false, true) => DataType::Int8,
        };
        let zero = self.init("zero_point", &[], kind, vec![0]);
        let codes = self.node("QuantizeLinear", &[&clipped, &scale, &zero], vec![]);
        Ok(self.node("DequantizeLinear", &[&codes, &scale, &zero], vec![]))
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
