//! `Model`: a network from the zoo (a `Graph`) with its parameters, and safetensors
//! checkpoints. The passes that run it are in `exec.rs`.
//!
//! A quantizable layer computes conv: `conv(q_a(x), q_w(W)) + b`, linear: `q_a(x) @ q_w(W)ᵀ +
//! b`, where `W` and `b` have the layer's BatchNorm folded in (`bn.rs`) if it has one. Ops
//! with parameters that are not quantized layers (LayerNorm, class token, position embedding)
//! keep them in `node_params.rs`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor, Var};
use rand::{Rng, SeedableRng};

use super::arch::Arch;
use super::bn::BatchNorm;
use super::exec::Chain;
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
    input: (usize, usize, usize),
    classes: usize,
    pub(super) graph: Graph,
    /// Every node's output per example (the graph's shape inference).
    pub(super) dims: Vec<Dims>,
    shapes: Vec<LayerShape>,
    /// What each layer's node fuses with, in layer order.
    pub(super) chains: Vec<Chain>,
    pub(super) params: Vec<LayerParams>,
    /// The parameters of the ops that are not layers, by node.
    pub(super) node_params: Vec<NodeParams>,
    /// Per layer: its input is signed (`tokens::signed_inputs`), so its activation grid is.
    signed: Vec<bool>,
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
            let bound = init_bound(s)?;
            let mut draw = |n: usize| -> Vec<f32> {
                (0..n).map(|_| rng.random_range(-bound..bound)).collect()
            };
            let w = Tensor::from_vec(draw(s.weight_count()), weight_dims(s), &Device::Cpu)?;
            let b = Tensor::from_vec(draw(s.out_ch), s.out_ch, &Device::Cpu)?;
            params.push(LayerParams {
                w: Var::from_tensor(&w)?,
                b: Var::from_tensor(&b)?,
                bn: chain.bn.map(|_| BatchNorm::new(s.out_ch)).transpose()?,
            });
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
        let p = &mut self.params[li];
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
        self.params
            .iter()
            .flat_map(|p| {
                let bn =
                    p.bn.iter()
                        .flat_map(|bn| [bn.gamma.clone(), bn.beta.clone()]);
                [p.w.clone(), p.b.clone()].into_iter().chain(bn)
            })
            .chain(nodes)
            .collect()
    }

    /// The weight each quantizable layer quantizes, in order: its BatchNorm folded in (for the
    /// Lipschitz penalty and bound, which concern the weights the device runs).
    pub fn weights(&self) -> Result<Vec<Tensor>, ModelError> {
        self.params
            .iter()
            .map(|p| match &p.bn {
                Some(bn) => Ok(bn.fold(p.w.as_tensor(), p.b.as_tensor(), false)?.0),
                None => Ok(p.w.as_tensor().clone()),
            })
            .collect()
    }

    /// Layer `li`'s weights as the device runs them: the BatchNorm folded into the weight and
    /// bias (`bn` is then None; the weight is not quantized here).
    pub fn effective_layer(&self, li: usize) -> Result<LayerWeights, ModelError> {
        let p = &self.params[li];
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
            .map(LayerParams::deep_clone)
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

    /// Writes all parameters to a safetensors file, named `{layer}.weight` / `{layer}.bias`.
    pub fn save(&self, path: &Path) -> Result<(), ModelError> {
        let mut map = HashMap::new();
        map.insert(
            "input.mean".to_string(),
            Tensor::new(self.norm.mean.as_slice(), &Device::Cpu)?,
        );
        map.insert(
            "input.std".to_string(),
            Tensor::new(self.norm.std.as_slice(), &Device::Cpu)?,
        );
        for (s, p) in self.shapes.iter().zip(&self.params) {
            map.insert(format!("{}.weight", s.name), p.w.as_tensor().clone());
            map.insert(format!("{}.bias", s.name), p.b.as_tensor().clone());
            if let Some(bn) = &p.bn {
                let (mean, var) = bn.stats();
                let n = mean.len();
                map.insert(
                    format!("{}.bn.weight", s.name),
                    bn.gamma.as_tensor().clone(),
                );
                map.insert(format!("{}.bn.bias", s.name), bn.beta.as_tensor().clone());
                map.insert(
                    format!("{}.bn.running_mean", s.name),
                    Tensor::from_vec(mean, n, &Device::Cpu)?,
                );
                map.insert(
                    format!("{}.bn.running_var", s.name),
                    Tensor::from_vec(var, n, &Device::Cpu)?,
                );
            }
        }
        for p in &self.node_params {
            for (suffix, v) in &p.tensors {
                map.insert(format!("{}.{suffix}", p.name), v.as_tensor().clone());
            }
        }
        candle_core::safetensors::save(&map, path).map_err(|source| ModelError::Write {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Builds the architecture and fills it from a safetensors file written by `save`.
    pub fn load(
        arch: Arch,
        input: (usize, usize, usize),
        classes: usize,
        path: &Path,
    ) -> Result<Self, ModelError> {
        Model::new(arch, input, classes, 0)?.read_weights(path)
    }

    /// This model with every parameter (and the input standardization) read from a
    /// safetensors file written by `save` for the same graph.
    pub fn read_weights(mut self, path: &Path) -> Result<Self, ModelError> {
        let input = self.input;
        let map = candle_core::safetensors::load(path, &Device::Cpu).map_err(|source| {
            ModelError::Read {
                path: path.to_path_buf(),
                source,
            }
        })?;
        let get = |name: String, expected: &[usize]| -> Result<Var, ModelError> {
            let t = map.get(&name).ok_or_else(|| ModelError::MissingTensor {
                path: path.to_path_buf(),
                name: name.clone(),
            })?;
            if t.dims() != expected {
                return Err(ModelError::WrongShape {
                    path: path.to_path_buf(),
                    name,
                    expected: expected.to_vec(),
                    got: t.dims().to_vec(),
                });
            }
            Ok(Var::from_tensor(t)?)
        };
        for (s, p) in self.shapes.iter().zip(self.params.iter_mut()) {
            p.w = get(format!("{}.weight", s.name), &weight_dims(s))?;
            p.b = get(format!("{}.bias", s.name), &[s.out_ch])?;
            if let Some(bn) = &mut p.bn {
                let o = [s.out_ch];
                bn.gamma = get(format!("{}.bn.weight", s.name), &o)?;
                bn.beta = get(format!("{}.bn.bias", s.name), &o)?;
                let vec = |v: Var| v.as_tensor().to_vec1::<f32>();
                let mean = vec(get(format!("{}.bn.running_mean", s.name), &o)?)?;
                bn.set_stats(mean, vec(get(format!("{}.bn.running_var", s.name), &o)?)?);
            }
        }
        for p in self.node_params.iter_mut() {
            for (suffix, v) in p.tensors.iter_mut() {
                *v = get(format!("{}.{suffix}", p.name), v.dims())?;
            }
        }
        let read = |name: &str| -> Result<Vec<f32>, ModelError> {
            Ok(get(name.to_string(), &[input.0])?
                .as_tensor()
                .to_vec1::<f32>()?)
        };
        self.norm = InputNorm {
            mean: read("input.mean")?,
            std: read("input.std")?,
        };
        Ok(self)
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

fn weight_dims(s: &LayerShape) -> Vec<usize> {
    match s.kind {
        LayerKind::Conv => vec![s.out_ch, s.in_ch / s.groups, s.kernel, s.kernel],
        LayerKind::Linear => vec![s.out_ch, s.in_ch],
    }
}

#[cfg(test)]
#[path = "net_tests.rs"]
mod tests;
