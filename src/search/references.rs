//! references.csv: FP32 and (if `search.references`) the uniform policies of the search space
//! (each width the device runs for the declared ones, as the space runs it: a pruned width is
//! the wider one it is priced as, so each distinct policy once), scored once before the first
//! episode and kept across resumes, so every run has its yardsticks. They are also data for the
//! agent (`seeds`), not episodes, and the best of them under the budget is the yardstick
//! best-policy.json compares the best policy with (`best_uniform`).

use std::time::Instant;

use super::episode::{feedback, record};
use super::score::{Scored, Scorer};
use super::spec::Run;
use super::SearchError;
use crate::agents::Feedback;
use crate::fidelity::Fidelity;
use crate::quant::{Format, Policy};
use crate::rundir::{best_row, Episode, Episodes};

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
    let full = Policy::uniform(n, Format::FULL);
    let mut rows = vec![record(run, 0, "fp32", (&full, Fidelity::Full), &fp32, 0.0)];
    // Each distinct policy once, under the widest width that runs as it, ascending.
    let mut uniform: Vec<(Format, Policy)> = Vec::new();
    if run.spec.exp.search.references {
        for &b in run.space.values().iter().rev() {
            let policy = run.space.run_policy(&Policy::uniform(n, b));
            if uniform.iter().all(|(_, p)| p != &policy) {
                uniform.push((b, policy));
            }
        }
        uniform.reverse();
    }
    for (b, policy) in uniform {
        let start = Instant::now();
        let scored = scorer.score(&run.space, &policy)?;
        let seconds = start.elapsed().as_secs_f64();
        // A uniform row's episode column is its format's code: the bitwidth of an integer,
        // above 32 for a named format, so int8 and fp8e4m3 rows stay apart (the explorer
        // identifies a point by run, episode and reference).
        let k = b.code() as usize;
        rows.push(record(
            run,
            k,
            "uniform",
            (&policy, Fidelity::Full),
            &scored,
            seconds,
        ));
    }
    Ok(run.log.write_rows(FILE, &rows)?)
}

/// What the agent takes in before its first proposal (`Agent::observe_reference`): the uniform
/// rows of references.csv whose policy is in the search space, in file order (ascending
/// bitwidth). They are read back from the file on a fresh run too, so a resume gives the agent
/// exactly the same numbers. None for a run started before references were data
/// (`Run::legacy`).
pub(super) fn seeds(run: &Run, scorer: &Scorer) -> Result<Vec<Feedback>, SearchError> {
    if run.legacy {
        return Ok(Vec::new());
    }
    Ok((uniform_rows(run)?.iter())
        .filter(|r| run.space.contains(&r.policy()))
        .map(|r| feedback(r, scorer))
        .collect())
}

/// The best uniform reference under the run's budget: `best_row` over the uniform rows of
/// references.csv (infeasible ones never win), the yardstick of best-policy.json.
pub(super) fn best_uniform(run: &Run) -> Result<Option<Episode>, SearchError> {
    Ok(best_row(&uniform_rows(run)?).cloned())
}

/// The uniform rows of references.csv, in file order; none when the file does not exist.
fn uniform_rows(run: &Run) -> Result<Vec<Episode>, SearchError> {
    let path = run.log.dir.join(FILE);
    if !path.exists() {
        return Ok(Vec::new());
    }
    let rows = Episodes::read(
        &path,
        "written by `bitsearch search` before the first episode",
    )?
    .rows;
    Ok(rows.into_iter().filter(|r| r.agent == "uniform").collect())
}
