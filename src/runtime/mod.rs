//! Running an exported model on a real runtime (ONNX Runtime) on this host and timing it, whole
//! and per layer: the measurements `bitsearch measure` and `profiles calibrate --runtime
//! onnxruntime` are made of, and that calibration.
//!
//! ONNX Runtime is run through its Python package (`scripts/ort_latency.py`, embedded in the
//! binary): the PyPI wheel is the one install these machines can reach, it carries the same
//! C++ runtime and kernels as the C API, and it needs no linking (the `ort` crate would
//! download its library at build time, which cannot work here). A run costs one interpreter
//! start (~0.3 s) per model, against timings of thousands of runs inside it.

mod attribute;
mod calibrate;

pub use attribute::{attribute, LayerTime};
pub use calibrate::{calibrate, container, Calibrated, ContainerTiming, CONTAINERS};

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

/// The runner script, run as `python3 -c`.
const SCRIPT: &str = include_str!("../../scripts/ort_latency.py");

/// The interpreter: `BITSEARCH_PYTHON`, else `python3`.
pub fn python() -> String {
    std::env::var("BITSEARCH_PYTHON").unwrap_or_else(|_| "python3".into())
}

const INSTALL: &str = "install it with `pip install onnxruntime==1.32.0 numpy` (or `bash \
                       scripts/install-ci-deps.sh`), or name another interpreter in \
                       BITSEARCH_PYTHON";

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot start {python} to run ONNX Runtime: {source}; {INSTALL}")]
    NoPython {
        python: String,
        source: std::io::Error,
    },
    #[error("ONNX Runtime is not installed for {python} ({detail}); {INSTALL}")]
    NotInstalled { python: String, detail: String },
    #[error("ONNX Runtime failed on {}: {detail}", model.display())]
    Failed { model: PathBuf, detail: String },
    #[error("ONNX Runtime's timing of {} is not what bitsearch reads: {detail}", model.display())]
    BadOutput { model: PathBuf, detail: String },
    #[error("the timing settings are not usable: {0}")]
    Settings(String),
    #[error("cannot write the model to time: {0}")]
    Write(#[from] crate::atomic::WriteError),
    #[error(transparent)]
    Model(Box<crate::model::ModelError>),
    #[error(transparent)]
    Hardware(Box<crate::hardware::HardwareError>),
    #[error(transparent)]
    Quant(#[from] crate::quant::QuantError),
}

crate::errors::boxed_from!(
    RuntimeError;
    Model: crate::model::ModelError,
    Hardware: crate::hardware::HardwareError,
);

/// How a model is timed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    /// Batch sizes, each timed on its own.
    pub batches: Vec<usize>,
    /// Timed runs per batch size (the median is kept), after `warmup` untimed ones.
    pub repeats: usize,
    pub warmup: usize,
    /// ONNX Runtime's intra-op threads.
    pub threads: usize,
}

/// What ONNX Runtime measured for one model.
#[derive(Debug, Clone, Deserialize)]
pub struct Measurement {
    /// ONNX Runtime's version.
    pub onnxruntime: String,
    pub threads: usize,
    pub batches: Vec<BatchTiming>,
}

/// One batch size's timing.
#[derive(Debug, Clone, Deserialize)]
pub struct BatchTiming {
    pub batch: usize,
    /// Median wall time of one run.
    pub median_s: f64,
    pub repeats: usize,
    /// The nodes ORT ran (after its graph rewrites), in execution order.
    pub nodes: Vec<NodeTiming>,
}

/// One node ORT ran: its name, its kernel and its median profiled time.
#[derive(Debug, Clone, Deserialize)]
pub struct NodeTiming {
    pub name: String,
    pub op: String,
    pub s: f64,
}

/// Times the ONNX model at `model` in ONNX Runtime on this host.
pub fn measure(model: &Path, timing: &Timing) -> Result<Measurement, RuntimeError> {
    if timing.batches.is_empty()
        || timing.batches.contains(&0)
        || timing.repeats == 0
        || timing.threads == 0
    {
        return Err(RuntimeError::Settings(format!(
            "needs batch sizes >= 1, repeats >= 1 and threads >= 1 (got batches {:?}, repeats {}, \
             threads {})",
            timing.batches, timing.repeats, timing.threads
        )));
    }
    let settings = serde_json::json!({
        "batches": timing.batches,
        "repeats": timing.repeats,
        "warmup": timing.warmup,
        "threads": timing.threads,
    });
    let python = python();
    let out = Command::new(&python)
        .arg("-c")
        .arg(SCRIPT)
        .arg(model)
        .arg(settings.to_string())
        .output()
        .map_err(|source| RuntimeError::NoPython {
            python: python.clone(),
            source,
        })?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let detail = last_lines(&stderr);
        return Err(
            match stderr.contains("No module named 'onnxruntime'")
                || stderr.contains("No module named 'numpy'")
            {
                true => RuntimeError::NotInstalled { python, detail },
                false => RuntimeError::Failed {
                    model: model.to_path_buf(),
                    detail,
                },
            },
        );
    }
    let m: Measurement =
        serde_json::from_slice(&out.stdout).map_err(|e| RuntimeError::BadOutput {
            model: model.to_path_buf(),
            detail: e.to_string(),
        })?;
    let bad = |detail: String| RuntimeError::BadOutput {
        model: model.to_path_buf(),
        detail,
    };
    for b in &m.batches {
        if !(b.median_s.is_finite() && b.median_s > 0.0) {
            return Err(bad(format!("batch {}: median {} s", b.batch, b.median_s)));
        }
    }
    if m.batches.len() != timing.batches.len() {
        return Err(bad(format!(
            "{} batch sizes timed, {} asked for",
            m.batches.len(),
            timing.batches.len()
        )));
    }
    Ok(m)
}

/// The last few lines of a runner's stderr: the error, not the traceback's top.
fn last_lines(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(3)..].join(" | ")
}

/// This host's CPU model (`/proc/cpuinfo`'s first `model name`) and its logical CPUs.
pub fn cpu() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, v)| v.trim())
        .to_string();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{model} ({cpus} logical CPUs)")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Settings nothing can be timed with are refused before any interpreter starts.
    #[test]
    fn zero_threads_repeats_or_batch_are_refused_by_name() {
        let ok = Timing {
            batches: vec![1],
            repeats: 5,
            warmup: 1,
            threads: 1,
        };
        let cases = [
            Timing {
                threads: 0,
                ..ok.clone()
            },
            Timing {
                repeats: 0,
                ..ok.clone()
            },
            Timing {
                batches: vec![0],
                ..ok.clone()
            },
        ];
        for t in cases {
            let e = measure(Path::new("/nonexistent/model.onnx"), &t).unwrap_err();
            assert!(matches!(e, RuntimeError::Settings(_)), "{e}");
            let text = e.to_string();
            assert!(
                text.contains("threads >= 1") && text.contains("got batches"),
                "{text}"
            );
        }
    }
}
