//! The trainable parameters of ops that are not quantizable layers — a LayerNorm's γ and β, a
//! class token, a position embedding — kept by node and named after the op
//! (`{name}.weight`, `{name}.bias`): full precision everywhere, trained and fine-tuned with the
//! layers, never quantized.

use candle_core::{Device, Tensor, Var};
use rand::{Rng, SeedableRng};

use super::graph::{Dims, Graph, Op};
use super::net::ModelError;

/// One op's parameters: (suffix, variable) in a fixed order.
#[derive(Debug)]
pub(super) struct NodeParams {
    pub node: usize,
    pub name: String,
    pub tensors: Vec<(&'static str, Var)>,
}

/// PyTorch ViTs draw the class token and position embedding with standard deviation 0.02; a
/// uniform draw of that deviation, U(−0.02·√3, 0.02·√3), is seeded like the layers.
const EMBED_STD: f32 = 0.02;

/// Fresh parameters for every op of `g` that holds some: LayerNorm γ = 1, β = 0; class token and
/// position embedding drawn from `seed`. Two ops with one name are refused (their parameters
/// would share a name in the checkpoint).
pub(super) fn init(g: &Graph, dims: &[Dims], seed: u64) -> Result<Vec<NodeParams>, ModelError> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x7a11_0c1a_55e5);
    let bound = EMBED_STD * 3f32.sqrt();
    let mut out: Vec<NodeParams> = Vec::new();
    for (i, node) in g.nodes.iter().enumerate() {
        let Some(name) = node.op.param_name() else {
            continue;
        };
        if out.iter().any(|p| p.name == name) {
            return Err(ModelError::Layer {
                layer: name.to_string(),
                what: format!("node {i} reuses this parameter name: each needs its own"),
            });
        }
        let input = dims[node.inputs[0]];
        let (dev, d) = (&Device::Cpu, *input.shape().last().unwrap_or(&0));
        let mut draw = |shape: &[usize]| -> Result<Var, ModelError> {
            let n = shape.iter().product::<usize>();
            let v: Vec<f32> = (0..n).map(|_| rng.random_range(-bound..bound)).collect();
            Ok(Var::from_tensor(&Tensor::from_vec(v, shape, dev)?)?)
        };
        let tensors = match node.op {
            Op::LayerNorm { .. } => vec![
                (
                    "weight",
                    Var::from_tensor(&Tensor::ones(d, candle_core::DType::F32, dev)?)?,
                ),
                (
                    "bias",
                    Var::from_tensor(&Tensor::zeros(d, candle_core::DType::F32, dev)?)?,
                ),
            ],
            Op::ClassToken { .. } => vec![("weight", draw(&[d])?)],
            _ => vec![("weight", draw(&input.shape())?)],
        };
        out.push(NodeParams {
            node: i,
            name: name.to_string(),
            tensors,
        });
    }
    Ok(out)
}

impl NodeParams {
    pub fn deep_clone(&self) -> candle_core::Result<NodeParams> {
        let tensors = (self.tensors.iter())
            .map(|(s, v)| Ok((*s, Var::from_tensor(&v.as_tensor().copy()?)?)))
            .collect::<candle_core::Result<_>>()?;
        Ok(NodeParams {
            node: self.node,
            name: self.name.clone(),
            tensors,
        })
    }

    /// The parameter `suffix`, detached when `frozen` (an attack's pass).
    pub fn get(&self, suffix: &str, frozen: bool) -> Option<Tensor> {
        let (_, v) = self.tensors.iter().find(|(s, _)| *s == suffix)?;
        Some(match frozen {
            true => v.as_tensor().detach(),
            false => v.as_tensor().clone(),
        })
    }
}

impl super::net::Model {
    /// Node `node`'s parameter `suffix` (`weight`, `bias`) as the op reads it, for export.
    pub(crate) fn node_tensor(&self, node: usize, suffix: &str) -> Option<Tensor> {
        let p = self.node_params.iter().find(|p| p.node == node)?;
        p.get(suffix, true)
    }
}

impl super::net::Model {
    /// Replaces node `node`'s parameter `suffix` by `values` (as many as it holds).
    pub(crate) fn set_node_param(
        &mut self,
        node: usize,
        suffix: &str,
        values: Vec<f32>,
    ) -> Result<(), ModelError> {
        let p = (self.node_params.iter_mut().find(|p| p.node == node)).ok_or_else(|| {
            ModelError::Layer {
                layer: format!("node {node}"),
                what: "given parameters, but its op holds none".into(),
            }
        })?;
        let name = p.name.clone();
        let slot = (p.tensors.iter_mut().find(|(s, _)| *s == suffix)).ok_or_else(|| {
            ModelError::Layer {
                layer: name.clone(),
                what: format!("has no parameter {suffix}"),
            }
        })?;
        let dims = slot.1.dims().to_vec();
        if dims.iter().product::<usize>() != values.len() {
            return Err(ModelError::Layer {
                layer: name,
                what: format!(
                    "{suffix} has {} values, the op needs {dims:?}",
                    values.len()
                ),
            });
        }
        slot.1 = Var::from_tensor(&Tensor::from_vec(values, dims, &Device::Cpu)?)?;
        Ok(())
    }
}
