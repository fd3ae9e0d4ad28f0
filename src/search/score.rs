//! Scoring a policy: quantization-aware fine-tune with the Lipschitz penalty from the FP32
//! baseline, accuracy on the validation split, robust accuracy with the attack suite on a fixed
//! validation subset, and the price on the device. The test split is never touched here.

use candle_core::{Device, Tensor};
use serde::Serialize;

use super::cache::ScoreCache;
use super::SearchError;
use crate::data::{Dataset, Split};
use crate::env::{Price, SearchSpace};
use crate::experiment::Experiment;
use crate::model::Model;
use crate::quant::{LayerClips, Policy, Quantizer};
use crate::robust::{
    fp32_transfer, run_suite, Breakdown, Checks, Coverage, QuantizedModel, RobustMeasure,
    SuiteReport, TransferSet,
};
use crate::train::{accuracy, finetune, FinetuneConfig, TrainError};

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
    /// A model's score from its validation accuracy and its attack suite's report, with the
    /// robust accuracy (and the attack split) at the radius `measure` names.
    fn of(accuracy: f64, suite: &SuiteReport, measure: RobustMeasure) -> Score {
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

/// A scored policy: its outcome, its price on the device and its reward.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    pub outcome: Outcome,
    pub price: Price,
    pub reward: f64,
}

pub struct Scorer<'a> {
    pub exp: &'a Experiment,
    pub data: &'a Dataset,
    pub base: &'a Model,
    pub clips: Vec<LayerClips>,
    x: Tensor,
    y: Tensor,
    transfer: Option<TransferSet>,
    /// The FP32 baseline's validation accuracy and robust accuracy (the reward's reference).
    pub fp32: Score,
    cache: Option<ScoreCache>,
}

impl<'a> Scorer<'a> {
    pub fn new(
        exp: &'a Experiment,
        data: &'a Dataset,
        base: &'a Model,
        clips: Vec<LayerClips>,
    ) -> Result<Self, SearchError> {
        let (x, y) = (data.val)
            .first(exp.search.attack_examples, &Device::Cpu)
            .map_err(TrainError::from)?;
        let fp32_model = QuantizedModel {
            model: base,
            q: None,
        };
        let transfer = fp32_transfer(base, &x, &y, &exp.attack)?;
        let suite = run_suite(
            &fp32_model,
            &x,
            &y,
            &exp.attack,
            transfer.as_ref(),
            Coverage::WorstCase,
        )?;
        // The reference is the FP32 model's measured number, flagged or not: crediting it
        // nothing would lift every quantized policy's robustness term.
        let fp32 = Score::of(
            accuracy(base, &data.val, None)?,
            &suite,
            exp.reward.robust_eps,
        );
        Ok(Scorer {
            exp,
            data,
            base,
            clips,
            x,
            y,
            transfer,
            fp32,
            cache: None,
        })
    }

    /// Reuses and records scores in `cache` (see `search::cache`).
    pub fn with_cache(self, cache: Option<ScoreCache>) -> Self {
        Scorer { cache, ..self }
    }

    /// Fine-tunes and scores `bits` on the validation data, or takes its score from the cache.
    pub fn score(&self, space: &SearchSpace, bits: &[(u8, u8)]) -> Result<Scored, SearchError> {
        let key = space.policy(bits)?.to_string();
        let outcome = match self.cache.as_ref().and_then(|c| c.get(&key)) {
            Some(outcome) => outcome,
            None => {
                let outcome = self.outcome(space, bits)?;
                if let Some(c) = &self.cache {
                    c.put(&key, &outcome)?;
                }
                outcome
            }
        };
        Ok(Scored {
            outcome,
            price: space.price(bits),
            reward: self.reward(&outcome),
        })
    }

    fn outcome(&self, space: &SearchSpace, bits: &[(u8, u8)]) -> Result<Outcome, SearchError> {
        let (model, q) = match finetuned(self, space, bits) {
            Ok(mq) => mq,
            Err(SearchError::Train(e)) => match *e {
                TrainError::FinetuneDiverged { step, loss } => {
                    return Ok(Err(Failure::Diverged { step, loss }))
                }
                e => return Err(e.into()),
            },
            Err(e) => return Err(e),
        };
        let acc = accuracy(&model, &self.data.val, Some(&q))?;
        let suite = self.suite(&model, &q)?;
        Ok(Ok(Score::of(acc, &suite, self.exp.reward.robust_eps)))
    }

    /// The validation loss of `bits` with quantization alone (no fine-tune): the probe an
    /// agent's `prepare` may use.
    pub fn loss(&self, space: &SearchSpace, bits: &[(u8, u8)]) -> Result<f64, SearchError> {
        let q = Quantizer::new(space.policy(bits)?, self.clips.clone());
        Ok(crate::train::loss(self.base, &self.data.val, Some(&q))?)
    }

    fn suite(&self, model: &Model, q: &Quantizer) -> Result<SuiteReport, SearchError> {
        Ok(run_suite(
            &QuantizedModel { model, q: Some(q) },
            &self.x,
            &self.y,
            &self.exp.attack,
            self.transfer.as_ref(),
            Coverage::WorstCase,
        )?)
    }

    /// HAQ's reward with a robustness term: per accuracy point against the FP32 baseline, with
    /// the credited robust accuracy (none for a flagged policy). A failed fine-tune is rewarded
    /// as if both accuracies were zero.
    pub fn reward(&self, outcome: &Outcome) -> f64 {
        let r = &self.exp.reward;
        let (acc, rob) = match outcome {
            Ok(s) => (s.accuracy, s.credited_robust()),
            Err(_) => (0.0, 0.0),
        };
        r.accuracy * 100.0 * (acc - self.fp32.accuracy)
            + r.robustness * 100.0 * (rob - self.fp32.robust_accuracy)
    }
}

/// Test-split numbers of one policy, re-scored after the same fine-tune (same seed).
#[derive(Debug, Clone, Serialize)]
pub struct TestScore {
    pub accuracy: f64,
    pub robust: SuiteReport,
}

/// The seed of `bits`'s fine-tune: `[finetune] seed` mixed with the policy, so a policy scores
/// the same in every episode, run, agent and device (what lets `search::cache` reuse scores),
/// while different policies get independent fine-tune randomness.
pub fn policy_seed(exp: &Experiment, bits: &[(u8, u8)]) -> u64 {
    bits.iter().fold(exp.finetune.seed ^ 0x5eed, |h, &(w, a)| {
        (h ^ ((w as u64) << 8 | a as u64)).wrapping_mul(0x0100_0000_01B3)
    })
}

/// Fine-tunes `bits` again (with its policy seed) and scores it on the test split (accuracy on
/// all of it, the attack suite on the experiment's `attack.examples` test examples).
pub fn test_score(
    scorer: &Scorer,
    space: &SearchSpace,
    bits: &[(u8, u8)],
) -> Result<TestScore, SearchError> {
    let exp = scorer.exp;
    let (model, q) = finetuned(scorer, space, bits)?;
    let (x, y) = test_examples(scorer, exp.attack.examples)?;
    let transfer = fp32_transfer(scorer.base, &x, &y, &exp.attack)?;
    let robust = run_suite(
        &QuantizedModel {
            model: &model,
            q: Some(&q),
        },
        &x,
        &y,
        &exp.attack,
        transfer.as_ref(),
        Coverage::Full,
    )?;
    Ok(TestScore {
        accuracy: accuracy(&model, &scorer.data.test, Some(&q))?,
        robust,
    })
}

/// `bits` fine-tuned again from the FP32 baseline with its policy seed: the model the search
/// scored, to be measured on the test split.
pub(super) fn finetuned(
    scorer: &Scorer,
    space: &SearchSpace,
    bits: &[(u8, u8)],
) -> Result<(Model, Quantizer), SearchError> {
    let policy = space.policy(bits)?;
    finetune_policy(
        scorer.exp,
        &scorer.data.train,
        scorer.base,
        &scorer.clips,
        policy,
    )
}

/// The model a search scores for `policy`: the FP32 baseline `base` fine-tuned on `train` under
/// the policy's quantizer (`clips` calibrated on `base`, as `calib::calibrate` does for the
/// search) with the policy's own seed. Deterministic, so `deploy` rebuilds exactly the model an
/// episode measured.
pub fn finetune_policy(
    exp: &Experiment,
    train: &Split,
    base: &Model,
    clips: &[LayerClips],
    policy: Policy,
) -> Result<(Model, Quantizer), SearchError> {
    let bits: Vec<(u8, u8)> = (policy.layers().iter())
        .map(|b| (b.w.get(), b.a.get()))
        .collect();
    let cfg = FinetuneConfig {
        seed: policy_seed(exp, &bits),
        ..exp.finetune.clone()
    };
    let q = Quantizer::new(policy, clips.to_vec());
    let (model, _) = finetune(base, train, &q, &cfg, false)?;
    Ok((model, q))
}

/// The first `n` test examples as one batch: what a test-split attack suite runs on.
pub(super) fn test_examples(scorer: &Scorer, n: usize) -> Result<(Tensor, Tensor), SearchError> {
    Ok((scorer.data.test)
        .first(n, &Device::Cpu)
        .map_err(TrainError::from)?)
}
