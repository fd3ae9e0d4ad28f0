//! `ModelConfig`: the validated `[model]` table of an experiment — a zoo network (`arch`, with
//! the seed of its initialization) or an ONNX file (`onnx`, whose weights are the FP32
//! baseline) — and the model it builds.

use std::path::PathBuf;

use serde::Serialize;

use super::arch::Arch;
use super::net::{Model, ModelError};
use super::onnx;
use super::op::Attention;
use super::shape::LayerShape;
use crate::data::InputNorm;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelSource {
    /// A network of the zoo, trained from its seeded initialization.
    Arch(Arch),
    /// An ONNX file with its weights (`onnx::import`).
    Onnx(PathBuf),
}

/// Serialized as the `[model]` table reads: `arch = ...` or `onnx = ...`, then the rest.
#[derive(Debug, Clone, Serialize)]
pub struct ModelConfig {
    #[serde(flatten)]
    pub source: ModelSource,
    /// Seed of the weight initialization (zoo networks).
    pub seed: u64,
    /// The standardization an imported model expects of its [0, 1] pixels (none: the pixels
    /// themselves). Zoo networks use the training data's own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_norm: Option<InputNorm>,
    /// Train an imported model further with `[train]` before it becomes the baseline (zoo
    /// networks always train; absent from the JSON when false, so zoo records are unchanged).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub train: bool,
}

impl ModelConfig {
    /// A zoo network with the given seed.
    pub fn zoo(arch: Arch, seed: u64) -> Self {
        ModelConfig {
            source: ModelSource::Arch(arch),
            seed,
            input_norm: None,
            train: false,
        }
    }

    /// What run directories and reports call the network: the architecture's name or the
    /// ONNX file's stem.
    pub fn name(&self) -> String {
        match &self.source {
            ModelSource::Arch(a) => a.name().to_string(),
            ModelSource::Onnx(p) => p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "onnx".into()),
        }
    }

    /// True for an imported model: its weights are the baseline, trained further only with
    /// `train`.
    pub fn is_imported(&self) -> bool {
        matches!(self.source, ModelSource::Onnx(_))
    }

    /// True when the baseline is trained: every zoo network, an imported model with `train`.
    pub fn trains(&self) -> bool {
        !self.is_imported() || self.train
    }

    /// The model for inputs shaped (channels, height, width) and `classes`: freshly
    /// initialized from the zoo, or imported (which must take that input and give that many
    /// classes).
    pub fn init(&self, input: (usize, usize, usize), classes: usize) -> Result<Model, ModelError> {
        match &self.source {
            ModelSource::Arch(arch) => Model::new(*arch, input, classes, self.seed),
            ModelSource::Onnx(path) => {
                let imported = onnx::import(path).map_err(Box::new)?;
                if (imported.input, imported.classes) != (input, classes) {
                    return Err(ModelError::DataMismatch {
                        path: path.clone(),
                        model: (imported.input, imported.classes),
                        data: (input, classes),
                    });
                }
                let model = Model::from_import(imported)?;
                Ok(match &self.input_norm {
                    Some(norm) if norm.mean.len() == input.0 && norm.std.len() == input.0 => {
                        model.with_input_norm(norm.clone())
                    }
                    Some(norm) => {
                        return Err(ModelError::NormChannels {
                            path: path.clone(),
                            channels: input.0,
                            mean: norm.mean.len(),
                            std: norm.std.len(),
                        })
                    }
                    None => model,
                })
            }
        }
    }

    /// The quantizable layers of the network for that input, its attention matmuls among them
    /// as `attention` says (`[quant] attention`).
    pub fn layer_shapes(
        &self,
        input: (usize, usize, usize),
        classes: usize,
        attention: Attention,
    ) -> Result<Vec<LayerShape>, ModelError> {
        match &self.source {
            ModelSource::Arch(arch) => {
                let g = arch.graph(input, classes).with_attention(attention)?;
                Ok(g.shapes(input)?.layers)
            }
            ModelSource::Onnx(_) => {
                let model = self.init(input, classes)?.with_attention(attention)?;
                Ok(model.shapes().to_vec())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An imported model's standardization needs one mean and one std per input channel: the
    /// error names the file and both counts.
    #[test]
    fn an_input_norm_of_the_wrong_length_is_an_error() {
        let file =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/onnx/lenet5.onnx");
        let cfg = ModelConfig {
            source: ModelSource::Onnx(file),
            seed: 0,
            input_norm: Some(InputNorm {
                mean: vec![0.5, 0.5, 0.5],
                std: vec![0.2, 0.2, 0.2],
            }),
            train: false,
        };
        let e = cfg.init((1, 28, 28), 10).unwrap_err().to_string();
        assert!(
            e.contains("lenet5.onnx") && e.contains("(1), got 3 and 3"),
            "{e}"
        );
        let ok = ModelConfig {
            input_norm: Some(InputNorm {
                mean: vec![0.1307],
                std: vec![0.3081],
            }),
            ..cfg
        };
        assert_eq!(
            ok.init((1, 28, 28), 10).unwrap().input_norm().std,
            vec![0.3081]
        );
    }
}
