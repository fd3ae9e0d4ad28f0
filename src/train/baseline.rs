//! The cached FP32 baseline: trained once per (model, data, training config), stored under
//! `OUT/baselines/{arch}-{key}/` as model.safetensors + config.json + metrics.json, where `key`
//! is a SHA-256 of everything that determines the trained weights, data content included.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::fp32::{accuracy, train_fp32, EpochReport, TrainConfig};
use super::TrainError;
use crate::data::{DataConfig, Dataset};
use crate::model::{Model, ModelConfig};

/// Bump when training code changes in a way that changes the weights, so old caches are not reused.
const CACHE_VERSION: u32 = 3;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BaselineMetrics {
    pub epochs: Vec<EpochReport>,
    pub val_accuracy: f64,
    pub test_accuracy: f64,
    pub train_seconds: f64,
}

/// What determines an FP32 baseline's weights: the network, the data it trains on, the training.
#[derive(Debug, Clone, Copy)]
pub struct BaselineSpec<'a> {
    pub model: &'a ModelConfig,
    pub data: &'a DataConfig,
    pub train: &'a TrainConfig,
}

pub struct Baseline {
    pub model: Model,
    pub dir: PathBuf,
    pub metrics: BaselineMetrics,
    /// True when it was loaded from the cache rather than trained now.
    pub cached: bool,
}

#[derive(Serialize)]
struct CacheKey<'a> {
    version: u32,
    arch: &'a str,
    model_seed: u64,
    input: (usize, usize, usize),
    classes: usize,
    source: String,
    validation: usize,
    data_seed: u64,
    train: &'a TrainConfig,
}

/// Where the baseline for this spec and data lives under `out`.
pub fn baseline_dir(spec: &BaselineSpec, data: &Dataset, out: &Path) -> PathBuf {
    let key = CacheKey {
        version: CACHE_VERSION,
        arch: spec.model.arch.name(),
        model_seed: spec.model.seed,
        input: data.shape,
        classes: data.classes,
        source: spec.data.source.to_string(),
        validation: spec.data.validation,
        data_seed: spec.data.seed,
        train: spec.train,
    };
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(&key).unwrap_or_default());
    for split in [&data.train, &data.val] {
        for v in split.pixels() {
            h.update(v.to_le_bytes());
        }
        for l in split.labels() {
            h.update(l.to_le_bytes());
        }
    }
    let digest = h.finalize();
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    out.join("baselines")
        .join(format!("{}-{hex}", spec.model.arch.name()))
}

/// The cached baseline, or None if it was never trained for this spec and data.
pub fn load_baseline(
    spec: &BaselineSpec,
    data: &Dataset,
    out: &Path,
) -> Result<Option<Baseline>, TrainError> {
    let dir = baseline_dir(spec, data, out);
    let weights = dir.join("model.safetensors");
    if !weights.exists() {
        return Ok(None);
    }
    let model = Model::load(spec.model.arch, data.shape, data.classes, &weights)?;
    let metrics_path = dir.join("metrics.json");
    let text = std::fs::read_to_string(&metrics_path).map_err(|source| TrainError::Io {
        path: metrics_path.clone(),
        source,
    })?;
    let metrics = serde_json::from_str(&text).map_err(|source| TrainError::Json {
        path: metrics_path,
        source,
    })?;
    Ok(Some(Baseline {
        model,
        dir,
        metrics,
        cached: true,
    }))
}

/// Loads the cached baseline, or trains it and writes it atomically (temp dir, then rename) with
/// `record` as its config.json (the resolved configuration that first asked for it).
pub fn train_baseline(
    spec: &BaselineSpec,
    record: &impl Serialize,
    data: &Dataset,
    out: &Path,
    show: bool,
) -> Result<Baseline, TrainError> {
    if let Some(b) = load_baseline(spec, data, out)? {
        return Ok(b);
    }
    let dir = baseline_dir(spec, data, out);
    let model = spec
        .model
        .init(data.shape, data.classes)?
        .with_input_norm(data.input_norm());
    let start = std::time::Instant::now();
    let epochs = train_fp32(&model, data, spec.train, show)?;
    let train_seconds = start.elapsed().as_secs_f64();
    let metrics = BaselineMetrics {
        val_accuracy: accuracy(&model, &data.val, None)?,
        test_accuracy: accuracy(&model, &data.test, None)?,
        epochs,
        train_seconds,
    };
    let tmp = dir.with_extension(format!("tmp-{}", std::process::id()));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TrainError::Io { path, source }
    };
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    model.save(&tmp.join("model.safetensors"))?;
    write_json(&tmp.join("config.json"), record)?;
    write_json(&tmp.join("metrics.json"), &metrics)?;
    if let Err(e) = std::fs::rename(&tmp, &dir) {
        // Another process may have finished the same baseline first; keep its copy.
        let _ = std::fs::remove_dir_all(&tmp);
        if !dir.join("model.safetensors").exists() {
            return Err(io(&dir)(e));
        }
    }
    Ok(Baseline {
        model,
        dir,
        metrics,
        cached: false,
    })
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), TrainError> {
    let text = serde_json::to_string_pretty(value).map_err(|source| TrainError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    std::fs::write(path, text).map_err(|source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    })
}
