//! Micro-benchmarks of the search's inner loop (training step, quantization-aware step, forward,
//! the attack's input gradient, a full FP32 training), as medians of repeated runs, and the cost
//! of scoring one policy (`policy`); `kernel_speed`, an ignored test, times the direct
//! convolution's kernels against the core's peak.

#[cfg(test)]
mod kernel_speed;
mod policy;

pub use policy::{bench_policy_score, BenchError, PolicyBench, PolicyResult};

use std::time::Instant;

use candle_core::{Device, Tensor, Var};
use candle_nn::{Optimizer, ParamsAdamW};
use serde::Serialize;

use crate::data::Dataset;
use crate::model::{Arch, Model};
use crate::quant::{Policy, Quantizer};
use crate::train::{orthogonality_penalty, train_fp32, FusedAdamW, TrainConfig, TrainError};

#[derive(Debug, Clone, Serialize)]
pub struct BenchRow {
    pub arch: String,
    pub name: String,
    /// Median over `runs` timed repetitions, after one warm-up.
    pub median_ms: f64,
    pub min_ms: f64,
    pub runs: usize,
    /// Example passes through the model, for the parts of "score one policy" (the attacks' count
    /// depends on the model: each stage attacks only what earlier ones left standing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub work: Option<usize>,
}

/// Median and minimum in milliseconds of `runs` calls of `f`, after one untimed warm-up call.
pub fn time_median<F>(runs: usize, mut f: F) -> Result<(f64, f64), TrainError>
where
    F: FnMut() -> Result<(), TrainError>,
{
    f()?;
    let mut ms = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        f()?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    Ok((ms[ms.len() / 2], ms[0]))
}

/// The mixed policy the benchmarks quantize with (8/8,4/4,2/4,4/4,8/8 for lenet5, as in
/// BENCHMARKS.md).
pub fn bench_policy(n_layers: usize) -> Policy {
    let mid = ["4/4", "2/4", "4/4"];
    let inner: Vec<&str> = (0..n_layers.saturating_sub(2))
        .map(|i| mid[i.min(2)])
        .collect();
    let text = format!("8/8,{},8/8", inner.join(","));
    Policy::parse(&text).unwrap_or_else(|_| Policy::new(Vec::new()))
}

/// Runs every micro-benchmark of one architecture on inputs shaped like `data`'s.
pub fn bench_arch(arch: Arch, data: &Dataset, runs: usize) -> Result<Vec<BenchRow>, TrainError> {
    let dev = Device::Cpu;
    let model = Model::new(arch, data.shape, data.classes, 0)?.with_input_norm(data.input_norm());
    let n = model.shapes().len();
    let quant = Quantizer::new(bench_policy(n), vec![[1.0; 8]; n]);
    let batch = |size: usize| -> Result<(Tensor, Tensor), TrainError> {
        let idx: Vec<usize> = (0..size.min(data.train.len())).collect();
        Ok(data.train.batch(&idx, &dev)?)
    };
    let (x128, y128) = batch(128)?;
    let (x1000, _) = batch(1000)?;
    let mut opt = FusedAdamW::new(model.vars(), ParamsAdamW::default())?;
    let mut rows = Vec::new();
    let mut row = |name: &str, (median_ms, min_ms): (f64, f64)| {
        rows.push(BenchRow {
            arch: arch.name().into(),
            name: name.into(),
            median_ms,
            min_ms,
            runs,
            work: None,
        });
    };
    // The fine-tune's step: cross-entropy through the fake-quantizers plus beta/2 times the
    // Lipschitz penalty (beta = 0 for the FP32 step).
    // The FP32 step is FP32 training's (BatchNorm on batch statistics); the quantized one the
    // fine-tune's (BatchNorm folded).
    let mut step = |q: Option<&Quantizer>, beta: f64| -> Result<(), TrainError> {
        let logits = match q {
            Some(_) => model.forward(&x128, q)?,
            None => model.forward_train(&x128)?,
        };
        let mut loss = candle_nn::loss::cross_entropy(&logits, &y128)?;
        if beta > 0.0 {
            loss = (loss + (orthogonality_penalty(&model.weights()?)? * (beta / 2.0))?)?;
        }
        opt.backward_step(&loss)?;
        Ok(())
    };
    row(
        "fp32 train step, batch 128",
        time_median(runs, || step(None, 0.0))?,
    );
    row(
        "quantized train step + Lipschitz, batch 128",
        time_median(runs, || step(Some(&quant), 1e-2))?,
    );
    // Evaluation's pass (what accuracy and the attacks' clean checks run, and what PyTorch's
    // `inference_mode` runs): it records nothing and lets each activation go after its last
    // reader.
    let forward = |q: Option<&Quantizer>| -> Result<(), TrainError> {
        model.forward_frozen(&x1000, q)?;
        Ok(())
    };
    row(
        "fp32 forward, 1000 images",
        time_median(runs, || forward(None))?,
    );
    row(
        "quantized forward, 1000 images",
        time_median(runs, || forward(Some(&quant)))?,
    );
    // What an attack's step does: the input gradient alone (frozen weights, no dW or db).
    let input_grad = || -> Result<(), TrainError> {
        let x = Var::from_tensor(&x128)?;
        let logits = model.forward_frozen(x.as_tensor(), Some(&quant))?;
        let loss = candle_nn::loss::cross_entropy(&logits, &y128)?;
        let grads = loss.backward()?;
        let _ = grads.get(&x);
        Ok(())
    };
    row(
        "input gradient (PGD step), batch 128",
        time_median(runs, input_grad)?,
    );
    Ok(rows)
}

/// Times a full FP32 training of `arch` with `cfg` (one run: it takes seconds).
pub fn bench_training(
    arch: Arch,
    data: &Dataset,
    cfg: &TrainConfig,
) -> Result<BenchRow, TrainError> {
    let model = Model::new(arch, data.shape, data.classes, 0)?.with_input_norm(data.input_norm());
    let t = Instant::now();
    train_fp32(&model, data, cfg, false)?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    Ok(BenchRow {
        arch: arch.name().into(),
        name: format!("fp32 training, {} epochs, batch {}", cfg.epochs, cfg.batch),
        median_ms: ms,
        min_ms: ms,
        runs: 1,
        work: None,
    })
}

/// Peak resident memory of this process in MiB (Linux VmHWM), if the kernel reports it.
pub fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_policy_matches_the_issue_for_five_layers() {
        assert_eq!(bench_policy(5).to_string(), "8/8,4/4,2/4,4/4,8/8");
        assert_eq!(bench_policy(6).to_string(), "8/8,4/4,2/4,4/4,4/4,8/8");
        assert_eq!(bench_policy(3).to_string(), "8/8,4/4,8/8");
    }
}
