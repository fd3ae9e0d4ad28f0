//! A transformer's two activation × activation matmuls as quantizable layers (`[quant]
//! attention`, `Attention::Quantized`): the scores `scale · q_h k_hᵀ` and the mix `a_h v_h`
//! (`tokens.rs`). Each becomes a layer of the policy in graph order (in the zoo's ViT `bN.scores`
//! right after `bN.qkv`, `bN.mix` right before `bN.proj`; in an imported one named after its
//! MatMul node), with its two operands on the layer's (w, a) pair:
//!
//! ```text
//! layer    a bits: first operand              w bits: second operand
//! scores   Q, signed grid                     K, signed grid
//! mix      softmax(scores), unsigned [0, c]   V, signed grid
//! ```
//!
//! Both clips are calibrated like every activation clip; the backward pass is straight-through
//! (the fake-quantizers'), and no Lipschitz term covers these layers: they have no weights. The
//! float network is unchanged, so the FP32 baseline and its checkpoint are the same either way.

use candle_core::Tensor;

use super::chain::Chain;
use super::graph::{Graph, Op, ShapeError};
use super::net::{Model, ModelError};
use super::op::Attention;
use super::shape::LayerKind;
use super::tokens;
use crate::quant::{fake_quant_act, fake_quant_act_signed, LayerQuant, Quantizer};

impl Graph {
    /// The same graph with every attention matmul set to `attention`. Quantizing the attention
    /// of a graph that has none is an error (the option would quantize nothing).
    pub fn with_attention(&self, attention: Attention) -> Result<Graph, ShapeError> {
        let mut g = self.clone();
        let mut found = false;
        for node in &mut g.nodes {
            if let Op::Scores { attention: a, .. } | Op::Mix { attention: a, .. } = &mut node.op {
                *a = attention;
                found = true;
            }
        }
        if !found && attention == Attention::Quantized {
            return Err(ShapeError::NoAttention {
                model: self.name.clone(),
            });
        }
        Ok(g)
    }
}

impl Model {
    /// The same model (the same weights) with its attention matmuls set to `attention`: as
    /// quantizable layers, or back to float ops. An error if there are none to quantize.
    pub fn with_attention(self, attention: Attention) -> Result<Model, ModelError> {
        let graph = self.graph.with_attention(attention)?;
        if graph == self.graph {
            return Ok(self);
        }
        let found = graph.shapes(self.input())?;
        let chains = Chain::plan(&graph, &found.layer_nodes);
        let signed = tokens::signed_inputs(&graph, &found.dims, &found.layer_nodes);
        // The layers with weights keep their order; only the matmuls come and go.
        let mut weighted = self.params.into_iter().flatten();
        let params = (found.layers.iter())
            .map(|s| match s.kind {
                LayerKind::Matmul => None,
                _ => weighted.next(),
            })
            .collect();
        Ok(Model {
            graph,
            dims: found.dims,
            shapes: found.layers,
            chains,
            params,
            signed,
            ..self
        })
    }

    /// Matmul layer `li` (node op `op`) on operands `a` and `b`: each fake-quantized (module
    /// doc), then multiplied as the float op does.
    pub(super) fn matmul_layer(
        &self,
        li: usize,
        op: &Op,
        a: &Tensor,
        b: &Tensor,
        q: Option<&Quantizer>,
    ) -> Result<Tensor, ModelError> {
        let lq = q.and_then(|q| q.layer(li)).unwrap_or_else(LayerQuant::full);
        let a = match self.signed_inputs().get(li).copied().unwrap_or(false) {
            true => fake_quant_act_signed(a, lq.bits.a, lq.clip)?,
            false => fake_quant_act(a, lq.bits.a, lq.clip)?,
        };
        let b = fake_quant_act_signed(b, lq.bits.w, lq.operand_clip)?;
        Ok(match *op {
            Op::Scores { heads, scale, .. } => tokens::scores(&a, &b, heads, scale)?,
            Op::Mix { heads, .. } => tokens::mix(&a, &b, heads)?,
            _ => {
                return Err(ModelError::Layer {
                    layer: self.shapes()[li].name.clone(),
                    what: format!("{} is not an attention matmul", op.kind()),
                })
            }
        })
    }
}

#[cfg(test)]
#[path = "attention_tests.rs"]
mod tests;
