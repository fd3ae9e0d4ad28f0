//! One quantizable layer's op: its input as the op takes it, its weight folded with the BN and
//! fake-quantized, then the conv (plain, depthwise or grouped) or the linear layer, with the
//! ReLU and max-pool after it fused where the chain holds them.
//!
//! In FP32 training a conv and the BatchNorm after it (with the ReLU or ReLU6 that alone reads
//! the BatchNorm) run as one op (`ops::conv_bn_train`): the convolution's output is then no
//! tensor of the graph, and its gradient needs no zero-filled slot. The numbers are those of
//! the layer's op followed by `BatchNorm::train_then`.

use super::bn::ConvBefore;
use super::chain::{bn_fusion, BnFusion};
use super::exec::{unfused, Pass, Weights};
use super::graph::Op;
use super::net::{Model, ModelError};
use crate::ops;
use crate::quant::{
    fake_quant_act, fake_quant_act_signed, fake_quant_weight, ActGrid, LayerQuant, Quantizer,
};
use candle_core::Tensor;

impl Model {
    /// Layer `li` (reading `h`) with its BatchNorm and that BatchNorm's ReLU or ReLU6, in a
    /// pass that normalizes on batch statistics in full precision (the caller's condition),
    /// when the layer is a plain or depthwise conv whose output only the BatchNorm reads: the
    /// nodes it ran (the last one holds the output) and the output. None for any other layer,
    /// which `layer` runs.
    pub(super) fn conv_bn_layer(
        &self,
        li: usize,
        h: &Tensor,
        readers: &[Vec<usize>],
    ) -> Result<Option<(Vec<usize>, Tensor)>, ModelError> {
        let chain = &self.chains[li];
        let Some(k) = chain.bn else {
            return Ok(None);
        };
        let (act, after) = match bn_fusion(&self.graph, readers, k) {
            Some(BnFusion::Relu(j)) => (ops::Activation::Relu, Some(j)),
            Some(BnFusion::Relu6(j)) => (ops::Activation::Relu6, Some(j)),
            None => (ops::Activation::Identity, None),
            Some(BnFusion::Join { .. }) => return Ok(None),
        };
        let Some(p) = self.params[li].as_ref() else {
            return Ok(None);
        };
        let (Some(bn), true) = (&p.bn, readers[chain.node] == [k]) else {
            return Ok(None);
        };
        let op = &self.graph.nodes[chain.node].op;
        let (kind, stride, padding) = match *op {
            Op::Conv {
                groups: 1,
                stride,
                padding,
                ..
            } => (ops::ConvKind::Plain, stride, padding),
            Op::Conv {
                groups,
                out,
                stride,
                padding,
                ..
            } if is_depthwise(groups, out, p.w.as_tensor())? => {
                (ops::ConvKind::Depthwise, stride, padding)
            }
            _ => return Ok(None),
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

    /// One quantizable layer and the nodes `fused` after it: fold the BN, fake-quantize input
    /// and weight, conv or matmul, bias, ReLU, pool.
    pub(super) fn layer(
        &self,
        li: usize,
        h: &Tensor,
        q: Option<&Quantizer>,
        pass: Pass,
        fused: &[usize],
    ) -> Result<Tensor, ModelError> {
        let chain = &self.chains[li];
        let p = (self.params[li].as_ref())
            .ok_or_else(|| unfused(&self.graph.name, chain.node, "a layer without weights"))?;
        let has = |j: Option<usize>| j.is_some_and(|j| fused.contains(&j));
        let (relu, pool) = (has(chain.relu), chain.pool.filter(|&(j, _)| has(Some(j))));
        let lq = q.and_then(|q| q.layer(li)).unwrap_or_else(LayerQuant::full);
        let frozen = pass.weights == Weights::Frozen;
        let (w, b) = match frozen {
            true => (p.w.as_tensor().detach(), p.b.as_tensor().detach()),
            false => (p.w.as_tensor().clone(), p.b.as_tensor().clone()),
        };
        let (w, b) = match (&p.bn, has(chain.bn)) {
            (Some(bn), true) => bn.fold(&w, &b, frozen)?,
            _ => (w, b),
        };
        let w = fake_quant_weight(&w, lq.bits.w)?;
        let op = &self.graph.nodes[chain.node].op;
        let (xin, act) = self.layer_input(li, op, h, &lq)?;
        Ok(match *op {
            Op::Conv {
                stride,
                padding,
                groups: 1,
                ..
            } => match pool {
                Some((_, k)) => ops::conv2d_relu_pool(&xin, act, &w, &b, (stride, padding), k)?,
                None => ops::conv2d_quantized(&xin, act, &w, Some(&b), stride, padding, relu)?,
            },
            // Depthwise: its own op (one filter per channel).
            Op::Conv {
                stride,
                padding,
                groups,
                out,
                ..
            } if is_depthwise(groups, out, &w)? => {
                let activation = match relu {
                    true => ops::Activation::Relu,
                    false => ops::Activation::Identity,
                };
                ops::depthwise_conv2d(&xin, act, &w, &b, (stride, padding), activation)?
            }
            // Other grouped convs: each group is its own conv on the fast op, the outputs
            // concatenated.
            Op::Conv {
                stride,
                padding,
                groups,
                ..
            } => {
                let (xs, ws, bs) = (
                    xin.chunk(groups, 1)?,
                    w.chunk(groups, 0)?,
                    b.chunk(groups, 0)?,
                );
                let parts = (xs.iter().zip(&ws).zip(&bs))
                    .map(|((x, w), b)| {
                        ops::conv2d_quantized(x, act, w, Some(b), stride, padding, relu)
                    })
                    .collect::<candle_core::Result<Vec<_>>>()?;
                Tensor::cat(&parts, 1)?
            }
            // Bias and ReLU fused too; the weight gradient only when the weight tracks one. On a
            // sequence every token alike: (N, T, D) as (N·T, D) rows.
            _ => match xin.dims() {
                &[n, t, d] => ops::linear(&xin.reshape((n * t, d))?, &w, Some(&b), relu)?
                    .reshape((n, t, ()))?,
                _ => ops::linear(&xin, &w, Some(&b), relu)?,
            },
        })
    }

    /// Layer `li`'s input as its op takes it, and the quantizer the op applies itself: a conv
    /// past the first layer takes its input's quantizer into the kernel (src/ops); elsewhere
    /// the input is fake-quantized here, and the first layer's then standardized.
    fn layer_input(
        &self,
        li: usize,
        op: &Op,
        h: &Tensor,
        lq: &LayerQuant,
    ) -> Result<(Tensor, Option<ActGrid>), ModelError> {
        let signed = self.signed_inputs().get(li).copied().unwrap_or(false);
        Ok(match (op, li) {
            // The kernels apply integer grids only; a minifloat input is rounded first, below.
            (Op::Conv { .. }, 1..) if !signed && lq.bits.a.is_plain() => {
                let act = (lq.bits.a.int_bits()).map(|bits| ActGrid {
                    bits,
                    clip: lq.clip,
                });
                (h.clone(), act)
            }
            _ => {
                let xq = match signed {
                    true => fake_quant_act_signed(h, lq.bits.a, lq.clip)?,
                    false => fake_quant_act(h, lq.bits.a, lq.clip)?,
                };
                (if li == 0 { self.standardize(&xq)? } else { xq }, None)
            }
        })
    }
}

/// Whether a conv of `groups` groups and `out` channels with weight `w` is depthwise: one
/// filter of one input channel per channel (the depthwise op's case).
pub(super) fn is_depthwise(groups: usize, out: usize, w: &Tensor) -> candle_core::Result<bool> {
    Ok(groups == out && w.dim(1)? == 1)
}
