//! The unchecked experiment file as serde reads it, and `check()` into a validated `Experiment`.

use std::path::Path;

use serde::Deserialize;

use super::error::ExperimentError;
use super::front_test::RawFrontTest;
use super::robust::{DqConfig, RawAttack, RawFinetune};
use super::search::{RawBits, RawBudget, RewardConfig, SearchConfig};
use super::validated::Experiment;
use crate::calib::QuantConfig;
use crate::data::{Augment, DataConfig, DataSource, InputNorm};
use crate::model::{Arch, Attention, ModelConfig, ModelSource};
use crate::quant::ClipMethod;
use crate::train::{LrSchedule, TrainConfig};
use crate::validate::{non_negative, path_name, positive, positive_count, FieldError, Rule};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExperiment {
    pub name: String,
    pub data: RawData,
    pub model: RawModel,
    pub train: RawTrain,
    #[serde(default)]
    pub quant: RawQuant,
    #[serde(default)]
    pub finetune: RawFinetune,
    #[serde(default)]
    pub attack: RawAttack,
    #[serde(default)]
    pub front_test: RawFrontTest,
    #[serde(default)]
    pub dq: DqConfig,
    #[serde(default)]
    pub bits: RawBits,
    #[serde(default)]
    pub budget: RawBudget,
    #[serde(default)]
    pub reward: RewardConfig,
    #[serde(default)]
    pub search: SearchConfig,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawData {
    pub source: String,
    pub validation: usize,
    #[serde(default)]
    pub seed: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    /// A zoo network, or:
    pub arch: Option<Arch>,
    /// an ONNX file (relative to the experiment file), its weights the FP32 baseline.
    pub onnx: Option<String>,
    #[serde(default)]
    pub seed: u64,
    /// The per-channel standardization an imported model expects of [0, 1] pixels.
    pub input_mean: Option<Vec<f32>>,
    pub input_std: Option<Vec<f32>>,
    /// Train an imported model further with `[train]` (default: its weights as they are).
    pub train: Option<bool>,
}

impl RawModel {
    fn check(&self, path: &Path) -> Result<ModelConfig, ExperimentError> {
        let base = path.parent().unwrap_or(Path::new("."));
        let source = match (&self.arch, &self.onnx) {
            (Some(arch), None) => ModelSource::Arch(*arch),
            (None, Some(file)) => ModelSource::Onnx(base.join(file)),
            _ => {
                return Err(ExperimentError::ModelSource {
                    path: path.to_path_buf(),
                })
            }
        };
        let input_norm = match (&self.input_mean, &self.input_std) {
            (None, None) => None,
            (Some(mean), Some(std)) if self.onnx.is_some() => {
                for (i, &s) in std.iter().enumerate() {
                    positive(path, &format!("model.input_std[{i}]"), f64::from(s))?;
                }
                Some(InputNorm {
                    mean: mean.clone(),
                    std: std.clone(),
                })
            }
            _ => {
                return Err(ExperimentError::ModelNorm {
                    path: path.to_path_buf(),
                })
            }
        };
        if self.train.is_some() && self.onnx.is_none() {
            return Err(ExperimentError::ModelTrain {
                path: path.to_path_buf(),
            });
        }
        Ok(ModelConfig {
            source,
            seed: self.seed,
            input_norm,
            train: self.train.unwrap_or(false),
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrain {
    pub epochs: usize,
    pub batch: usize,
    pub lr: f64,
    /// AdamW's decoupled weight decay; 1e-2 is the default of PyTorch's `torch.optim.AdamW`.
    #[serde(default = "default_weight_decay")]
    pub weight_decay: f64,
    #[serde(default)]
    pub seed: u64,
    /// "constant" (the default) or "cosine" over all the epochs' steps.
    #[serde(default)]
    pub schedule: LrSchedule,
    /// Random shifts and flips of the training images; none by default.
    #[serde(default)]
    pub augment: Augment,
}

fn default_weight_decay() -> f64 {
    1e-2
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuant {
    /// "max", "percentile" or "mse".
    pub act_clip: ClipName,
    /// Used with act_clip = "percentile".
    pub percentile: f32,
    pub calibration: usize,
    /// Quantize a transformer's two attention matmuls (QKᵀ, softmax × V) as layers.
    #[serde(default)]
    pub attention: bool,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClipName {
    Max,
    Percentile,
    Mse,
}

impl Default for RawQuant {
    fn default() -> Self {
        RawQuant {
            act_clip: ClipName::Max,
            percentile: 99.99,
            calibration: 512,
            attention: false,
        }
    }
}

impl RawQuant {
    /// `attention = true` needs a model with attention: a zoo network without any is refused
    /// here; an imported model is checked when it is built (`model::Model::with_attention`).
    fn attention(&self, path: &Path, model: &RawModel) -> Result<Attention, ExperimentError> {
        match (self.attention, model.arch) {
            (false, _) => Ok(Attention::Float),
            (true, Some(arch)) if arch != Arch::Vit => Err(FieldError::new(
                path,
                "quant.attention",
                Rule::NeedsAttention,
                format!("true (model {})", arch.name()),
            )
            .into()),
            (true, _) => Ok(Attention::Quantized),
        }
    }
}

impl RawExperiment {
    /// Applies every rule; the first violation is returned, naming file, field and value.
    pub fn check(self, path: &Path) -> Result<Experiment, ExperimentError> {
        let p = || path.to_path_buf();
        // The name becomes part of paths (`runs/dq-NAME`, the baseline's directory).
        path_name(path, "name", &self.name)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let source = DataSource::parse(&self.data.source, base).ok_or_else(|| {
            ExperimentError::UnknownDataSource {
                path: p(),
                value: self.data.source.clone(),
            }
        })?;
        positive_count(path, "data.validation", self.data.validation)?;
        positive_count(path, "train.epochs", self.train.epochs)?;
        positive_count(path, "train.batch", self.train.batch)?;
        positive(path, "train.lr", self.train.lr)?;
        non_negative(path, "train.weight_decay", self.train.weight_decay)?;
        positive_count(path, "quant.calibration", self.quant.calibration)?;
        let q = &self.quant;
        if !(q.percentile > 0.0 && q.percentile <= 100.0) {
            return Err(ExperimentError::PercentileOutOfRange {
                path: p(),
                value: q.percentile,
            });
        }
        let act_clip = match q.act_clip {
            ClipName::Max => ClipMethod::Max,
            ClipName::Percentile => ClipMethod::Percentile { p: q.percentile },
            ClipName::Mse => ClipMethod::Mse,
        };
        let attack = self.attack.check(path)?;
        Ok(Experiment {
            name: self.name,
            path: p(),
            data: DataConfig {
                source,
                validation: self.data.validation,
                seed: self.data.seed,
            },
            model: self.model.check(path)?,
            train: TrainConfig {
                epochs: self.train.epochs,
                batch: self.train.batch,
                lr: self.train.lr,
                weight_decay: self.train.weight_decay,
                seed: self.train.seed,
                schedule: self.train.schedule,
                augment: self.train.augment,
            },
            quant: QuantConfig {
                act_clip,
                calibration: q.calibration,
                attention: self.quant.attention(path, &self.model)?,
            },
            finetune: self.finetune.check(path)?,
            front_test: self.front_test.check(path, &attack)?,
            attack: attack.clone(),
            dq: self.dq.check(path)?,
            bits: self.bits.check(path)?,
            budget: self.budget.check(path)?,
            reward: self.reward.check(path, &attack)?,
            search: self.search.check(path)?,
            overrides: Vec::new(),
        })
    }
}

#[cfg(test)]
#[path = "raw_tests.rs"]
mod tests;
