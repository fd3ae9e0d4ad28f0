//! Which graph nodes a pass runs as one op: a quantizable layer and the BatchNorm, ReLU and
//! max-pool after it (`Chain`), and a residual Add with the ReLU after it.

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
