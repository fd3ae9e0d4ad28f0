//! A quantized layer's weight in a QDQ export, in its number format, stored as the codes the
//! fake-quantizer (`quant::quantize_weight_format`) rounds to, so that dequantizing them gives
//! its values bit for bit:
//!
//! - integers: codes per output channel, `w = code · s_c` (DequantizeLinear, axis 0), in int8 or
//!   (opset 21, up to 4 bits) INT4;
//! - fp8 (opset 21): FLOAT8E4M3FN/FLOAT8E5M2 codes `round(w / s_c)` with
//!   `s_c = max|w_c| / max_finite`, `w = code · s_c` (DequantizeLinear, axis 0);
//! - fp16, bf16: a FLOAT16/BFLOAT16 initializer of the rounded weight, Cast to float;
//! - group-wise int4 (opset 21): INT4 codes of the weight as [out, fan_in] with one scale per
//!   `group` inputs, `s = max|w_g| / 7` (DequantizeLinear, axis 1, `block_size` = group; the
//!   last block of a row may be shorter, as ONNX's scale shape ceil(fan_in / group) allows),
//!   then Reshape to the weight's shape.

use super::super::proto::tensor_proto::DataType;
use super::{int, Opset, Out};
use crate::model::ModelError;
use crate::quant::{weight_codes, Format, Kind, Minifloat};

/// The error for a format that `opset` has no operators for.
pub(super) fn needs_opset(layer: &str, format: Format, opset: Opset, what: &str) -> ModelError {
    ModelError::Layer {
        layer: layer.to_string(),
        what: format!(
            "{} cannot be exported at ONNX opset {}: it needs opset 21 ({what}); export with --opset 21",
            format.name(),
            opset.number()
        ),
    }
}

impl Out {
    /// Layer `layer`'s weight `w` (row-major, shape `dims`, output channels first) quantized to
    /// `format`; returns the name of the float tensor the layer's op reads.
    pub(super) fn weight(
        &mut self,
        layer: &str,
        w: &[f32],
        dims: &[usize],
        format: Format,
    ) -> Result<String, ModelError> {
        match format.kind() {
            Kind::Full => Ok(self.f32s("weight", dims, w)),
            Kind::Int(bits) => Ok(self.int_weight(w, dims, bits)),
            Kind::Float(m) if crate::quant::minifloat_scaled(m) => match self.opset {
                Opset::V21 => Ok(self.fp8_weight(w, dims, m)),
                v13 => Err(needs_opset(layer, format, v13, "FLOAT8 DequantizeLinear")),
            },
            Kind::Float(m) => Ok(self.cast_weight(w, dims, m)),
            Kind::GroupInt { bits, group } => match self.opset {
                Opset::V21 => Ok(self.group_weight(w, dims, bits, group)),
                v13 => Err(needs_opset(layer, format, v13, "blocked DequantizeLinear")),
            },
        }
    }

    /// Integer codes per output channel (`quant::weight_codes`) behind a DequantizeLinear.
    fn int_weight(&mut self, w: &[f32], dims: &[usize], bits: u8) -> String {
        let o = dims.first().copied().unwrap_or(1);
        let (codes, scales) = weight_codes(w, o, bits);
        let (kind, raw, zeros) = match self.opset.four_bit(bits) {
            true => (DataType::Int4, pack4(&codes), vec![0; o.div_ceil(2)]),
            false => (
                DataType::Int8,
                codes.iter().map(|&c| c as u8).collect(),
                vec![0; o],
            ),
        };
        let codes = self.init("weight_codes", dims, kind, raw);
        let scale = self.f32s("weight_scale", &[o], &scales);
        let zero = self.init("weight_zero", &[o], kind, zeros);
        self.node(
            "DequantizeLinear",
            &[&codes, &scale, &zero],
            vec![int("axis", 0)],
        )
    }

    /// fp8 codes with one scale per output channel, as `quant::quantize_minifloat_scaled`
    /// computes them: `s_c = max|w_c| / max_finite` (1 for an all-zero channel), code
    /// `round(w / s_c)`, so that code · s_c is its value.
    fn fp8_weight(&mut self, w: &[f32], dims: &[usize], m: Minifloat) -> String {
        let o = dims.first().copied().unwrap_or(1);
        let per = w.len().checked_div(o).unwrap_or(0).max(1);
        let mut scales = Vec::with_capacity(o);
        let mut raw = Vec::with_capacity(w.len());
        for row in w.chunks(per) {
            let max = row.iter().fold(0f32, |a, v| a.max(v.abs()));
            let s = match max > 0.0 && max.is_finite() {
                true => max / m.max_finite(),
                false => 1.0,
            };
            scales.push(s);
            raw.extend(row.iter().map(|&v| minifloat_bits(m, m.round(v / s)) as u8));
        }
        let codes = self.init("weight_codes", dims, minifloat_type(m), raw);
        let scale = self.f32s("weight_scale", &[o], &scales);
        self.node("DequantizeLinear", &[&codes, &scale], vec![int("axis", 0)])
    }

    /// fp16 or bf16: the rounded weight stored in the format, cast to float.
    fn cast_weight(&mut self, w: &[f32], dims: &[usize], m: Minifloat) -> String {
        let raw = (w.iter())
            .flat_map(|&v| (minifloat_bits(m, m.round(v)) as u16).to_le_bytes())
            .collect();
        let stored = self.init("weight_codes", dims, minifloat_type(m), raw);
        self.node("Cast", &[&stored], vec![int("to", DataType::Float as i64)])
    }

    /// INT4 codes of the weight as [out, fan_in] with a scale per block of `group` inputs of a
    /// row (`quant::quantize_weight_groups`: each group is one symmetric grid), dequantized
    /// along axis 1 and reshaped to the weight's shape.
    fn group_weight(&mut self, w: &[f32], dims: &[usize], bits: u8, group: usize) -> String {
        let o = dims.first().copied().unwrap_or(1);
        let fan_in = w.len().checked_div(o).unwrap_or(0).max(1);
        let group = group.max(1);
        let blocks = fan_in.div_ceil(group);
        let mut codes = Vec::with_capacity(w.len());
        let mut scales = Vec::with_capacity(o * blocks);
        for row in w.chunks(fan_in) {
            for g in row.chunks(group) {
                let (c, s) = weight_codes(g, 1, bits);
                codes.extend(c);
                scales.extend(s);
            }
        }
        let (kind, raw) = match bits <= 4 {
            true => (DataType::Int4, pack4(&codes)),
            false => (DataType::Int8, codes.iter().map(|&c| c as u8).collect()),
        };
        let codes = self.init("weight_codes", &[o, fan_in], kind, raw);
        let scale = self.f32s("weight_scale", &[o, blocks], &scales);
        let attrs = vec![int("axis", 1), int("block_size", group as i64)];
        let flat = self.node("DequantizeLinear", &[&codes, &scale], attrs);
        match dims.len() {
            2 => flat,
            _ => {
                let shape: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
                let shape = self.i64s("shape", &shape);
                self.node("Reshape", &[&flat, &shape], vec![])
            }
        }
    }
}

/// The ONNX element type of a minifloat format.
pub(super) fn minifloat_type(m: Minifloat) -> DataType {
    match m {
        Minifloat::FP16 => DataType::Float16,
        Minifloat::BF16 => DataType::Bfloat16,
        Minifloat::FP8_E5M2 => DataType::Float8e5m2,
        _ => DataType::Float8e4m3fn,
    }
}

/// The bit pattern of `v` in format `m` (sign, exponent field, mantissa field), `v` being a
/// value of the format (a result of `Minifloat::round`). A normal value's exponent is biased;
/// below the smallest normal the exponent field is 0 and the mantissa counts quanta of
/// `2^(1 − bias − m)`. NaN is the all-ones pattern.
pub(super) fn minifloat_bits(m: Minifloat, v: f32) -> u32 {
    let (e_bits, m_bits) = (m.exp_bits(), m.man_bits());
    let sign = (v.to_bits() >> 31) << (e_bits + m_bits);
    if v.is_nan() {
        return sign | ((1 << (e_bits + m_bits)) - 1);
    }
    let mag = v.to_bits() & 0x7fff_ffff;
    if mag == 0 {
        return sign;
    }
    if v.is_infinite() {
        return sign | (((1 << e_bits) - 1) << m_bits);
    }
    // |v| = significand · 2^lsb, the significand holding f32's implicit bit for normals.
    let field = (mag >> 23) as i32;
    let (significand, lsb) = match field {
        0 => (mag, -149),
        _ => ((mag & 0x007f_ffff) | 0x0080_0000, field - 150),
    };
    let exponent = lsb + 31 - significand.leading_zeros() as i32;
    let min_normal = 1 - m.bias();
    // The format's quantum at |v|; |v| is a whole number of them.
    let quantum = exponent.max(min_normal) - m_bits as i32;
    let count = match quantum - lsb {
        s if s >= 0 => significand >> s,
        s => significand << -s,
    };
    let biased = match exponent >= min_normal {
        true => (exponent + m.bias()) as u32,
        false => 0,
    };
    sign | (biased << m_bits) | (count & ((1 << m_bits) - 1))
}

/// 4-bit two's-complement codes packed two to a byte, the first in the low nibble (ONNX's
/// INT4/UINT4 layout); an odd count leaves the last high nibble zero.
pub(super) fn pack4(codes: &[i8]) -> Vec<u8> {
    codes
        .chunks(2)
        .map(|p| (p[0] as u8 & 0x0f) | (p.get(1).map_or(0, |&c| c as u8 & 0x0f) << 4))
        .collect()
}
