//! `bitsearch bench`: time the inner loop of the search on this machine.

use clap::Args;

use bitsearch::bench::{bench_arch, bench_training, peak_memory_mib, BenchRow};
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
            "{:<8} {:<42} {:>12} {:>10}",
            "arch", "figure", "median ms", "min ms"
        );
    }
    let print = |r: &BenchRow| -> anyhow::Result<()> {
        if args.json {
            println!("{}", serde_json::to_string(r)?);
        } else {
            println!(
                "{:<8} {:<42} {:>12.2} {:>10.2}",
                r.arch, r.name, r.median_ms, r.min_ms
            );
        }
        Ok(())
    };
    for &arch in &args.arch {
        for r in bench_arch(arch, &data, args.runs)? {
            print(&r)?;
        }
        if !args.no_training {
            print(&bench_training(arch, &data, &exp.train)?)?;
        }
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
