//! The structural edits of the ONNX harness (tests/fuzz/onnx.rs): a fixture decoded with prost
//! has its dims, data, element types, external data keys, attributes, initializer names, op
//! types, node inputs and outputs, node order and graph input shape changed, then is
//! re-encoded. The values come from the edges of the importer's rules.

use proptest::prelude::*;
use proptest::sample::select;

use super::mutate::Pos;

/// The ONNX protobuf types, generated from proto/onnx.proto by the crate's build script.
#[allow(clippy::all, clippy::pedantic, dead_code)]
pub(super) mod proto {
    include!(concat!(env!("OUT_DIR"), "/onnx.rs"));
}

use proto::{AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto};

/// Values a dim, an attribute or an int64 datum becomes: the edges of each rule and sizes no
/// bytes back (2^36 channels, 2^62 that wraps when multiplied).
const I64S: &[i64] = &[
    0,
    1,
    2,
    3,
    4,
    6,
    -1,
    -2,
    16,
    64,
    65_536,
    65_537,
    1 << 20,
    1 << 22,
    (1 << 22) + 1,
    1 << 31,
    1 << 32,
    1 << 36,
    1 << 40,
    1 << 62,
    i64::MAX,
    i64::MIN,
];

/// Op types a node becomes: every op the importer reads or folds, and one it does not.
const OPS: &[&str] = &[
    "Conv",
    "Gemm",
    "MatMul",
    "BatchNormalization",
    "Relu",
    "Clip",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "Add",
    "Flatten",
    "Reshape",
    "Identity",
    "Dropout",
    "Constant",
    "Slice",
    "Pad",
    "ConstantOfShape",
    "Concat",
    "Transpose",
    "Cast",
    "Unsqueeze",
    "Squeeze",
    "Shape",
    "Sub",
    "Mul",
    "Neg",
    "ReduceMean",
    "ReduceSum",
    "Gather",
    "Expand",
    "CastLike",
    "Sigmoid",
    "HardSigmoid",
    "HardSwish",
    "Split",
    "Softplus",
    "",
];

/// Attribute names an edit adds or overwrites.
const ATTRS: &[&str] = &[
    "kernel_shape",
    "strides",
    "pads",
    "dilations",
    "group",
    "axis",
    "axes",
    "perm",
    "to",
    "transB",
    "transA",
    "ceil_mode",
    "num_outputs",
    "alpha",
    "beta",
    "epsilon",
    "mode",
    "auto_pad",
    "value",
    "keepdims",
    "noop_with_empty_axes",
    "allowzero",
    "start",
    "end",
    "unknown",
];

/// Keys of a tensor's external data an edit sets, and the values it sets them to: the edges
/// of the range rules, numbers that overflow, paths that leave the model's directory, and the
/// fixtures' own files.
const EXTERNAL_KEYS: &[&str] = &["location", "offset", "length", "checksum", "basepath"];
const EXTERNAL_VALUES: &[&str] = &[
    "",
    "0",
    "4",
    "600",
    "-1",
    "2147483648",
    "9223372036854775807",
    "18446744073709551615",
    ".",
    "../onnx/lenet-dynamo.onnx.data",
    "/etc/hostname",
    "lenet-dynamo.onnx.data",
    "resnet8-dynamo-batch.onnx.data",
    "lenet5.onnx",
];

/// A name an input, output or initializer becomes: "" or a name nothing produces, or else one
/// of the graph's names (by position).
#[derive(Debug, Clone)]
pub(super) enum Name {
    Empty,
    Unknown,
    Existing(Pos),
}

/// One structural edit of a model.
#[derive(Debug, Clone)]
pub(super) enum Edit {
    /// A tensor's (initializer's or Constant's) dim set, removed or appended.
    SetDim {
        tensor: Pos,
        dim: Pos,
        value: i64,
    },
    DropDim {
        tensor: Pos,
        dim: Pos,
    },
    PushDim {
        tensor: Pos,
        value: i64,
    },
    /// A tensor's raw data cut short, or its element type changed.
    CutData {
        tensor: Pos,
        at: Pos,
    },
    DataType {
        tensor: Pos,
        value: i32,
    },
    /// An int64 datum of a tensor replaced (shape constants, pads, slice bounds).
    SetInt {
        tensor: Pos,
        at: Pos,
        value: i64,
    },
    RenameTensor {
        tensor: Pos,
        name: Name,
    },
    /// A tensor's external data key set (the tensor then marked as stored outside).
    External {
        tensor: Pos,
        key: &'static str,
        value: &'static str,
    },
    /// One value of an attribute of a node replaced, or an attribute set by name.
    SetAttr {
        node: Pos,
        attr: Pos,
        at: Pos,
        value: i64,
    },
    PutAttr {
        node: Pos,
        name: &'static str,
        ints: Vec<i64>,
    },
    DropAttr {
        node: Pos,
        attr: Pos,
    },
    OpType {
        node: Pos,
        op: &'static str,
    },
    SetInput {
        node: Pos,
        slot: Pos,
        name: Name,
    },
    DropInput {
        node: Pos,
        slot: Pos,
    },
    SetOutput {
        node: Pos,
        name: Name,
    },
    SwapNodes {
        a: Pos,
        b: Pos,
    },
    DeleteNode {
        node: Pos,
    },
    DuplicateNode {
        node: Pos,
    },
    /// A dim of the graph's input (N, C, H, W) replaced.
    InputDim {
        dim: Pos,
        value: i64,
    },
    GraphOutput {
        name: Name,
    },
}

fn pos() -> impl Strategy<Value = Pos> {
    any::<u32>().prop_map(Pos)
}

fn name() -> impl Strategy<Value = Name> {
    prop_oneof![
        1 => Just(Name::Empty),
        1 => Just(Name::Unknown),
        4 => pos().prop_map(Name::Existing),
    ]
}

fn value() -> impl Strategy<Value = i64> {
    select(I64S)
}

pub(super) fn edit() -> impl Strategy<Value = Edit> {
    let p = pos;
    prop_oneof![
        3 => (p(), p(), value()).prop_map(|(tensor, dim, value)| Edit::SetDim { tensor, dim, value }),
        1 => (p(), p()).prop_map(|(tensor, dim)| Edit::DropDim { tensor, dim }),
        1 => (p(), value()).prop_map(|(tensor, value)| Edit::PushDim { tensor, value }),
        1 => (p(), p()).prop_map(|(tensor, at)| Edit::CutData { tensor, at }),
        1 => (p(), select(&[0, 1, 2, 6, 7, 10, 11, 16, 99][..]))
            .prop_map(|(tensor, value)| Edit::DataType { tensor, value }),
        2 => (p(), p(), value()).prop_map(|(tensor, at, value)| Edit::SetInt { tensor, at, value }),
        1 => (p(), name()).prop_map(|(tensor, name)| Edit::RenameTensor { tensor, name }),
        2 => (p(), select(EXTERNAL_KEYS), select(EXTERNAL_VALUES))
            .prop_map(|(tensor, key, value)| Edit::External { tensor, key, value }),
        3 => (p(), p(), p(), value())
            .prop_map(|(node, attr, at, value)| Edit::SetAttr { node, attr, at, value }),
        2 => (p(), select(ATTRS), proptest::collection::vec(value(), 0..5))
            .prop_map(|(node, name, ints)| Edit::PutAttr { node, name, ints }),
        1 => (p(), p()).prop_map(|(node, attr)| Edit::DropAttr { node, attr }),
        2 => (p(), select(OPS)).prop_map(|(node, op)| Edit::OpType { node, op }),
        2 => (p(), p(), name()).prop_map(|(node, slot, name)| Edit::SetInput { node, slot, name }),
        1 => (p(), p()).prop_map(|(node, slot)| Edit::DropInput { node, slot }),
        1 => (p(), name()).prop_map(|(node, name)| Edit::SetOutput { node, name }),
        1 => (p(), p()).prop_map(|(a, b)| Edit::SwapNodes { a, b }),
        1 => p().prop_map(|node| Edit::DeleteNode { node }),
        1 => p().prop_map(|node| Edit::DuplicateNode { node }),
        2 => (p(), value()).prop_map(|(dim, value)| Edit::InputDim { dim, value }),
        1 => name().prop_map(|name| Edit::GraphOutput { name }),
    ]
}

/// `v[p]`, the position taken modulo the length; `None` for an empty list.
fn at<T>(v: &mut [T], p: Pos) -> Option<&mut T> {
    let len = v.len();
    (len > 0).then(|| &mut v[p.0 as usize % len])
}

/// Every tensor of the graph an edit may touch: initializers, then Constant nodes' values.
fn tensors(g: &mut GraphProto) -> Vec<&mut TensorProto> {
    let consts = (g.node.iter_mut())
        .flat_map(|n| n.attribute.iter_mut())
        .filter_map(|a| a.t.as_mut());
    g.initializer.iter_mut().chain(consts).collect()
}

/// Every name the graph uses, for renames and rewiring.
fn names(g: &GraphProto) -> Vec<String> {
    let io = g
        .input
        .iter()
        .chain(&g.output)
        .map(|v| v.name().to_string());
    let inits = g.initializer.iter().map(|t| t.name().to_string());
    let nodes = g
        .node
        .iter()
        .flat_map(|n| n.input.iter().chain(&n.output).cloned());
    io.chain(inits).chain(nodes).collect()
}

fn resolve(n: &Name, all: &[String]) -> String {
    match n {
        Name::Empty => String::new(),
        Name::Unknown => "nowhere".into(),
        Name::Existing(p) if !all.is_empty() => all[p.0 as usize % all.len()].clone(),
        Name::Existing(_) => String::new(),
    }
}

fn node_edit(g: &mut GraphProto, e: &Edit, all: &[String]) {
    let nodes = &mut g.node;
    match e {
        Edit::SetAttr {
            node,
            attr,
            at: k,
            value,
        } => {
            let Some(n) = at(nodes, *node) else { return };
            if let Some(a) = at(&mut n.attribute, *attr) {
                match at(&mut a.ints, *k) {
                    Some(slot) => *slot = *value,
                    None => a.i = Some(*value),
                }
            }
        }
        Edit::PutAttr { node, name, ints } => {
            let Some(n) = at(nodes, *node) else { return };
            n.attribute.retain(|a| a.name() != *name);
            n.attribute.push(AttributeProto {
                name: Some(name.to_string()),
                i: ints.first().copied(),
                ints: ints.clone(),
                ..Default::default()
            });
        }
        Edit::DropAttr { node, attr } => {
            let Some(n) = at(nodes, *node) else { return };
            if !n.attribute.is_empty() {
                let k = attr.0 as usize % n.attribute.len();
                n.attribute.remove(k);
            }
        }
        Edit::OpType { node, op } => {
            if let Some(n) = at(nodes, *node) {
                n.op_type = Some(op.to_string());
            }
        }
        Edit::SetInput { node, slot, name } => {
            let Some(n) = at(nodes, *node) else { return };
            let name = resolve(name, all);
            match at(&mut n.input, *slot) {
                Some(s) if slot.0 % 4 != 0 => *s = name,
                _ => n.input.push(name),
            }
        }
        Edit::DropInput { node, slot } => {
            let Some(n) = at(nodes, *node) else { return };
            if !n.input.is_empty() {
                let k = slot.0 as usize % n.input.len();
                n.input.remove(k);
            }
        }
        Edit::SetOutput { node, name } => {
            let Some(n) = at(nodes, *node) else { return };
            n.output = vec![resolve(name, all)];
        }
        _ => {}
    }
}

fn graph_edit(g: &mut GraphProto, e: &Edit, all: &[String]) {
    let len = g.node.len();
    match e {
        Edit::SwapNodes { a, b } if len > 0 => g.node.swap(a.0 as usize % len, b.0 as usize % len),
        Edit::DeleteNode { node } if len > 0 => {
            g.node.remove(node.0 as usize % len);
        }
        Edit::DuplicateNode { node } if len > 0 => {
            let k = node.0 as usize % len;
            let copy: NodeProto = g.node[k].clone();
            g.node.insert(k, copy);
        }
        Edit::InputDim { dim, value } => {
            use proto::tensor_shape_proto::dimension::Value as Dim;
            use proto::type_proto::Value as Type;
            let Some(input) = g.input.first_mut() else {
                return;
            };
            let shape = input.r#type.as_mut().and_then(|t| match &mut t.value {
                Some(Type::TensorType(tt)) => tt.shape.as_mut(),
                _ => None,
            });
            if let Some(d) = shape.and_then(|s| at(&mut s.dim, *dim)) {
                d.value = Some(Dim::DimValue(*value));
            }
        }
        Edit::GraphOutput { name } => {
            if let Some(out) = g.output.first_mut() {
                out.name = Some(resolve(name, all));
            }
        }
        _ => node_edit(g, e, all),
    }
}

fn tensor_edit(t: &mut TensorProto, e: &Edit, all: &[String]) {
    match e {
        Edit::SetDim { dim, value, .. } => match at(&mut t.dims, *dim) {
            Some(d) => *d = *value,
            None => t.dims.push(*value),
        },
        Edit::DropDim { dim, .. } if !t.dims.is_empty() => {
            let k = dim.0 as usize % t.dims.len();
            t.dims.remove(k);
        }
        Edit::PushDim { value, .. } => t.dims.push(*value),
        Edit::CutData { at: cut, .. } => {
            if let Some(raw) = t.raw_data.as_mut() {
                raw.truncate(cut.0 as usize % (raw.len() + 1));
            }
            t.float_data
                .truncate(cut.0 as usize % (t.float_data.len() + 1));
            t.int64_data
                .truncate(cut.0 as usize % (t.int64_data.len() + 1));
        }
        Edit::DataType { value, .. } => t.data_type = Some(*value),
        Edit::SetInt { at: k, value, .. } => {
            if let Some(v) = at(&mut t.int64_data, *k) {
                *v = *value;
            } else if let Some(raw) = t.raw_data.as_mut().filter(|r| r.len() >= 8) {
                let slot = 8 * (k.0 as usize % (raw.len() / 8));
                raw[slot..slot + 8].copy_from_slice(&value.to_le_bytes());
            }
        }
        Edit::RenameTensor { name, .. } => t.name = Some(resolve(name, all)),
        Edit::External { key, value, .. } => {
            t.data_location = Some(1);
            t.external_data.retain(|e| e.key() != *key);
            t.external_data.push(proto::StringStringEntryProto {
                key: Some(key.to_string()),
                value: Some(value.to_string()),
            });
        }
        _ => {}
    }
}

/// Applies `edits` to a copy of `model`.
pub(super) fn apply(model: &ModelProto, edits: &[Edit]) -> ModelProto {
    let mut m = model.clone();
    let Some(g) = m.graph.as_mut() else { return m };
    for e in edits {
        let all = names(g);
        let tensor = match e {
            Edit::SetDim { tensor, .. }
            | Edit::DropDim { tensor, .. }
            | Edit::PushDim { tensor, .. }
            | Edit::CutData { tensor, .. }
            | Edit::DataType { tensor, .. }
            | Edit::SetInt { tensor, .. }
            | Edit::RenameTensor { tensor, .. }
            | Edit::External { tensor, .. } => Some(*tensor),
            _ => None,
        };
        match tensor {
            Some(p) => {
                if let Some(t) = at(&mut tensors(g), p) {
                    tensor_edit(t, e, &all);
                }
            }
            None => graph_edit(g, e, &all),
        }
    }
    m
}
