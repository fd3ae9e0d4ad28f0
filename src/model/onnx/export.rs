//! ONNX export of a quantized model: the graph with QuantizeLinear/DequantizeLinear pairs, the
//! form ONNX Runtime, TensorRT and OpenVINO take quantized models in (opset 13, or 21 for the
//! formats opset 13 has no types for).
//!
//! A quantized layer's weight is stored as the codes of its format behind a DequantizeLinear
//! (integers and fp8 with a scale per output channel, group-wise int4 with a scale per block of
//! inputs) or, for fp16 and bf16, as a tensor of that type behind a Cast (`weights`), so the
//! file holds exactly the values the policy chose. Its input passes the activation quantizer of
//! its format (`qdq`): for an integer, Clip(0, clip) → QuantizeLinear → DequantizeLinear with
//! the layer's step, the Clip keeping a narrower width's codes in [0, 2^a − 1]; a layer with
//! signed inputs (a transformer's) passes Clip(−clip, clip) and signed codes in [−L, L]
//! (`quant::signed_levels`) instead. An attention matmul's two operands (`model::attention`)
//! each pass such a quantizer: the first on its input's grid at `a`, the second (K or V) signed
//! at `w`. The containers: at opset 13 every integer width is int8 (weights) / uint8
//! (activations), and fp16 and bf16 are casts; opset 21, which has 4-bit, 16-bit and float8
//! types, stores widths up to 4 as INT4 / UINT4 (packed two to a byte), activations of 9 to 16
//! bits as uint16 / int16, fp8 as FLOAT8E4M3FN / FLOAT8E5M2, and group-wise int4 as INT4 with
//! blocked scales; at opset 13 those formats are an error naming the layer and the opset they
//! need. BatchNorm is folded, as everywhere bitsearch quantizes; biases stay float (they are
//! not quantized here either).

use prost::Message;

use super::proto::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto::dimension,
    type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};
use crate::model::graph::{Dims, Op};
use crate::model::{LayerKind, LayerWeights, Model, ModelError};
use crate::quant::{Format, Kind, LayerBits, LayerQuant, Quantizer};

#[path = "export_fuse.rs"]
mod fuse;
#[path = "export_qdq.rs"]
mod qdq;
#[path = "export_tokens.rs"]
mod tokens;
#[path = "export_weights.rs"]
mod weights;

#[cfg(test)]
#[path = "export_formats_tests.rs"]
mod formats_tests;

/// The ONNX opset an export declares, which decides the containers (module doc). Ordered
/// oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Opset {
    /// Per-axis QuantizeLinear/DequantizeLinear; int8/uint8 only (and casts for fp16, bf16).
    /// The most widely run.
    #[default]
    V13,
    /// INT4/UINT4 for widths up to 4, uint16/int16 for activations of 9 to 16 bits, FLOAT8
    /// (opset 19's) for fp8, blocked DequantizeLinear for group-wise int4 (ONNX IR 10; ONNX
    /// Runtime 1.32 runs them all on its CPU provider).
    V21,
}

impl Opset {
    /// 13 or 21.
    pub fn number(self) -> u32 {
        match self {
            Opset::V13 => 13,
            Opset::V21 => 21,
        }
    }

    /// The IR version the opset needs (float8 arrived in IR 9, the 4-bit types in IR 10).
    fn ir_version(self) -> i64 {
        match self {
            Opset::V13 => 7,
            Opset::V21 => 10,
        }
    }

    /// The first opset that writes every format of `policy`: 21 for fp8, integers wider than
    /// 8 bits and group-wise int4 (which 13's int8/uint8 containers cannot hold), else 13.
    pub fn least_for(policy: &[LayerBits]) -> Opset {
        let needs_21 = |f: Format| match f.kind() {
            Kind::Int(b) => b > Format::MAX,
            Kind::Float(m) => crate::quant::minifloat_scaled(m),
            Kind::GroupInt { .. } => true,
            Kind::Full => false,
        };
        match policy.iter().any(|l| needs_21(l.w) || needs_21(l.a)) {
            true => Opset::V21,
            false => Opset::V13,
        }
    }

    /// True when `bits` is stored in a 4-bit container.
    fn four_bit(self, bits: u8) -> bool {
        self == Opset::V21 && bits <= 4
    }
}

/// The model quantized by `q` as ONNX bytes.
pub fn export(model: &Model, q: &Quantizer, opset: Opset) -> Result<Vec<u8>, ModelError> {
    Ok(export_proto(model, q, opset)?.encode_to_vec())
}

/// The ONNX nodes one layer of an export was written as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerNodes {
    /// The layer's name (`LayerShape::name`).
    pub layer: String,
    /// The layer's own op (its Conv, Gemm or MatMul node).
    pub op: String,
    /// Every node written for the layer: its input quantizer, its weight's DequantizeLinear, the
    /// op. A runtime that rewrites the graph keeps these names as prefixes of its own.
    pub nodes: Vec<String>,
}

/// `export`'s bytes with the nodes each layer was written as, in layer order.
pub fn export_with_layers(
    model: &Model,
    q: &Quantizer,
    opset: Opset,
) -> Result<(Vec<u8>, Vec<LayerNodes>), ModelError> {
    let proto = export_proto(model, q, opset)?;
    let nodes = proto.graph.as_ref().map_or(&[][..], |g| &g.node[..]);
    let names = |n: &NodeProto| n.name.clone().unwrap_or_default();
    let mut layers: Vec<LayerNodes> = model
        .shapes()
        .iter()
        .map(|s| LayerNodes {
            layer: s.name.clone(),
            op: String::new(),
            nodes: Vec::new(),
        })
        .collect();
    for n in nodes {
        let Some(li) = layer_of(n) else { continue };
        if let Some(l) = layers.get_mut(li) {
            if matches!(n.op_type.as_deref(), Some("Conv" | "Gemm" | "MatMul")) {
                l.op = names(n);
            }
            l.nodes.push(names(n));
        }
    }
    Ok((proto.encode_to_vec(), layers))
}

/// The layer index a node was written for, from its `doc_string` (`layer N`).
fn layer_of(n: &NodeProto) -> Option<usize> {
    n.doc_string
        .as_deref()?
        .strip_prefix("layer ")?
        .parse()
        .ok()
}

/// The model quantized by `q` as an ONNX model.
pub(crate) fn export_proto(
    model: &Model,
    q: &Quantizer,
    opset: Opset,
) -> Result<ModelProto, ModelError> {
    let graph = model.graph();
    let dims = graph.shapes(model.input())?.dims;
    let mut out = Out {
        opset,
        ..Out::default()
    };
    let mut names: Vec<String> = vec!["input".into(); graph.nodes.len()];
    let mut li = 0;
    for (i, node) in graph.nodes.iter().enumerate().skip(1) {
        let src = names[node.inputs[0]].clone();
        names[i] = match &node.op {
            op if op.is_matmul_layer() => {
                let lq = q.layer(li).unwrap_or_else(LayerQuant::full);
                let start = out.nodes.len();
                let x = out.quantized_operands(model, li, node, &names, lq, &dims)?;
                let d: Vec<Dims> = node.inputs.iter().map(|&j| dims[j]).collect();
                let y = out.token_op(model, i, op, &x, &d)?;
                out.mark_layer(start, li);
                li += 1;
                y
            }
            Op::Conv { .. } | Op::Linear { .. } => {
                let lq = q.layer(li).unwrap_or_else(LayerQuant::full);
                let start = out.nodes.len();
                let x = out.quantized_input(model, li, &src, lq, dims[node.inputs[0]])?;
                let y = out.layer(model, li, &node.op, &x, lq, dims[node.inputs[0]])?;
                out.mark_layer(start, li);
                li += 1;
                y
            }
            Op::BatchNorm => src,
            Op::Relu => out.node("Relu", &[&src], vec![]),
            Op::Relu6 => {
                let (lo, hi) = (out.scalar_f32(0.0), out.scalar_f32(6.0));
                out.node("Clip", &[&src, &lo, &hi], vec![])
            }
            Op::MaxPool {
                k,
                stride,
                pad,
                ceil,
            } => {
                let attrs = vec![
                    ints("kernel_shape", &[*k, *k]),
                    ints("strides", &[*stride, *stride]),
                    ints("pads", &[*pad; 4]),
                    int("ceil_mode", i64::from(*ceil)),
                ];
                out.node("MaxPool", &[&src], attrs)
            }
            Op::AvgPool { k, stride } => {
                let attrs = vec![
                    ints("kernel_shape", &[*k, *k]),
                    ints("strides", &[*stride, *stride]),
                ];
                out.node("AveragePool", &[&src], attrs)
            }
            Op::GlobalAvgPool => out.node("GlobalAveragePool", &[&src], vec![]),
            Op::Add => {
                let other = names[node.inputs[1]].clone();
                out.node("Add", &[&src, &other], vec![])
            }
            Op::Flatten => out.node("Flatten", &[&src], vec![int("axis", 1)]),
            Op::Sigmoid => out.node("Sigmoid", &[&src], vec![]),
            Op::HardSigmoid => out.hard_sigmoid(&src),
            // HardSwish arrived in opset 14: x · hardsigmoid(x) says the same at opset 13.
            Op::HardSwish => {
                let gate = out.hard_sigmoid(&src);
                out.node("Mul", &[&src, &gate], vec![])
            }
            Op::Silu => {
                let gate = out.node("Sigmoid", &[&src], vec![]);
                out.node("Mul", &[&src, &gate], vec![])
            }
            Op::Affine { scale, shift } => {
                let c = scale.len();
                let scale = out.f32s("scale", &[1, c, 1, 1], scale);
                let shift = out.f32s("shift", &[1, c, 1, 1], shift);
                let scaled = out.node("Mul", &[&src, &scale], vec![]);
                out.node("Add", &[&scaled, &shift], vec![])
            }
            Op::Mul => {
                let other = names[node.inputs[1]].clone();
                out.node("Mul", &[&src, &other], vec![])
            }
            Op::Concat => {
                let parts: Vec<String> = node.inputs.iter().map(|&j| names[j].clone()).collect();
                let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
                out.node("Concat", &refs, vec![int("axis", 1)])
            }
            Op::Channels { start, len } => {
                let starts = out.i64s("starts", &[*start as i64]);
                let ends = out.i64s("ends", &[(start + len) as i64]);
                // A sequence's features are its last axis.
                let axis = match dims[node.inputs[0]] {
                    Dims::Seq(..) => 2,
                    _ => 1,
                };
                let axes = out.i64s("axes", &[axis]);
                out.node("Slice", &[&src, &starts, &ends, &axes], vec![])
            }
            Op::ChannelShuffle { groups } => out.shuffle(&src, *groups, dims[i]),
            Op::ShortcutA {
                stride,
                out: channels,
            } => out.shortcut(&src, *stride, *channels, dims[node.inputs[0]]),
            Op::Input => src,
            Op::Tokens
            | Op::ClassToken { .. }
            | Op::PosEmbed { .. }
            | Op::LayerNorm { .. }
            | Op::Gelu
            | Op::Softmax
            | Op::Scores { .. }
            | Op::Mix { .. }
            | Op::Token { .. } => {
                let x: Vec<String> = node.inputs.iter().map(|&j| names[j].clone()).collect();
                let d: Vec<Dims> = node.inputs.iter().map(|&j| dims[j]).collect();
                out.token_op(model, i, &node.op, &x, &d)?
            }
        };
    }
    let last = names.last().cloned().unwrap_or_default();
    let logits = out.node("Identity", &[&last], vec![]);
    let (c, h, w) = model.input();
    let g = GraphProto {
        name: Some(model.name().to_string()),
        node: fuse::hoist_quantizers(out.nodes, &out.inits),
        initializer: out.inits,
        input: vec![value_info("input", &[None, Some(c), Some(h), Some(w)])],
        output: vec![value_info(&logits, &[None, Some(model.classes())])],
        ..Default::default()
    };
    Ok(ModelProto {
        ir_version: Some(opset.ir_version()),
        producer_name: Some("bitsearch".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(opset.number() as i64),
        }],
        graph: Some(g),
        ..Default::default()
    })
}

/// The nodes and initializers written so far.
#[derive(Default)]
struct Out {
    opset: Opset,
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
}

impl Out {
    /// Records in the `doc_string` of the nodes written since `start` that they are layer `li`'s.
    fn mark_layer(&mut self, start: usize, li: usize) {
        for n in &mut self.nodes[start..] {
            n.doc_string = Some(format!("layer {li}"));
        }
    }

    fn fresh(&self, what: &str) -> String {
        format!("{what}_{}", self.nodes.len() + self.inits.len())
    }

    /// Appends `op` on `inputs` and returns its output's name.
    fn node(&mut self, op: &str, inputs: &[&str], attribute: Vec<AttributeProto>) -> String {
        let output = self.fresh(op);
        self.nodes.push(NodeProto {
            op_type: Some(op.into()),
            name: Some(output.clone()),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.clone()],
            attribute,
            ..Default::default()
        });
        output
    }

    fn init(&mut self, what: &str, dims: &[usize], kind: DataType, raw: Vec<u8>) -> String {
        let name = self.fresh(what);
        self.inits.push(TensorProto {
            name: Some(name.clone()),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: Some(kind as i32),
            raw_data: Some(raw),
            ..Default::default()
        });
        name
    }

    fn f32s(&mut self, what: &str, dims: &[usize], v: &[f32]) -> String {
        let raw = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.init(what, dims, DataType::Float, raw)
    }

    fn scalar_f32(&mut self, v: f32) -> String {
        self.f32s("const", &[], &[v])
    }

    fn i64s(&mut self, what: &str, v: &[i64]) -> String {
        let raw = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.init(what, &[v.len()], DataType::Int64, raw)
    }

    /// A conv or linear layer on `x`, its weight in its format (`weights`).
    fn layer(
        &mut self,
        model: &Model,
        li: usize,
        op: &Op,
        x: &str,
        lq: LayerQuant,
        src: Dims,
    ) -> Result<String, ModelError> {
        let LayerWeights {
            w, w_dims: dims, b, ..
        } = model.effective_layer(li)?;
        let o = dims[0];
        let weight = self.weight(&model.shapes()[li].name, &w, &dims, lq.bits.w)?;
        let bias = self.f32s("bias", &[o], &b);
        Ok(match (op, model.shapes()[li].kind, src) {
            (
                Op::Conv {
                    kernel,
                    stride,
                    padding,
                    groups,
                    ..
                },
                LayerKind::Conv,
                _,
            ) => {
                let attrs = vec![
                    ints("kernel_shape", &[*kernel, *kernel]),
                    ints("strides", &[*stride, *stride]),
                    ints("pads", &[*padding; 4]),
                    int("group", *groups as i64),
                ];
                self.node("Conv", &[x, &weight, &bias], attrs)
            }
            (_, _, Dims::Seq(t, d)) => self.token_linear(x, &weight, &bias, (t, d), o),
            _ => self.node("Gemm", &[x, &weight, &bias], vec![int("transB", 1)]),
        })
    }

    /// PyTorch's hardsigmoid as ONNX's HardSigmoid (α = 1/6, β = 1/2).
    fn hard_sigmoid(&mut self, x: &str) -> String {
        let attrs = vec![float("alpha", 1.0 / 6.0), float("beta", 0.5)];
        self.node("HardSigmoid", &[x], attrs)
    }

    /// The channel shuffle as torchvision writes it: Reshape to (N, g, C/g, H, W), swap axes 1
    /// and 2, Reshape back (0 in a target copies the batch).
    fn shuffle(&mut self, x: &str, groups: usize, shape: Dims) -> String {
        let (c, h, w) = match shape {
            Dims::Map(c, h, w) => (c as i64, h as i64, w as i64),
            other => (other.count() as i64, 1, 1),
        };
        let g = groups as i64;
        let split = self.i64s("shape", &[0, g, c / g, h, w]);
        let grouped = self.node("Reshape", &[x, &split], vec![]);
        let perm = AttributeProto {
            name: Some("perm".into()),
            r#type: Some(AttributeType::Ints as i32),
            ints: vec![0, 2, 1, 3, 4],
            ..Default::default()
        };
        let swapped = self.node("Transpose", &[&grouped], vec![perm]);
        let back = self.i64s("shape", &[0, c, h, w]);
        self.node("Reshape", &[&swapped, &back], vec![])
    }

    /// Option A: every `stride`-th row and column (Slice), channels zero-padded (Pad).
    fn shortcut(&mut self, x: &str, stride: usize, out: usize, shape: Dims) -> String {
        let c = match shape {
            Dims::Map(c, ..) => c,
            other => other.count(),
        };
        let s = stride as i64;
        let starts = self.i64s("starts", &[0, 0]);
        let ends = self.i64s("ends", &[i64::MAX, i64::MAX]);
        let axes = self.i64s("axes", &[2, 3]);
        let steps = self.i64s("steps", &[s, s]);
        let sub = self.node("Slice", &[x, &starts, &ends, &axes, &steps], vec![]);
        let before = ((out - c) / 2) as i64;
        let after = (out - c) as i64 - before;
        let pads = self.i64s("pads", &[0, before, 0, 0, 0, after, 0, 0]);
        self.node("Pad", &[&sub, &pads], vec![])
    }
}

fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(v),
        ..Default::default()
    }
}

fn float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Float as i32),
        f: Some(v),
        ..Default::default()
    }
}

fn ints(name: &str, v: &[usize]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Ints as i32),
        ints: v.iter().map(|&x| x as i64).collect(),
        ..Default::default()
    }
}

/// A float tensor's name and shape (`None`: a symbolic batch dimension).
fn value_info(name: &str, dims: &[Option<usize>]) -> ValueInfoProto {
    let dim = dims.iter().map(|d| dimension_of(*d)).collect();
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(DataType::Float as i32),
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn dimension_of(d: Option<usize>) -> super::proto::tensor_shape_proto::Dimension {
    super::proto::tensor_shape_proto::Dimension {
        value: Some(match d {
            Some(v) => dimension::Value::DimValue(v as i64),
            None => dimension::Value::DimParam("batch".into()),
        }),
        ..Default::default()
    }
}
