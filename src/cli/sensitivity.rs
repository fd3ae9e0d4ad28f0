//! `bitsearch sensitivity`: each layer's operands narrowed one at a time, scored as the search
//! scores (through its score cache) and priced on a device; sensitivity.csv and report.html.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use bitsearch::sensitivity::{run_sensitivity, SensitivitySpec, SensitivitySummary};

#[derive(Debug, Args)]
pub struct SensitivityArgs {
    #[command(flatten)]
    pub experiment: super::ExperimentArgs,
    /// Target device: a profile name (hardware-profiles/NAME.toml) or file; prices every policy
    /// and each layer's share of latency and energy.
    #[arg(long, default_value = "bitfusion")]
    pub profile: String,
    /// Where FP32 baselines are cached (trained there if missing); the score cache beside the
    /// baseline is the search's, so a later search reuses every score.
    #[arg(long, default_value = "runs")]
    pub cache: PathBuf,
    /// The study's directory [default: runs/sensitivity/EXPERIMENT-PROFILE].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(args: &SensitivityArgs) -> anyhow::Result<()> {
    let (exp, data) = super::load_experiment(&args.experiment)?;
    // A bad profile is refused before any baseline is trained.
    let profile = super::search::load_profile(&args.profile)?;
    let dir = (args.out.clone()).unwrap_or_else(|| {
        // Both names are checked data (letters, digits, `._-`), never a path.
        PathBuf::from("runs/sensitivity").join(format!("{}-{}", exp.name, profile.name()))
    });
    bitsearch::sensitivity::refuse_other_kinds(&dir)?;
    let base = super::baseline(&exp, &data, &args.cache, !args.quiet)?;
    println!("{}", super::baseline_line(&exp, &base));
    bitsearch::rundir::create_dir(&dir)?;
    println!(
        "sensitivity: {} on {} -> {}",
        exp.name,
        profile.name(),
        dir.display()
    );
    let spec = SensitivitySpec {
        exp: &exp,
        data: &data,
        base: &base.model,
        baseline_dir: &base.dir,
        profile: &profile,
        dir: dir.clone(),
        show: !args.quiet,
    };
    let summary = run_sensitivity(&spec)
        .with_context(|| format!("sensitivity study in {}", dir.display()))?;
    // Still under the study's lock.
    let report = bitsearch::report::write_report(&dir)
        .with_context(|| format!("report of {}", dir.display()))?;
    print_summary(&summary, &dir, &report.html);
    Ok(())
}

fn print_summary(s: &SensitivitySummary, dir: &std::path::Path, html: &std::path::Path) {
    println!(
        "  {} policies: {} scored here, {} from the score cache ({})",
        s.table.rows.len(),
        s.fresh,
        s.cached,
        s.config.scores.display()
    );
    // The operand whose narrowest format costs the most accuracy, as a pointer into the table.
    let worst = (s.table.rows.iter())
        .filter(|r| r.accuracy_drop.is_some())
        .max_by(|a, b| {
            a.accuracy_drop
                .partial_cmp(&b.accuracy_drop)
                .unwrap_or(std::cmp::Ordering::Equal)
        });
    if let Some(w) = worst {
        println!(
            "  most sensitive: {} {} at {} bits, accuracy {:+.2} points",
            w.layer,
            w.operand.name(),
            w.format,
            -100.0 * w.accuracy_drop.unwrap_or(0.0)
        );
    }
    println!(
        "  {}/sensitivity.csv; report: {}",
        dir.display(),
        html.display()
    );
}
