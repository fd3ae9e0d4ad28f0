//! Which graph nodes a pass runs as one op: a quantizable layer and the BatchNorm, ReLU and
//! max-pool after it (`Chain`), a residual Add with the ReLU after it, and in a pass with batch
//! statistics a BatchNorm with the ReLU, ReLU6 or residual join after it (`BnFusion`).

use super::graph::{Graph, Op};

/// The nodes a quantizable layer's node can absorb: each the only consumer of the one before.
#[derive(Debug, Clone, Default)]
pub(crate) struct Chain {
    pub node: usize,
    pub bn: Option<usize>,
    pub relu: Option<usize>,
    /// A max-pool with stride = window after the ReLU of an ungrouped conv: (node, window).
    pub pool: Option<(usize, usize)>,
}

impl Chain {
    /// The chain of each layer node of `g`.
    pub fn plan(g: &Graph, layer_nodes: &[usize]) -> Vec<Chain> {
        let consumers = g.consumers();
        let only = |i: usize| match consumers[i].as_slice() {
            [j] => Some((*j, &g.nodes[*j].op)),
            _ => None,
        };
        layer_nodes
            .iter()
            .map(|&node| {
                let mut c = Chain {
                    node,
                    ..Chain::default()
                };
                // A matmul layer fuses nothing: its output feeds a softmax or a linear layer.
                if g.nodes[node].op.is_matmul_layer() {
                    return c;
                }
                let mut end = node;
                if let Some((j, Op::BatchNorm)) = only(end) {
                    (c.bn, end) = (Some(j), j);
                }
                if let Some((j, Op::Relu)) = only(end) {
                    (c.relu, end) = (Some(j), j);
                    let plain_conv = matches!(g.nodes[node].op, Op::Conv { groups: 1, .. });
                    if let Some((
                        j,
                        &Op::MaxPool {
                            k,
                            stride,
                            pad: 0,
                            ceil: false,
                        },
                    )) = only(end)
                    {
                        if plain_conv && k == stride {
                            c.pool = Some((j, k));
                        }
                    }
                }
                c
            })
            .collect()
    }

    /// The nodes a pass runs inside the layer's op, the layer's node first: none after it when
    /// the pass keeps its BatchNorm apart (`bn_apart`: batch statistics, or the unfolded
    /// reference), the pool only with `pool`.
    pub fn fused(&self, bn_apart: bool, pool: bool) -> Vec<usize> {
        let mut nodes = vec![self.node];
        if self.bn.is_some() && bn_apart {
            return nodes;
        }
        nodes.extend(self.bn.iter().chain(&self.relu));
        if pool {
            nodes.extend(self.pool.map(|(j, _)| j));
        }
        nodes
    }
}

/// The ReLU that alone reads Add node `i` of two operands (a residual block's join), which a
/// pass runs with the Add as one op (`ops::add_relu`: the same numbers, without keeping the sum).
pub(super) fn relu_after_add(g: &Graph, readers: &[Vec<usize>], i: usize) -> Option<usize> {
    let node = &g.nodes[i];
    if !matches!(node.op, Op::Add) || node.inputs.len() != 2 {
        return None;
    }
    match readers[i].as_slice() {
        &[j] if matches!(g.nodes[j].op, Op::Relu) => Some(j),
        _ => None,
    }
}

/// What a pass with batch statistics runs a BatchNorm node with (`ops::batch_norm_train_then`:
/// the same numbers as the separate ops, without their intermediate tensors and gradient slots).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BnFusion {
    /// The ReLU that alone reads it.
    Relu(usize),
    /// The ReLU6 that alone reads it.
    Relu6(usize),
    /// The residual join that alone reads it: the Add (which only a ReLU reads, `relu_after_add`)
    /// and that ReLU. The BatchNorm waits for the Add, whose other operand may come later.
    Join { add: usize, relu: usize },
}

/// The fusion of BatchNorm node `i`, if any. A join takes one BatchNorm: the first of the Add's
/// operands that is a BatchNorm read by the Add alone.
pub(super) fn bn_fusion(g: &Graph, readers: &[Vec<usize>], i: usize) -> Option<BnFusion> {
    if !matches!(g.nodes[i].op, Op::BatchNorm) {
        return None;
    }
    let &[j] = readers[i].as_slice() else {
        return None;
    };
    match g.nodes[j].op {
        Op::Relu => return Some(BnFusion::Relu(j)),
        Op::Relu6 => return Some(BnFusion::Relu6(j)),
        _ => {}
    }
    let relu = relu_after_add(g, readers, j)?;
    let alone = |k: usize| matches!(g.nodes[k].op, Op::BatchNorm) && readers[k] == [j];
    let first = g.nodes[j].inputs.iter().copied().find(|&k| alone(k))?;
    (first == i).then_some(BnFusion::Join { add: j, relu })
}
