//! "Score one policy": exactly the work one search episode does on an experiment (the
//! Lipschitz-regularized fine-tune, validation accuracy, the search's attack suite with its early
//! exit), timed stage by stage as medians of repeated runs; and the files the PyTorch reference
//! (`scripts/torch_reference.py --policy-dir`) reads to do the same work on the same inputs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device};
use serde::Serialize;

use super::{bench_policy, BenchRow};
use crate::data::{Dataset, Split};
use crate::experiment::Experiment;
use crate::model::Model;
use crate::quant::LayerClips;
use crate::robust::{Stage, SuiteCost, TransferSet};
use crate::score::Evaluator;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Train(Box<crate::train::TrainError>),
    #[error(transparent)]
    Robust(Box<crate::robust::RobustError>),
    #[error(transparent)]
    Score(Box<crate::score::ScoreError>),
    #[error(transparent)]
    Model(Box<crate::model::ModelError>),
    #[error(transparent)]
    Data(Box<crate::data::DataError>),
    #[error("tensor error: {0}")]
    Tensor(Box<candle_core::Error>),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

crate::errors::boxed_from!(
    BenchError;
    Train: crate::train::TrainError,
    Robust: crate::robust::RobustError,
    Score: crate::score::ScoreError,
    Model: crate::model::ModelError,
    Data: crate::data::DataError,
    Tensor: candle_core::Error
);

/// One timed repetition: seconds per part, the attack suite's cost per stage, and what it
/// measured.
#[derive(Debug, Clone, Default)]
struct Sample {
    total: f64,
    finetune: f64,
    accuracy: f64,
    suite: SuiteCost,
    result: PolicyResult,
}

/// What scoring the policy measured (the same in every repetition: the fine-tune is seeded):
/// the fine-tuned model's validation accuracy, and on the attacked examples its clean accuracy
/// and the suite's worst case at the headline radius. The PyTorch reference prints the same
/// three, so the two sides' models can be compared as well as their times.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct PolicyResult {
    pub accuracy: f64,
    pub worst_case: f64,
    pub clean: f64,
}

/// "Score one policy" on one experiment: the median rows of every part, the policy scored and
/// what scoring it measured.
#[derive(Debug, Clone)]
pub struct PolicyBench {
    pub arch: String,
    pub policy: String,
    pub rows: Vec<BenchRow>,
    pub result: PolicyResult,
}

/// What the reference reads from `policy-bench.json`.
#[derive(Serialize)]
struct Manifest<'a> {
    arch: &'a str,
    policy: String,
    clips: &'a [LayerClips],
    finetune: &'a crate::train::FinetuneConfig,
    attack: &'a crate::robust::AttackConfig,
    input_norm: &'a crate::data::InputNorm,
    val_examples: usize,
    attack_examples: usize,
    runs: usize,
}

/// Times scoring the benchmark policy (`bench_policy`) on `exp` from the FP32 baseline `base`:
/// `runs` repetitions after one warm-up. With `reference`, first writes the inputs the PyTorch
/// reference needs there.
pub fn bench_policy_score(
    exp: &Experiment,
    data: &Dataset,
    base: &Model,
    runs: usize,
    reference: Option<&Path>,
) -> Result<PolicyBench, BenchError> {
    let eval = Evaluator::new(exp, data, base)?;
    let policy = bench_policy(base.shapes().len());
    let attack = data.val.head(exp.search.attack_examples);
    // Crafted once per search, so not part of an episode's work.
    let suite = eval.validation_suite()?;
    if let Some(dir) = reference {
        let m = Manifest {
            arch: base.name(),
            policy: policy.to_string(),
            clips: &eval.clips().input,
            finetune: &exp.finetune,
            attack: &exp.attack,
            input_norm: base.input_norm(),
            val_examples: data.val.len(),
            attack_examples: attack.len(),
            runs,
        };
        write_reference(dir, &m, base, data, &attack, suite.transfer())?;
    }
    let score = || -> Result<Sample, BenchError> {
        let start = Instant::now();
        let t = eval.finetune(&policy)?;
        let finetune = start.elapsed().as_secs_f64();
        let at = Instant::now();
        let val_accuracy = eval.accuracy(&t.model, Some(&t.q), &data.val)?;
        let accuracy = at.elapsed().as_secs_f64();
        let report = suite.run(&t.model, Some(&t.q))?;
        Ok(Sample {
            total: start.elapsed().as_secs_f64(),
            finetune,
            accuracy,
            result: PolicyResult {
                accuracy: val_accuracy,
                worst_case: report.worst_case,
                clean: report.clean,
            },
            suite: report.cost,
        })
    };
    score()?;
    let samples = (0..runs.max(1))
        .map(|_| score())
        .collect::<Result<Vec<_>, _>>()?;
    // Every batch of the fine-tune is full (finetune.rs reshuffles before one would run past
    // the end), unless the whole split is smaller than one batch.
    let ft = &exp.finetune;
    let work = Work {
        finetune: ft.steps * ft.batch.min(data.train.len()),
        accuracy: data.val.len(),
    };
    Ok(PolicyBench {
        arch: base.name().into(),
        policy: policy.to_string(),
        rows: rows(base.name(), &samples, work),
        result: samples.last().map(|s| s.result).unwrap_or_default(),
    })
}

/// Examples passed through the model by the parts outside the attack suite: the fine-tune's
/// training examples and the accuracy's validation examples.
#[derive(Debug, Clone, Copy)]
struct Work {
    finetune: usize,
    accuracy: usize,
}

/// The median row of every part, named as the PyTorch reference names them, with the examples
/// each passed (the total: their sum).
fn rows(arch: &str, samples: &[Sample], work: Work) -> Vec<BenchRow> {
    let row = |name: String, f: &dyn Fn(&Sample) -> f64, work: Option<usize>| {
        let mut ms: Vec<f64> = samples.iter().map(|s| f(s) * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        BenchRow {
            arch: arch.into(),
            name,
            median_ms: ms[ms.len() / 2],
            min_ms: ms[0],
            runs: samples.len(),
            work,
        }
    };
    // Passes depend only on the model, the same in every repetition: the last one's.
    let passes = |stage| samples.last().map_or(0, |s| s.suite.get(stage).passes);
    let total = work.finetune + work.accuracy + Stage::ALL.map(passes).iter().sum::<usize>();
    let mut out = vec![
        row(
            "policy: total (fine-tune + accuracy + attacks)".into(),
            &|s| s.total,
            Some(total),
        ),
        row(
            "policy: fine-tune".into(),
            &|s| s.finetune,
            Some(work.finetune),
        ),
        row(
            "policy: accuracy".into(),
            &|s| s.accuracy,
            Some(work.accuracy),
        ),
    ];
    for stage in Stage::ALL {
        out.push(row(
            format!("policy: {}", stage.name()),
            &|s| s.suite.get(stage).seconds,
            Some(passes(stage)),
        ));
    }
    out
}

/// Writes `policy-bench.json`, `baseline.safetensors` and `data.safetensors` into `dir`.
fn write_reference(
    dir: &Path,
    manifest: &Manifest,
    base: &Model,
    data: &Dataset,
    attack: &Split,
    transfer: Option<&TransferSet>,
) -> Result<(), BenchError> {
    let io = |path: PathBuf| move |source| BenchError::Io { path, source };
    std::fs::create_dir_all(dir).map_err(io(dir.to_path_buf()))?;
    let json = serde_json::to_string_pretty(manifest).map_err(|e| BenchError::Io {
        path: dir.join("policy-bench.json"),
        source: e.into(),
    })?;
    let path = dir.join("policy-bench.json");
    std::fs::write(&path, json).map_err(io(path.clone()))?;
    base.save(&dir.join("baseline.safetensors"))?;
    let mut tensors = HashMap::new();
    for (name, split) in [
        ("train", &data.train),
        ("val", &data.val),
        ("attack", attack),
    ] {
        let (x, y) = split.first(split.len(), &Device::Cpu)?;
        tensors.insert(format!("{name}_x"), x);
        tensors.insert(format!("{name}_y"), y.to_dtype(DType::I64)?);
    }
    for (i, adv) in transfer.iter().flat_map(|t| t.adv.iter()).enumerate() {
        tensors.insert(format!("transfer_{i}"), adv.clone());
    }
    let path = dir.join("data.safetensors");
    candle_core::safetensors::save(&tensors, &path)?;
    Ok(())
}
