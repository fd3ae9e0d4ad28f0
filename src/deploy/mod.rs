//! Deploying one searched policy: the fine-tuned quantized model an episode measured, rebuilt
//! (calibration and fine-tune are deterministic, seeded by the policy) and written as files a
//! runtime takes: ONNX with QuantizeLinear/DequantizeLinear (`model::onnx::export`), the
//! weights with their integer codes, scales and activation clips (safetensors), the policy
//! (JSON), check data for ONNX Runtime (`.npy`) and export.json, the record of what was written;
//! and such models timed in ONNX Runtime (`measure`).

mod files;
mod measure;

pub use files::{weights_safetensors, write_check};
pub use measure::{measure_episodes, MeasureOptions};

use std::path::{Path, PathBuf};

use candle_core::Device;
use serde::Serialize;

use crate::data::Dataset;
use crate::experiment::Experiment;
use crate::model::onnx::{self, Opset};
use crate::model::Model;
use crate::quant::{Policy, Quantizer};
use crate::rundir::{best_row, first_difference, write_atomic, write_json, Episode, RunDir};
use crate::score::{Evaluator, Tuned};
use crate::train::accuracy;

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Model(Box<crate::model::ModelError>),
    #[error(transparent)]
    Data(Box<crate::data::DataError>),
    #[error(transparent)]
    Train(Box<crate::train::TrainError>),
    #[error(transparent)]
    Score(Box<crate::score::ScoreError>),
    #[error(transparent)]
    RunDir(Box<crate::rundir::RunDirError>),
    #[error("tensor error: {0}")]
    Tensor(Box<candle_core::Error>),
    #[error(transparent)]
    Runtime(Box<crate::runtime::RuntimeError>),
    #[error("cannot write safetensors: {0}")]
    Safetensors(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the policy has {policy} layers, the model {layers}")]
    PolicyLength { layers: usize, policy: usize },
    #[error("layer {layer}: the safetensors deployment files hold integer grids (weights up to 8 bits, activations up to 16), not {format} (export the policy to ONNX instead)")]
    NotInteger { layer: String, format: String },
    #[error("{}: no episode {episode} in episodes.csv (it holds {logged})", dir.display())]
    NoEpisode {
        dir: PathBuf,
        episode: usize,
        logged: usize,
    },
    #[error("{}: episode {episode} failed its fine-tune ({policy}): there is no model to export", dir.display())]
    FailedEpisode {
        dir: PathBuf,
        episode: usize,
        policy: String,
    },
    #[error("{}: episode {episode} ({policy}) is a low-fidelity score, which the export would not rebuild (it fine-tunes fully): export a full-fidelity episode", dir.display())]
    LowFidelityEpisode {
        dir: PathBuf,
        episode: usize,
        policy: String,
    },
    #[error("{}: no feasible scored episode to export yet: pass --episode N", dir.display())]
    NoBest { dir: PathBuf },
    #[error("{}: config.json records no experiment: pass --experiment", dir.display())]
    NoExperiment { dir: PathBuf },
    #[error("{}: the experiment's {what} differs from the run's ({old} in config.json, {new} now): pass the run's experiment with --experiment", dir.display())]
    ExperimentChanged {
        dir: PathBuf,
        what: String,
        old: String,
        new: String,
    },
    #[error("{}: the run's layers {run:?} differ from the model's {model:?}", dir.display())]
    Layers {
        dir: PathBuf,
        run: Vec<String>,
        model: Vec<String>,
    },
}

crate::errors::boxed_from!(
    DeployError;
    Model: crate::model::ModelError,
    Data: crate::data::DataError,
    Train: crate::train::TrainError,
    Score: crate::score::ScoreError,
    RunDir: crate::rundir::RunDirError,
    Tensor: candle_core::Error,
    Runtime: crate::runtime::RuntimeError,
);

/// The parts of config.json's experiment the exported model depends on: the baseline (data,
/// model, train), the clips (quant) and the fine-tune. Budgets, attacks and the reward chose the
/// episode but do not change its model.
pub const MODEL_KEYS: [&str; 5] = ["data", "model", "train", "quant", "finetune"];

/// Errors unless `exp` agrees with the experiment `run` recorded on every `MODEL_KEYS` key.
pub fn check_experiment(run: &RunDir, exp: &Experiment) -> Result<(), DeployError> {
    let recorded = &run.config.experiment;
    if recorded.is_null() {
        return Ok(());
    }
    let now = serde_json::to_value(exp).map_err(|e| DeployError::Io {
        path: exp.path.clone(),
        source: e.into(),
    })?;
    for key in MODEL_KEYS {
        if let Some((what, old, new)) = first_difference(key, recorded.get(key), now.get(key)) {
            return Err(DeployError::ExperimentChanged {
                dir: run.dir.clone(),
                what,
                old,
                new,
            });
        }
    }
    Ok(())
}

/// The experiment file and overrides config.json recorded (`experiment.path`,
/// `experiment.overrides`).
pub fn recorded_experiment(run: &RunDir) -> Result<(PathBuf, Vec<String>), DeployError> {
    run.config
        .experiment_source()
        .ok_or_else(|| DeployError::NoExperiment {
            dir: run.dir.clone(),
        })
}

/// Episode `n` of the run, or the best (`rundir::best_row`) when `n` is `None`. A failed
/// episode has no model; an infeasible one may be exported when asked for by number.
pub fn choose_episode(run: &RunDir, n: Option<usize>) -> Result<&Episode, DeployError> {
    let rows = &run.episodes.rows;
    let row = match n {
        None => best_row(rows).ok_or_else(|| DeployError::NoBest {
            dir: run.dir.clone(),
        })?,
        Some(k) => {
            (rows.iter().find(|r| r.episode == k)).ok_or_else(|| DeployError::NoEpisode {
                dir: run.dir.clone(),
                episode: k,
                logged: rows.len(),
            })?
        }
    };
    if row.failed {
        return Err(DeployError::FailedEpisode {
            dir: run.dir.clone(),
            episode: row.episode,
            policy: row.policy.clone(),
        });
    }
    if !row.fidelity.is_full() {
        return Err(DeployError::LowFidelityEpisode {
            dir: run.dir.clone(),
            episode: row.episode,
            policy: row.policy.clone(),
        });
    }
    Ok(row)
}

/// export.json: what was exported, from where, and how it measured when rebuilt.
#[derive(Debug, Clone, Serialize)]
pub struct ExportRecord {
    pub run: PathBuf,
    pub episode: usize,
    pub model: String,
    pub policy: String,
    pub feasible: bool,
    /// The rebuilt model's validation accuracy, and the one episodes.csv logged: equal when the
    /// rebuild is the model the search measured.
    pub validation_accuracy: f64,
    pub logged_validation_accuracy: Option<f64>,
    pub test_accuracy: f64,
    pub test_examples: usize,
    /// Test examples in the check-*.npy files (0: none written).
    pub check_examples: usize,
    pub onnx_opset: u32,
    pub files: Vec<String>,
    pub bitsearch: String,
}

impl ExportRecord {
    pub const FILE: &'static str = "export.json";

    /// True when the rebuilt model scores what the search logged for the episode.
    pub fn reproduced(&self) -> bool {
        self.logged_validation_accuracy == Some(self.validation_accuracy)
    }
}

/// What an export writes besides the model itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportOptions {
    /// The ONNX opset, which decides the integer containers (`onnx::Opset`).
    pub opset: Opset,
    /// Test examples written as check data (0: none).
    pub check_examples: usize,
}

/// Rebuilds `row`'s model from the FP32 baseline `base` (calibration, then the fine-tune with
/// the policy's seed, exactly as the search scored it) and writes its export into `out`, with
/// the first `check_examples` test examples as check data.
pub fn export_episode(
    run: &RunDir,
    row: &Episode,
    exp: &Experiment,
    data: &Dataset,
    base: &Model,
    out: &Path,
    options: ExportOptions,
) -> Result<ExportRecord, DeployError> {
    check_layers(run, base)?;
    let eval = Evaluator::new(exp, data, base)?;
    let Tuned { model, q, .. } = eval.finetune(&Policy::new(row.bits.clone()))?;
    let check = match options.check_examples.min(data.test.len()) {
        0 => None,
        n => Some(data.test.first(n, &Device::Cpu)?),
    };
    let check_data = check.as_ref().map(|(x, y)| (x, y));
    let files = write_files(out, &model, &q, options.opset, check_data)?;
    let record = ExportRecord {
        run: run.dir.clone(),
        episode: row.episode,
        model: model.name().to_string(),
        policy: q.policy().to_string(),
        feasible: row.feasible,
        validation_accuracy: accuracy(&model, &data.val, Some(&q))?,
        logged_validation_accuracy: row.accuracy,
        test_accuracy: accuracy(&model, &data.test, Some(&q))?,
        test_examples: data.test.len(),
        check_examples: match &check {
            Some((x, _)) => x.dim(0)?,
            None => 0,
        },
        onnx_opset: options.opset.number(),
        files,
        bitsearch: env!("CARGO_PKG_VERSION").to_string(),
    };
    write_json(&out.join(ExportRecord::FILE), &record)?;
    Ok(record)
}

/// Errors unless the run's layers are `base`'s.
fn check_layers(run: &RunDir, base: &Model) -> Result<(), DeployError> {
    let names: Vec<String> = base.shapes().iter().map(|l| l.name.clone()).collect();
    let logged: Vec<String> = run.config.layers.iter().map(|l| l.name.clone()).collect();
    if names != logged {
        return Err(DeployError::Layers {
            dir: run.dir.clone(),
            run: logged,
            model: names,
        });
    }
    Ok(())
}

/// Writes policy.json, model.safetensors (when the policy is all integers), model.onnx (at
/// `opset`) and (given examples) the check data of `model` quantized by `q` into `out`,
/// creating it; returns the file names written.
pub fn write_files(
    out: &Path,
    model: &Model,
    q: &Quantizer,
    opset: Opset,
    check: Option<(&candle_core::Tensor, &candle_core::Tensor)>,
) -> Result<Vec<String>, DeployError> {
    std::fs::create_dir_all(out).map_err(|source| DeployError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    let names: Vec<&str> = model.shapes().iter().map(|l| l.name.as_str()).collect();
    if q.policy().len() != names.len() {
        return Err(DeployError::PolicyLength {
            layers: names.len(),
            policy: q.policy().len(),
        });
    }
    write_json(
        &out.join("policy.json"),
        &q.policy().to_file(model.name(), &names),
    )?;
    let onnx = onnx::export(model, q, opset)?;
    let mut files = vec!["policy.json"];
    // The safetensors file holds integer grids only: a policy with a float or group-wise
    // format is deployed by its ONNX file alone.
    match weights_safetensors(model, q) {
        Ok(bytes) => {
            write_atomic(&out.join("model.safetensors"), &bytes)?;
            files.push("model.safetensors");
        }
        Err(DeployError::NotInteger { .. }) => {}
        Err(e) => return Err(e),
    }
    write_atomic(&out.join("model.onnx"), &onnx)?;
    files.push("model.onnx");
    if let Some((x, y)) = check {
        write_check(out, model, q, x, y)?;
        files.extend(["check-input.npy", "check-labels.npy", "check-logits.npy"]);
    }
    Ok(files.into_iter().map(String::from).collect())
}
