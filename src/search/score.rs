//! The search's scorer: the score module's `Evaluator` with the search's validation suite, the
//! FP32 reference score the reward is taken against, the score cache, and the price on the
//! device. The test split is never touched here.

use super::cache::ScoreCache;
use super::SearchError;
use crate::env::{Price, SearchSpace};
use crate::experiment::Experiment;
use crate::quant::Policy;
use crate::score::{reward, Evaluator, Failure, Outcome, Score, ScoreError, Suite};
use crate::train::TrainError;

/// A scored policy: its outcome, its price on the device and its reward.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    pub outcome: Outcome,
    pub price: Price,
    pub reward: f64,
}

pub struct Scorer<'a> {
    pub eval: Evaluator<'a>,
    suite: Suite<'a>,
    /// The FP32 baseline's validation accuracy and robust accuracy (the reward's reference).
    pub fp32: Score,
    cache: Option<ScoreCache>,
}

impl<'a> Scorer<'a> {
    pub fn new(eval: Evaluator<'a>) -> Result<Self, SearchError> {
        let suite = eval.validation_suite()?;
        let base = eval.base();
        // The reference is the FP32 model's measured number, flagged or not: crediting it
        // nothing would lift every quantized policy's robustness term.
        let fp32 = Score::of(
            eval.accuracy(base, None, &eval.data().val)?,
            &suite.run(base, None)?,
            eval.exp().reward.robust_eps,
        );
        Ok(Scorer {
            eval,
            suite,
            fp32,
            cache: None,
        })
    }

    pub fn exp(&self) -> &'a Experiment {
        self.eval.exp()
    }

    /// Reuses and records scores in `cache` (see `search::cache`).
    pub fn with_cache(self, cache: Option<ScoreCache>) -> Self {
        Scorer { cache, ..self }
    }

    /// Fine-tunes and scores `policy` on the validation data, or takes its score from the cache.
    pub fn score(&self, space: &SearchSpace, policy: &Policy) -> Result<Scored, SearchError> {
        let outcome = match self.cached(policy) {
            Some(outcome) => outcome,
            None => {
                let outcome = outcome(&self.eval, &self.suite, policy)?;
                self.remember(policy, &outcome)?;
                outcome
            }
        };
        Ok(self.scored(space, policy, outcome))
    }

    /// The cached outcome of `policy`, if the cache is on and holds it.
    pub fn cached(&self, policy: &Policy) -> Option<Outcome> {
        (self.cache.as_ref()).and_then(|c| c.get(&policy.to_string()))
    }

    /// Records an outcome scored elsewhere (by a worker) in the cache, if it is on.
    pub(super) fn remember(&self, policy: &Policy, outcome: &Outcome) -> Result<(), SearchError> {
        match &self.cache {
            Some(c) => c.put(&policy.to_string(), outcome),
            None => Ok(()),
        }
    }

    /// `outcome` of `policy` with its price on the device and its reward.
    pub(super) fn scored(&self, space: &SearchSpace, policy: &Policy, outcome: Outcome) -> Scored {
        Scored {
            outcome,
            price: space.price(policy),
            reward: self.reward(&outcome),
        }
    }

    /// The search's reward of `outcome` against the FP32 reference.
    pub fn reward(&self, outcome: &Outcome) -> f64 {
        reward(&self.exp().reward, &self.fp32, outcome)
    }
}

/// Fine-tunes `policy` and scores it with `suite` on the validation data: the one way a search
/// scores a policy, here or in a worker process. A diverged fine-tune is the policy's failed
/// outcome, not an error.
pub(super) fn outcome(
    eval: &Evaluator,
    suite: &Suite,
    policy: &Policy,
) -> Result<Outcome, SearchError> {
    let t = match eval.finetune(policy) {
        Ok(t) => t,
        Err(ScoreError::Train(e)) => match *e {
            TrainError::FinetuneDiverged { step, loss } => {
                return Ok(Err(Failure::Diverged { step, loss }))
            }
            e => return Err(e.into()),
        },
        Err(e) => return Err(e.into()),
    };
    let acc = eval.accuracy(&t.model, Some(&t.q), &eval.data().val)?;
    let report = suite.run(&t.model, Some(&t.q))?;
    Ok(Ok(Score::of(acc, &report, eval.exp().reward.robust_eps)))
}
