//! The importer against PyTorch's own exports (`scripts/export_onnx.py`, in tests/data/onnx)
//! and against broken copies of them.

use super::proto::ModelProto;
use super::*;
use crate::model::Model;
use candle_core::{Device, Tensor};
use prost::Message;

pub(super) fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/onnx")
        .join(name)
}

/// The export script's fixed input: x[i] = (sin(0.37 i) + 1) / 2 over the flattened batch.
pub(super) fn fixed_input(shape: (usize, usize, usize, usize)) -> Tensor {
    let n = shape.0 * shape.1 * shape.2 * shape.3;
    let x: Vec<f32> = (0..n)
        .map(|i| (((0.37 * i as f64).sin() + 1.0) / 2.0) as f32)
        .collect();
    Tensor::from_vec(x, shape, &Device::Cpu).unwrap()
}

/// Imported LeNet-5 and ResNet-20 (BatchNorm folded; projection shortcuts, and the option-A
/// shortcuts PyTorch writes as Slice + Pad with constant-folded pads) give PyTorch's
/// logits within 1e-4, in full precision.
#[test]
fn imports_match_pytorch_logits() {
    let logits: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("logits.json")).unwrap()).unwrap();
    for (name, layers) in [("lenet5", 5), ("resnet20", 22), ("resnet20-a", 20)] {
        let model = Model::from_import(import(&fixture(&format!("{name}.onnx"))).unwrap()).unwrap();
        assert_eq!(model.shapes().len(), layers, "{name}");
        let (c, h, w) = model.input();
        let got = model.forward(&fixed_input((2, c, h, w)), None).unwrap();
        let got = got.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let want: Vec<f32> = logits["logits"][name]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(got.len(), want.len(), "{name}");
        let diff = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        eprintln!("{name}: largest logit difference {diff:e}");
        assert!(diff < 1e-4, "{name}: logits differ by {diff}");
    }
}

fn lenet() -> ModelProto {
    ModelProto::decode(std::fs::read(fixture("lenet5.onnx")).unwrap().as_slice()).unwrap()
}

fn import_proto(m: &ModelProto) -> Result<Imported, OnnxError> {
    import_bytes(&m.encode_to_vec(), "broken", None)
}

#[test]
fn a_truncated_file_is_a_decode_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.onnx");
    let bytes = std::fs::read(fixture("lenet5.onnx")).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let e = import(&path).unwrap_err().to_string();
    eprintln!("{e}");
    assert!(
        e.contains("cut.onnx") && e.contains("not a readable ONNX model"),
        "{e}"
    );
}

#[test]
fn an_unsupported_op_names_the_node_and_the_op() {
    let mut m = lenet();
    let g = m.graph.as_mut().unwrap();
    let relu = g.node.iter_mut().find(|n| n.op_type() == "Relu").unwrap();
    relu.op_type = Some("Softplus".into());
    let name = relu.name().to_string();
    let e = import_proto(&m).unwrap_err().to_string();
    eprintln!("{e}");
    assert!(
        e.contains(&format!("node {name}")) && e.contains("Softplus"),
        "{e}"
    );
}

#[test]
fn a_missing_initializer_names_the_node_and_the_input() {
    let mut m = lenet();
    let g = m.graph.as_mut().unwrap();
    g.initializer.retain(|t| t.name() != "conv2.weight");
    let e = import_proto(&m).unwrap_err().to_string();
    eprintln!("{e}");
    assert!(
        e.contains("conv2.weight") && e.contains("Conv") && e.contains("constant"),
        "{e}"
    );
}

#[test]
fn a_weight_that_does_not_fit_its_input_is_a_shape_error() {
    let mut m = lenet();
    let g = m.graph.as_mut().unwrap();
    // fc1 as (120, 200) instead of (120, 256): the flattened 16×4×4 input does not fit.
    let t = g
        .initializer
        .iter_mut()
        .find(|t| t.name() == "fc1.weight")
        .unwrap();
    t.dims = vec![120, 200];
    let raw = t.raw_data.as_mut().unwrap();
    raw.truncate(120 * 200 * 4);
    let e = import_proto(&m).unwrap_err().to_string();
    eprintln!("{e}");
    assert!(e.contains("fc1") && e.contains("[120, 256]"), "{e}");
}

#[test]
fn an_unsupported_attribute_names_the_attribute_and_value() {
    let mut m = lenet();
    let g = m.graph.as_mut().unwrap();
    let conv = g.node.iter_mut().find(|n| n.op_type() == "Conv").unwrap();
    let dil = conv
        .attribute
        .iter_mut()
        .find(|a| a.name() == "dilations")
        .unwrap();
    dil.ints = vec![2, 2];
    let e = import_proto(&m).unwrap_err().to_string();
    eprintln!("{e}");
    assert!(e.contains("dilations") && e.contains("[2, 2]"), "{e}");
}

/// Exported in full precision, a model reads back through the importer with the same logits
/// (LeNet-5, ResNet-20 with its BatchNorm now folded into the convs, and the zoo's ResNet-20,
/// whose option-A shortcuts are written as Slice + Pad and read back as shortcuts).
#[test]
fn a_full_precision_export_reads_back_with_the_same_logits() {
    use crate::quant::{Format, Policy, Quantizer};
    for name in ["lenet5", "resnet20", "zoo resnet20"] {
        let model = match name {
            "zoo resnet20" => Model::new(crate::model::Arch::Resnet20, (3, 32, 32), 10, 5).unwrap(),
            _ => Model::from_import(import(&fixture(&format!("{name}.onnx"))).unwrap()).unwrap(),
        };
        let n = model.shapes().len();
        let q = Quantizer::new(Policy::uniform(n, Format::FULL), vec![[1.0; 8]; n]);
        let bytes = export::export(&model, &q, export::Opset::V13).unwrap();
        let back = Model::from_import(import_bytes(&bytes, name, None).unwrap()).unwrap();
        let (c, h, w) = model.input();
        let x = fixed_input((2, c, h, w));
        let logits = |m: &Model| {
            let y = m.forward(&x, None).unwrap();
            y.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        };
        let (a, b) = (logits(&model), logits(&back));
        let diff = a
            .iter()
            .zip(&b)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0, f32::max);
        assert!(diff < 1e-5, "{name}: {diff}");
    }
}

/// A quantized export puts a DequantizeLinear on every quantized weight (int8 codes inside
/// the policy's range) and a Clip → QuantizeLinear → DequantizeLinear on every quantized
/// input, none on full-precision ones.
#[test]
fn a_quantized_export_has_a_qdq_pair_per_quantized_operand() {
    use super::proto::tensor_proto::DataType;
    use crate::quant::{Policy, Quantizer};
    let model = Model::from_import(import(&fixture("lenet5.onnx")).unwrap()).unwrap();
    let policy = Policy::parse("8/8,4/3,2/32,32/4,3/8").unwrap();
    let q = Quantizer::new(policy, vec![[2.0; 8]; 5]);
    let m = export::export_proto(&model, &q, export::Opset::V13).unwrap();
    let g = m.graph.unwrap();
    let count = |op: &str| g.node.iter().filter(|n| n.op_type() == op).count();
    assert_eq!(count("QuantizeLinear"), 4);
    assert_eq!(count("DequantizeLinear"), 4 + 4);
    for (t, n) in g
        .initializer
        .iter()
        .filter(|t| t.data_type() == DataType::Int8 as i32 && t.dims.len() > 1)
        .zip([127i8, 7, 1, 3])
    {
        let codes = t.raw_data();
        assert!(
            codes.iter().all(|&c| (c as i8).abs() <= n),
            "{}: beyond ±{n}",
            t.name()
        );
        assert!(
            codes.iter().any(|&c| (c as i8).abs() == n),
            "{}: never reaches ±{n}",
            t.name()
        );
    }
}

/// At opset 21 the widths up to 4 bits are INT4/UINT4 (IR 10), packed two codes a byte with the
/// first in the low nibble, holding the same codes as opset 13's int8; wider ones stay 8-bit.
#[test]
fn opset_21_packs_four_bit_codes_and_keeps_wider_ones_in_bytes() {
    use super::proto::tensor_proto::DataType;
    use crate::quant::{Policy, Quantizer};
    let model = Model::from_import(import(&fixture("lenet5.onnx")).unwrap()).unwrap();
    let q = Quantizer::new(
        Policy::parse("8/8,4/3,2/6,5/4,3/8").unwrap(),
        vec![[2.0; 8]; 5],
    );
    let weights = |opset| {
        let m = export::export_proto(&model, &q, opset).unwrap();
        let g = m.graph.clone().unwrap();
        let codes: Vec<_> = (g.initializer.iter())
            .filter(|t| t.name().starts_with("weight_codes"))
            .map(|t| (t.data_type(), t.raw_data().to_vec()))
            .collect();
        let zeros: Vec<i32> = (g.initializer.iter())
            .filter(|t| t.name().starts_with("zero_point"))
            .map(|t| t.data_type())
            .collect();
        (m.ir_version(), m.opset_import[0].version(), codes, zeros)
    };
    let (ir13, op13, bytes, _) = weights(export::Opset::V13);
    let (ir21, op21, packed, act_zeros) = weights(export::Opset::V21);
    assert_eq!((ir13, op13, ir21, op21), (7, 13, 10, 21));
    let (int4, int8) = (DataType::Int4 as i32, DataType::Int8 as i32);
    let kinds: Vec<i32> = packed.iter().map(|(k, _)| *k).collect();
    assert_eq!(kinds, [int8, int4, int4, int8, int4]);
    let (uint4, uint8) = (DataType::Uint4 as i32, DataType::Uint8 as i32);
    assert_eq!(act_zeros, [uint8, uint4, uint8, uint4, uint8]);
    for ((kind, p), (_, b)) in packed.iter().zip(&bytes) {
        if *kind == int8 {
            assert_eq!(p, b);
            continue;
        }
        assert_eq!(p.len(), b.len().div_ceil(2));
        let nibble = |i: usize| {
            let v = (p[i / 2] >> (4 * (i % 2))) & 0x0f;
            ((v << 4) as i8) >> 4
        };
        assert!((0..b.len()).all(|i| nibble(i) == b[i] as i8));
    }
}

/// A Constant node whose output `name` is the 1-D int64 tensor `values`.
fn int64_constant(name: &str, values: &[i64]) -> super::proto::NodeProto {
    super::proto::NodeProto {
        op_type: Some("Constant".into()),
        output: vec![name.into()],
        attribute: vec![super::proto::AttributeProto {
            name: Some("value".into()),
            r#type: Some(super::proto::attribute_proto::AttributeType::Tensor as i32),
            t: Some(super::proto::TensorProto {
                dims: vec![values.len() as i64],
                data_type: Some(super::proto::tensor_proto::DataType::Int64 as i32),
                int64_data: values.to_vec(),
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A Slice or Pad of a computed tensor that is not an option-A shortcut is refused, naming the
/// node and what the importer takes.
#[test]
fn slices_and_pads_outside_an_option_a_shortcut_are_refused() {
    let original = ModelProto::decode(
        std::fs::read(fixture("resnet20-a.onnx"))
            .unwrap()
            .as_slice(),
    )
    .unwrap();
    // Padding rows as well as channels.
    let mut m = original.clone();
    let g = m.graph.as_mut().unwrap();
    let pad = g.node.iter().position(|n| n.op_type() == "Pad").unwrap();
    let pads = g.node[pad].input[1].clone();
    let node = int64_constant(&(pads.clone() + "_rows"), &[0, 4, 1, 0, 0, 4, 1, 0]);
    g.node.insert(pad, node);
    g.node[pad + 1].input[1] = pads + "_rows";
    let e = import_proto(&m).unwrap_err().to_string();
    assert!(
        e.contains("(Pad)") && e.contains("only channels are padded"),
        "{e}"
    );
    // A sliced tensor used by anything but the shortcut's Pad.
    let mut m = original;
    let g = m.graph.as_mut().unwrap();
    let slice = g
        .node
        .iter()
        .position(|n| n.op_type() == "Slice" && !n.input[0].contains("Reshape"))
        .unwrap();
    let sliced = g.node[slice].output[0].clone();
    let pad = g.node.iter().position(|n| n.op_type() == "Pad").unwrap();
    g.node[pad].op_type = Some("Relu".into());
    g.node[pad].input = vec![sliced];
    let e = import_proto(&m).unwrap_err().to_string();
    assert!(
        e.contains("(Relu)") && e.contains("option-A shortcut"),
        "{e}"
    );
}

/// A constant Slice whose axes outnumber its starts is an error naming the node, not a panic:
/// the folder and the shortcut read Slice's inputs through one checked reader.
#[test]
fn a_folded_slice_with_more_axes_than_starts_is_refused() {
    let mut m = ModelProto::decode(
        std::fs::read(fixture("resnet20-a.onnx"))
            .unwrap()
            .as_slice(),
    )
    .unwrap();
    let g = m.graph.as_mut().unwrap();
    let slice = (g.node.iter())
        .position(|n| n.op_type() == "Slice" && n.input[0].contains("Reshape"))
        .unwrap();
    g.node
        .insert(slice, int64_constant("too_many_axes", &[0, 1, 2]));
    let inputs = &mut g.node[slice + 1].input;
    inputs.resize(inputs.len().max(4), String::new());
    inputs[3] = "too_many_axes".into();
    let e = import_proto(&m).unwrap_err().to_string();
    assert!(
        e.contains("(Slice)") && e.contains("differ in length"),
        "{e}"
    );
}

/// At 8 bits a quantizer needs no clamp and is copied ahead of a MaxPool, so each conv's output
/// meets a bare QuantizeLinear (what ORT fuses into QLinearConv); a narrower grid keeps its
/// Clip and is not copied. `tests/onnx_export.rs` checks in ONNX Runtime that the outputs
/// do not change.
#[test]
fn an_8_bit_quantizer_is_bare_and_copied_ahead_of_max_pool() {
    use crate::quant::{Policy, Quantizer};
    let model = Model::from_import(import(&fixture("lenet5.onnx")).unwrap()).unwrap();
    let graph = |policy: &str| {
        let q = Quantizer::new(Policy::parse(policy).unwrap(), vec![[2.0; 8]; 5]);
        export::export_proto(&model, &q, export::Opset::V13)
            .unwrap()
            .graph
            .unwrap()
    };
    let producer_of = |g: &super::proto::GraphProto, input: &str| {
        (g.node.iter())
            .find(|n| n.output.iter().any(|o| o == input))
            .map(|n| n.op_type().to_string())
    };
    let g = graph("8/8,8/8,8/8,8/8,8/8");
    assert_eq!(g.node.iter().filter(|n| n.op_type() == "Clip").count(), 0);
    let pools: Vec<_> = g.node.iter().filter(|n| n.op_type() == "MaxPool").collect();
    assert!(!pools.is_empty());
    for p in &pools {
        assert_eq!(
            producer_of(&g, &p.input[0]).as_deref(),
            Some("DequantizeLinear")
        );
    }
    let g = graph("8/8,4/4,4/4,8/8,8/8");
    assert_eq!(g.node.iter().filter(|n| n.op_type() == "Clip").count(), 2);
    let pools: Vec<_> = g.node.iter().filter(|n| n.op_type() == "MaxPool").collect();
    for p in &pools {
        assert_ne!(
            producer_of(&g, &p.input[0]).as_deref(),
            Some("DequantizeLinear")
        );
    }
}
