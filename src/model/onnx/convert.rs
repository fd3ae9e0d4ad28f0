//! ONNX nodes → graph ops, one node at a time in the file's (topological) order.

mod attention;
mod batch;
mod branches;
mod fold;
mod gelu;
mod layers;
mod pool;
mod shortcut;
mod shuffle;

use std::collections::{HashMap, HashSet};

use super::proto::{GraphProto, NodeProto};
use super::tensor::{self, decode, element_count, Attrs, Value, MAX_ACTIVATIONS, MAX_SPATIAL};
use super::{Imported, OnnxError};
use crate::model::graph::{Dims, Graph, Op, ShapeError};
use crate::model::net::{BnWeights, LayerWeights};

pub(super) const SUPPORTED: &str = "Conv, Gemm, MatMul, BatchNormalization, Relu, Clip, \
    Sigmoid, HardSigmoid, HardSwish, MaxPool, AveragePool, GlobalAveragePool, ReduceMean over \
    (2, 3), Add, Mul, Concat and Split on channels, Slice of channels, Flatten, Reshape, \
    Reshape + Transpose + Reshape as a channel shuffle, Identity, Dropout, Constant, Slice + \
    Pad as the option-A shortcut, a vision transformer's LayerNormalization, Gelu (or its Erf \
    form: Div, Erf, Add, Mul, Mul), Softmax, \
    attention MatMuls with their heads' Reshape/Transpose/Slice/Squeeze/Gather, class-token \
    Concat, position-embedding Add and class-token Gather, and shape arithmetic on \
    constants (ConstantOfShape, Concat, Reshape, Slice, Transpose, Cast, CastLike, Unsqueeze, \
    Squeeze, Shape, Gather, Expand, Add, Sub, Mul, Neg) and on shapes holding the batch size";

/// bitsearch's BatchNorm ε; a file's other ε is folded into its running variance.
const EPS: f32 = 1e-5;

pub(super) struct Builder<'a> {
    proto: &'a GraphProto,
    consts: HashMap<String, Value>,
    /// Which graph node computes each tensor (the input: node 0).
    ids: HashMap<String, usize>,
    graph: Graph,
    /// Per graph node, the ONNX node it came from and its op type (for errors).
    labels: Vec<(String, String)>,
    /// Per graph node that is a layer, its weights.
    weights: HashMap<usize, LayerWeights>,
    input: (usize, usize, usize),
    names: HashSet<String>,
    /// Tensors that are rows and columns of a computed tensor taken every `stride`-th (a
    /// Slice), waiting for the Pad that makes them an option-A shortcut.
    sliced: HashMap<String, shortcut::Sliced>,
    /// Shapes holding the batch size (from a Shape of a computed tensor), folded at import
    /// with the batch size kept as a symbol, for a Reshape's target.
    symbolic: HashMap<String, fold::Symbolic>,
    /// The batch size the model's input was exported with, when it is fixed.
    batch: Option<usize>,
    /// The 5-D tensors inside a channel shuffle, waiting for its last Reshape.
    shuffle: HashMap<String, shuffle::Shuffle>,
    /// How many times each tensor is read: by nodes (once per input naming it) and as a
    /// graph output. Two nodes merge into one only when nothing else reads the first.
    readers: HashMap<String, usize>,
    /// A transformer's multi-head tensors between the ops that consume them.
    held: HashMap<String, attention::Held>,
    /// The steps of a GELU's Erf form, by tensor: (x's graph node, the step).
    gelu: HashMap<String, (usize, gelu::Step)>,
    /// The parameters of ops that are not layers (LayerNorm, class token, position
    /// embedding), by graph node.
    params: Vec<super::NodeParamValues>,
}

impl<'a> Builder<'a> {
    pub fn new(name: &str, proto: &'a GraphProto) -> Result<Self, OnnxError> {
        let mut consts = HashMap::new();
        for t in &proto.initializer {
            if t.name().is_empty() {
                return Err(OnnxError::Tensor {
                    name: "\"\"".into(),
                    rule: "an initializer needs a name (ONNX requires one)".into(),
                });
            }
            consts.insert(t.name().to_string(), decode(t, t.name())?);
        }
        let model = |what: String| OnnxError::Node {
            node: "input".into(),
            op: "graph".into(),
            rule: what,
        };
        let inputs: Vec<_> = proto
            .input
            .iter()
            .filter(|i| !consts.contains_key(i.name()))
            .collect();
        let [input] = inputs.as_slice() else {
            return Err(model(format!(
                "needs exactly one input, has {}",
                inputs.len()
            )));
        };
        let dims: Vec<i64> = input
            .r#type
            .as_ref()
            .and_then(|t| match &t.value {
                Some(super::proto::type_proto::Value::TensorType(tt)) => tt.shape.as_ref(),
                _ => None,
            })
            .map(|s| {
                s.dim
                    .iter()
                    .map(|d| match d.value {
                        Some(super::proto::tensor_shape_proto::dimension::Value::DimValue(v)) => v,
                        _ => -1,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let shape = input_shape(&dims).map_err(|rule| {
            model(format!(
                "input {} has shape {dims:?}; bitsearch feeds images (N, C, H, W) with C, H \
                 and W fixed: {rule}",
                input.name()
            ))
        })?;
        Ok(Builder {
            proto,
            consts,
            ids: HashMap::from([(input.name().to_string(), 0)]),
            graph: Graph::new(name),
            labels: vec![("input".into(), "input".into())],
            weights: HashMap::new(),
            input: shape,
            names: HashSet::new(),
            sliced: HashMap::new(),
            symbolic: HashMap::new(),
            batch: dims.first().and_then(|&b| usize::try_from(b).ok()),
            shuffle: HashMap::new(),
            readers: readers(proto),
            held: HashMap::new(),
            gelu: HashMap::new(),
            params: Vec::new(),
        })
    }

    pub fn run(mut self) -> Result<Imported, OnnxError> {
        for (i, node) in self.proto.node.iter().enumerate() {
            self.node(i, node)?;
        }
        let out = self.proto.output.first().map(|o| o.name().to_string());
        let last = self.graph.nodes.len() - 1;
        if out.as_ref().and_then(|o| self.ids.get(o)) != Some(&last) {
            return Err(OnnxError::Node {
                node: out.unwrap_or_default(),
                op: "graph".into(),
                rule: "the graph's output must be its last op".into(),
            });
        }
        let shapes = self
            .graph
            .shapes(self.input)
            .map_err(|e| self.shape_error(e))?;
        self.check_activations(&shapes.dims)?;
        let mut layers = Vec::with_capacity(shapes.layers.len());
        for (shape, node) in shapes.layers.iter().zip(&shapes.layer_nodes) {
            let w = self
                .weights
                .remove(node)
                .ok_or_else(|| self.node_error(*node, "no weights"))?;
            let want = match shape.kind {
                crate::model::LayerKind::Conv => vec![
                    shape.out_ch,
                    shape.in_ch / shape.groups,
                    shape.kernel,
                    shape.kernel,
                ],
                crate::model::LayerKind::Linear => vec![shape.out_ch, shape.in_ch],
                // The importer builds float attention: no matmul is a layer here.
                crate::model::LayerKind::Matmul => vec![],
            };
            if w.w_dims != want {
                let rule = format!(
                    "weight of shape {:?} does not fit its input ({} channels or features): \
                     the layer needs {want:?}",
                    w.w_dims, shape.in_ch
                );
                return Err(self.node_error(*node, &rule));
            }
            layers.push(w);
        }
        let classes = match shapes.dims.last() {
            Some(Dims::Flat(n)) => *n,
            _ => 0,
        };
        Ok(Imported {
            graph: self.graph,
            input: self.input,
            classes,
            layers,
            node_params: self.params,
        })
    }

    /// Every node's output per example within `MAX_ACTIVATIONS` (counted with checked
    /// arithmetic: what the forward pass will allocate per example).
    fn check_activations(&self, dims: &[Dims]) -> Result<(), OnnxError> {
        for (node, d) in dims.iter().enumerate() {
            element_count(&d.shape(), MAX_ACTIVATIONS)
                .map_err(|rule| self.node_error(node, &format!("its output: {rule}")))?;
        }
        Ok(())
    }

    fn shape_error(&self, e: ShapeError) -> OnnxError {
        let node = match &e {
            ShapeError::Invalid { node, .. } => self.labels[*node].0.clone(),
            ShapeError::TooSmall { layer, .. } => layer.clone(),
            ShapeError::NoAttention { model } => model.clone(),
        };
        OnnxError::Shape { node, source: e }
    }

    fn node_error(&self, node: usize, rule: &str) -> OnnxError {
        let (label, op) = self.labels[node].clone();
        OnnxError::Node {
            node: label,
            op,
            rule: rule.to_string(),
        }
    }

    /// One ONNX node.
    fn node(&mut self, index: usize, node: &NodeProto) -> Result<(), OnnxError> {
        let label = match node.name() {
            "" => format!("#{index}"),
            n => n.to_string(),
        };
        let a = Attrs::new(node, label.clone());
        let op_type = node.op_type();
        let ctx = Ctx {
            node,
            label: &label,
            op: op_type,
        };
        if !matches!(node.domain(), "" | "ai.onnx") {
            return Err(OnnxError::Unsupported {
                node: label,
                op: format!("{}::{op_type}", node.domain()),
            });
        }
        match op_type {
            "Shape" if self.ids.contains_key(ctx.input(0)) => return self.shape_of(&ctx, &a),
            "CastLike" if !self.all_constant(node) => return self.cast_like(&ctx),
            _ if self.is_symbolic(&ctx) => return self.fold_symbolic(&ctx, &a),
            _ => {}
        }
        if fold::FOLDED.contains(&op_type) && self.all_constant(node) {
            let inputs: Vec<Option<&Value>> = (node.input.iter())
                .map(|i| self.consts.get(i.as_str()))
                .collect();
            let v = fold::fold(&ctx, &a, &inputs)?;
            self.consts.insert(ctx.output(0)?.to_string(), v);
            return Ok(());
        }
        if self.gelu_step(&ctx)? || self.transformer(&ctx, &a)? {
            return Ok(());
        }
        let op = match op_type {
            "Slice" => return self.slice(&ctx),
            "Pad" => return self.pad(&ctx, &a),
            "Constant" => {
                let v = tensor::constant(&a)?;
                self.consts.insert(ctx.output(0)?.to_string(), v);
                return Ok(());
            }
            "Identity" | "Dropout" => {
                let src = self.src(&ctx, 0)?;
                self.ids.insert(ctx.output(0)?.to_string(), src);
                return Ok(());
            }
            "Conv" => return self.conv(&ctx, &a),
            "Gemm" | "MatMul" => return self.linear(&ctx, &a),
            "BatchNormalization" => return self.batch_norm(&ctx, &a),
            "Add" => return self.add(&ctx),
            "Mul" => return self.mul(&ctx),
            "Concat" => return self.concat(&ctx, &a),
            "Split" => return self.split(&ctx, &a),
            "Transpose" => return self.transpose(&ctx, &a),
            "Reshape" => return self.reshape(&ctx, &a),
            "Relu" => Op::Relu,
            "Sigmoid" => Op::Sigmoid,
            "HardSigmoid" => self.hard_sigmoid(&a)?,
            "HardSwish" => Op::HardSwish,
            "Clip" => self.clip(&ctx, &a)?,
            "MaxPool" | "AveragePool" => pool::pool(&ctx, &a)?,
            "GlobalAveragePool" => Op::GlobalAvgPool,
            "ReduceMean" | "ReduceSum" => return self.reduce(&ctx, &a),
            "Flatten" => match a.int("axis", 1) {
                1 => Op::Flatten,
                v => return Err(a.bad("axis", v, "only axis 1 (keep the batch) is supported")),
            },
            _ => {
                return Err(OnnxError::Unsupported {
                    node: label,
                    op: op_type.to_string(),
                })
            }
        };
        let src = self.src(&ctx, 0)?;
        self.push(&ctx, op, &[src])?;
        Ok(())
    }

    /// True when every input the node has is a constant (absent optional inputs aside).
    fn all_constant(&self, node: &NodeProto) -> bool {
        (node.input.iter())
            .filter(|i| !i.is_empty())
            .all(|i| self.consts.contains_key(i.as_str()))
    }

    /// The graph node computing input `i` of the node.
    fn src(&self, ctx: &Ctx, i: usize) -> Result<usize, OnnxError> {
        let name = ctx.input(i);
        if self.sliced.contains_key(name) {
            return Err(ctx.rule(&format!(
                "input {name} is a Slice of a computed tensor: {}",
                shortcut::RULE
            )));
        }
        if self.gelu.contains_key(name) {
            return Err(ctx.rule(&format!("input {name} is a step of a GELU: {}", gelu::RULE)));
        }
        if self.held.contains_key(name) {
            return Err(ctx.rule(&format!(
                "input {name} is a transformer's multi-head tensor: {}",
                attention::RULE
            )));
        }
        if self.shuffle.contains_key(name) {
            return Err(ctx.rule(&format!(
                "input {name} is a 5-D reshape of a computed tensor: {}",
                shuffle::RULE
            )));
        }
        match (self.ids.get(name), self.consts.contains_key(name)) {
            (Some(&id), _) => Ok(id),
            (None, true) => Err(ctx.rule(&format!(
                "input {name} is a constant where the op needs a computed tensor"
            ))),
            (None, false) if self.symbolic.contains_key(name) => Err(ctx.rule(&format!(
                "input {name} is a shape holding the batch size where the op needs a computed \
                 tensor"
            ))),
            (None, false) => {
                Err(ctx.rule(&format!("input {name:?} is produced by no earlier node")))
            }
        }
    }

    /// How many times the tensor `name` is read (`readers`).
    fn readers(&self, name: &str) -> usize {
        self.readers.get(name).copied().unwrap_or(0)
    }

    /// Constant input `i`, which must exist.
    fn constant(&self, ctx: &Ctx, i: usize) -> Result<&Value, OnnxError> {
        let name = ctx.input(i);
        if name.is_empty() {
            return Err(ctx.rule(&format!("needs input {i}, a constant")));
        }
        if self.symbolic.contains_key(name) {
            return Err(ctx.rule(&format!(
                "input {name} holds the batch size, known only at run time, where a constant \
                 is needed"
            )));
        }
        self.consts
            .get(name)
            .ok_or_else(|| OnnxError::MissingInitializer {
                node: ctx.label.to_string(),
                op: ctx.op.to_string(),
                input: name.to_string(),
            })
    }

    /// Constant input `i` if the node has it (optional inputs may be absent or "").
    fn optional(&self, ctx: &Ctx, i: usize) -> Result<Option<&Value>, OnnxError> {
        match ctx.input(i) {
            "" => Ok(None),
            _ => self.constant(ctx, i).map(Some),
        }
    }

    fn push(&mut self, ctx: &Ctx, op: Op, inputs: &[usize]) -> Result<usize, OnnxError> {
        let id = self.graph.push(op, inputs);
        self.labels
            .push((ctx.label.to_string(), ctx.op.to_string()));
        self.ids.insert(ctx.output(0)?.to_string(), id);
        Ok(id)
    }

    /// A unique layer name: the weight's name without ".weight", else the node's, with
    /// characters that would break CSV columns or policy files replaced.
    fn layer_name(&mut self, ctx: &Ctx, weight: &str) -> String {
        let base = weight.strip_suffix(".weight").unwrap_or(ctx.label);
        let clean: String = base
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let clean = clean.trim_matches('_').to_string();
        let clean = if clean.is_empty() {
            format!("layer{}", self.names.len())
        } else {
            clean
        };
        let mut name = clean.clone();
        let mut k = 2;
        while !self.names.insert(name.clone()) {
            name = format!("{clean}_{k}");
            k += 1;
        }
        name
    }
}

/// The node being converted, for lookups and errors.
pub(super) struct Ctx<'n> {
    pub node: &'n NodeProto,
    pub label: &'n str,
    pub op: &'n str,
}

impl Ctx<'_> {
    pub fn rule(&self, rule: &str) -> OnnxError {
        OnnxError::Node {
            node: self.label.to_string(),
            op: self.op.to_string(),
            rule: rule.to_string(),
        }
    }

    /// The name of input `i` ("" when the node has none there).
    pub fn input(&self, i: usize) -> &str {
        self.node
            .input
            .get(i)
            .map(String::as_str)
            .unwrap_or_default()
    }

    pub fn output(&self, i: usize) -> Result<&str, OnnxError> {
        self.node
            .output
            .get(i)
            .map(String::as_str)
            .ok_or_else(|| self.rule("has no output"))
    }
}

/// The image (C, H, W) of an input's dims (N, C, H, W): each side from 1 to `MAX_SPATIAL`, the
/// whole within `MAX_ACTIVATIONS`.
fn input_shape(dims: &[i64]) -> Result<(usize, usize, usize), String> {
    let [_, c, h, w] = dims[..] else {
        return Err("it needs four dims".into());
    };
    let side = |v: i64| usize::try_from(v).ok().filter(|&v| v >= 1);
    let (Some(c), Some(h), Some(w)) = (side(c), side(h), side(w)) else {
        return Err("C, H and W must be positive".into());
    };
    if h.max(w) > MAX_SPATIAL {
        return Err(format!(
            "a side of {} pixels; at most {MAX_SPATIAL}",
            h.max(w)
        ));
    }
    element_count(&[c, h, w], MAX_ACTIVATIONS)?;
    Ok((c, h, w))
}

/// Per tensor name, the node inputs and graph outputs that read it.
fn readers(proto: &GraphProto) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    let inputs = (proto.node.iter()).flat_map(|n| n.input.iter().map(String::as_str));
    let outputs = proto.output.iter().map(|o| o.name());
    for name in inputs.chain(outputs) {
        *out.entry(name.to_string()).or_insert(0) += 1;
    }
    out
}

/// `var + eps − 1e-5`: normalizing by √(var' + 1e-5) is normalizing by √(var + eps).
pub(super) fn bn_weights(values: [Vec<f32>; 4], eps: f32) -> BnWeights {
    let [gamma, beta, mean, var] = values;
    BnWeights {
        gamma,
        beta,
        mean,
        var: var.into_iter().map(|v| v + eps - EPS).collect(),
    }
}
