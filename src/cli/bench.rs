//! `bitsearch bench`: time the inner loop of the search on this machine.

use clap::Args;

use std::path::PathBuf;

use bitsearch::bench::{
    bench_arch, bench_policy_score, bench_training, peak_memory_mib, BenchRow, PolicyBench,
};
use bitsearch::model::Arch;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Architectures to time.
    #[arg(long, value_delimiter = ',', default_values = ["lenet5", "cnn6"])]
    pub arch: Vec<Arch>,
    /// Timed repetitions per figure (the median is reported).
    #[arg(long, default_value_t = 20)]
    pub runs: usize,
    /// Skip the full FP32 training run (the slowest figure).
    #[arg(long)]
    pub no_training: bool,
    /// Skip "score one policy" (an episode's work on the experiment, from its FP32 baseline).
    #[arg(long, conflicts_with = "policy_only")]
    pub no_policy: bool,
    /// Only "score one policy", on the experiment's own architecture: no micro figures of
    /// `--arch`, no full training.
    #[arg(long)]
    pub policy_only: bool,
    /// Timed repetitions of "score one policy" (seconds each; the median is reported).
    #[arg(long, default_value_t = 5)]
    pub policy_runs: usize,
    /// Where FP32 baselines are cached (trained there if missing), as for `search`.
    #[arg(long, default_value = "runs")]
    pub cache: PathBuf,
    /// Also write the inputs of "score one policy" here (the baseline, the data, the policy and
    /// its clips) for `scripts/torch_reference.py --policy-dir`.
    #[arg(long)]
    pub reference_dir: Option<PathBuf>,
    /// The experiment whose data and training settings the full training uses.
    #[command(flatten)]
    pub experiment: super::ExperimentArgs,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let (exp, data) = super::load_experiment(&args.experiment)?;
    let threads = rayon::current_num_threads();
    if !args.json {
        println!(
            "bitsearch bench: {threads} threads, median of {} runs after 1 warm-up",
            args.runs
        );
        println!(
            "{:<8} {:<46} {:>12} {:>10}",
            "arch", "figure", "median ms", "min ms"
        );
    }
    let print = |r: &BenchRow| -> anyhow::Result<()> {
        if args.json {
            println!("{}", serde_json::to_string(r)?);
        } else {
            println!(
                "{:<8} {:<46} {:>12.2} {:>10.2} {}",
                r.arch,
                r.name,
                r.median_ms,
                r.min_ms,
                r.work.map_or(String::new(), |w| format!("{w} passes"))
            );
        }
        Ok(())
    };
    let archs = if args.policy_only {
        &[][..]
    } else {
        &args.arch
    };
    for &arch in archs {
        for r in bench_arch(arch, &data, args.runs)? {
            print(&r)?;
        }
        if !args.no_training {
            print(&bench_training(arch, &data, &exp.train)?)?;
        }
    }
    if !args.no_policy {
        let base = super::baseline(&exp, &data, &args.cache, false)?;
        let dir = args.reference_dir.as_deref();
        let bench = bench_policy_score(&exp, &data, &base.model, args.policy_runs, dir)?;
        for r in &bench.rows {
            print(r)?;
        }
        print_result(&bench, args.json)?;
    }
    if let Some(mib) = peak_memory_mib() {
        if args.json {
            println!("{}", serde_json::json!({ "peak_memory_mib": mib }));
        } else {
            println!("peak memory (VmHWM): {mib:.0} MiB");
        }
    }
    Ok(())
}

/// What the scored policy measured, beside the PyTorch reference's `policy_result` line.
fn print_result(bench: &PolicyBench, json: bool) -> anyhow::Result<()> {
    let r = &bench.result;
    if json {
        let line = serde_json::json!({
            "arch": bench.arch,
            "policy": bench.policy,
            "policy_result": r,
        });
        println!("{line}");
    } else {
        println!(
            "{:<8} policy {}: validation accuracy {:.4}, clean {:.4}, worst case {:.4}",
            bench.arch, bench.policy, r.accuracy, r.clean, r.worst_case
        );
    }
    Ok(())
}
