//! `Model`: a network from the zoo with its parameters, a forward pass that fake-quantizes each
//! quantizable layer's weight and input per a `Quantizer`, and safetensors checkpoints.
//!
//! conv: `y = relu(conv(q_a(x), q_w(W)) + b)`, linear: `y = relu(q_a(x) @ q_w(W)ᵀ + b)`, no ReLU
//! after the last layer (its output is the logits).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor, Var};
use rand::{Rng, SeedableRng};

use super::arch::{Arch, ShapeError, Step};
use super::shape::{LayerKind, LayerShape};
use crate::data::InputNorm;
use crate::ops;
use crate::quant::{fake_quant_act, fake_quant_weight, ActGrid, LayerQuant, Quantizer};

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

/// The weight (out, in[, k, k]) and bias (out) of one quantizable layer.
#[derive(Debug)]
struct LayerParams {
    w: Var,
    b: Var,
}

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
    /// The input of every quantizable layer, before its activation quantizer.
    pub inputs: Vec<Tensor>,
    /// The output of every quantizable layer, after its ReLU (the logits for the last).
    pub outputs: Vec<Tensor>,
}

#[derive(Debug)]
pub struct Model {
    arch: Arch,
    norm: InputNorm,
    input: (usize, usize, usize),
    classes: usize,
    steps: Vec<Step>,
    shapes: Vec<LayerShape>,
    params: Vec<LayerParams>,
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
        let shapes = arch.layer_shapes(input, classes)?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut params = Vec::with_capacity(shapes.len());
        for s in &shapes {
            let fan_in = s.in_ch * s.kernel * s.kernel;
            let bound = 1.0 / (fan_in as f32).sqrt();
            let mut draw = |n: usize| -> Vec<f32> {
                (0..n).map(|_| rng.random_range(-bound..bound)).collect()
            };
            let w = Tensor::from_vec(draw(s.weight_count()), weight_dims(s), &Device::Cpu)?;
            let b = Tensor::from_vec(draw(s.out_ch), s.out_ch, &Device::Cpu)?;
            params.push(LayerParams {
                w: Var::from_tensor(&w)?,
                b: Var::from_tensor(&b)?,
            });
        }
        let norm = InputNorm {
            mean: vec![0.0; input.0],
            std: vec![1.0; input.0],
        };
        Ok(Model {
            arch,
            norm,
            input,
            classes,
            steps: arch.steps(classes),
            shapes,
            params,
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
    fn standardize(&self, x: &Tensor) -> Result<Tensor, ModelError> {
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

    pub fn arch(&self) -> Arch {
        self.arch
    }

    pub fn shapes(&self) -> &[LayerShape] {
        &self.shapes
    }

    pub fn layer_names(&self) -> Vec<&str> {
        self.shapes.iter().map(|s| s.name.as_str()).collect()
    }

    /// Every trainable variable, weights and biases in layer order.
    pub fn vars(&self) -> Vec<Var> {
        self.params
            .iter()
            .flat_map(|p| [p.w.clone(), p.b.clone()])
            .collect()
    }

    /// The weight variable of each quantizable layer, in order (for the Lipschitz penalty).
    pub fn weights(&self) -> Vec<&Var> {
        self.params.iter().map(|p| &p.w).collect()
    }

    /// An independent copy whose variables can be trained without touching this one.
    pub fn deep_clone(&self) -> Result<Self, ModelError> {
        let copy = |v: &Var| Var::from_tensor(&v.as_tensor().copy()?);
        let params = self
            .params
            .iter()
            .map(|p| {
                Ok(LayerParams {
                    w: copy(&p.w)?,
                    b: copy(&p.b)?,
                })
            })
            .collect::<Result<_, candle_core::Error>>()?;
        Ok(Model {
            arch: self.arch,
            norm: self.norm.clone(),
            input: self.input,
            classes: self.classes,
            steps: self.steps.clone(),
            shapes: self.shapes.clone(),
            params,
        })
    }

    /// Logits for a batch (N, C, H, W); `q` = None runs in full precision.
    pub fn forward(&self, x: &Tensor, q: Option<&Quantizer>) -> Result<Tensor, ModelError> {
        self.run(x, q, Weights::Train, true, &mut |_, _, _| Ok(()))
    }

    /// `forward` with the parameters frozen (`Weights::Frozen`): the same logits, and a backward
    /// pass from them computes only the input's gradient.
    pub fn forward_frozen(&self, x: &Tensor, q: Option<&Quantizer>) -> Result<Tensor, ModelError> {
        self.run(x, q, Weights::Frozen, true, &mut |_, _, _| Ok(()))
    }

    /// Like `forward`, also recording every quantizable layer's input and output.
    pub fn forward_trace(&self, x: &Tensor, q: Option<&Quantizer>) -> Result<Trace, ModelError> {
        let (mut inputs, mut outputs) = (Vec::new(), Vec::new());
        let logits = self.run(x, q, Weights::Train, false, &mut |_, i, o| {
            inputs.push(i.clone());
            outputs.push(o.clone());
            Ok(())
        })?;
        Ok(Trace {
            logits,
            inputs,
            outputs,
        })
    }

    /// The forward pass. `fuse_pool` lets a conv and the pool after it run as one op
    /// (`ops::conv2d_relu_pool`); the hook then sees that layer's pooled output.
    fn run(
        &self,
        x: &Tensor,
        q: Option<&Quantizer>,
        weights: Weights,
        fuse_pool: bool,
        hook: &mut dyn FnMut(usize, &Tensor, &Tensor) -> Result<(), ModelError>,
    ) -> Result<Tensor, ModelError> {
        let mut h = x.clone();
        let mut li = 0;
        let last = self.shapes.len().saturating_sub(1);
        let mut steps = self.steps.iter().peekable();
        while let Some(step) = steps.next() {
            h = match *step {
                Step::Pool(k) => ops::max_pool2d(&h, k)?,
                Step::Flatten => h.flatten_from(1)?,
                Step::Conv { .. } | Step::Linear { .. } => {
                    // A conv (with its ReLU) then a pool run as one op, unless the hook wants
                    // the conv's own output (a trace).
                    let pool = match (step, steps.peek()) {
                        (Step::Conv { .. }, Some(&&Step::Pool(k))) if fuse_pool && li != last => {
                            steps.next();
                            Some(k)
                        }
                        _ => None,
                    };
                    let y = self.layer(li, step, &h, q, weights, li == last, pool)?;
                    hook(li, &h, &y)?;
                    li += 1;
                    y
                }
            };
        }
        Ok(h)
    }

    /// One quantizable layer: fake-quantize input and weight, conv or matmul, bias, ReLU, and
    /// the max-pool of window `pool` after a conv when given.
    #[allow(clippy::too_many_arguments)]
    fn layer(
        &self,
        li: usize,
        step: &Step,
        h: &Tensor,
        q: Option<&Quantizer>,
        weights: Weights,
        last: bool,
        pool: Option<usize>,
    ) -> Result<Tensor, ModelError> {
        let lq = q.and_then(|q| q.layer(li)).unwrap_or_else(LayerQuant::full);
        let p = &self.params[li];
        let (w, b) = match weights {
            Weights::Train => (p.w.as_tensor().clone(), p.b.as_tensor().clone()),
            Weights::Frozen => (p.w.as_tensor().detach(), p.b.as_tensor().detach()),
        };
        let w = fake_quant_weight(&w, lq.bits.w)?;
        // A conv past the first layer takes its input's quantizer into the kernel (src/ops);
        // elsewhere the input is fake-quantized here, and the first layer's then standardized.
        let (xin, act) = match (step, li) {
            (Step::Conv { .. }, 1..) => {
                let act = (!lq.bits.a.is_full()).then(|| ActGrid {
                    bits: lq.bits.a.get(),
                    clip: lq.clip,
                });
                (h.clone(), act)
            }
            _ => {
                let xq = fake_quant_act(h, lq.bits.a, lq.clip)?;
                (if li == 0 { self.standardize(&xq)? } else { xq }, None)
            }
        };
        match *step {
            // Bias, ReLU and a following pool are fused into the conv kernel too.
            Step::Conv {
                stride, padding, ..
            } => Ok(match pool {
                Some(k) => ops::conv2d_relu_pool(&xin, act, &w, &b, (stride, padding), k)?,
                None => ops::conv2d_quantized(&xin, act, &w, Some(&b), stride, padding, !last)?,
            }),
            // Bias and ReLU fused too; the weight gradient only when the weight tracks one.
            _ => Ok(ops::linear(&xin, &w, Some(&b), !last)?),
        }
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
        let mut model = Model::new(arch, input, classes, 0)?;
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
        for (s, p) in model.shapes.iter().zip(model.params.iter_mut()) {
            p.w = get(format!("{}.weight", s.name), &weight_dims(s))?;
            p.b = get(format!("{}.bias", s.name), &[s.out_ch])?;
        }
        let read = |name: &str| -> Result<Vec<f32>, ModelError> {
            Ok(get(name.to_string(), &[input.0])?
                .as_tensor()
                .to_vec1::<f32>()?)
        };
        model.norm = InputNorm {
            mean: read("input.mean")?,
            std: read("input.std")?,
        };
        Ok(model)
    }
}

fn weight_dims(s: &LayerShape) -> Vec<usize> {
    match s.kind {
        LayerKind::Conv => vec![s.out_ch, s.in_ch / s.groups, s.kernel, s.kernel],
        LayerKind::Linear => vec![s.out_ch, s.in_ch],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::{Bits, Policy};

    #[test]
    fn forward_shapes_and_trace() {
        let m = Model::new(Arch::Lenet5, (1, 28, 28), 10, 1).unwrap();
        let x = Tensor::rand(0f32, 1f32, (3, 1, 28, 28), &Device::Cpu).unwrap();
        let t = m.forward_trace(&x, None).unwrap();
        assert_eq!(t.logits.dims(), &[3, 10]);
        assert_eq!(t.inputs.len(), 5);
        assert_eq!(t.inputs[2].dims(), &[3, 256]);
        assert_eq!(t.outputs[0].dims(), &[3, 6, 24, 24]);
    }

    /// The conv + pool fusion changes no value: logits and every parameter's gradient equal
    /// the unfused pass's, bit for bit, in full precision and quantized.
    #[test]
    fn fused_pool_gives_the_unfused_logits_and_gradients() {
        for arch in [Arch::Lenet5, Arch::Cnn6] {
            let m = Model::new(arch, (1, 28, 28), 10, 4).unwrap();
            let n = m.shapes().len();
            let x = Tensor::rand(0f32, 1f32, (3, 1, 28, 28), &Device::Cpu).unwrap();
            let bits = Policy::uniform(n, Bits::new(4).unwrap());
            let quant = Quantizer::new(bits, vec![[1.0; 8]; n]);
            for q in [None, Some(&quant)] {
                let pass = |fuse: bool| {
                    let logits = m
                        .run(&x, q, Weights::Train, fuse, &mut |_, _, _| Ok(()))
                        .unwrap();
                    let grads = logits.sqr().unwrap().sum_all().unwrap().backward().unwrap();
                    let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                    let g: Vec<Vec<f32>> = m
                        .vars()
                        .iter()
                        .map(|v| flat(grads.get(v).unwrap()))
                        .collect();
                    (flat(&logits), g)
                };
                assert_eq!(
                    pass(true),
                    pass(false),
                    "{} quantized: {}",
                    arch.name(),
                    q.is_some()
                );
            }
        }
    }

    #[test]
    fn same_seed_same_weights_and_save_load_round_trip() {
        let a = Model::new(Arch::Mlp, (1, 28, 28), 10, 5).unwrap();
        let b = Model::new(Arch::Mlp, (1, 28, 28), 10, 5).unwrap();
        let c = Model::new(Arch::Mlp, (1, 28, 28), 10, 6).unwrap();
        let w = |m: &Model| {
            m.vars()[0]
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        assert_eq!(w(&a), w(&b));
        assert_ne!(w(&a), w(&c));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        a.save(&path).unwrap();
        let l = Model::load(Arch::Mlp, (1, 28, 28), 10, &path).unwrap();
        assert_eq!(w(&a), w(&l));
        let err = Model::load(Arch::Lenet5, (1, 28, 28), 10, &path)
            .unwrap_err()
            .to_string();
        assert!(err.contains("conv1.weight"), "{err}");
    }

    #[test]
    fn quantized_forward_differs_and_full_policy_does_not() {
        let m = Model::new(Arch::Mlp, (1, 28, 28), 10, 2).unwrap();
        let x = Tensor::rand(0f32, 1f32, (4, 1, 28, 28), &Device::Cpu).unwrap();
        let fp = m.forward(&x, None).unwrap();
        let full = Quantizer::new(Policy::uniform(3, Bits::FULL), vec![[1.0; 8]; 3]);
        let two = Quantizer::new(Policy::uniform(3, Bits::new(2).unwrap()), vec![[1.0; 8]; 3]);
        let diff = |a: &Tensor, b: &Tensor| {
            (a - b)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        assert_eq!(diff(&fp, &m.forward(&x, Some(&full)).unwrap()), 0.0);
        assert!(diff(&fp, &m.forward(&x, Some(&two)).unwrap()) > 1e-3);
    }
}
