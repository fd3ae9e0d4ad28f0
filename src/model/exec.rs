//! The passes over a model's graph: forward (evaluation, fine-tune), the frozen forward of the
//! attacks, FP32 training with batch statistics, and the layer by layer pass calibration reads;
//! which nodes run as one op is `chain.rs`'s.
//!
//! A conv followed by its BatchNorm, ReLU and 2×2-style max-pool runs as one op where it can:
//! the BN folded into the weights, the ReLU and pool inside the kernel (`ops`; `layer.rs` runs
//! a layer). Training with batch statistics cannot fold the BN. There a conv that only its
//! BatchNorm reads runs with it (and the ReLU or ReLU6 after it) as one op; the other
//! BatchNorms run as graph nodes, each with the ReLU, ReLU6 or residual join after it as one op
//! (`chain::bn_fusion`). A residual Add and the ReLU after it run as one op in every pass.

use candle_core::Tensor;

use super::chain::{bn_fusion, relu_after_add, BnFusion};
use super::graph::{Dims, Op};
use super::net::{Model, ModelError};
use super::tokens;
use crate::ops;
use crate::quant::Quantizer;

/// Whether a forward pass lets gradients reach the parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weights {
    /// Parameters track gradients (training).
    Train,
    /// Parameters are constants of the graph: a backward pass computes input gradients only,
    /// which is all an attack needs (no dW, db or weight-quantizer gradients).
    Frozen,
}

/// Per-layer tensors recorded by `forward_trace`.
pub struct Trace {
    pub logits: Tensor,
    /// The input of every quantizable layer, before its activation quantizer (a matmul's
    /// first operand).
    pub inputs: Vec<Tensor>,
    /// A matmul layer's second operand, before its quantizer (None for conv and linear).
    pub operands: Vec<Option<Tensor>>,
    /// The output of every quantizable layer, after its BatchNorm and ReLU if it has them
    /// (the logits for the last).
    pub outputs: Vec<Tensor>,
}

/// How a pass runs the graph.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pass {
    pub weights: Weights,
    /// BatchNorm by batch statistics (FP32 training) instead of folded.
    pub batch_stats: bool,
    /// BatchNorm folded into its conv (else applied after it, with the running statistics:
    /// the reference the fold is tested against).
    pub fold_bn: bool,
    /// A conv, its ReLU and a max-pool after it as one op (not when tracing: the trace wants
    /// the conv's own output).
    pub fuse_pool: bool,
}

/// Sees each layer's index, inputs (a matmul's two operands) and fused output.
pub type LayerVisitor<'a> = dyn FnMut(usize, &[Tensor], &Tensor) -> Result<(), ModelError> + 'a;

impl Model {
    /// Logits for a batch (N, C, H, W); `q` = None runs in full precision.
    pub fn forward(&self, x: &Tensor, q: Option<&Quantizer>) -> Result<Tensor, ModelError> {
        self.run(x, q, Self::pass(Weights::Train), &mut |_, _, _| Ok(()))
    }

    /// `forward` with the parameters frozen (`Weights::Frozen`): the same logits, and a backward
    /// pass from them computes only the input's gradient. On an input that records no gradient
    /// the pass records nothing, so it holds only the activations still to be read: what
    /// evaluation runs.
    pub fn forward_frozen(&self, x: &Tensor, q: Option<&Quantizer>) -> Result<Tensor, ModelError> {
        self.run(x, q, Self::pass(Weights::Frozen), &mut |_, _, _| Ok(()))
    }

    /// FP32 training's forward: BatchNorm layers normalize by the batch's statistics and update
    /// their running ones (the same as `forward` for a model without BatchNorm).
    pub fn forward_train(&self, x: &Tensor) -> Result<Tensor, ModelError> {
        let pass = Pass {
            batch_stats: true,
            ..Self::pass(Weights::Train)
        };
        self.run(x, None, pass, &mut |_, _, _| Ok(()))
    }

    /// Like `forward`, also recording every quantizable layer's input and output (no gradient
    /// reaches the parameters).
    pub fn forward_trace(&self, x: &Tensor, q: Option<&Quantizer>) -> Result<Trace, ModelError> {
        let (mut inputs, mut operands, mut outputs) = (Vec::new(), Vec::new(), Vec::new());
        let logits = self.forward_layers(x, q, &mut |_, i, o| {
            inputs.extend(i.first().cloned());
            operands.push(i.get(1).cloned());
            outputs.push(o.clone());
            Ok(())
        })?;
        Ok(Trace {
            logits,
            inputs,
            operands,
            outputs,
        })
    }

    /// `forward_frozen`, showing `visit` each quantizable layer in order as it runs: its index,
    /// its inputs (before its activation quantizer; a matmul's two operands) and its output
    /// (after its BatchNorm and ReLU, unpooled). What `visit` does not keep is let go as the pass
    /// moves on, so a visitor that reduces each layer as it comes (calibration) holds one
    /// layer's tensors at a time, where `forward_trace` holds every layer's.
    pub fn forward_layers(
        &self,
        x: &Tensor,
        q: Option<&Quantizer>,
        visit: &mut LayerVisitor,
    ) -> Result<Tensor, ModelError> {
        let pass = Pass {
            fuse_pool: false,
            ..Self::pass(Weights::Frozen)
        };
        self.run(x, q, pass, visit)
    }

    fn pass(weights: Weights) -> Pass {
        Pass {
            weights,
            batch_stats: false,
            fold_bn: true,
            fuse_pool: true,
        }
    }

    /// The graph's nodes in order; each layer's op covers the nodes its chain fuses, an Add
    /// that only a ReLU reads runs with it, and the hook sees each layer's input and fused
    /// output.
    fn run(
        &self,
        x: &Tensor,
        q: Option<&Quantizer>,
        pass: Pass,
        hook: &mut LayerVisitor,
    ) -> Result<Tensor, ModelError> {
        let nodes = &self.graph.nodes;
        let mut vals: Vec<Option<Tensor>> = vec![None; nodes.len()];
        vals[0] = Some(x.clone());
        // The last node that reads each value: past it the pass lets the value go, so a pass
        // that records no gradient (frozen weights, an input without one) holds only the
        // activations still to be read, not every layer's of the batch at once.
        let readers = self.graph.consumers();
        let last_read: Vec<usize> = readers.iter().map(|r| r.last().map_or(0, |&i| i)).collect();
        let mut done = vec![false; nodes.len()];
        let mut li = 0;
        // With batch statistics a BatchNorm runs with the ReLU or the join after it.
        let fusion = |i: usize| match pass.batch_stats {
            true => bn_fusion(&self.graph, &readers, i),
            false => None,
        };
        let get = |vals: &[Option<Tensor>], j: usize| {
            vals[j].clone().ok_or_else(|| {
                candle_core::Error::Msg(format!("{}: node {j} has no value", self.graph.name))
            })
        };
        for i in 1..nodes.len() {
            if done[i] {
                continue;
            }
            let node = &nodes[i];
            let (at, y) = if node.op.is_matmul_layer() {
                let (a, b) = (get(&vals, node.inputs[0])?, get(&vals, node.inputs[1])?);
                let y = self.matmul_layer(li, &node.op, &a, &b, q)?;
                hook(li, &[a, b], &y)?;
                li += 1;
                (i, y)
            } else if node.op.is_layer() {
                let h = get(&vals, node.inputs[0])?;
                // In FP32 training a conv runs with its BatchNorm where it can.
                let with_bn = match pass.batch_stats && q.is_none() {
                    true => self.conv_bn_layer(li, &h, &readers)?,
                    false => None,
                };
                let (ran, y) = match with_bn {
                    Some(ran_y) => ran_y,
                    None => {
                        let chain = &self.chains[li];
                        let fused = chain.fused(pass.batch_stats || !pass.fold_bn, pass.fuse_pool);
                        let y = self.layer(li, &h, q, pass, &fused)?;
                        (fused, y)
                    }
                };
                hook(li, std::slice::from_ref(&h), &y)?;
                li += 1;
                ran.iter().for_each(|&j| done[j] = true);
                (ran[ran.len() - 1], y)
            } else if let Some(f) = fusion(i) {
                match f {
                    BnFusion::Relu(j) | BnFusion::Relu6(j) => {
                        let h = get(&vals, node.inputs[0])?;
                        done[j] = true;
                        let then = match f {
                            BnFusion::Relu6(_) => ops::BnThen::Relu6,
                            _ => ops::BnThen::Relu,
                        };
                        (j, self.bn_train(i, &h, then)?)
                    }
                    // Its input stays alive until the join runs it (its last reader is this
                    // node, which frees nothing here).
                    BnFusion::Join { .. } => continue,
                }
            } else if let Some(j) = relu_after_add(&self.graph, &readers, i) {
                done[j] = true;
                let bn = (node.inputs.iter().copied())
                    .find(|&k| matches!(fusion(k), Some(BnFusion::Join { add, .. }) if add == i));
                match bn {
                    Some(k) => {
                        let other = node.inputs.iter().copied().find(|&o| o != k).unwrap_or(k);
                        let (h, r) = (get(&vals, nodes[k].inputs[0])?, get(&vals, other)?);
                        let y = self.bn_train(k, &h, ops::BnThen::AddRelu(&r))?;
                        for &j in &nodes[k].inputs {
                            if last_read[j] == k {
                                vals[j] = None;
                            }
                        }
                        (j, y)
                    }
                    None => {
                        let (a, b) = (get(&vals, node.inputs[0])?, get(&vals, node.inputs[1])?);
                        (j, ops::add_relu(&a, &b)?)
                    }
                }
            } else {
                let inputs = (node.inputs.iter())
                    .map(|&j| get(&vals, j))
                    .collect::<candle_core::Result<Vec<_>>>()?;
                (i, self.node_op(i, &node.op, &inputs, pass)?)
            };
            vals[at] = Some(y);
            for &j in &node.inputs {
                if last_read[j] == i {
                    vals[j] = None;
                }
            }
        }
        Ok(get(&vals, nodes.len() - 1)?)
    }

    /// A node outside any layer's chain, on its inputs' values.
    fn node_op(
        &self,
        i: usize,
        op: &Op,
        inputs: &[Tensor],
        pass: Pass,
    ) -> Result<Tensor, ModelError> {
        let name = &self.graph.name;
        let (h, other) = match inputs {
            [h] => (h, None),
            [h, o, ..] => (h, Some(o)),
            [] => return Err(unfused(name, i, "an op without inputs")),
        };
        Ok(match *op {
            Op::BatchNorm => {
                // Reached only with batch statistics; its layer is the conv before it.
                if pass.batch_stats {
                    return self.bn_train(i, h, ops::BnThen::Nothing);
                }
                let li = self.chains.iter().position(|c| c.bn == Some(i));
                match li.and_then(|l| self.params[l].as_ref()?.bn.as_ref()) {
                    Some(bn) => bn.eval(h, pass.weights == Weights::Frozen)?,
                    None => return Err(unfused(name, i, "batchnorm")),
                }
            }
            Op::Relu => h.relu()?,
            Op::Relu6 => ops::relu6(h)?,
            Op::Sigmoid => candle_nn::ops::sigmoid(h)?,
            Op::HardSigmoid => hard_sigmoid(h)?,
            Op::HardSwish => (h * hard_sigmoid(h)?)?,
            Op::Silu => h.silu()?,
            Op::Affine {
                ref scale,
                ref shift,
            } => {
                let per = |v: &[f32]| Tensor::from_slice(v, (1, v.len(), 1, 1), h.device());
                h.broadcast_mul(&per(scale)?)?.broadcast_add(&per(shift)?)?
            }
            Op::MaxPool {
                k,
                stride,
                pad: 0,
                ceil: false,
            } if k == stride => ops::max_pool2d(h, k)?,
            // Overlapping, padded or ceil-mode windows: the output size is the graph's.
            Op::MaxPool { k, stride, pad, .. } => match self.dims.get(i) {
                Some(&Dims::Map(_, oh, ow)) => {
                    let win = ops::Window {
                        k,
                        stride,
                        pad,
                        out: (oh, ow),
                    };
                    ops::max_pool2d_window(h, win)?
                }
                _ => return Err(unfused(name, i, "maxpool without a feature map")),
            },
            Op::AvgPool { k, stride } => h.avg_pool2d_with_stride(k, stride)?,
            Op::GlobalAvgPool => h.mean_keepdim(3)?.mean_keepdim(2)?,
            Op::Add => match other {
                Some(o) => (h + o)?,
                None => return Err(unfused(name, i, "add")),
            },
            Op::Mul => match other {
                Some(o) => h.broadcast_mul(o)?,
                None => return Err(unfused(name, i, "mul")),
            },
            Op::Concat => Tensor::cat(inputs, 1)?,
            // A sequence's features are its last axis.
            Op::Channels { start, len } => {
                h.narrow(if h.rank() == 3 { 2 } else { 1 }, start, len)?
            }
            Op::ChannelShuffle { groups } => {
                let (n, c, hh, ww) = h.dims4()?;
                h.reshape((n, groups, c / groups, hh, ww))?
                    .transpose(1, 2)?
                    .contiguous()?
                    .reshape((n, c, hh, ww))?
            }
            Op::Flatten => h.flatten_from(1)?,
            Op::ShortcutA { stride, out } => shortcut_a(h, stride, out)?,
            Op::Tokens => tokens::tokens(h)?,
            Op::ClassToken { .. } => tokens::class_token(h, &self.node_param(i, "weight", pass)?)?,
            Op::PosEmbed { .. } => tokens::pos_embed(h, &self.node_param(i, "weight", pass)?)?,
            Op::LayerNorm { eps, .. } => {
                let (g, b) = (
                    self.node_param(i, "weight", pass)?,
                    self.node_param(i, "bias", pass)?,
                );
                tokens::layer_norm(h, &g, &b, eps)?
            }
            Op::Gelu => h.gelu_erf()?,
            Op::Softmax => tokens::softmax(h)?,
            Op::Scores { heads, scale, .. } => match other {
                Some(k) => tokens::scores(h, k, heads, scale)?,
                None => return Err(unfused(name, i, "scores")),
            },
            Op::Mix { heads, .. } => match other {
                Some(v) => tokens::mix(h, v, heads)?,
                None => return Err(unfused(name, i, "mix")),
            },
            Op::Token { index } => tokens::token(h, index)?,
            Op::Input | Op::Conv { .. } | Op::Linear { .. } => {
                return Err(unfused(name, i, "layer"))
            }
        })
    }

    /// BatchNorm node `i` on the batch's statistics, then `then`, in one op.
    fn bn_train(&self, i: usize, h: &Tensor, then: ops::BnThen) -> Result<Tensor, ModelError> {
        let li = self.chains.iter().position(|c| c.bn == Some(i));
        match li.and_then(|l| self.params[l].as_ref()?.bn.as_ref()) {
            Some(bn) => Ok(bn.train_then(h, then)?),
            None => Err(unfused(&self.graph.name, i, "batchnorm")),
        }
    }

    /// The parameter `suffix` of node `i`'s op (detached in a frozen pass).
    fn node_param(&self, i: usize, suffix: &str, pass: Pass) -> Result<Tensor, ModelError> {
        let frozen = pass.weights == Weights::Frozen;
        (self.node_params.iter().find(|p| p.node == i))
            .and_then(|p| p.get(suffix, frozen))
            .ok_or_else(|| unfused(&self.graph.name, i, "an op without its parameters"))
    }
}

pub(super) fn unfused(model: &str, node: usize, what: &str) -> ModelError {
    ModelError::Tensor(candle_core::Error::Msg(format!(
        "{model}: node {node} ({what}) reached outside its layer's fused op"
    )))
}

/// PyTorch's hardsigmoid, relu6(x + 3) / 6.
fn hard_sigmoid(h: &Tensor) -> candle_core::Result<Tensor> {
    ops::relu6(&(h + 3.0)?)? / 6.0
}

/// He et al.'s option-A shortcut: every `stride`-th row and column, channels zero-padded to
/// `out`, half before and half after.
fn shortcut_a(h: &Tensor, stride: usize, out: usize) -> candle_core::Result<Tensor> {
    let (_, c, hh, ww) = h.dims4()?;
    let pick = |n: usize| {
        let idx: Vec<u32> = (0..n).step_by(stride).map(|i| i as u32).collect();
        Tensor::new(idx.as_slice(), h.device())
    };
    let sub = match stride {
        1 => h.clone(),
        _ => h.index_select(&pick(hh)?, 2)?.index_select(&pick(ww)?, 3)?,
    };
    let before = (out - c) / 2;
    sub.pad_with_zeros(1, before, out - c - before)
}

#[cfg(test)]
#[path = "exec_tests.rs"]
mod tests;
