//! The importer against PyTorch's default (dynamo) exporter: its fixtures (weights in external
//! data, ReduceMean as the pool, a fixed batch of 1 and a dynamic batch whose flatten target is
//! computed from the input's shape) give PyTorch's logits; and tiny models for the rules
//! around them: ReduceMean's axes, shapes holding the batch size, opsets and domains.

use super::hostile_tests::{floats, int64s, ints_attr, model, node, refused};
use super::proto::{tensor_proto, AttributeProto, ModelProto, NodeProto, TensorProto};
use super::tests::{fixed_input, fixture};
use super::{import, import_bytes, Imported};
use crate::model::Model;
use prost::Message;

/// Each default export, imported, gives PyTorch's logits within 1e-5 of the largest logit, in
/// full precision (batch 2 of the fixed input, whatever batch the file was exported with).
#[test]
fn default_exports_match_pytorch_logits() {
    let logits: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("logits.json")).unwrap()).unwrap();
    for (name, layers) in [
        ("lenet-dynamo", 5),
        ("lenet-dynamo-batch", 5),
        ("resnet8-dynamo", 10),
        ("resnet8-dynamo-batch", 10),
    ] {
        let model = Model::from_import(import(&fixture(&format!("{name}.onnx"))).unwrap()).unwrap();
        assert_eq!(model.shapes().len(), layers, "{name}");
        let (c, h, w) = model.input();
        let got = model.forward(&fixed_input((2, c, h, w)), None).unwrap();
        let got = got.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let want: Vec<f32> = (logits["logits"][name].as_array().unwrap().iter())
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(got.len(), want.len(), "{name}");
        let diff = (got.iter().zip(&want)).fold(0.0, |m: f32, (a, b)| m.max((a - b).abs()));
        let largest = want.iter().fold(0.0, |m: f32, v| m.max(v.abs()));
        eprintln!("{name}: largest logit difference {diff:e} (largest logit {largest})");
        assert!(diff <= 1e-5 * largest, "{name}: logits differ by {diff}");
    }
}

/// The fixtures test external data only while their weights are in it (as torch writes them).
#[test]
fn the_default_exports_keep_their_weights_beside_them() {
    for name in [
        "lenet-dynamo",
        "lenet-dynamo-batch",
        "resnet8-dynamo",
        "resnet8-dynamo-batch",
    ] {
        let bytes = std::fs::read(fixture(&format!("{name}.onnx"))).unwrap();
        let m = ModelProto::decode(bytes.as_slice()).unwrap();
        let external = (m.graph.unwrap().initializer.iter())
            .filter(|t| t.data_location() == tensor_proto::DataLocation::External)
            .count();
        assert!(external >= 5, "{name}: {external} external tensors");
    }
}

/// A node computing `output` (the hostile helpers' nodes all compute `y`).
fn wired(op: &str, inputs: &[&str], output: &str, attrs: Vec<AttributeProto>) -> NodeProto {
    let mut n = node(op, inputs, attrs);
    n.output = vec![output.into()];
    n.name = Some(format!("the_{}", op.to_lowercase()));
    n
}

fn int_attr(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        i: Some(i),
        ..Default::default()
    }
}

/// At `opset`: a 1×1 conv of the (1, 1, 4, 4) input into `c` (2 channels), then `nodes`
/// computing `f` from it, flat with `features` per example, then a linear layer into `y`.
fn around(
    opset: i64,
    mut nodes: Vec<NodeProto>,
    mut inits: Vec<TensorProto>,
    features: usize,
) -> Vec<u8> {
    nodes.insert(0, wired("Conv", &["x", "w"], "c", vec![]));
    nodes.push(node("Gemm", &["f", "fc"], vec![int_attr("transB", 1)]));
    inits.push(floats("w", &[2, 1, 1, 1], &[1.0, -1.0]));
    inits.push(floats(
        "fc",
        &[2, features as i64],
        &vec![0.5; 2 * features],
    ));
    let mut m = ModelProto::decode(model(nodes, inits).as_slice()).unwrap();
    m.opset_import[0].version = Some(opset);
    m.encode_to_vec()
}

fn imported(bytes: &[u8]) -> Imported {
    import_bytes(bytes, "tiny", None).unwrap()
}

/// The graph's ops by name ("Conv" for `Op::Conv { .. }`).
fn kinds(i: &Imported) -> Vec<String> {
    let name = |n: &crate::model::graph::Node| format!("{:?}", n.op);
    (i.graph.nodes.iter())
        .map(|n| {
            name(n)
                .split([' ', '{'])
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[test]
fn reduce_mean_over_the_spatial_axes_is_a_global_pool() {
    // Opset 13: axes as an attribute; keepdims 1 keeps (N, C, 1, 1) for the Flatten after it.
    let attrs = vec![ints_attr("axes", &[2, 3]), int_attr("keepdims", 1)];
    let nodes = vec![
        wired("ReduceMean", &["c"], "p", attrs),
        wired("Flatten", &["p"], "f", vec![]),
    ];
    let i = imported(&around(13, nodes, vec![], 2));
    assert_eq!(
        kinds(&i),
        ["Input", "Conv", "GlobalAvgPool", "Flatten", "Linear"]
    );
    // Opset 18: axes as input 1, counted from the end; keepdims 0 gives (N, C) itself.
    let mean = wired(
        "ReduceMean",
        &["c", "axes"],
        "f",
        vec![int_attr("keepdims", 0)],
    );
    let axes = int64s("axes", &[2], &[-1, -2]);
    let i = imported(&around(18, vec![mean], vec![axes], 2));
    assert_eq!(
        kinds(&i),
        ["Input", "Conv", "GlobalAvgPool", "Flatten", "Linear"]
    );
}

#[test]
fn a_reduction_over_other_axes_names_the_node() {
    let mean = wired("ReduceMean", &["c", "axes"], "f", vec![]);
    let e = refused(&around(18, vec![mean], vec![int64s("axes", &[1], &[1])], 2));
    assert!(
        e.contains("the_reducemean") && e.contains("axes [1]") && e.contains("(2, 3)"),
        "{e}"
    );
}

#[test]
fn reduce_sum_over_the_spatial_axes_is_refused_with_what_to_export() {
    let sum = wired(
        "ReduceSum",
        &["c", "axes"],
        "f",
        vec![int_attr("keepdims", 0)],
    );
    let e = refused(&around(
        13,
        vec![sum],
        vec![int64s("axes", &[2], &[2, 3])],
        2,
    ));
    assert!(
        e.contains("the_reducesum") && e.contains("x.mean((2, 3))"),
        "{e}"
    );
}

/// Shape → Gather → Unsqueeze → Concat with -1 (the target (batch, -1)), then `last`.
fn batch_flatten(last: NodeProto) -> Vec<u8> {
    let nodes = vec![
        wired("Shape", &["c"], "s", vec![]),
        wired("Gather", &["s", "zero"], "n", vec![]),
        wired("Unsqueeze", &["n", "axis0"], "n1", vec![]),
        wired("Concat", &["n1", "rest"], "target", vec![]),
        last,
    ];
    let inits = vec![
        int64s("zero", &[], &[0]),
        int64s("axis0", &[1], &[0]),
        int64s("rest", &[1], &[-1]),
    ];
    around(13, nodes, inits, 32)
}

#[test]
fn a_flatten_target_computed_from_the_batch_size_folds() {
    let reshape = wired("Reshape", &["c", "target"], "f", vec![]);
    let i = imported(&batch_flatten(reshape));
    assert_eq!(kinds(&i), ["Input", "Conv", "Flatten", "Linear"]);
}

#[test]
fn arithmetic_on_the_batch_size_is_refused() {
    let mul = wired("Mul", &["target", "rest"], "f", vec![]);
    let e = refused(&batch_flatten(mul));
    assert!(e.contains("the_mul") && e.contains("batch size"), "{e}");
}

/// A leading constant is the batch only when it is the batch the input was exported with (1).
#[test]
fn a_reshape_keeps_the_batch_or_is_refused() {
    let reshape = |to: &[i64]| {
        let node = wired("Reshape", &["c", "to"], "f", vec![]);
        around(
            13,
            vec![node],
            vec![int64s("to", &[to.len() as i64], to)],
            32,
        )
    };
    for to in [[1, -1], [1, 32], [-1, 32], [0, -1]] {
        let kinds = kinds(&imported(&reshape(&to)));
        assert_eq!(kinds, ["Input", "Conv", "Flatten", "Linear"], "{to:?}");
    }
    for to in [&[2, -1][..], &[1, 16], &[-1, -1], &[1, 2, 16]] {
        let e = refused(&reshape(to));
        assert!(
            e.contains("the_reshape") && e.contains("keeps the batch"),
            "{e}"
        );
    }
}

#[test]
fn opsets_outside_13_to_21_are_refused() {
    for opset in [12, 22] {
        let e = refused(&around(opset, vec![], vec![], 2));
        assert!(
            e.contains(&format!("opset {opset}")) && e.contains("13 to 21"),
            "{e}"
        );
    }
    let mut m = ModelProto::decode(around(13, vec![], vec![], 2).as_slice()).unwrap();
    m.opset_import.clear();
    let e = refused(&m.encode_to_vec());
    assert!(e.contains("no opset"), "{e}");
}

#[test]
fn a_node_of_another_domain_is_refused() {
    let mut relu = wired("Relu", &["c"], "f", vec![]);
    relu.domain = Some("com.microsoft".into());
    let e = refused(&around(13, vec![relu], vec![], 32));
    assert!(e.contains("com.microsoft::Relu"), "{e}");
}
