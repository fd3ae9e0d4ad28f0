//! `Graph`: a network as a small DAG of ops in topological order, and the shape inference that
//! checks it and yields its quantizable layers' `LayerShape`s.
//!
//! Node 0 is the input image; every other node names its inputs by index, always earlier ones,
//! and the last node's output is the logits. Quantizable layers (conv, linear) are numbered in
//! node order: that is the order the agent walks and the order of a policy's entries.

use super::shape::LayerShape;

/// One op of a graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// The input image (node 0 only).
    Input,
    /// A quantizable convolution with a bias: square kernel, `groups` divides both channel counts.
    Conv {
        name: String,
        out: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        groups: usize,
    },
    /// A quantizable fully connected layer with a bias, on a flat input.
    Linear {
        name: String,
        out: usize,
    },
    /// Batch normalization of a conv's output (the conv's only consumer). Training uses batch
    /// statistics; everywhere else it is folded into the conv's weight and bias, the usual way
    /// to quantize such a pair (the device runs one conv).
    BatchNorm,
    Relu,
    /// min(max(x, 0), 6).
    Relu6,
    /// Max pool over square windows.
    MaxPool {
        k: usize,
        stride: usize,
    },
    /// Average pool over square windows (no padding).
    AvgPool {
        k: usize,
        stride: usize,
    },
    /// The mean of each channel, kept as (N, C, 1, 1).
    GlobalAvgPool,
    /// The sum of two inputs of the same shape (a residual connection).
    Add,
    /// (N, C, H, W) → (N, C·H·W).
    Flatten,
    /// He et al.'s "option A" shortcut: every `stride`-th pixel, channels zero-padded to `out`
    /// (half before, half after), so a residual block can change size without parameters.
    ShortcutA {
        stride: usize,
        out: usize,
    },
}

impl Op {
    /// True for the layers a policy quantizes.
    pub fn is_layer(&self) -> bool {
        matches!(self, Op::Conv { .. } | Op::Linear { .. })
    }

    fn kind(&self) -> &'static str {
        match self {
            Op::Input => "input",
            Op::Conv { .. } => "conv",
            Op::Linear { .. } => "linear",
            Op::BatchNorm => "batchnorm",
            Op::Relu => "relu",
            Op::Relu6 => "relu6",
            Op::MaxPool { .. } => "maxpool",
            Op::AvgPool { .. } => "avgpool",
            Op::GlobalAvgPool => "globalavgpool",
            Op::Add => "add",
            Op::Flatten => "flatten",
            Op::ShortcutA { .. } => "shortcut",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub op: Op,
    pub inputs: Vec<usize>,
}

/// The shape of one node's output, per example.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dims {
    Map(usize, usize, usize),
    Flat(usize),
}

impl Dims {
    pub fn count(self) -> usize {
        match self {
            Dims::Map(c, h, w) => c * h * w,
            Dims::Flat(n) => n,
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
    #[error("{model}: node {node} ({op}): {rule}")]
    Invalid {
        model: String,
        node: usize,
        op: &'static str,
        rule: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
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
        let consumers = self.consumers();
        let Shapes {
            dims,
            mut layers,
            layer_nodes,
        } = self.node_dims(input)?;
        let last = self.nodes.len() - 1;
        if !matches!(dims[last], Dims::Flat(_)) || !self.nodes[last].op.is_layer() {
            let rule = "the last node must be a linear or conv layer with flat output (logits)";
            return Err(ShapeError::Invalid {
                model: self.name.clone(),
                node: last,
                op: self.nodes[last].op.kind(),
                rule: rule.into(),
            });
        }
        add_residual_traffic(self, &consumers, &dims, &layer_nodes, &mut layers);
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
                Op::Input => 0,
                Op::Add => 2,
                _ => 1,
            };
            if node.inputs.len() != arity {
                return Err(bad(format!(
                    "takes {arity} inputs, has {}",
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
            _ => Err(bad(format!(
                "{what} needs a (C, H, W) input, got a flat one"
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
                    _ => return Err(bad("needs a flat input (add a flatten)".into())),
                }
            }
            Op::BatchNorm | Op::Relu | Op::Relu6 => src.unwrap_or(Dims::Flat(0)),
            Op::MaxPool { k, stride } | Op::AvgPool { k, stride } => {
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
            Op::ShortcutA { stride, out } => {
                let (c, h, w) = map("a shortcut")?;
                if *stride == 0 || *out < c {
                    return Err(bad(format!("needs stride ≥ 1 and {out} ≥ {c} channels")));
                }
                Dims::Map(*out, h.div_ceil(*stride), w.div_ceil(*stride))
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
            _ => None,
        }
    }
}

/// A residual add reads its other operand and writes the sum: values moved beside a layer's
/// own output, counted on the layer whose output (through a BN) feeds the add.
fn add_residual_traffic(
    g: &Graph,
    consumers: &[Vec<usize>],
    dims: &[Dims],
    layer_nodes: &[usize],
    layers: &mut [LayerShape],
) {
    for (layer, &node) in layers.iter_mut().zip(layer_nodes) {
        let mut at = node;
        if let [next] = consumers[at].as_slice() {
            if g.nodes[*next].op == Op::BatchNorm {
                at = *next;
            }
        }
        let adds = consumers[at]
            .iter()
            .filter(|&&j| g.nodes[j].op == Op::Add)
            .count();
        layer.residual = (2 * adds * dims[at].count()) as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(name: &str, out: usize, stride: usize) -> Op {
        Op::Conv {
            name: name.into(),
            out,
            kernel: 3,
            stride,
            padding: 1,
            groups: 1,
        }
    }

    /// A residual block with a BN on each conv: shapes, the add's traffic on the second conv,
    /// and the errors for mismatched adds, a shared BN input and a missing flatten.
    #[test]
    fn residual_block_shapes_and_errors() {
        let mut g = Graph::new("block");
        let stem = g.then(conv("c0", 8, 1));
        g.then(Op::Relu);
        let a = g.then(conv("c1", 8, 1));
        g.then(Op::BatchNorm);
        g.then(Op::Relu);
        g.then(conv("c2", 8, 1));
        let bn = g.then(Op::BatchNorm);
        let add = g.push(Op::Add, &[bn, stem + 1]);
        g.then(Op::Relu);
        g.then(Op::GlobalAvgPool);
        g.then(Op::Flatten);
        g.then(Op::Linear {
            name: "fc".into(),
            out: 10,
        });
        let s = g.shapes((3, 8, 8)).unwrap();
        assert_eq!(s.layers.len(), 4);
        assert_eq!(s.layer_nodes[1], a);
        assert_eq!(s.dims[add], Dims::Map(8, 8, 8));
        assert_eq!(s.layers[2].residual, 2 * 8 * 8 * 8);
        assert_eq!(s.layers[1].residual, 0);
        assert_eq!(s.layers[3].in_ch, 8);

        let mut bad = g.clone();
        bad.nodes[add].inputs = vec![bn, 0];
        let e = bad.shapes((3, 8, 8)).unwrap_err().to_string();
        assert!(e.contains("node 8 (add)") && e.contains("differ"), "{e}");
        let mut bad = g.clone();
        bad.nodes[add].inputs = vec![a, stem + 1];
        let e = bad.shapes((3, 8, 8)).unwrap_err().to_string();
        assert!(
            e.contains("batchnorm") && e.contains("only consumer"),
            "{e}"
        );
        let mut bad = g.clone();
        bad.nodes.remove(add + 3);
        bad.nodes[add + 3].inputs = vec![add + 2];
        let e = bad.shapes((3, 8, 8)).unwrap_err().to_string();
        assert!(e.contains("flat input"), "{e}");
    }

    #[test]
    fn shortcut_a_and_groups() {
        let mut g = Graph::new("s");
        g.then(conv("c0", 4, 1));
        g.then(Op::ShortcutA { stride: 2, out: 8 });
        g.then(Op::Conv {
            name: "dw".into(),
            out: 8,
            kernel: 3,
            stride: 1,
            padding: 1,
            groups: 8,
        });
        g.then(Op::Flatten);
        g.then(Op::Linear {
            name: "fc".into(),
            out: 2,
        });
        let s = g.shapes((1, 9, 9)).unwrap();
        assert_eq!(s.dims[2], Dims::Map(8, 5, 5));
        assert!(s.layers[1].is_depthwise());
        assert_eq!(s.layers[1].weight_count(), 8 * 9);
        if let Op::Conv { groups, .. } = &mut g.nodes[3].op {
            *groups = 3;
        }
        let e = g.shapes((1, 9, 9)).unwrap_err().to_string();
        assert!(e.contains("groups 3 must divide"), "{e}");
    }
}
