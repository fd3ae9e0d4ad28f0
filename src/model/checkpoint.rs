//! Safetensors checkpoints of a `Model`: every parameter by name (`{layer}.weight`,
//! `{layer}.bias`, a BatchNorm's `{layer}.bn.*`, the other ops' `{name}.{suffix}`) and the input
//! standardization. Layers without weights (attention's matmuls) store nothing, so a model's
//! checkpoint is the same whether or not they are quantizable layers.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor, Var};

use super::arch::Arch;
use super::net::{weight_dims, Model, ModelError};
use crate::data::InputNorm;

impl Model {
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
        let weighted =
            (self.shapes.iter().zip(&self.params)).filter_map(|(s, p)| Some((s, p.as_ref()?)));
        for (s, p) in weighted {
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
        let weighted = (self.shapes.iter().zip(self.params.iter_mut()))
            .filter_map(|(s, p)| Some((s, p.as_mut()?)));
        for (s, p) in weighted {
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
