//! `bitsearch train`: train or reuse the cached FP32 baseline.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use bitsearch::train::train_baseline;

#[derive(Debug, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub experiment: super::ExperimentArgs,
    /// Run directory; the baseline is cached under OUT/baselines/.
    #[arg(long, default_value = "runs")]
    pub out: PathBuf,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(args: &TrainArgs) -> anyhow::Result<()> {
    let (exp, data) = super::load_experiment(&args.experiment)?;
    let training = match exp.model.trains() {
        true => format!(
            "{} epochs, batch {}, AdamW lr {}",
            exp.train.epochs, exp.train.batch, exp.train.lr
        ),
        false => "the imported weights as they are ([model] train = true trains them)".into(),
    };
    println!(
        "{}: {} on {} ({} train / {} validation / {} test), {training}",
        exp.name,
        &exp.model.name(),
        exp.data.source,
        data.train.len(),
        data.val.len(),
        data.test.len(),
    );
    let b = train_baseline(&exp.baseline(), &exp, &data, &args.out, !args.quiet)
        .context("training the FP32 baseline")?;
    if b.cached {
        println!("reusing the cached baseline in {}", b.dir.display());
    }
    let m = &b.metrics;
    println!(
        "FP32 baseline: validation accuracy {:.2}%, test accuracy {:.2}% ({:.1} s training)",
        100.0 * m.val_accuracy,
        100.0 * m.test_accuracy,
        m.train_seconds
    );
    println!("saved in {}", b.dir.display());
    Ok(())
}
