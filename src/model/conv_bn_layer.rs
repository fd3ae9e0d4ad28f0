//! A conv layer and the BatchNorm after it (with the ReLU or ReLU6 that alone reads the
//! BatchNorm) as one op in FP32 training (`ops::conv_bn_train`): the convolution's output is
//! then no tensor of the graph, and its gradient needs no zero-filled slot. The numbers are
//! those of the layer's op followed by `BatchNorm::train_then`.

use super::bn::ConvBefore;
use super::chain::{bn_fusion, BnFusion};
use super::graph::Op;
use super::net::{Model, ModelError};
use crate::ops::{Activation, ConvKind};
use crate::quant::{fake_quant_weight, LayerQuant};
use candle_core::Tensor;

impl Model {
    /// Layer `li` (reading `h`) with its BatchNorm and that BatchNorm's ReLU or ReLU6, when the
    /// pass normalizes on batch statistics in full precision and the layer is a plain or
    /// depthwise conv whose output only the BatchNorm reads: the nodes it ran (the last one
    /// holds the output) and the output. None for any other layer, which runs as before.
    pub(super) fn conv_bn_layer(
        &self,
        li: usize,
        h: &Tensor,
        full_precision: bool,
        readers: &[Vec<usize>],
    ) -> Result<Option<(Vec<usize>, Tensor)>, ModelError> {
        let chain = &self.chains[li];
        let (Some(k), true) = (chain.bn, full_precision) else {
            return Ok(None);
        };
        let (act, after) = match bn_fusion(&self.graph, readers, k) {
            Some(BnFusion::Relu(j)) => (Activation::Relu, Some(j)),
            Some(BnFusion::Relu6(j)) => (Activation::Relu6, Some(j)),
            None => (Activation::Identity, None),
            Some(BnFusion::Join { .. }) => return Ok(None),
        };
        let Some(p) = self.params[li].as_ref() else {
            return Ok(None);
        };
        let (Some(bn), true) = (&p.bn, readers[chain.node] == [k]) else {
            return Ok(None);
        };
        let op = &self.graph.nodes[chain.node].op;
        let kind = match *op {
            Op::Conv { groups: 1, .. } => ConvKind::Plain,
            Op::Conv { groups, out, .. } if groups == out && p.w.as_tensor().dim(1)? == 1 => {
                ConvKind::Depthwise
            }
            _ => return Ok(None),
        };
        let Op::Conv {
            stride, padding, ..
        } = *op
        else {
            return Ok(None);
        };
        let lq = LayerQuant::full();
        let (xin, None) = self.layer_input(li, op, h, &lq)? else {
            return Ok(None);
        };
        let w = fake_quant_weight(p.w.as_tensor(), lq.bits.w)?;
        let conv = ConvBefore {
            wb: (&w, p.b.as_tensor()),
            kind,
            stride_pad: (stride, padding),
        };
        let y = bn.train_conv(&xin, conv, act)?;
        let nodes = [chain.node, k].into_iter().chain(after).collect();
        Ok(Some((nodes, y)))
    }
}
