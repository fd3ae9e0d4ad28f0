//! The activation traffic of the joins (residual Add, gating Mul, Concat), priced on a layer
//! that feeds them (`LayerShape::residual`).
//!
//! A join runs in the pass of the layer that writes one of its operands, its *charged*
//! operand, which it takes as the layer writes it; it reads every other operand and writes its
//! result. Per example it moves
//!
//! ```text
//! traffic = |output| + Σ |operand|   over the operands other than the charged one
//! ```
//!
//! values: a residual Add 2·|output| (the shortcut read, the sum written), a
//! squeeze-and-excitation Mul C + |output| (the gate read, the product written), a Concat of
//! branches 2·|output| − |charged branch|.
//!
//! A layer writes an operand when the operand is its output or comes from it through pointwise
//! ops alone (BatchNorm, activations: they run in the layer's pass). The charged operand is,
//! among those, the largest; then one that only the join reads (a residual block's last conv,
//! not the shortcut that other layers read too); then the first. A join that no layer writes
//! directly (a Concat of pools) is charged to the layer its first operand comes from through
//! any ops; a join that no layer precedes has no pass to be priced in, and is an error.

use std::cmp::Reverse;
use std::collections::HashMap;

use super::graph::{Dims, Graph, ShapeError};
use super::shape::LayerShape;

/// Sets every layer's `residual` to the traffic of the joins charged to it.
pub(super) fn add_join_traffic(
    g: &Graph,
    dims: &[Dims],
    layer_nodes: &[usize],
    layers: &mut [LayerShape],
) -> Result<(), ShapeError> {
    let consumers = g.consumers();
    let layer_of: HashMap<usize, usize> = (layer_nodes.iter().enumerate())
        .map(|(l, &n)| (n, l))
        .collect();
    // The layer writing node j's output, through pointwise ops.
    let writer = |mut j: usize| loop {
        if let Some(&l) = layer_of.get(&j) {
            return Some(l);
        }
        let n = &g.nodes[j];
        match (n.op.is_pointwise(), n.inputs.first()) {
            (true, Some(&before)) => j = before,
            _ => return None,
        }
    };
    for (i, node) in g.nodes.iter().enumerate() {
        if !node.op.is_join() {
            continue;
        }
        let written = (node.inputs.iter().enumerate())
            .filter_map(|(pos, &o)| writer(o).map(|l| (pos, o, l)))
            .min_by_key(|&(pos, o, _)| (Reverse(dims[o].count()), consumers[o].len() != 1, pos));
        let (charged, layer) = match written {
            Some((pos, _, l)) => (pos, l),
            None => (0, preceding_layer(g, &layer_of, i)?),
        };
        let others: u64 = (node.inputs.iter().enumerate())
            .filter(|&(pos, _)| pos != charged)
            .map(|(_, &o)| dims[o].count() as u64)
            .sum();
        layers[layer].residual += dims[i].count() as u64 + others;
    }
    Ok(())
}

/// The layer join node `i`'s first operand comes from, through any ops (first inputs).
fn preceding_layer(
    g: &Graph,
    layer_of: &HashMap<usize, usize>,
    i: usize,
) -> Result<usize, ShapeError> {
    let mut j = g.nodes[i].inputs[0];
    loop {
        if let Some(&l) = layer_of.get(&j) {
            return Ok(l);
        }
        match g.nodes[j].inputs.first() {
            Some(&before) => j = before,
            None => {
                return Err(ShapeError::Invalid {
                    model: g.name.clone(),
                    node: i,
                    op: g.nodes[i].op.kind(),
                    rule: "joins tensors that no layer computes: its activation traffic is \
                           priced on a conv or linear layer before it, and there is none"
                        .into(),
                })
            }
        }
    }
}
