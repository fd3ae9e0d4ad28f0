//! references.csv: FP32 and (if `search.references`) the uniform min..=max policies, scored once
//! before the first episode and kept across resumes, so every run has its yardsticks.

use std::time::Instant;

use super::episode::record;
use super::score::{Scored, Scorer};
use super::spec::Run;
use super::SearchError;
use crate::quant::{Bits, Policy};

pub(super) const FILE: &str = "references.csv";

/// Scores and writes the reference policies unless a previous run already did.
pub(super) fn score_once(run: &Run, scorer: &Scorer) -> Result<(), SearchError> {
    if run.log.dir.join(FILE).exists() {
        return Ok(());
    }
    let n = run.space.layers.len();
    let fp32 = Scored {
        outcome: Ok(scorer.fp32),
        price: run.space.full,
        reward: 0.0,
    };
    let full = Policy::uniform(n, Bits::FULL);
    let mut rows = vec![record(run, 0, "fp32", &full, &fp32, 0.0)];
    let uniform: &[Bits] = match run.spec.exp.search.references {
        true => run.space.values(),
        false => &[],
    };
    for &b in uniform {
        let start = Instant::now();
        let policy = Policy::uniform(n, b);
        let scored = scorer.score(&run.space, &policy)?;
        let seconds = start.elapsed().as_secs_f64();
        // A uniform row's episode column is its bitwidth.
        let k = b.get() as usize;
        rows.push(record(run, k, "uniform", &policy, &scored, seconds));
    }
    Ok(run.log.write_rows(FILE, &rows)?)
}
