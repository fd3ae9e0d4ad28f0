//! `Model`: a network from the zoo (a `Graph`) with its parameters. Its safetensors
//! checkpoints are `checkpoint.rs`'s, the passes that run it `exec.rs`'s (one layer's op
//! `layer.rs`'s).
//!
//! A quantizable layer computes conv: `conv(q_a(x), q_w(W)) + b`, linear: `q_a(x) @ q_w(W)ᵀ +
//! b`, where `W` and `b` have the layer's BatchNorm folded in (`bn.rs`) if it has one; an
//! attention matmul, `q_a(x) · q_w(y)` on two activations (`attention.rs`), has no parameters. Ops
//! with parameters that are not quantized layers (LayerNorm, class token, position embedding)
//! keep them in `node_params.rs`.

use std::path::PathBuf;

use candle_core::{Device, Tensor, Var};
use rand::{Rng, SeedableRng};

use super::arch::Arch;
use super::bn::BatchNorm;
use super::chain::Chain;
use super::graph::{Dims, Graph, ShapeError};
use super::node_params::{self, NodeParams};
use super::shape::{LayerKind, LayerShape};
use crate::data::InputNorm;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Shape(#[from] ShapeError),
    #[error("tensor error: {0}")]
    Tensor(#[from] candle_core::Error),
    #[error("{}: cannot read checkpoint: {source}", path.display())]
    Read {
        path: PathBuf,
        source: candle_core::Error,
    },
    #[error("{}: cannot write checkpoint: {source}", path.display())]
    Write {
        path: PathBuf,
        source: candle_core::Error,
    },
    #[error("layer {layer}: {what}")]
    Layer { layer: String, what: String },
    #[error(transparent)]
    Onnx(#[from] Box<super::onnx::OnnxError>),
    #[error("{}: the model takes {}x{}x{} images and gives {} classes; the data has {}x{}x{} and {}", path.display(), model.0.0, model.0.1, model.0.2, model.1, data.0.0, data.0.1, data.0.2, data.1)]
    DataMismatch {
        path: PathBuf,
        model: ((usize, usize, usize), usize),
        data: ((usize, usize, usize), usize),
    },
    #[error("{}: `model.input_mean` and `model.input_std` need one value per input channel ({channels}), got {mean} and {std}", path.display())]
    NormChannels {
        path: PathBuf,
        channels: usize,
        mean: usize,
        std: usize,
    },
    #[error("{}: checkpoint has no tensor \"{name}\"", path.display())]
    MissingTensor { path: PathBuf, name: String },
    #[error("{}: tensor \"{name}\" has shape {got:?}, the model needs {expected:?}", path.display())]
    WrongShape {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
        got: Vec<usize>,
    },
}

/// One quantizable layer's weights as a file gives them (`onnx::import`): the weight
/// (row-major, `w_dims` = (out, in) or (out, in/groups, k, k)), the bias, and a BatchNorm.
#[derive(Debug, Clone)]
pub struct LayerWeights {
    pub w: Vec<f32>,
    pub w_dims: Vec<usize>,
    pub b: Vec<f32>,
    pub bn: Option<BnWeights>,
}

/// A BatchNorm's γ, β and running statistics (variance for bitsearch's ε = 1e-5).
#[derive(Debug, Clone)]
pub struct BnWeights {
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
    pub mean: Vec<f32>,
    pub var: Vec<f32>,
}

/// The weight (out, in[, k, k]) and bias (out) of one quantizable layer, and its BatchNorm.
#[derive(Debug)]
pub(super) struct LayerParams {
    pub w: Var,
    pub b: Var,
    pub bn: Option<BatchNorm>,
}

impl LayerParams {
    fn deep_clone(&self) -> candle_core::Result<LayerParams> {
        Ok(LayerParams {
            w: Var::from_tensor(&self.w.as_tensor().copy()?)?,
            b: Var::from_tensor(&self.b.as_tensor().copy()?)?,
            bn: self.bn.as_ref().map(BatchNorm::deep_clone).transpose()?,
        })
    }
}

#[derive(Debug)]
pub struct Model {
    pub(super) norm: InputNorm,
    pub(super) input: (usize, usize, usize),
    pub(super) classes: usize,
    pub(super) graph: Graph,
    /// Every node's output per example (the graph's shape inference).
    pub(super) dims: Vec<Dims>,
    pub(super) shapes: Vec<LayerShape>,
    /// What each layer's node fuses with, in layer order.
    pub(super) chains: Vec<Chain>,
    /// Per layer, its weights: None for a layer that has none (an attention matmul).
    pub(super) params: Vec<Option<LayerParams>>,
    /// The parameters of the ops that are not layers, by node.
    pub(super) node_params: Vec<NodeParams>,
    /// Per layer: its input is signed (`tokens::signed_inputs`), so its activation grid is.
    pub(super) signed: Vec<bool>,
}

impl Model {
    /// A freshly initialized model: PyTorch's default init, U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    /// for weights and biases, drawn from a seeded generator so runs repeat exactly.
    pub fn new(
        arch: Arch,
        input: (usize, usize, usize),
        classes: usize,
        seed: u64,
    ) -> Result<Self, ModelError> {
        Self::from_graph(arch.graph(input, classes), input, classes, seed)
    }

    /// A freshly initialized model of any graph (as `new`).
    pub fn from_graph(
        graph: Graph,
        input: (usize, usize, usize),
        classes: usize,
        seed: u64,
    ) -> Result<Self, ModelError> {
        let found = graph.shapes(input)?;
        let chains = Chain::plan(&graph, &found.layer_nodes);
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut params = Vec::with_capacity(found.layers.len());
        for (s, chain) in found.layers.iter().zip(&chains) {
            if s.kind == LayerKind::Matmul {
                params.push(None);
                continue;
            }
            let bound = init_bound(s)?;
            let mut draw = |n: usize| -> Vec<f32> {
                (0..n).map(|_| rng.random_range(-bound..bound)).collect()
            };
            let w = Tensor::from_vec(draw(s.weight_count()), weight_dims(s), &Device::Cpu)?;
            let b = Tensor::from_vec(draw(s.out_ch), s.out_ch, &Device::Cpu)?;
            params.push(Some(LayerParams {
                w: Var::from_tensor(&w)?,
                b: Var::from_tensor(&b)?,
                bn: chain.bn.map(|_| BatchNorm::new(s.out_ch)).transpose()?,
            }));
        }
        let norm = InputNorm {
            mean: vec![0.0; input.0],
            std: vec![1.0; input.0],
        };
        let node_params = node_params::init(&graph, &found.dims, seed)?;
        let signed = super::tokens::signed_inputs(&graph, &found.dims, &found.layer_nodes);
        Ok(Model {
            norm,
            input,
            classes,
            graph,
            dims: found.dims,
            shapes: found.layers,
            chains,
            params,
            node_params,
            signed,
        })
    }

    /// The same model with the given input standardization (one mean and std per channel). It
    /// runs after the first layer's activation quantizer, so the device still sees the [0,1]
    /// image at `a` bits and the affine step folds into the first layer.
    pub fn with_input_norm(mut self, norm: InputNorm) -> Self {
        self.norm = norm;
        self
    }

    pub fn input_norm(&self) -> &InputNorm {
        &self.norm
    }

    /// `(x − mean) / std` per channel, for x shaped (N, C, H, W) or flattened (N, C·H·W).
    pub(super) fn standardize(&self, x: &Tensor) -> Result<Tensor, ModelError> {
        let (c, h, w) = self.input;
        let per = |v: &[f32]| -> Result<Tensor, ModelError> {
            let full: Vec<f32> = v
                .iter()
                .flat_map(|&m| std::iter::repeat_n(m, h * w))
                .collect();
            let t = Tensor::from_vec(full, (1, c, h, w), x.device())?;
            Ok(if x.rank() == 2 {
                t.reshape((1, c * h * w))?
            } else {
                t
            })
        };
        Ok(x.broadcast_sub(&per(&self.norm.mean)?)?
            .broadcast_div(&per(&self.norm.std)?)?)
    }

    /// The network's name: the zoo architecture's, or the imported file's stem.
    pub fn name(&self) -> &str {
        &self.graph.name
    }

    /// The image shape the model takes: (channels, height, width).
    pub fn input(&self) -> (usize, usize, usize) {
        self.input
    }

    /// Its output classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The model an ONNX file describes, with its weights.
    pub fn from_import(imported: super::onnx::Imported) -> Result<Self, ModelError> {
        let super::onnx::Imported {
            graph,
            input,
            classes,
            layers,
            node_params,
        } = imported;
        let mut model = Self::from_graph(graph, input, classes, 0)?;
        for (li, w) in layers.into_iter().enumerate() {
            model.set_layer(li, w)?;
        }
        for (node, tensors) in node_params {
            for (suffix, values) in tensors {
                model.set_node_param(node, suffix, values)?;
            }
        }
        Ok(model)
    }

    /// Replaces layer `li`'s weights (their shapes must be the layer's).
    pub fn set_layer(&mut self, li: usize, w: LayerWeights) -> Result<(), ModelError> {
        let dev = &Device::Cpu;
        let name = self.shapes[li].name.clone();
        let p = self.params[li].as_mut().ok_or_else(|| no_weights(&name))?;
        let mismatch = |what: &str, expected: &[usize], got: &[usize]| ModelError::Layer {
            layer: name.clone(),
            what: format!("{what} has shape {got:?}, the layer needs {expected:?}"),
        };
        if p.w.dims() != w.w_dims.as_slice() {
            return Err(mismatch("weight", p.w.dims(), &w.w_dims));
        }
        if p.b.dims() != [w.b.len()] {
            return Err(mismatch("bias", p.b.dims(), &[w.b.len()]));
        }
        p.w = Var::from_tensor(&Tensor::from_vec(w.w, w.w_dims, dev)?)?;
        p.b = Var::from_tensor(&Tensor::from_vec(w.b.clone(), w.b.len(), dev)?)?;
        match (&mut p.bn, w.bn) {
            (Some(bn), Some(src)) => {
                let n = src.gamma.len();
                bn.gamma = Var::from_tensor(&Tensor::from_vec(src.gamma, n, dev)?)?;
                bn.beta = Var::from_tensor(&Tensor::from_vec(src.beta, n, dev)?)?;
                bn.set_stats(src.mean, src.var);
            }
            (None, None) => {}
            _ => {
                return Err(ModelError::Layer {
                    layer: name,
                    what: "BatchNorm parameters given to a layer without one, or missing".into(),
                })
            }
        }
        Ok(())
    }

    pub fn shapes(&self) -> &[LayerShape] {
        &self.shapes
    }

    /// Per layer, whether its input is signed: its activations then use the signed grid
    /// (`quant::fake_quant_act_signed`, calibrated on |x|).
    pub fn signed_inputs(&self) -> &[bool] {
        &self.signed
    }

    pub fn layer_names(&self) -> Vec<&str> {
        self.shapes.iter().map(|s| s.name.as_str()).collect()
    }

    /// Every trainable variable in layer order: weight, bias, then the BatchNorm's γ and β; then
    /// the other ops' parameters in node order.
    pub fn vars(&self) -> Vec<Var> {
        let nodes =
            (self.node_params.iter()).flat_map(|p| p.tensors.iter().map(|(_, v)| v.clone()));
        (self.params.iter().flatten())
            .flat_map(|p| {
                let bn =
                    p.bn.iter()
                        .flat_map(|bn| [bn.gamma.clone(), bn.beta.clone()]);
                [p.w.clone(), p.b.clone()].into_iter().chain(bn)
            })
            .chain(nodes)
            .collect()
    }

    /// The weight each quantizable layer with weights quantizes, in order: its BatchNorm folded
    /// in (for the Lipschitz penalty and bound, which concern the weights the device runs; an
    /// attention matmul has none, so neither term covers it).
    pub fn weights(&self) -> Result<Vec<Tensor>, ModelError> {
        (self.params.iter().flatten())
            .map(|p| match &p.bn {
                Some(bn) => Ok(bn.fold(p.w.as_tensor(), p.b.as_tensor(), false)?.0),
                None => Ok(p.w.as_tensor().clone()),
            })
            .collect()
    }

    /// Layer `li`'s weights as the device runs them: the BatchNorm folded into the weight and
    /// bias (`bn` is then None; the weight is not quantized here).
    pub fn effective_layer(&self, li: usize) -> Result<LayerWeights, ModelError> {
        let p = (self.params.get(li).and_then(Option::as_ref))
            .ok_or_else(|| no_weights(self.shapes.get(li).map_or("?", |s| &s.name)))?;
        let (w, b) = match &p.bn {
            Some(bn) => bn.fold(p.w.as_tensor(), p.b.as_tensor(), true)?,
            None => (p.w.as_tensor().clone(), p.b.as_tensor().clone()),
        };
        Ok(LayerWeights {
            w_dims: w.dims().to_vec(),
            w: w.flatten_all()?.to_vec1()?,
            b: b.to_vec1()?,
            bn: None,
        })
    }

    /// An independent copy whose variables can be trained without touching this one.
    pub fn deep_clone(&self) -> Result<Self, ModelError> {
        let params = self
            .params
            .iter()
            .map(|p| p.as_ref().map(LayerParams::deep_clone).transpose())
            .collect::<Result<_, candle_core::Error>>()?;
        let node_params = (self.node_params.iter())
            .map(NodeParams::deep_clone)
            .collect::<Result<_, candle_core::Error>>()?;
        Ok(Model {
            norm: self.norm.clone(),
            input: self.input,
            classes: self.classes,
            graph: self.graph.clone(),
            dims: self.dims.clone(),
            shapes: self.shapes.clone(),
            chains: self.chains.clone(),
            params,
            node_params,
            signed: self.signed.clone(),
        })
    }
}

/// The error for asking a layer without weights (an attention matmul) for its weights.
fn no_weights(layer: &str) -> ModelError {
    ModelError::Layer {
        layer: layer.to_string(),
        what: "multiplies two activations: it has no weights".into(),
    }
}

/// PyTorch's init bound 1/√fan_in of layer `s`; a layer with no outputs or no inputs per output
/// (a fan-in of 0 bounds nothing, and the kernels split work by output channel) is refused.
fn init_bound(s: &LayerShape) -> Result<f32, ModelError> {
    let fan_in = (s.in_ch / s.groups.max(1))
        .checked_mul(s.kernel)
        .and_then(|v| v.checked_mul(s.kernel))
        .unwrap_or(usize::MAX);
    if s.out_ch == 0 || fan_in == 0 {
        return Err(ModelError::Layer {
            layer: s.name.clone(),
            what: format!(
                "{} output channels and a fan-in of {fan_in} (inputs per output): both must be \
                 at least 1",
                s.out_ch
            ),
        });
    }
    Ok(1.0 / (fan_in as f32).sqrt())
}

pub(super) fn weight_dims(s: &LayerShape) -> Vec<usize> {
    match s.kind {
        LayerKind::Conv => vec![s.out_ch, s.in_ch / s.groups, s.kernel, s.kernel],
        LayerKind::Linear => vec![s.out_ch, s.in_ch],
        LayerKind::Matmul => vec![],
    }
}

#[cfg(test)]
#[path = "net_tests.rs"]
mod tests;
