//! The cached FP32 baseline: trained once per (model, data, training config), stored under
//! `OUT/baselines/{arch}-{key}/` as model.safetensors + config.json + metrics.json, where `key`
//! is a SHA-256 of everything that determines the trained weights, data content included.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::fp32::{accuracy, train_fp32, EpochReport, TrainConfig};
use super::TrainError;
use crate::data::{DataConfig, Dataset};
use crate::model::{Model, ModelConfig, ModelSource};

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
    /// SHA-256 of an imported model's file (absent for zoo networks, so their keys are
    /// unchanged).
    #[serde(skip_serializing_if = "Option::is_none")]
    onnx: Option<String>,
    /// True when an imported model trains further (absent otherwise, keeping other keys).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    imported_trains: bool,
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
    let name = spec.model.name();
    let onnx = match &spec.model.source {
        ModelSource::Onnx(path) => Some(file_digest(path)),
        ModelSource::Arch(_) => None,
    };
    let key = CacheKey {
        version: CACHE_VERSION,
        arch: &name,
        onnx,
        imported_trains: spec.model.is_imported() && spec.model.train,
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
    out.join("baselines").join(format!("{name}-{hex}"))
}

/// The hex SHA-256 of a file's bytes ("unreadable" if it cannot be read: importing it will
/// then report why).
fn file_digest(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(bytes) => Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        Err(_) => "unreadable".into(),
    }
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
    let model = spec
        .model
        .init(data.shape, data.classes)?
        .read_weights(&weights)?;
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
/// `record` as its config.json (the resolved configuration that first asked for it). Searches
/// sharing a cache may train the same baseline at once: each succeeds, and all use the copy
/// that was published first.
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
    // An imported model's weights are the baseline, or the start of its training with
    // `model.train` (it keeps its own standardization either way); a zoo network trains from
    // its seeded start on the data's.
    let start = std::time::Instant::now();
    let model = match spec.model.is_imported() {
        true => spec.model.init(data.shape, data.classes)?,
        false => (spec.model.init(data.shape, data.classes)?).with_input_norm(data.input_norm()),
    };
    let epochs = match spec.model.trains() {
        true => train_fp32(&model, data, spec.train, show)?,
        false => Vec::new(),
    };
    let train_seconds = start.elapsed().as_secs_f64();
    let metrics = BaselineMetrics {
        val_accuracy: accuracy(&model, &data.val, None)?,
        test_accuracy: accuracy(&model, &data.test, None)?,
        epochs,
        train_seconds,
    };
    if publish(&dir, |tmp| {
        model.save(&tmp.join("model.safetensors"))?;
        write_json(&tmp.join("config.json"), record)?;
        write_json(&tmp.join("metrics.json"), &metrics)
    })? == Published::Lost
    {
        // Another process finished the same baseline first: use its weights, so every search
        // sharing the cache (and its score cache) works from the same checkpoint.
        if let Some(b) = load_baseline(spec, data, out)? {
            return Ok(b);
        }
    }
    Ok(Baseline {
        model,
        dir,
        metrics,
        cached: false,
    })
}

/// Whether `publish` put its directory in place or found one there already.
#[derive(Debug, PartialEq)]
enum Published {
    Now,
    Lost,
}

/// Fills a fresh temporary directory beside `dir` with `fill`, syncs it, and renames it to `dir`,
/// so a reader sees the whole baseline or none. Concurrent trainers each have their own
/// temporary directory (pid and a per-process count); the first rename wins, and a later one
/// finds `dir` complete, removes its copy and returns `Lost`. A temporary directory is removed
/// on every error; only a process killed mid-write leaves one (`NAME.tmp-PID-N`, never read).
fn publish(
    dir: &Path,
    fill: impl FnOnce(&Path) -> Result<(), TrainError>,
) -> Result<Published, TrainError> {
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    let n = COUNT.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.with_extension(format!("tmp-{}-{n}", std::process::id()));
    let filled = std::fs::create_dir_all(&tmp)
        .map_err(io(&tmp))
        .and_then(|()| fill(&tmp))
        .and_then(|()| sync_dir(&tmp));
    if let Err(e) = filled {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let renamed = std::fs::rename(&tmp, dir);
    if renamed.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    match renamed {
        Ok(()) => dir
            .parent()
            .map_or(Ok(()), sync_dir)
            .map(|()| Published::Now),
        // A non-empty `dir` refuses the rename: another process published first.
        Err(_) if dir.join("model.safetensors").exists() => Ok(Published::Lost),
        Err(e) => Err(io(dir)(e)),
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError {
    let path = path.to_path_buf();
    move |source| TrainError::Io { path, source }
}

/// Syncs every file in `dir` and `dir` itself, so a rename of it never outlives its content.
fn sync_dir(dir: &Path) -> Result<(), TrainError> {
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        if path.is_file() {
            std::fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(io(&path))?;
        }
    }
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), TrainError> {
    let text = serde_json::to_string_pretty(value).map_err(|source| TrainError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    std::fs::write(path, text).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn concurrent_publishes_both_succeed_and_the_first_copy_stays() {
        let cache = tempfile::tempdir().unwrap();
        let dir = cache.path().join("mlp-0123");
        let barrier = std::sync::Barrier::new(2);
        let outcomes: Vec<Published> = std::thread::scope(|s| {
            let writers: Vec<_> = ["a", "b"]
                .map(|who| {
                    let (dir, barrier) = (&dir, &barrier);
                    s.spawn(move || {
                        publish(dir, |tmp| {
                            // Both temporary directories exist before either is renamed.
                            barrier.wait();
                            std::fs::write(tmp.join("model.safetensors"), who).map_err(io(tmp))
                        })
                        .unwrap()
                    })
                })
                .into();
            writers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        assert!(outcomes.contains(&Published::Now) && outcomes.contains(&Published::Lost));
        assert_eq!(
            entries(cache.path()),
            ["mlp-0123"],
            "no temporary directory is left"
        );
        let weights = std::fs::read_to_string(dir.join("model.safetensors")).unwrap();
        assert!(
            weights == "a" || weights == "b",
            "one whole copy: {weights:?}"
        );
    }

    #[test]
    fn a_failed_write_leaves_no_temporary_directory() {
        let cache = tempfile::tempdir().unwrap();
        let dir = cache.path().join("mlp-0123");
        let e = publish(&dir, |tmp| {
            std::fs::write(tmp.join("model.safetensors"), "half").map_err(io(tmp))?;
            Err(io(tmp)(std::io::Error::other("disk full")))
        })
        .unwrap_err();
        assert!(e.to_string().contains("disk full"), "{e}");
        assert!(
            entries(cache.path()).is_empty(),
            "{:?}",
            entries(cache.path())
        );
    }
}
