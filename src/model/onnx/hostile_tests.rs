//! The importer against tiny hostile models (built here from the protobuf types): sizes a file
//! claims without the bytes to back them, wrapped or huge attributes, zero-sized channels and
//! nameless initializers each give an error naming the node or tensor, the rule and the value —
//! never a panic, an abort or an allocation the file's bytes do not justify.

use super::proto::tensor_shape_proto::{dimension, Dimension};
use super::proto::{attribute_proto, tensor_proto, type_proto};
use super::proto::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};
use super::{import_bytes, Imported, OnnxError};
use prost::Message;

pub(super) fn value_info(name: &str, dims: &[i64]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|&v| Dimension {
            value: Some(dimension::Value::DimValue(v)),
            denotation: None,
        })
        .collect();
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(tensor_proto::DataType::Float as i32),
                shape: Some(TensorShapeProto { dim }),
            })),
            denotation: None,
        }),
        ..Default::default()
    }
}

/// A float tensor `name` of `dims` holding `values` (fewer than the dims claim, for the
/// hostile cases).
pub(super) fn floats(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(tensor_proto::DataType::Float as i32),
        float_data: values.to_vec(),
        ..Default::default()
    }
}

pub(super) fn int64s(name: &str, dims: &[i64], values: &[i64]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(tensor_proto::DataType::Int64 as i32),
        int64_data: values.to_vec(),
        ..Default::default()
    }
}

pub(super) fn ints_attr(name: &str, values: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(attribute_proto::AttributeType::Ints as i32),
        ints: values.to_vec(),
        ..Default::default()
    }
}

pub(super) fn node(op: &str, inputs: &[&str], attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        name: Some(format!("the_{}", op.to_lowercase())),
        op_type: Some(op.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec!["y".into()],
        attribute,
        ..Default::default()
    }
}

/// A model at opset 13 with input `x` of (1, 1, 4, 4), the nodes and initializers given, and
/// output `y`.
pub(super) fn model(nodes: Vec<NodeProto>, initializer: Vec<TensorProto>) -> Vec<u8> {
    ModelProto {
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(13),
        }],
        graph: Some(GraphProto {
            node: nodes,
            initializer,
            input: vec![value_info("x", &[1, 1, 4, 4])],
            output: vec![value_info("y", &[1, 2])],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

/// The error importing `bytes` gives, printed; fails the test on success.
pub(super) fn refused(bytes: &[u8]) -> String {
    let result: Result<Imported, OnnxError> = import_bytes(bytes, "hostile", None);
    let e = result.expect_err("a hostile model imported").to_string();
    eprintln!("{e}");
    e
}

fn conv_with_weight(weight: TensorProto, attrs: Vec<AttributeProto>) -> Vec<u8> {
    model(vec![node("Conv", &["x", "w"], attrs)], vec![weight])
}

/// dims (2^62, 1, 2, 2) multiply to 2^64, which wraps to 0 and matched the empty data.
#[test]
fn a_weight_whose_dims_overflow_is_refused() {
    let e = refused(&conv_with_weight(
        floats("w", &[1 << 62, 1, 2, 2], &[]),
        vec![],
    ));
    assert!(e.contains("tensor w") && e.contains("overflow"), "{e}");
}

/// dims (2^36, 0, 1, 1) hold no values, yet claimed 2^36 output channels for the default bias.
#[test]
fn a_weight_with_a_zero_dimension_is_refused() {
    let e = refused(&conv_with_weight(
        floats("w", &[1 << 36, 0, 1, 1], &[]),
        vec![],
    ));
    assert!(e.contains("tensor w") && e.contains("68719476736"), "{e}");
    let e = refused(&conv_with_weight(floats("w", &[2, 0, 1, 1], &[]), vec![]));
    assert!(
        e.contains("the_conv") && e.contains("no elements") && e.contains("[2, 0, 1, 1]"),
        "{e}"
    );
}

/// A Conv with 0 output channels (and so no weights) is refused at import.
#[test]
fn a_conv_with_no_output_channels_is_refused() {
    let e = refused(&conv_with_weight(floats("w", &[0, 1, 2, 2], &[]), vec![]));
    assert!(e.contains("the_conv") && e.contains("[0, 1, 2, 2]"), "{e}");
}

/// A weight whose values fall short of its dims is refused before anything is decoded.
#[test]
fn a_weight_with_fewer_bytes_than_its_dims_is_refused() {
    let mut w = floats("w", &[4, 1, 2, 2], &[]);
    w.raw_data = Some(vec![0; 4 * 15]);
    let e = refused(&conv_with_weight(w, vec![]));
    assert!(
        e.contains("tensor w") && e.contains("60 bytes") && e.contains("16 values"),
        "{e}"
    );
}

/// ConstantOfShape (2^36) asked for 256 GiB; a shape an import computes is capped.
#[test]
fn a_huge_constant_of_shape_is_refused() {
    let nodes = vec![node("ConstantOfShape", &["shape"], vec![])];
    let e = refused(&model(nodes, vec![int64s("shape", &[1], &[1 << 36])]));
    assert!(
        e.contains("the_constantofshape") && e.contains("68719476736") && e.contains("at most"),
        "{e}"
    );
}

/// A Slice of an empty (2^40, 0) constant built an index list per row of it (8 TiB).
#[test]
fn a_slice_of_a_huge_empty_constant_is_refused() {
    let nodes = vec![node("Slice", &["big", "starts", "ends"], vec![])];
    let inits = vec![
        floats("big", &[1 << 40, 0], &[]),
        int64s("starts", &[1], &[0]),
        int64s("ends", &[1], &[1]),
    ];
    let e = refused(&model(nodes, inits));
    assert!(
        e.contains("tensor big") && e.contains("1099511627776"),
        "{e}"
    );
}

/// Concat of the same constant many times is capped before it is built.
#[test]
fn a_concat_beyond_the_cap_is_refused() {
    let names: Vec<String> = (0..64).map(|_| "v".to_string()).collect();
    let inputs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut n = node("Concat", &inputs, vec![]);
    n.output = vec!["y".into()];
    let v = floats("v", &[1 << 17], &vec![0.0; 1 << 17]);
    let e = refused(&model(vec![n], vec![v]));
    assert!(e.contains("the_concat") && e.contains("at most"), "{e}");
}

/// Conv pads of 2^62 wrapped in shape inference and imported as unpadded.
#[test]
fn huge_or_negative_conv_attributes_are_refused() {
    let w = || floats("w", &[2, 1, 2, 2], &[0.5; 8]);
    for (attr, v) in [
        ("pads", 1i64 << 62),
        ("pads", -1),
        ("strides", 1 << 62),
        ("strides", 0),
        ("strides", -2),
        ("dilations", 1 << 40),
    ] {
        let n = if attr == "pads" { 4 } else { 2 };
        let e = refused(&conv_with_weight(w(), vec![ints_attr(attr, &vec![v; n])]));
        assert!(
            e.contains("the_conv") && e.contains(attr) && e.contains(&v.to_string()),
            "{attr} = {v}: {e}"
        );
    }
}

/// A Conv whose only input is `x`, with an initializer named "", indexed past its inputs.
#[test]
fn an_initializer_named_empty_is_refused() {
    let bytes = model(
        vec![node("Conv", &["x"], vec![])],
        vec![floats("", &[2, 1, 2, 2], &[0.5; 8])],
    );
    let e = refused(&bytes);
    assert!(e.contains("initializer") && e.contains("name"), "{e}");
}

/// An input of 2^40 pixels a side is refused where it is read.
#[test]
fn a_huge_input_is_refused() {
    let mut m = ModelProto::decode(model(vec![], vec![]).as_slice()).unwrap();
    let g = m.graph.as_mut().unwrap();
    g.input = vec![value_info("x", &[1, 3, 1 << 40, 1 << 40])];
    let e = refused(&m.encode_to_vec());
    assert!(e.contains("1099511627776") && e.contains("at most"), "{e}");
}

/// A graph whose conv has no output channels leaves the next layer a fan-in of 0 (an infinite
/// init bound): refused when the model is built.
#[test]
fn a_model_with_a_zero_fan_in_is_refused() {
    use crate::model::{Graph, Model, Op};
    let conv = |name: &str, out| Op::Conv {
        name: name.into(),
        out,
        kernel: 1,
        stride: 1,
        padding: 0,
        groups: 1,
    };
    let mut g = Graph::new("zero");
    g.then(conv("empty", 0));
    g.then(conv("next", 2));
    g.then(Op::Flatten);
    g.then(Op::Linear {
        name: "fc".into(),
        out: 2,
    });
    let e = Model::from_graph(g, (1, 4, 4), 2, 0)
        .unwrap_err()
        .to_string();
    eprintln!("{e}");
    assert!(e.contains("layer empty") && e.contains("at least 1"), "{e}");
}

/// A Concat of integer and float constants (a ConstantOfShape whose `value` is dropped fills
/// floats) built fewer values than its dims said, and the next fold indexed past them.
#[test]
fn a_concat_of_integers_and_floats_is_refused() {
    let nodes = vec![node("Concat", &["i", "f"], vec![])];
    let inits = vec![int64s("i", &[2], &[1, 2]), floats("f", &[2], &[0.0, 0.0])];
    let e = refused(&model(nodes, inits));
    assert!(
        e.contains("the_concat") && e.contains("1 integer and 1 float"),
        "{e}"
    );
}
