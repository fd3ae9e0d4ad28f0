//! What scoring yields: a policy's validation `Score` (or the `Failure` of its fine-tune), its
//! test-split `TestScore`, and the search's reward over them.

use serde::Serialize;

use crate::experiment::RewardConfig;
use crate::robust::{Breakdown, Checks, RobustMeasure, SuiteReport};

/// A policy's validation scores: accuracy, the worst-case robust accuracy the reward's
/// `robust_eps` names, and the masking checks that fired.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    pub accuracy: f64,
    pub robust_accuracy: f64,
    pub masking: Checks,
    /// Which attack broke each attacked example first, at the radius `robust_accuracy` is taken
    /// at; None in a score read back from a log written before it was recorded.
    pub broken_by: Option<Breakdown>,
}

impl Score {
    /// A model's score from its accuracy and its attack suite's report, with the robust
    /// accuracy (and the attack split) at the radius `measure` names.
    pub fn of(accuracy: f64, suite: &SuiteReport, measure: RobustMeasure) -> Score {
        Score {
            accuracy,
            robust_accuracy: suite.robust(measure),
            masking: suite.masking.fired(),
            broken_by: suite.broken_by(measure),
        }
    }

    /// The robust accuracy the search credits: none when a masking check fired. A fired check
    /// says the attacks may have failed rather than the model held, so the number is an upper
    /// bound of unknown slack; crediting any of it would reward hiding gradients, the failure
    /// Defensive Quantization warns of. The measured number stays in episodes.csv.
    pub fn credited_robust(&self) -> f64 {
        if self.masking.is_empty() {
            self.robust_accuracy
        } else {
            0.0
        }
    }
}

/// Why a policy has no score. The search logs the row as `failed` and goes on.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum Failure {
    #[error("fine-tune diverged at step {step} (loss {loss})")]
    Diverged { step: usize, loss: f32 },
    /// A failed row read back from episodes.csv, which records only that it failed.
    #[error("failed")]
    Logged,
}

/// Either a score or the reason the fine-tune failed.
pub type Outcome = Result<Score, Failure>;

/// Test-split numbers of one policy, scored after the same fine-tune (same seed) as its
/// validation numbers.
#[derive(Debug, Clone, Serialize)]
pub struct TestScore {
    pub accuracy: f64,
    pub robust: SuiteReport,
}

/// HAQ's reward with a robustness term: per accuracy point against the FP32 baseline's score
/// `fp32`, with the credited robust accuracy (none for a flagged policy). A failed fine-tune is
/// rewarded as if both accuracies were zero.
pub fn reward(r: &RewardConfig, fp32: &Score, outcome: &Outcome) -> f64 {
    let (acc, rob) = match outcome {
        Ok(s) => (s.accuracy, s.credited_robust()),
        Err(_) => (0.0, 0.0),
    };
    r.accuracy * 100.0 * (acc - fp32.accuracy) + r.robustness * 100.0 * (rob - fp32.robust_accuracy)
}
