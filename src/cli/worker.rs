//! `bitsearch worker RUN REQUEST --sha256 HEX` (hidden): scores the one policy a search wrote
//! into `RUN/work/K.json` and writes the reply beside it (`bitsearch::search::serve`); started
//! by `search --workers N`, one process (or Slurm job, with `--slurm`) per policy.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The search's run directory (config.json names the experiment).
    pub run: PathBuf,
    /// The request file, `RUN/work/K.json`.
    pub request: PathBuf,
    /// The SHA-256 of the request as the search wrote it: another file is refused.
    #[arg(long)]
    pub sha256: String,
}

pub fn run(args: &WorkerArgs) -> anyhow::Result<()> {
    bitsearch::search::serve(&args.run, &args.request, &args.sha256)
        .with_context(|| format!("worker on {}", args.request.display()))?;
    Ok(())
}
