//! `Graph`: a network as a small DAG of ops in topological order, and the shape inference that
//! checks it and yields its quantizable layers' `LayerShape`s.
//!
//! Node 0 is the input image; every other node names its inputs by index, always earlier ones,
//! and the last node's output is the logits. Quantizable layers (conv, linear, and attention's
//! matmuls when quantized) are numbered in node order: that is the order the agent walks and
//! the order of a policy's entries.

pub use super::op::Op;
use super::shape::LayerShape;

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub op: Op,
    pub inputs: Vec<usize>,
}

/// The shape of one node's output, per example.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dims {
    Map(usize, usize, usize),
    Flat(usize),
    /// A sequence of tokens: (tokens, features per token).
    Seq(usize, usize),
}

impl Dims {
    pub fn count(self) -> usize {
        match self {
            Dims::Map(c, h, w) => c * h * w,
            Dims::Flat(n) => n,
            Dims::Seq(t, d) => t * d,
        }
    }

    /// The tensor shape of one example.
    pub fn shape(self) -> Vec<usize> {
        match self {
            Dims::Map(c, h, w) => vec![c, h, w],
            Dims::Flat(n) => vec![n],
            Dims::Seq(t, d) => vec![t, d],
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShapeError {
    #[error("{model}: input of {h}x{w} is too small for layer {layer}")]
    TooSmall {
        model: String,
        layer: String,
        h: usize,
        w: usize,
    },
    #[error(
        "{model}: has no attention matmuls to quantize (`[quant] attention = true` applies to a \
         transformer: the zoo's vit or an imported ViT); remove it"
    )]
    NoAttention { model: String },
    #[error("{model}: node {node} ({op}): {rule}")]
    Invalid {
        model: String,
        node: usize,
        op: &'static str,
        rule: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    /// What error messages call the network.
    pub name: String,
    pub nodes: Vec<Node>,
}

/// Shape inference's result: every node's output dims and the quantizable layers' shapes.
#[derive(Debug, Clone)]
pub struct Shapes {
    pub dims: Vec<Dims>,
    pub layers: Vec<LayerShape>,
    /// The node of each quantizable layer, in layer order.
    pub layer_nodes: Vec<usize>,
}

impl Graph {
    /// A graph of the input alone; `push` adds nodes after it.
    pub fn new(name: &str) -> Graph {
        Graph {
            name: name.to_string(),
            nodes: vec![Node {
                op: Op::Input,
                inputs: vec![],
            }],
        }
    }

    /// Appends `op` on `inputs` and returns its index.
    pub fn push(&mut self, op: Op, inputs: &[usize]) -> usize {
        self.nodes.push(Node {
            op,
            inputs: inputs.to_vec(),
        });
        self.nodes.len() - 1
    }

    /// Appends `op` on the last node.
    pub fn then(&mut self, op: Op) -> usize {
        let last = self.nodes.len() - 1;
        self.push(op, &[last])
    }

    /// For every node, the nodes that read its output.
    pub fn consumers(&self) -> Vec<Vec<usize>> {
        let mut out = vec![Vec::new(); self.nodes.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            for &j in &n.inputs {
                out[j].push(i);
            }
        }
        out
    }

    /// Checks the graph for inputs shaped (C, H, W) and infers every node's output.
    pub fn shapes(&self, input: (usize, usize, usize)) -> Result<Shapes, ShapeError> {
        let Shapes {
            dims,
            mut layers,
            layer_nodes,
        } = self.node_dims(input)?;
        let last = self.nodes.len() - 1;
        let rule = match (dims[last], layers.is_empty()) {
            (Dims::Map(..) | Dims::Seq(..), _) => {
                "the last node must give flat output (the logits)"
            }
            (_, true) => "the graph needs at least one quantizable layer (conv or linear)",
            _ => "",
        };
        if !rule.is_empty() {
            return Err(ShapeError::Invalid {
                model: self.name.clone(),
                node: last,
                op: self.nodes[last].op.kind(),
                rule: rule.into(),
            });
        }
        super::joins::add_join_traffic(self, &dims, &layer_nodes, &mut layers)?;
        Ok(Shapes {
            dims,
            layers,
            layer_nodes,
        })
    }

    /// Every node's output, checking each node but not that the graph ends in logits (for a
    /// graph still being built, as the ONNX importer does); layers without residual traffic.
    pub fn node_dims(&self, input: (usize, usize, usize)) -> Result<Shapes, ShapeError> {
        let consumers = self.consumers();
        let mut dims: Vec<Dims> = Vec::with_capacity(self.nodes.len());
        let (mut layers, mut layer_nodes) = (Vec::new(), Vec::new());
        for (i, node) in self.nodes.iter().enumerate() {
            let bad = |rule: String| ShapeError::Invalid {
                model: self.name.clone(),
                node: i,
                op: node.op.kind(),
                rule,
            };
            let arity = match node.op {
                Op::Input => 0..=0,
                Op::Add | Op::Mul | Op::Scores { .. } | Op::Mix { .. } => 2..=2,
                Op::Concat => 1..=usize::MAX,
                _ => 1..=1,
            };
            if !arity.contains(&node.inputs.len()) {
                let want = match arity.end() {
                    &usize::MAX => "at least 1".to_string(),
                    n => n.to_string(),
                };
                return Err(bad(format!(
                    "takes {want} inputs, has {}",
                    node.inputs.len()
                )));
            }
            if let Some(&j) = node.inputs.iter().find(|&&j| j >= i) {
                return Err(bad(format!("input {j} is not an earlier node")));
            }
            if i > 0 && node.op == Op::Input || i == 0 && node.op != Op::Input {
                return Err(bad("the input must be node 0, and only node 0".into()));
            }
            let src = node.inputs.first().map(|&j| dims[j]);
            let d = self.infer(i, &node.op, src, &dims, input, &bad)?;
            if let Some(layer) = self.layer_shape(&node.op, src, d) {
                layers.push(layer);
                layer_nodes.push(i);
            }
            if node.op == Op::BatchNorm {
                let j = node.inputs[0];
                if !matches!(self.nodes[j].op, Op::Conv { .. }) || consumers[j].len() != 1 {
                    return Err(bad("must be the only consumer of a conv".into()));
                }
            }
            dims.push(d);
        }
        Ok(Shapes {
            dims,
            layers,
            layer_nodes,
        })
    }

    /// One node's output dims from its first input's (`src`).
    fn infer(
        &self,
        i: usize,
        op: &Op,
        src: Option<Dims>,
        dims: &[Dims],
        input: (usize, usize, usize),
        bad: &dyn Fn(String) -> ShapeError,
    ) -> Result<Dims, ShapeError> {
        let map = |what: &str| match src {
            Some(Dims::Map(c, h, w)) => Ok((c, h, w)),
            other => Err(bad(format!(
                "{what} needs a (C, H, W) input, got {other:?}"
            ))),
        };
        let window = |h: usize, w: usize, k: usize, stride: usize, name: &str| {
            if k == 0 || stride == 0 {
                return Err(bad("window and stride must be at least 1".into()));
            }
            if h < k || w < k {
                return Err(ShapeError::TooSmall {
                    model: self.name.clone(),
                    layer: name.to_string(),
                    h,
                    w,
                });
            }
            Ok(((h - k) / stride + 1, (w - k) / stride + 1))
        };
        Ok(match op {
            Op::Input => Dims::Map(input.0, input.1, input.2),
            Op::Conv {
                name,
                out,
                kernel,
                stride,
                padding,
                groups,
            } => {
                let (c, h, w) = map("a conv")?;
                if *groups == 0 || c % groups != 0 || out % groups != 0 {
                    return Err(bad(format!(
                        "groups {groups} must divide input channels {c} and outputs {out}"
                    )));
                }
                let (oh, ow) = window(h + 2 * padding, w + 2 * padding, *kernel, *stride, name)?;
                Dims::Map(*out, oh, ow)
            }
            Op::Linear { out, .. } => {
                if *out == 0 {
                    return Err(bad("needs at least one output".into()));
                }
                match src {
                    Some(Dims::Flat(_)) => Dims::Flat(*out),
                    // Every token alike.
                    Some(Dims::Seq(t, _)) => Dims::Seq(t, *out),
                    _ => return Err(bad("needs a flat input (add a flatten)".into())),
                }
            }
            Op::BatchNorm
            | Op::Relu
            | Op::Relu6
            | Op::Sigmoid
            | Op::HardSigmoid
            | Op::HardSwish
            | Op::Silu
            | Op::Gelu
            | Op::Softmax => src.unwrap_or(Dims::Flat(0)),
            Op::Affine { scale, shift } => {
                let (c, ..) = map("a per-channel affine")?;
                if scale.len() != c || shift.len() != c {
                    return Err(bad(format!(
                        "{} scales and {} shifts for {c} channels",
                        scale.len(),
                        shift.len()
                    )));
                }
                src.unwrap_or(Dims::Flat(0))
            }
            Op::MaxPool {
                k,
                stride,
                pad,
                ceil,
            } => {
                let (c, h, w) = map("a pool")?;
                if pad >= k {
                    return Err(bad(format!(
                        "padding {pad} must be less than the window {k}"
                    )));
                }
                let name = format!("pool at node {i}");
                let (oh, ow) = window(h + 2 * pad, w + 2 * pad, *k, *stride, &name)?;
                // Ceil mode adds a window where one more would start inside the input or its
                // left padding (PyTorch's rule).
                let more = |o: usize, size: usize| match *ceil
                    && !(size + 2 * pad - k).is_multiple_of(*stride)
                    && o * stride < size + pad
                {
                    true => o + 1,
                    false => o,
                };
                Dims::Map(c, more(oh, h), more(ow, w))
            }
            Op::AvgPool { k, stride } => {
                let (c, h, w) = map("a pool")?;
                let (oh, ow) = window(h, w, *k, *stride, &format!("pool at node {i}"))?;
                Dims::Map(c, oh, ow)
            }
            Op::GlobalAvgPool => Dims::Map(map("a global pool")?.0, 1, 1),
            Op::Flatten => Dims::Flat(src.map_or(0, Dims::count)),
            Op::Add => {
                let (a, b) = (dims[self.nodes[i].inputs[0]], dims[self.nodes[i].inputs[1]]);
                if a != b {
                    return Err(bad(format!("adds {a:?} to {b:?}: shapes differ")));
                }
                a
            }
            Op::Mul => {
                let (a, b) = (dims[self.nodes[i].inputs[0]], dims[self.nodes[i].inputs[1]]);
                match (a, b) {
                    _ if a == b => a,
                    (Dims::Map(c, ..), Dims::Map(g, 1, 1))
                    | (Dims::Map(g, 1, 1), Dims::Map(c, ..))
                        if c == g =>
                    {
                        if a.count() >= b.count() {
                            a
                        } else {
                            b
                        }
                    }
                    _ => {
                        return Err(bad(format!(
                            "multiplies {a:?} by {b:?}: needs one shape, or a (C, 1, 1) gate of \
                             a (C, H, W) map"
                        )))
                    }
                }
            }
            Op::Concat => {
                let parts: Vec<Dims> = self.nodes[i].inputs.iter().map(|&j| dims[j]).collect();
                concat_dims(&parts).map_err(bad)?
            }
            Op::Channels { start, len } => {
                let (parts, what) = match src {
                    // On tokens: features `start .. start + len` of each (a Split of fused QKV).
                    Some(Dims::Seq(_, d)) => (d, "features"),
                    _ => (map("a channel slice")?.0, "channels"),
                };
                if *len == 0 || start.checked_add(*len).is_none_or(|end| end > parts) {
                    return Err(bad(format!(
                        "{what} {start}..+{len} of {parts}: needs at least one, all inside"
                    )));
                }
                match src {
                    Some(Dims::Seq(t, _)) => Dims::Seq(t, *len),
                    _ => {
                        let (_, h, w) = map("a channel slice")?;
                        Dims::Map(*len, h, w)
                    }
                }
            }
            Op::ChannelShuffle { groups } => {
                let (c, ..) = map("a channel shuffle")?;
                if *groups == 0 || c % groups != 0 {
                    return Err(bad(format!("{groups} groups must divide {c} channels")));
                }
                src.unwrap_or(Dims::Flat(0))
            }
            Op::ShortcutA { stride, out } => {
                let (c, h, w) = map("a shortcut")?;
                if *stride == 0 || *out < c {
                    return Err(bad(format!("needs stride ≥ 1 and {out} ≥ {c} channels")));
                }
                Dims::Map(*out, h.div_ceil(*stride), w.div_ceil(*stride))
            }
            Op::Tokens
            | Op::ClassToken { .. }
            | Op::PosEmbed { .. }
            | Op::LayerNorm { .. }
            | Op::Scores { .. }
            | Op::Mix { .. }
            | Op::Token { .. } => {
                let parts: Vec<Dims> = self.nodes[i].inputs.iter().map(|&j| dims[j]).collect();
                super::tokens::infer(op, &parts).map_err(bad)?
            }
        })
    }

    /// The `LayerShape` of a quantizable node with input `src` and output `out`.
    fn layer_shape(&self, op: &Op, src: Option<Dims>, out: Dims) -> Option<LayerShape> {
        match (op, src?) {
            (
                Op::Conv {
                    name,
                    out: o,
                    kernel,
                    stride,
                    padding,
                    groups,
                },
                Dims::Map(c, h, w),
            ) => {
                let s = LayerShape::conv(name, c, *o, *kernel, *stride, *padding, (h, w));
                debug_assert_eq!(Dims::Map(*o, s.out_hw.0, s.out_hw.1), out);
                Some(s.with_groups(*groups))
            }
            (Op::Linear { name, out }, Dims::Flat(n)) => Some(LayerShape::linear(name, n, *out)),
            (Op::Linear { name, out }, Dims::Seq(t, n)) => {
                Some(LayerShape::linear(name, n, *out).per_token(t))
            }
            // Per head: (T × D/heads)·(D/heads × T) for the scores, (T × T)·(T × D/heads) for
            // the mix.
            (Op::Scores { name, heads, .. }, Dims::Seq(t, d)) if op.is_layer() => {
                Some(LayerShape::matmul(name, t, *heads, d / heads, t))
            }
            (Op::Mix { name, heads, .. }, Dims::Map(_, t, _)) if op.is_layer() => match out {
                Dims::Seq(_, d) => Some(LayerShape::matmul(name, t, *heads, t, d / heads)),
                _ => None,
            },
            _ => None,
        }
    }
}

/// The dims of a Concat of `parts`: feature maps of one H×W (channels added), or flat vectors.
fn concat_dims(parts: &[Dims]) -> Result<Dims, String> {
    let sum = |f: &dyn Fn(Dims) -> usize| {
        (parts.iter()).try_fold(0usize, |acc, &d| acc.checked_add(f(d)))
    };
    let overflow = || "its size overflows".to_string();
    if parts.iter().any(|d| matches!(d, Dims::Seq(..))) {
        return Err("joins token sequences (only feature maps or flat vectors join)".into());
    }
    match parts.first() {
        Some(&Dims::Map(_, h, w)) => {
            if let Some(d) = parts
                .iter()
                .find(|d| !matches!(d, Dims::Map(_, a, b) if (*a, *b) == (h, w)))
            {
                return Err(format!(
                    "joins a {h}x{w} feature map with {d:?}: needs one H×W"
                ));
            }
            let c = sum(&|d| match d {
                Dims::Map(c, ..) => c,
                other => other.count(),
            });
            Ok(Dims::Map(c.ok_or_else(overflow)?, h, w))
        }
        Some(Dims::Flat(_) | Dims::Seq(..)) => {
            if parts.iter().any(|d| matches!(d, Dims::Map(..))) {
                return Err("joins flat vectors with feature maps".into());
            }
            Ok(Dims::Flat(sum(&Dims::count).ok_or_else(overflow)?))
        }
        None => Err("joins nothing".into()),
    }
}

#[cfg(test)]
#[path = "graph_tests.rs"]
mod tests;
