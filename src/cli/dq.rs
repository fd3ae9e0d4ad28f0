//! `bitsearch dq`: the Defensive-Quantization study (uniform bits × Lipschitz betas).

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use bitsearch::dq::{file_row, rises_as_bits_fall, run_dq, write_dq, DqPoint};
use bitsearch::rundir::{write_json, DqRow};

#[derive(Debug, Args)]
pub struct DqArgs {
    #[command(flatten)]
    pub experiment: super::ExperimentArgs,
    /// Uniform bitwidths to study (32 = FP32 fine-tuned with the same penalty) [default: the experiment's dq.bits].
    #[arg(long, value_delimiter = ',')]
    pub bits: Option<Vec<u8>>,
    /// Lipschitz penalty weights [default: the experiment's dq.betas].
    #[arg(long, value_delimiter = ',')]
    pub betas: Option<Vec<f64>>,
    /// Fine-tune steps per (bits, beta) [default: the experiment's dq.steps].
    #[arg(long)]
    pub steps: Option<usize>,
    /// Output directory for config.json, dq.csv and amplification.csv [default: runs/dq-NAME].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Where FP32 baselines are cached (trained there if missing).
    #[arg(long, default_value = "runs")]
    pub cache: PathBuf,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(args: &DqArgs) -> anyhow::Result<()> {
    let (mut exp, data) = super::load_experiment(&args.experiment)?;
    let mut dq = exp.dq.clone();
    if let Some(b) = &args.bits {
        dq.bits = b.clone();
    }
    if let Some(b) = &args.betas {
        dq.betas = b.clone();
    }
    if let Some(s) = args.steps {
        dq.steps = s;
    }
    exp.dq = dq
        .check(&exp.path)
        .context("invalid --bits, --betas or --steps")?;
    // The study adds the gradient-free Square attack to the suite (the search leaves it off).
    exp.attack.square_queries = exp.dq.square_queries;
    // The study reports Square's own accuracy next to PGD's, so it attacks every example.
    exp.attack.square_scope = bitsearch::robust::SquareScope::All;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.cache.join(format!("dq-{}", exp.name)));
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let config = serde_json::json!({ "experiment": &exp, "dq": &exp.dq });
    write_json(&out.join("config.json"), &config)?;
    let base = super::baseline(&exp, &data, &args.cache, !args.quiet)?;
    println!(
        "DQ study on {} ({} test examples attacked, fine-tune {} steps): FP32 baseline test accuracy {:.2}%",
        exp.name,
        exp.attack.examples.min(data.test.len()),
        exp.dq.steps,
        100.0 * base.metrics.test_accuracy
    );
    // Each row as it is measured, without the last column: the cross-bitwidth check
    // (masking_bits_rise) needs every row and is reported after them.
    let mut header = DqRow::header(
        &bitsearch::dq::attack_columns(&exp)
            .into_iter()
            .map(|c| c.0)
            .collect::<Vec<_>>(),
    );
    header.pop();
    println!("{}", header.join("  "));
    let mut print = |point: &DqPoint| {
        let mut record = file_row(&exp, point, false).record();
        record.pop();
        println!("{}", record.join("  "));
        Ok(())
    };
    let rows = run_dq(
        &exp,
        &data,
        &base.model,
        &exp.dq.bits,
        &exp.dq.betas,
        !args.quiet,
        &mut print,
    )?;
    write_dq(&out, &exp, &rows)?;
    let rises = rises_as_bits_fall(&rows);
    let flagged: Vec<String> = rows
        .iter()
        .zip(&rises)
        .filter(|(r, &rise)| r.suite.masking.flagged() || rise)
        .map(|(r, &rise)| {
            let m = &r.suite.masking;
            let why: Vec<&str> = [
                (rise, "robust accuracy above the next wider bitwidth's"),
                (
                    m.above_gradient_free,
                    "PGD above the gradient-free Square attack",
                ),
                (m.above_transfer, "PGD above transfer"),
                (m.eps_rise, "accuracy rises with eps"),
                (m.zero_grad_fraction > 0.0, "zero input gradients"),
            ]
            .into_iter()
            .filter_map(|(on, text)| on.then_some(text))
            .collect();
            format!("{}-bit beta {} ({})", r.bits, r.beta, why.join(", "))
        })
        .collect();
    if !flagged.is_empty() {
        println!(
            "gradient-masking flags raised for: {} (see the masking_* columns of dq.csv)",
            flagged.join("; ")
        );
    }
    println!("wrote {}/dq.csv and amplification.csv", out.display());
    Ok(())
}
