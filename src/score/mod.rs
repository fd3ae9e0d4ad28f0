//! Scoring one policy, the one way every command does it: the `Evaluator` calibrates the
//! activation clips once, fine-tunes the FP32 baseline under a policy with the policy's own seed
//! (the Lipschitz-regularized quantization-aware fine-tune), and measures a fine-tuned model's
//! accuracy on a split and its robust accuracy with an attack `Suite`. The search, its test-split
//! re-scores, `eval`, `bench`, the DQ study and `deploy` all go through it, so a policy scores
//! the same number wherever it is scored.

mod suite;
mod value;

pub use suite::Suite;
pub use value::{reward, Failure, Outcome, Score, TestScore};

use crate::calib::{calibrate, CalibError};
use crate::data::{Dataset, Split};
use crate::experiment::Experiment;
use crate::fidelity::Fidelity;
use crate::model::Model;
use crate::quant::{Clips, Policy, Quantizer};
use crate::robust::{AttackConfig, Coverage, RobustError};
use crate::train::{accuracy, finetune, FinetuneConfig, FinetuneReport, TrainError};

#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    #[error(transparent)]
    Train(Box<TrainError>),
    #[error(transparent)]
    Robust(Box<RobustError>),
    #[error(transparent)]
    Calib(Box<CalibError>),
}

crate::errors::boxed_from!(
    ScoreError;
    Train: TrainError,
    Robust: RobustError,
    Calib: CalibError
);

impl From<candle_core::Error> for ScoreError {
    fn from(e: candle_core::Error) -> Self {
        TrainError::from(e).into()
    }
}

/// A policy's fine-tuned model with its quantizer and the fine-tune's report.
pub struct Tuned {
    pub model: Model,
    pub q: Quantizer,
    pub report: FinetuneReport,
}

/// What scores policies on one experiment: the FP32 baseline, its data, and the activation
/// clips calibrated once on the baseline (as every episode of a search uses them).
pub struct Evaluator<'a> {
    exp: &'a Experiment,
    data: &'a Dataset,
    base: &'a Model,
    clips: Clips,
}

impl<'a> Evaluator<'a> {
    /// Calibrates the baseline's activation clips on the training split (`[quant]`).
    pub fn new(
        exp: &'a Experiment,
        data: &'a Dataset,
        base: &'a Model,
    ) -> Result<Self, ScoreError> {
        let clips = calibrate(&exp.quant, &data.train, base)?;
        Ok(Evaluator {
            exp,
            data,
            base,
            clips,
        })
    }

    pub fn exp(&self) -> &'a Experiment {
        self.exp
    }

    pub fn data(&self) -> &'a Dataset {
        self.data
    }

    pub fn base(&self) -> &'a Model {
        self.base
    }

    pub fn clips(&self) -> &Clips {
        &self.clips
    }

    /// The quantizer of `policy` with the calibrated clips (no fine-tune).
    pub fn quantizer(&self, policy: &Policy) -> Quantizer {
        Quantizer::new(policy.clone(), self.clips.clone())
    }

    /// The model a search scores for `policy`: the baseline fine-tuned with `[finetune]` and the
    /// policy's own seed. Deterministic, so every command rebuilds the model an episode measured.
    pub fn finetune(&self, policy: &Policy) -> Result<Tuned, ScoreError> {
        self.finetune_with(policy, &self.exp.finetune, false)
    }

    /// `finetune` with other fine-tune settings (the DQ study's beta and steps) and an optional
    /// progress bar; the seed is still `cfg.seed` mixed with the policy.
    pub fn finetune_with(
        &self,
        policy: &Policy,
        cfg: &FinetuneConfig,
        show: bool,
    ) -> Result<Tuned, ScoreError> {
        let cfg = FinetuneConfig {
            seed: policy_seed(cfg.seed, policy),
            ..cfg.clone()
        };
        let q = self.quantizer(policy);
        let (model, report) = finetune(self.base, &self.data.train, &q, &cfg, show)?;
        Ok(Tuned { model, q, report })
    }

    /// The validation loss of `policy` with quantization alone (no fine-tune): the probe an
    /// agent's `prepare` may use.
    pub fn loss(&self, policy: &Policy) -> Result<f64, ScoreError> {
        let q = self.quantizer(policy);
        Ok(crate::train::loss(self.base, &self.data.val, Some(&q))?)
    }

    /// `model`'s accuracy on `split` through `q` (None: the FP32 model).
    pub fn accuracy(
        &self,
        model: &Model,
        q: Option<&Quantizer>,
        split: &Split,
    ) -> Result<f64, ScoreError> {
        Ok(accuracy(model, split, q)?)
    }

    /// The search's suite: `[attack]` on the first `[search] attack_examples` validation
    /// examples, attacking only what can still lower the worst case.
    pub fn validation_suite(&self) -> Result<Suite<'a>, ScoreError> {
        self.validation_suite_at(Fidelity::Full)
    }

    /// The search's suite at `fidelity`: on fewer examples at the low one
    /// (`Experiment::attack_examples_at`).
    pub fn validation_suite_at(&self, fidelity: Fidelity) -> Result<Suite<'a>, ScoreError> {
        let n = self.exp.attack_examples_at(fidelity);
        Suite::new(
            self.base,
            &self.data.val,
            n,
            &self.exp.attack,
            Coverage::WorstCase,
        )
    }

    /// A report's suite: `cfg` on its first `cfg.examples` test examples, every attack on
    /// every example.
    pub fn test_suite(&self, cfg: &'a AttackConfig) -> Result<Suite<'a>, ScoreError> {
        Suite::new(
            self.base,
            &self.data.test,
            cfg.examples,
            cfg,
            Coverage::Full,
        )
    }

    /// `policy` fine-tuned (its seed) and scored on the test split: accuracy on all of it,
    /// `suite` on its examples.
    pub fn test_score(&self, policy: &Policy, suite: &Suite) -> Result<TestScore, ScoreError> {
        let t = self.finetune(policy)?;
        self.test_score_of(&t.model, Some(&t.q), suite)
    }

    /// A model's test-split score: accuracy on all of it, `suite` on its examples.
    pub fn test_score_of(
        &self,
        model: &Model,
        q: Option<&Quantizer>,
        suite: &Suite,
    ) -> Result<TestScore, ScoreError> {
        Ok(TestScore {
            accuracy: self.accuracy(model, q, &self.data.test)?,
            robust: suite.run(model, q)?,
        })
    }
}

/// The seed of `policy`'s fine-tune: `seed` (`[finetune] seed`) mixed with the policy, so a
/// policy scores the same in every episode, run, agent and device (what lets the search's score
/// cache reuse scores), while different policies get independent fine-tune randomness.
pub fn policy_seed(seed: u64, policy: &Policy) -> u64 {
    (policy.layers().iter()).fold(seed ^ 0x5eed, |h, b| {
        (h ^ ((b.w.code() as u64) << 8 | b.a.code() as u64)).wrapping_mul(0x0100_0000_01B3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(text: &str) -> Policy {
        Policy::parse(text).unwrap()
    }

    #[test]
    fn policy_seed_depends_on_every_layer_and_the_base_seed() {
        let p = policy("8/8,4/4,2/4");
        assert_eq!(policy_seed(1, &p), policy_seed(1, &p));
        assert_ne!(policy_seed(1, &p), policy_seed(2, &p));
        assert_ne!(policy_seed(1, &p), policy_seed(1, &policy("8/8,4/4,4/2")));
        assert_ne!(policy_seed(1, &p), policy_seed(1, &policy("8/8,4/4")));
    }
}
