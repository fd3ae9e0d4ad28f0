//! `bitsearch profiles calibrate --runtime onnxruntime`: this host's profile from ONNX Runtime's
//! measured per-layer latency of the model (an experiment's or a zoo network's) at each
//! container ORT runs.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;

use bitsearch::hardware::{write_profile_with_table, Profile};
use bitsearch::model::Model;
use bitsearch::runtime::{calibrate, ContainerTiming, Timing};

use super::ModelArgs;

/// `profiles calibrate`'s settings.
pub struct Settings<'a> {
    pub out: &'a Path,
    pub batch: usize,
    pub repeats: usize,
    pub threads: usize,
}

pub fn run(args: &ModelArgs, s: &Settings) -> anyhow::Result<()> {
    let start = Instant::now();
    let model = model(args)?;
    let threads = s.threads;
    let timing = Timing {
        batches: vec![s.batch],
        repeats: s.repeats,
        warmup: 10,
        threads,
    };
    let work = scratch_dir()?;
    println!(
        "timing {} in ONNX Runtime at batch {}, {threads} threads, {} repeats:",
        model.name(),
        s.batch,
        timing.repeats
    );
    let c = calibrate(&model, &timing, &work, print_container);
    let _ = std::fs::remove_dir_all(&work);
    let c = c.context("calibrating with ONNX Runtime")?;
    let header = format!(
        "# Written by `bitsearch profiles calibrate --runtime onnxruntime`: measured on this \
         machine in ONNX Runtime {}.\n# Latency is measured (per layer: its share of the median \
         whole-model time); energy is NOT measured: it is a Horowitz 45 nm estimate (see \
         sources).\n\n",
        c.onnxruntime
    );
    let csv = write_profile_with_table(s.out, c.profile, &c.rows, &header)?;
    Profile::load(s.out).context("the calibrated profile does not validate")?;
    println!(
        "wrote {} and {} ({} rows) in {:.1} s",
        s.out.display(),
        csv.display(),
        c.rows.len(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The model timed: --arch's, freshly initialized, or the experiment's (its zoo network or
/// imported ONNX, with the data's input standardization), untrained (latency does not depend
/// on the weights).
fn model(args: &ModelArgs) -> anyhow::Result<Model> {
    if let Some(arch) = args.arch {
        let input = args.input.unwrap_or((3, 224, 224));
        let classes = args.classes.unwrap_or(1000);
        return Model::new(arch, input, classes, 0)
            .with_context(|| format!("--arch {}", arch.name()));
    }
    let (exp, data) = super::load_experiment(&super::ExperimentArgs::file(&args.experiment))?;
    let model = (exp.model.init(data.shape, data.classes))
        .with_context(|| format!("the model of {}", args.experiment.display()))?;
    Ok(model.with_input_norm(data.input_norm()))
}

/// A new directory only this user can enter, for the timed models (scratch, removed
/// afterwards): created fresh, so nothing another user planted in the temp directory is used.
fn scratch_dir() -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!(
        "bitsearch-calibrate-{}-{stamp}",
        std::process::id()
    ));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

fn print_container(c: &ContainerTiming) {
    let mut kernels: Vec<&str> = c.kernels.iter().map(String::as_str).collect();
    kernels.dedup();
    println!(
        "  uniform {}/{}: {:.1} µs ({})",
        c.w,
        c.a,
        c.median_s * 1e6,
        kernels.join(", ")
    );
}
