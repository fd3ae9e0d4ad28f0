//! `bitsearch measure`: time a run's policies as deployable models in ONNX Runtime on this host
//! and write RUN_DIR/measured.csv, measured beside the run's predicted latency.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;

use bitsearch::deploy::{check_experiment, choose_episode, measure_episodes, MeasureOptions};
use bitsearch::report::prices::Device;
use bitsearch::rundir::{
    median_abs_error, this_command, Episode, Measured, MeasuredRow, RunDir, RunLock,
};
use bitsearch::runtime::Timing;

use super::export::{experiment_args, OpsetArg};

#[derive(Debug, Args)]
pub struct MeasureArgs {
    /// A search run directory (OUT/AGENT-PROFILE, with config.json and episodes.csv).
    pub run_dir: PathBuf,
    /// An episode to measure; repeatable [default: the best feasible one].
    #[arg(long, conflicts_with = "front")]
    pub episode: Vec<usize>,
    /// Measure every feasible policy of pareto.csv.
    #[arg(long)]
    pub front: bool,
    /// Timed runs per policy and batch size (the median is kept), after 10 warm-up runs.
    #[arg(long, default_value_t = 50)]
    pub repeats: usize,
    /// ONNX Runtime's intra-op threads. One gives steady batch-1 times on a small host, where
    /// more threads wait on each other for small layers (docs/results.md).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// The runtime: ONNX Runtime, through its Python package (`pip install onnxruntime`).
    #[arg(long, value_enum, default_value = "onnxruntime")]
    pub runtime: RuntimeArg,
    /// The ONNX opset the models are written at (as for `export`) [default: 13, or 21 when a
    /// measured policy has a format only 21 holds: then every model, so their times compare]
    #[arg(long, value_enum)]
    pub opset: Option<OpsetArg>,
    /// The run's experiment file [default: the one config.json records].
    #[arg(long)]
    pub experiment: Option<PathBuf>,
    /// Where FP32 baselines are cached (as for `search`).
    #[arg(long, default_value = "runs")]
    pub cache: PathBuf,
    /// No progress output.
    #[arg(long)]
    pub quiet: bool,
}

/// `--runtime`'s values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum RuntimeArg {
    Onnxruntime,
}

pub fn run(args: &MeasureArgs) -> anyhow::Result<()> {
    let RuntimeArg::Onnxruntime = args.runtime;
    let run = RunDir::read(&args.run_dir)
        .with_context(|| format!("cannot read run directory {}", args.run_dir.display()))?;
    let rows = chosen(&run, args)?;
    let profile_batch = match Device::of_run(&run.config) {
        Ok(d) => Some(d.batch() as usize),
        Err(e) => {
            eprintln!("warning: no predicted latency in measured.csv: {e}");
            None
        }
    };
    let mut batches = vec![1];
    batches.extend(profile_batch.filter(|&b| b > 1));
    let threads = args.threads;
    let options = MeasureOptions {
        timing: Timing {
            batches,
            repeats: args.repeats,
            warmup: 10,
            threads,
        },
        profile_batch,
        opset: super::export::opset_for(args.opset, rows.iter().map(|r| r.bits.as_slice())),
    };
    let (exp, data) = super::load_experiment(&experiment_args(&run, args.experiment.as_ref())?)?;
    check_experiment(&run, &exp)?;
    let base = super::baseline(&exp, &data, &args.cache, !args.quiet)?;
    let models = run.dir.join("measure");
    bitsearch::rundir::create_dir(&models)?;
    let quiet = args.quiet;
    let measured = measure_episodes(
        &run,
        &rows,
        (&exp, &data, &base.model),
        &models,
        &options,
        |done| {
            for r in done.iter().filter(|_| !quiet) {
                print_row(r);
            }
        },
    )
    .with_context(|| format!("cannot measure the policies of {}", run.dir.display()))?;
    let _lock = RunLock::acquire(&run.dir, &this_command())?;
    let all = merged(Measured::read(&run.dir)?.unwrap_or_default(), measured);
    Measured::write(&run.dir, &all)?;
    summarize(&all);
    println!("wrote {}", run.dir.join(Measured::FILE).display());
    Ok(())
}

/// The episodes asked for: `--episode`s, the feasible front, or the best.
fn chosen<'a>(run: &'a RunDir, args: &MeasureArgs) -> anyhow::Result<Vec<&'a Episode>> {
    if args.front {
        let Some(pareto) = &run.pareto else {
            bail!(
                "{}: no pareto.csv yet: nothing to measure",
                run.dir.display()
            );
        };
        let rows: Vec<&Episode> = (pareto.rows.iter())
            .filter(|r| r.feasible && !r.failed && r.fidelity.is_full())
            .collect();
        if rows.is_empty() {
            bail!("{}: pareto.csv holds no feasible policy", run.dir.display());
        }
        return Ok(rows);
    }
    if args.episode.is_empty() {
        return Ok(vec![choose_episode(run, None)?]);
    }
    (args.episode.iter())
        .map(|&n| Ok(choose_episode(run, Some(n))?))
        .collect()
}

/// `old` without the (episode, batch) pairs `new` measured again, then `new`; by episode.
fn merged(old: Vec<MeasuredRow>, new: Vec<MeasuredRow>) -> Vec<MeasuredRow> {
    let again =
        |r: &MeasuredRow| (new.iter()).any(|n| n.episode == r.episode && n.batch == r.batch);
    let mut all: Vec<MeasuredRow> = old.into_iter().filter(|r| !again(r)).collect();
    all.extend(new);
    all.sort_by_key(|r| (r.episode, r.batch));
    all
}

fn print_row(r: &MeasuredRow) {
    let predicted = match (r.predicted_latency_s, r.error()) {
        (Some(p), Some(e)) => format!(", predicted {:.1} µs ({:+.1}%)", p * 1e6, 100.0 * e),
        _ => String::new(),
    };
    println!(
        "episode {} ({}) at batch {}: measured {:.1} µs{predicted}; {}",
        r.episode,
        r.policy,
        r.batch,
        r.measured_latency_s * 1e6,
        r.kernels
    );
}

/// The median absolute prediction error over the rows that have a prediction, and the largest.
fn summarize(rows: &[MeasuredRow]) {
    let Some((median, n)) = median_abs_error(rows) else {
        return;
    };
    let largest = (rows.iter())
        .filter_map(MeasuredRow::error)
        .map(f64::abs)
        .fold(0.0, f64::max);
    println!(
        "predicted vs measured: median absolute error {:.1}% over {n} measurements (largest {:.1}%)",
        100.0 * median,
        100.0 * largest
    );
}
