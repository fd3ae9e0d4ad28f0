//! A rewrite of a QDQ export that keeps its arithmetic exact and lets a runtime fuse a layer
//! with the quantizer of its output into one integer kernel (ONNX Runtime's QLinearConv and
//! QGemm need the QuantizeLinear right after the layer or its ReLU).
//!
//! bitsearch quantizes a layer's *input*, so between a convolution and the next layer's
//! quantizer there may be a MaxPool or a Flatten. Both commute with the quantizer exactly: a
//! quantizer is monotone non-decreasing, so the max of quantized values is the quantized max,
//! and a Flatten moves no value. The rewrite puts a copy of the quantizer before such a chain
//! and keeps the original after it, where it is the identity (the chain's values are already
//! on its grid), so the output is bit for bit the same. Only a bare 8-bit quantizer is copied
//! (one ORT can fuse: no clamp in front of it, an 8-bit container); the runtime then sees
//! layer → Q → DQ → MaxPool → Q → DQ → layer, the pattern PyTorch's quantized models have.

use std::collections::HashMap;

use super::super::proto::tensor_proto::DataType;
use super::super::proto::{NodeProto, TensorProto};

/// Ops a quantizer commutes with exactly (see the module doc).
const COMMUTING: [&str; 2] = ["MaxPool", "Flatten"];

fn op(n: &NodeProto) -> &str {
    n.op_type.as_deref().unwrap_or("")
}

/// `nodes` (in topological order) with a copy of each activation quantizer that follows a
/// MaxPool/Flatten chain placed before the chain.
pub(super) fn hoist_quantizers(nodes: Vec<NodeProto>, inits: &[TensorProto]) -> Vec<NodeProto> {
    let eight_bit: HashMap<&str, bool> = (inits.iter())
        .map(|t| {
            let kind = t.data_type.unwrap_or_default();
            let byte = [DataType::Uint8 as i32, DataType::Int8 as i32].contains(&kind);
            (t.name.as_deref().unwrap_or(""), byte)
        })
        .collect();
    let producer: HashMap<&str, usize> = (nodes.iter().enumerate())
        .flat_map(|(i, n)| n.output.iter().map(move |o| (o.as_str(), i)))
        .collect();
    let mut consumers: HashMap<&str, usize> = HashMap::new();
    for input in nodes.iter().flat_map(|n| n.input.iter()) {
        *consumers.entry(input.as_str()).or_default() += 1;
    }
    // (index of the chain's first node, index of the quantizer's QuantizeLinear)
    let mut inserts: Vec<(usize, usize)> = Vec::new();
    for (q, node) in nodes.iter().enumerate() {
        if op(node) != "QuantizeLinear" {
            continue;
        }
        let Some(dq) = nodes.get(q + 1).filter(|d| op(d) == "DequantizeLinear") else {
            continue;
        };
        if dq.input.first() != node.output.first() {
            continue;
        }
        // Only a bare 8-bit quantizer: one with a clamp (a grid narrower than its container)
        // is not fused by ORT, and ORT runs a MaxPool on the codes of a 4-bit one, which
        // it has no kernel for.
        let zero = node.input.get(2).and_then(|z| eight_bit.get(z.as_str()));
        if zero != Some(&true) {
            continue;
        }
        // The chain of single-consumer MaxPool/Flatten nodes that feeds it.
        let mut first = None;
        let mut x = node.input.first().map(String::as_str);
        while let Some(&p) = x.and_then(|x| producer.get(x)) {
            let single = nodes[p]
                .output
                .first()
                .map(|o| consumers.get(o.as_str()) == Some(&1));
            if !COMMUTING.contains(&op(&nodes[p])) || single != Some(true) {
                break;
            }
            first = Some(p);
            x = nodes[p].input.first().map(String::as_str);
        }
        if let Some(first) = first {
            inserts.push((first, q));
        }
    }
    let mut out = nodes.clone();
    // From the last chain back: each copy goes in at its chain's first node, which the inserts
    // after it (all at later indices) have not moved.
    inserts.sort_by_key(|&(first, _)| std::cmp::Reverse(first));
    for (first, q) in inserts {
        let pre = |name: &str| format!("{name}_pre");
        let (mut quant, mut dequant) = (nodes[q].clone(), nodes[q + 1].clone());
        quant.name = quant.name.as_deref().map(pre);
        quant.input[0] = nodes[first].input[0].clone();
        quant.output[0] = pre(&quant.output[0]);
        dequant.name = dequant.name.as_deref().map(pre);
        dequant.input[0] = quant.output[0].clone();
        dequant.output[0] = pre(&dequant.output[0]);
        out[first].input[0] = dequant.output[0].clone();
        out.splice(first..first, [quant, dequant]);
    }
    out
}
