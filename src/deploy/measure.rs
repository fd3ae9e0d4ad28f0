//! `bitsearch measure`: a run's policies rebuilt as their deployable models (as `export` builds
//! them), timed in ONNX Runtime on this host and written as measured.csv beside the run's
//! predicted latencies.

use std::path::Path;

use super::DeployError;
use crate::data::Dataset;
use crate::experiment::Experiment;
use crate::model::onnx::{export_with_layers, Opset};
use crate::model::Model;
use crate::quant::Policy;
use crate::rundir::{write_atomic, Episode, MeasuredRow, RunDir};
use crate::runtime::{attribute, cpu, measure, Timing};
use crate::score::{Evaluator, Tuned};

/// How `measure_episodes` measures.
#[derive(Debug, Clone)]
pub struct MeasureOptions {
    /// Batch sizes and repeats; the profile's batch is one of the batches.
    pub timing: Timing,
    /// The profile's batch, at which episodes.csv's `latency_s` is the prediction (None: the
    /// run's profile could not be loaded, so no row has a prediction).
    pub profile_batch: Option<usize>,
    pub opset: Opset,
}

/// Rebuilds each of `rows` (fine-tuned as the search scored it), writes it as
/// `dir/episode-N.onnx`, times it in ONNX Runtime and returns its measured.csv rows; `done` is
/// called after each policy.
pub fn measure_episodes(
    run: &RunDir,
    rows: &[&Episode],
    (exp, data, base): (&Experiment, &Dataset, &Model),
    dir: &Path,
    options: &MeasureOptions,
    mut done: impl FnMut(&[MeasuredRow]),
) -> Result<Vec<MeasuredRow>, DeployError> {
    super::check_layers(run, base)?;
    let eval = Evaluator::new(exp, data, base)?;
    let cpu = cpu();
    let mut out = Vec::new();
    for row in rows {
        let Tuned { model, q, .. } = eval.finetune(&Policy::new(row.bits.clone()))?;
        let (bytes, layers) = export_with_layers(&model, &q, options.opset)?;
        let path = dir.join(format!("episode-{}.onnx", row.episode));
        write_atomic(&path, &bytes)?;
        let m = measure(&path, &options.timing)?;
        let start = out.len();
        for b in &m.batches {
            let kernels: Vec<String> = attribute(&layers, b)
                .iter()
                .map(|l| format!("{}={}", l.layer, l.kernel))
                .collect();
            out.push(MeasuredRow {
                episode: row.episode,
                policy: row.policy.clone(),
                batch: b.batch,
                predicted_latency_s: (options.profile_batch == Some(b.batch))
                    .then_some(row.latency_s),
                measured_latency_s: b.median_s,
                repeats: b.repeats,
                kernels: kernels.join(";"),
                runtime: format!("onnxruntime {}", m.onnxruntime),
                cpu: cpu.clone(),
                threads: m.threads,
            });
        }
        done(&out[start..]);
    }
    Ok(out)
}
