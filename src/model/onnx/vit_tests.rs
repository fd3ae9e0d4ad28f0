//! The importer against a ViT exported by PyTorch's default exporter (scripts/export_vit.py):
//! it imports onto the zoo vit's ops with PyTorch's logits, and a file that bends one of the
//! attention patterns is refused naming the node and the op.

use prost::Message;

use super::proto::{attribute_proto::AttributeType, AttributeProto, ModelProto};
use super::tests::{fixed_input, fixture};
use super::{import, import_bytes, OnnxError};
use crate::model::Model;

fn vit_bytes() -> Vec<u8> {
    std::fs::read(fixture("vit").join("vit-mini.onnx")).unwrap()
}

/// PyTorch's logits on the fixed batch, and the largest of them.
fn pytorch_logits() -> (Vec<f32>, f32) {
    let text = std::fs::read_to_string(fixture("vit").join("logits.json")).unwrap();
    let table: serde_json::Value = serde_json::from_str(&text).unwrap();
    let want: Vec<f32> = (table["models"]["vit-mini"]["logits"]
        .as_array()
        .unwrap()
        .iter())
    .map(|v| v.as_f64().unwrap() as f32)
    .collect();
    let largest = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(largest > 0.0);
    (want, largest)
}

/// The largest difference of the model's logits on the fixed batch from PyTorch's.
fn logit_diff(model: &Model) -> f32 {
    let got = model.forward(&fixed_input((2, 1, 28, 28)), None).unwrap();
    let got = got.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let (want, _) = pytorch_logits();
    assert_eq!(got.len(), want.len());
    (got.iter().zip(&want)).fold(0f32, |m, (a, b)| m.max((a - b).abs()))
}

#[test]
fn a_pytorch_vit_imports_with_pytorchs_logits() {
    let imported = import(&fixture("vit").join("vit-mini.onnx")).unwrap_or_else(|e| panic!("{e}"));
    let mut kinds: Vec<&str> = imported.graph.nodes.iter().map(|n| n.op.kind()).collect();
    kinds.dedup();
    for k in [
        "tokens",
        "classtoken",
        "posembed",
        "layernorm",
        "scores",
        "softmax",
        "mix",
    ] {
        assert!(kinds.contains(&k), "{k} missing: {kinds:?}");
    }
    let model = Model::from_import(imported).unwrap();
    // patch, then qkv, proj, fc1, fc2 per block (two), head.
    let names = model.layer_names();
    assert_eq!(names.len(), 10, "{names:?}");
    assert_eq!(
        (names[0], names[1], names[9]),
        ("patch", "blocks.0.qkv", "head")
    );
    assert_eq!(
        model.shapes()[1].in_hw,
        (17, 1),
        "qkv runs on 16 patches and the class token"
    );
    let (diff, largest) = (logit_diff(&model), pytorch_logits().1);
    assert!(
        diff <= 1e-5 * largest,
        "logits differ by {diff} (largest {largest})"
    );
}

/// With `[quant] attention` the imported ViT gains its two attention MatMuls per block as
/// layers, named after their ONNX nodes, in graph order: after the qkv, before the proj. The
/// float model keeps PyTorch's logits.
#[test]
fn an_imported_vit_quantizes_its_attention_matmuls_by_their_node_names() {
    use crate::model::{Attention, LayerKind};
    let imported = import(&fixture("vit").join("vit-mini.onnx")).unwrap();
    let model = (Model::from_import(imported).unwrap())
        .with_attention(Attention::Quantized)
        .unwrap();
    let names = model.layer_names();
    assert_eq!(names.len(), 10 + 2 * 2, "{names:?}");
    assert_eq!(
        names[1..5],
        [
            "blocks.0.qkv",
            "node_matmul",
            "node_matmul_1",
            "blocks.0.proj"
        ]
    );
    let matmuls = (model.shapes().iter()).filter(|l| l.kind == LayerKind::Matmul);
    // 17 tokens, 2 heads of 16 features: 2·17·17·16 MACs each.
    assert!(matmuls.map(|l| l.macs).eq([9248; 4]));
    let (diff, largest) = (logit_diff(&model), pytorch_logits().1);
    assert!(diff <= 1e-5 * largest, "{diff} (largest {largest})");
}

/// Every Gelu written in its Erf form (as PyTorch writes it below opset 20), by Div and by Mul,
/// with the factors in either order: the same model, PyTorch's logits.
#[test]
fn the_erf_form_of_gelu_imports_as_gelu() {
    use super::proto::{tensor_proto::DataType, NodeProto, TensorProto};
    let mut m = ModelProto::decode(vit_bytes().as_slice()).unwrap();
    let g = m.graph.as_mut().unwrap();
    let scalar = |name: &str, v: f32| TensorProto {
        name: Some(name.into()),
        data_type: Some(DataType::Float as i32),
        raw_data: Some(v.to_le_bytes().to_vec()),
        ..Default::default()
    };
    g.initializer.extend([
        scalar("root2", std::f32::consts::SQRT_2),
        scalar("inv_root2", std::f32::consts::FRAC_1_SQRT_2),
        scalar("one", 1.0),
        scalar("half", 0.5),
    ]);
    let node = |op: &str, inputs: &[&str], out: &str| NodeProto {
        op_type: Some(op.into()),
        name: Some(out.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![out.into()],
        ..Default::default()
    };
    let mut nodes = Vec::new();
    let mut geluing = 0;
    for n in std::mem::take(&mut g.node) {
        if n.op_type() != "Gelu" {
            nodes.push(n);
            continue;
        }
        let (x, y) = (n.input[0].as_str(), n.output[0].as_str());
        let t = |s: &str| format!("{y}_{s}");
        let (scaled, erf, plus, twice) = (t("scaled"), t("erf"), t("plus"), t("twice"));
        nodes.push(match geluing % 2 {
            0 => node("Div", &[x, "root2"], &scaled),
            _ => node("Mul", &[x, "inv_root2"], &scaled),
        });
        nodes.push(node("Erf", &[&scaled], &erf));
        nodes.push(node("Add", &[&erf, "one"], &plus));
        nodes.push(match geluing % 2 {
            0 => node("Mul", &[x, &plus], &twice),
            _ => node("Mul", &[&plus, x], &twice),
        });
        nodes.push(node("Mul", &[&twice, "half"], y));
        geluing += 1;
    }
    assert_eq!(geluing, 2);
    g.node = nodes;
    let imported = import_bytes(&m.encode_to_vec(), "vit-mini", Some(&fixture("vit"))).unwrap();
    let gelus = imported
        .graph
        .nodes
        .iter()
        .filter(|n| n.op.kind() == "gelu")
        .count();
    assert_eq!(gelus, 2);
    let model = Model::from_import(imported).unwrap();
    let (diff, largest) = (logit_diff(&model), pytorch_logits().1);
    assert!(
        diff <= 1e-5 * largest,
        "logits differ by {diff} (largest {largest})"
    );
}

/// The fixture with `edit` applied to its first node of type `op`, imported from bytes.
fn import_edited(op: &str, edit: impl Fn(&mut super::proto::NodeProto)) -> OnnxError {
    edited(|n| n.op_type() == op, edit)
}

/// The fixture with `edit` applied to the node reading tensor `input` first.
fn import_edited_at(input: &str, edit: impl Fn(&mut super::proto::NodeProto)) -> OnnxError {
    edited(|n| n.input.first().is_some_and(|i| i == input), edit)
}

fn edited(
    pick: impl Fn(&super::proto::NodeProto) -> bool,
    edit: impl Fn(&mut super::proto::NodeProto),
) -> OnnxError {
    let mut m = ModelProto::decode(vit_bytes().as_slice()).unwrap();
    let g = m.graph.as_mut().unwrap();
    let node = g.node.iter_mut().find(|n| pick(n)).unwrap();
    edit(node);
    let dir = fixture("vit");
    import_bytes(&m.encode_to_vec(), "vit-mini", Some(&dir)).unwrap_err()
}

fn int_attr(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(v),
        ..Default::default()
    }
}

#[test]
fn a_softmax_over_another_axis_is_refused() {
    let e = import_edited("Softmax", |n| n.attribute = vec![int_attr("axis", 1)]);
    let text = e.to_string();
    assert!(
        text.contains("Softmax") && text.contains("only the last axis"),
        "{text}"
    );
}

#[test]
fn heads_permuted_another_way_are_refused() {
    let e = import_edited("Transpose", |n| {
        n.attribute[0].ints = vec![0, 1, 2];
    });
    // The patches made tokens another way: no longer tokens, so the Reshape before is a
    // flatten that drops the batch.
    let text = e.to_string();
    assert!(text.contains("Reshape") && text.contains("batch"), "{text}");
    let e = import_edited_at("view_1", |n| {
        n.attribute[0].ints = vec![2, 0, 1, 3, 4];
    });
    let text = e.to_string();
    assert!(
        text.contains("Transpose") && text.contains("perm"),
        "{text}"
    );
    let e = import_edited("MatMul", |n| n.input.swap(0, 1)).to_string();
    assert!(e.contains("MatMul"), "{e}");
}

#[test]
fn an_approximate_gelu_is_refused() {
    let e = import_edited("Gelu", |n| {
        n.attribute = vec![AttributeProto {
            name: Some("approximate".into()),
            r#type: Some(AttributeType::String as i32),
            s: Some(b"tanh".to_vec()),
            ..Default::default()
        }]
    });
    let text = e.to_string();
    assert!(text.contains("Gelu") && text.contains("exact"), "{text}");
}
