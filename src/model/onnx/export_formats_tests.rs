//! The export of each number format read back with the crate's own ONNX types: minifloat bit
//! patterns, every weight format dequantized to the fake-quantizer's values bit for bit, the
//! activation quantizers' ops, types and scales, and the formats opset 13 cannot hold refused.
//! tests/onnx_export.rs runs the same exports in ONNX Runtime.

use super::super::proto::{tensor_proto::DataType, GraphProto, NodeProto, TensorProto};
use super::super::tests::fixture;
use super::weights::minifloat_bits;
use super::{export_proto, Opset};
use crate::model::{Model, ModelError};
use crate::quant::{quantize_weight_format, Minifloat, Policy, Quantizer, Specials};

const MINIFLOATS: [Minifloat; 4] = [
    Minifloat::FP16,
    Minifloat::BF16,
    Minifloat::FP8_E4M3FN,
    Minifloat::FP8_E5M2,
];

/// The value of bit pattern `bits` of `m`, from the format's definition (sign, biased
/// exponent, mantissa; subnormals at exponent field 0).
fn decode(m: Minifloat, bits: u32) -> f32 {
    let (e, man, bias) = (m.exp_bits(), m.man_bits(), m.bias());
    let sign = if (bits >> (e + man)) & 1 == 1 {
        -1.0
    } else {
        1.0
    };
    let field = (bits >> man) & ((1 << e) - 1);
    let frac = bits & ((1 << man) - 1);
    let top = field == (1 << e) - 1;
    match m.specials() {
        Specials::Ieee if top && frac == 0 => return sign as f32 * f32::INFINITY,
        Specials::Ieee if top => return f32::NAN,
        Specials::NanOnly if top && frac == (1 << man) - 1 => return f32::NAN,
        _ => {}
    }
    let v = match field {
        0 => frac as f64 * 2f64.powi(1 - bias - man as i32),
        _ => (frac + (1 << man)) as f64 * 2f64.powi(field as i32 - bias - man as i32),
    };
    (sign * v) as f32
}

/// Every pattern of every format (NaNs aside) is written back as itself: `minifloat_bits`
/// inverts the format's definition, zeros and subnormals included.
#[test]
fn minifloat_bits_invert_each_format() {
    for m in MINIFLOATS {
        let mut finite = 0;
        for bits in 0..(1u32 << m.bits()) {
            let v = decode(m, bits);
            if v.is_nan() {
                continue;
            }
            if v.is_finite() {
                assert_eq!(m.round(v).to_bits(), v.to_bits(), "{m:?} {bits:#x}");
                finite += 1;
            }
            assert_eq!(minifloat_bits(m, v), bits, "{m:?} {v}");
        }
        // All but the all-ones exponent (IEEE), or all but the two NaNs (e4m3fn).
        let specials = match m.specials() {
            Specials::Ieee => 1 << (m.man_bits() + 1),
            Specials::NanOnly => 2,
        };
        assert_eq!(finite, (1 << m.bits()) - specials, "{m:?}");
    }
    // From the formats' specifications: 1.0, the largest finite value, the smallest subnormal.
    let bits = |m, v| minifloat_bits(m, v);
    assert_eq!(bits(Minifloat::FP16, 1.0), 0x3c00);
    assert_eq!(bits(Minifloat::FP16, 65504.0), 0x7bff);
    assert_eq!(bits(Minifloat::FP16, 2f32.powi(-24)), 0x0001);
    assert_eq!(bits(Minifloat::BF16, 1.0), 0x3f80);
    assert_eq!(bits(Minifloat::BF16, -2.0), 0xc000);
    assert_eq!(bits(Minifloat::FP8_E4M3FN, 448.0), 0x7e);
    assert_eq!(bits(Minifloat::FP8_E4M3FN, -1.0), 0xb8);
    assert_eq!(bits(Minifloat::FP8_E4M3FN, 2f32.powi(-9)), 0x01);
    assert_eq!(bits(Minifloat::FP8_E5M2, 57344.0), 0x7b);
    assert_eq!(bits(Minifloat::FP8_E5M2, 2f32.powi(-16)), 0x01);
}

fn lenet() -> Model {
    let imported = super::super::import(&fixture("lenet5.onnx")).unwrap();
    Model::from_import(imported).unwrap()
}

fn quantizer(policy: &str, layers: usize) -> Quantizer {
    Quantizer::new(Policy::parse(policy).unwrap(), vec![[2.0; 8]; layers])
}

fn graph(model: &Model, policy: &str, opset: Opset) -> Result<GraphProto, ModelError> {
    let q = quantizer(policy, model.shapes().len());
    Ok(export_proto(model, &q, opset)?.graph.unwrap_or_default())
}

fn tensor<'a>(g: &'a GraphProto, name: &str) -> &'a TensorProto {
    (g.initializer.iter().find(|t| t.name() == name)).unwrap_or_else(|| panic!("no {name}"))
}

fn f32s(t: &TensorProto) -> Vec<f32> {
    (t.raw_data().chunks(4))
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn attr(n: &NodeProto, name: &str) -> Option<i64> {
    n.attribute.iter().find(|a| a.name() == name).map(|a| a.i())
}

/// Layer `li`'s nodes of op type `op`.
fn layer_nodes<'a>(g: &'a GraphProto, li: usize, op: &str) -> Vec<&'a NodeProto> {
    let mark = format!("layer {li}");
    (g.node.iter())
        .filter(|n| n.doc_string() == mark && n.op_type() == op)
        .collect()
}

/// The float weight layer `li`'s op reads, computed from the file: its codes decoded (fp8, fp16,
/// bf16, INT4) times their scales (per row, or per block of a row along axis 1).
fn weight_in_file(g: &GraphProto, li: usize) -> Vec<f32> {
    let reader = (g.node.iter())
        .find(|n| {
            n.doc_string() == format!("layer {li}")
                && n.input
                    .first()
                    .is_some_and(|i| i.starts_with("weight_codes"))
        })
        .unwrap();
    let codes = tensor(g, &reader.input[0]);
    let kind = DataType::try_from(codes.data_type()).unwrap();
    let raw = codes.raw_data();
    let values: Vec<f32> = match kind {
        DataType::Float16 | DataType::Bfloat16 => {
            let m = match kind {
                DataType::Float16 => Minifloat::FP16,
                _ => Minifloat::BF16,
            };
            (raw.chunks(2))
                .map(|b| decode(m, u16::from_le_bytes([b[0], b[1]]) as u32))
                .collect()
        }
        DataType::Float8e4m3fn => raw
            .iter()
            .map(|&b| decode(Minifloat::FP8_E4M3FN, b as u32))
            .collect(),
        DataType::Float8e5m2 => raw
            .iter()
            .map(|&b| decode(Minifloat::FP8_E5M2, b as u32))
            .collect(),
        DataType::Int4 => {
            let n: i64 = codes.dims.iter().product();
            (0..n as usize)
                .map(|i| ((((raw[i / 2] >> (4 * (i % 2))) & 0x0f) << 4) as i8 >> 4) as f32)
                .collect()
        }
        other => panic!("layer {li}: codes of type {other:?}"),
    };
    if reader.op_type() == "Cast" {
        assert_eq!(attr(reader, "to"), Some(DataType::Float as i64));
        return values;
    }
    assert_eq!(reader.op_type(), "DequantizeLinear");
    assert_eq!(
        reader.input.len(),
        2,
        "no zero point: float8 and INT4 codes are symmetric"
    );
    let scales = f32s(tensor(g, &reader.input[1]));
    let rows = codes.dims[0] as usize;
    let per = values.len() / rows;
    match attr(reader, "block_size") {
        Some(block) => {
            assert_eq!(attr(reader, "axis"), Some(1));
            let blocks = per.div_ceil(block as usize);
            assert_eq!(
                tensor(g, &reader.input[1]).dims,
                [rows as i64, blocks as i64]
            );
            (values.iter().enumerate())
                .map(|(i, &c)| c * scales[(i / per) * blocks + (i % per) / block as usize])
                .collect()
        }
        None => {
            assert_eq!(attr(reader, "axis"), Some(0));
            (values.iter().enumerate())
                .map(|(i, &c)| c * scales[i / per])
                .collect()
        }
    }
}

/// Each weight format's codes and scales dequantize to exactly the weight the fake-quantizer
/// runs (`quant::quantize_weight_format`), with LeNet-5's rows of 25, 150, 400, 120 and 84
/// inputs: groups of 32 and 128 that a row does not fill, and rows shorter than a group.
#[test]
fn every_weight_format_dequantizes_to_the_fake_quantizers_values() {
    let model = lenet();
    for policy in [
        "fp8e4m3/32,fp8e5m2/32,int4g32/32,int4g128/32,fp16/32",
        "int4g128/32,int4g32/32,bf16/32,fp8e4m3/32,int4g32/32",
    ] {
        let g = graph(&model, policy, Opset::V21).unwrap();
        let q = quantizer(policy, 5);
        for li in 0..5 {
            let format = q.layer(li).unwrap().bits.w;
            let folded = model.effective_layer(li).unwrap();
            let want = quantize_weight_format(&folded.w, folded.w_dims[0], format);
            let got = weight_in_file(&g, li);
            // Bit for bit, but for the sign of zero: an integer code has no −0, which the
            // fake-quantizer's round(w / s) · s gives a small negative weight.
            let bits = |v: &[f32]| {
                (v.iter().map(|&x| if x == 0.0 { 0 } else { x.to_bits() })).collect::<Vec<_>>()
            };
            assert!(bits(&got) == bits(&want), "{policy}: layer {li} ({format})");
            // A conv's blocked weight is dequantized as [out, fan_in], then takes its shape.
            let reshapes = layer_nodes(&g, li, "Reshape").len();
            let blocked = matches!(format.kind(), crate::quant::Kind::GroupInt { .. });
            assert_eq!(
                reshapes,
                usize::from(blocked && folded.w_dims.len() == 4),
                "{li}"
            );
        }
    }
}

/// The activation quantizers at opset 21: fp8 a saturating QuantizeLinear naming its FLOAT8 type
/// (no zero point) with scale clip / max_finite; fp16 and bf16 a Clip at ± the largest finite
/// value and two Casts; 9 to 16 bits uint16 codes with scale clip / (2^a − 1).
#[test]
fn each_activation_format_is_written_as_its_quantizer() {
    let model = lenet();
    let policy = "32/fp8e4m3,32/fp8e5m2,32/fp16,32/bf16,32/16";
    let g = graph(&model, policy, Opset::V21).unwrap();
    let q = quantizer(policy, 5);
    let clip = |li: usize| q.layer(li).unwrap().clip;
    for (li, m, kind) in [
        (0, Minifloat::FP8_E4M3FN, DataType::Float8e4m3fn),
        (1, Minifloat::FP8_E5M2, DataType::Float8e5m2),
    ] {
        let [quant] = layer_nodes(&g, li, "QuantizeLinear")[..] else {
            panic!("layer {li}: one QuantizeLinear");
        };
        assert_eq!(quant.input.len(), 2, "layer {li}");
        assert_eq!(attr(quant, "output_dtype"), Some(kind as i64));
        assert_eq!(attr(quant, "saturate"), Some(1));
        assert_eq!(
            f32s(tensor(&g, &quant.input[1])),
            [clip(li) / m.max_finite()]
        );
        assert!(
            layer_nodes(&g, li, "Clip").is_empty(),
            "fp8 keeps negative values"
        );
    }
    for (li, m, kind) in [
        (2, Minifloat::FP16, DataType::Float16),
        (3, Minifloat::BF16, DataType::Bfloat16),
    ] {
        let [clamp] = layer_nodes(&g, li, "Clip")[..] else {
            panic!("layer {li}: one Clip");
        };
        let bound = |i: usize| f32s(tensor(&g, &clamp.input[i]));
        assert_eq!(
            (bound(1), bound(2)),
            (vec![-m.max_finite()], vec![m.max_finite()])
        );
        let casts: Vec<Option<i64>> = (layer_nodes(&g, li, "Cast").iter())
            .map(|n| attr(n, "to"))
            .collect();
        assert_eq!(
            casts,
            [Some(kind as i64), Some(DataType::Float as i64)],
            "layer {li}"
        );
        assert!(layer_nodes(&g, li, "QuantizeLinear").is_empty());
    }
    let [quant] = layer_nodes(&g, 4, "QuantizeLinear")[..] else {
        panic!("layer 4: one QuantizeLinear");
    };
    let zero = tensor(&g, &quant.input[2]);
    assert_eq!(
        (zero.data_type(), zero.raw_data()),
        (DataType::Uint16 as i32, &[0u8, 0][..])
    );
    assert_eq!(f32s(tensor(&g, &quant.input[1])), [clip(4) / 65535.0]);
    assert_eq!(
        layer_nodes(&g, 4, "Clip").len(),
        1,
        "uint16 codes keep their clamp"
    );
}

/// fp16 and bf16 are casts, which opset 13 has; fp8, 16-bit activations and group-wise int4
/// need opset 21's types, and asking for them at opset 13 is an error naming the layer, the
/// format and the opset that holds it.
#[test]
fn formats_opset_13_cannot_hold_are_refused_by_name() {
    let model = lenet();
    let g = graph(&model, "fp16/bf16,bf16/fp16,8/8,8/8,8/8", Opset::V13).unwrap();
    assert_eq!(g.node.iter().filter(|n| n.op_type() == "Cast").count(), 6);
    for (policy, layer, format) in [
        ("fp8e4m3/8,8/8,8/8,8/8,8/8", "conv1", "fp8e4m3"),
        ("8/8,8/fp8e5m2,8/8,8/8,8/8", "conv2", "fp8e5m2"),
        ("8/8,8/8,8/16,8/8,8/8", "fc1", "int16"),
        ("8/8,8/8,8/8,int4g32/8,8/8", "fc2", "int4g32"),
    ] {
        let e = graph(&model, policy, Opset::V13).unwrap_err().to_string();
        assert!(
            e.contains(layer) && e.contains(format) && e.contains("--opset 21"),
            "{policy}: {e}"
        );
        assert!(graph(&model, policy, Opset::V21).is_ok(), "{policy}");
    }
}

/// A signed integer quantizer at opset 21 names its type instead of carrying a zero point
/// (`qdq::int_qdq` says why); unsigned ones keep theirs, and opset 13 writes both as before.
#[test]
fn signed_codes_at_opset_21_name_their_type() {
    let model = Model::new(crate::model::Arch::Vit, (3, 32, 32), 10, 1).unwrap();
    let policy = vec!["8/8"; model.shapes().len()].join(",");
    let count = |g: &GraphProto, inputs: usize, kind: DataType| {
        (g.node.iter())
            .filter(|n| n.op_type() == "QuantizeLinear" && n.input.len() == inputs)
            .filter(|n| match inputs {
                2 => attr(n, "output_dtype") == Some(kind as i64),
                _ => tensor(g, &n.input[2]).data_type() == kind as i32,
            })
            .count()
    };
    let g21 = graph(&model, &policy, Opset::V21).unwrap();
    let g13 = graph(&model, &policy, Opset::V13).unwrap();
    let signed = count(&g13, 3, DataType::Int8);
    assert!(signed > 0);
    assert_eq!(count(&g21, 2, DataType::Int8), signed);
    assert_eq!(count(&g21, 3, DataType::Int8), 0);
    assert_eq!(
        count(&g21, 3, DataType::Uint8),
        count(&g13, 3, DataType::Uint8)
    );
}

#[test]
fn the_least_opset_is_21_only_for_formats_13_cannot_hold() {
    let least = |t: &str| Opset::least_for(crate::quant::Policy::parse(t).unwrap().layers());
    for plain in ["8/8,2/4", "32/32,fp16/bf16", "1/8,4/2"] {
        assert_eq!(least(plain), Opset::V13, "{plain}");
    }
    for wide in ["8/8,fp8e4m3/8", "8/16,8/8", "int4g32/8", "8/fp8e5m2"] {
        assert_eq!(least(wide), Opset::V21, "{wide}");
    }
}
