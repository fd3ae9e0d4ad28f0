//! After the last episode: every feasible row of pareto.csv fine-tuned again (its policy seed)
//! and re-scored on the test split with the strong suite of `[front_test]` (an eps sweep, more
//! PGD restarts and steps, the full Square budget), written to front-test.csv. The search's own
//! numbers are validation numbers from a cheaper suite; these say what the front holds on data
//! the search never saw.

use std::time::Instant;

use super::score::Scorer;
use super::spec::Run;
use super::SearchError;
use crate::robust::{robust_radii, AttackKind, MeasureName, RobustMeasure};
use crate::rundir::{pareto_rows, Episode, FrontTest, FrontTestRow};
use crate::score::Suite;
use crate::train::progress_bar;

/// Writes front-test.csv for the feasible Pareto rows of `rows`, unless `[front_test]` is
/// disabled or the file already holds exactly those rows at the same radii (a resumed finished
/// run does not pay for it twice). Every row is re-scored: the cost is stated, never capped.
pub(super) fn rescore_front(
    run: &Run,
    scorer: &Scorer,
    rows: &[Episode],
) -> Result<(), SearchError> {
    let cfg = &run.spec.exp.front_test;
    if !cfg.enabled {
        return Ok(());
    }
    let front: Vec<Episode> = (pareto_rows(rows)?.into_iter())
        .filter(|r| r.feasible && !r.failed)
        .collect();
    let eps = robust_radii(&cfg.attack);
    let path = run.log.dir.join(FrontTest::FILE);
    if up_to_date(&path, &eps, &front) {
        return Ok(());
    }
    let suite = scorer.eval.test_suite(&cfg.attack)?;
    let bar = progress_bar(front.len() as u64, run.spec.show, BAR);
    let mut out = Vec::with_capacity(front.len());
    for e in &front {
        out.push(rescore(scorer, &suite, e)?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(FrontTest { eps, rows: out }.write(&path)?)
}

const BAR: &str = "front on the test split {bar:30} policy {pos}/{len}  [{elapsed} < {eta}]";

/// Whether front-test.csv at `path` already holds `front` (same episodes and policies, in
/// order) at radii `eps`. An unreadable file is not up to date: it is rewritten.
fn up_to_date(path: &std::path::Path, eps: &[f32], front: &[Episode]) -> bool {
    let Ok(old) = FrontTest::read(path) else {
        return false;
    };
    let key = |episode: usize, policy: &str| (episode, policy.to_string());
    old.eps == eps
        && old
            .rows
            .iter()
            .map(|r| key(r.episode, &r.policy))
            .eq(front.iter().map(|e| key(e.episode, &e.policy)))
}

/// One front row: fine-tuned again (its policy seed), test accuracy, the strong suite.
fn rescore(scorer: &Scorer, suite: &Suite, e: &Episode) -> Result<FrontTestRow, SearchError> {
    let start = Instant::now();
    let test = (scorer.eval).test_score(&e.policy(), suite)?;
    let report = &test.robust;
    let pgd = (report.by_eps.iter())
        .map(|w| report.accuracy(AttackKind::Pgd, w.eps).unwrap_or(0.0))
        .collect();
    Ok(FrontTestRow {
        episode: e.episode,
        policy: e.policy.clone(),
        latency_s: e.latency_s,
        validation_accuracy: e.accuracy.unwrap_or(0.0),
        validation_robust_accuracy: e.robust_accuracy.unwrap_or(0.0),
        validation_masking: e.masking,
        accuracy: test.accuracy,
        clean_accuracy: report.clean,
        robust: report.by_eps.iter().map(|w| w.worst_case).collect(),
        pgd,
        robust_auc: report.robust(RobustMeasure::Named(MeasureName::Auc)),
        masking: report.masking.fired(),
        examples: report.examples,
        seconds: start.elapsed().as_secs_f64(),
    })
}
