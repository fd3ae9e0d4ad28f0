//! One episode's record: the row logged for a scored policy, and the feedback the agent learns
//! from, rebuilt from that row (so a resume replays exactly what the agent saw).

use super::score::{Scored, Scorer};
use super::spec::Run;
use crate::agents::Feedback;
use crate::env::Price;
use crate::fidelity::Fidelity;
use crate::quant::Policy;
use crate::rundir::Episode;
use crate::score::{Failure, Outcome, Score};

/// The row of `policy`, scored as `scored` at `fidelity`, as episode `k` of `agent`.
pub(super) fn record(
    run: &Run,
    k: usize,
    agent: &str,
    (policy, fidelity): (&Policy, Fidelity),
    scored: &Scored,
    seconds: f64,
) -> Episode {
    let ok = scored.outcome.as_ref().ok();
    Episode {
        episode: k,
        agent: agent.to_string(),
        profile: run.spec.profile.name().to_string(),
        policy: policy.to_string(),
        bits: policy.layers().to_vec(),
        accuracy: ok.map(|s| s.accuracy),
        robust_accuracy: ok.map(|s| s.robust_accuracy),
        latency_s: scored.price.latency_s,
        energy_j: scored.price.energy_j,
        size_bytes: scored.price.size_bytes,
        reward: ok.map(|_| scored.reward),
        feasible: run.budget.holds(&scored.price),
        failed: ok.is_none(),
        masking: ok.map(|s| s.masking),
        broken_by: ok.and_then(|s| s.broken_by),
        fidelity,
        seconds,
    }
}

/// The outcome a logged row records: its scores, or a failure.
pub(super) fn logged_outcome(row: &Episode) -> Outcome {
    match (row.accuracy, row.robust_accuracy) {
        (Some(accuracy), Some(robust_accuracy)) if !row.failed => Ok(Score {
            accuracy,
            robust_accuracy,
            masking: row.masking.unwrap_or_default(),
            broken_by: row.broken_by,
        }),
        _ => Err(Failure::Logged),
    }
}

/// What the agent learns from a logged row.
pub(super) fn feedback(row: &Episode, scorer: &Scorer) -> Feedback {
    let outcome = logged_outcome(row);
    Feedback {
        reward: row.reward.unwrap_or_else(|| scorer.reward(&outcome)),
        walled: row.policy(),
        scores: outcome.ok().map(|s| [s.accuracy, s.credited_robust()]),
        price: Price {
            latency_s: row.latency_s,
            energy_j: row.energy_j,
            size_bytes: row.size_bytes,
        },
        fidelity: row.fidelity,
    }
}
