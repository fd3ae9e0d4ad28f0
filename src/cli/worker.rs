//! `bitsearch worker RUN REQUEST` (hidden): scores the one policy a search wrote into
//! `RUN/work/K.json` and writes the reply beside it (`bitsearch::search::serve`); started by
//! `search --workers N`, one process per policy.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The search's run directory (config.json names the experiment).
    pub run: PathBuf,
    /// The request file, `RUN/work/K.json`.
    pub request: PathBuf,
}

pub fn run(args: &WorkerArgs) -> anyhow::Result<()> {
    bitsearch::search::serve(&args.run, &args.request)
        .with_context(|| format!("worker on {}", args.request.display()))?;
    Ok(())
}
