//! The search's scorer: the score module's `Evaluator` with the search's validation suite, the
//! FP32 reference score the reward is taken against, the score cache, and the price on the
//! device; and the same at the low fidelity (`[search] fidelity = "multi"`: fewer fine-tune
//! steps, fewer attacked examples, scores cached apart). The test split is never touched here.

use std::path::Path;

use super::cache::{cache_file_at, ScoreCache};
use super::SearchError;
use crate::env::{Price, SearchSpace};
use crate::experiment::{Experiment, Fidelities};
use crate::fidelity::Fidelity;
use crate::quant::Policy;
use crate::score::{reward, Evaluator, Failure, Outcome, Score, ScoreError, Suite};
use crate::train::{FinetuneConfig, TrainError};

/// A scored policy: its outcome, its price on the device and its reward.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    pub outcome: Outcome,
    pub price: Price,
    pub reward: f64,
}

/// How a policy is scored at one fidelity: the fine-tune, the suite and the cache of scores.
struct Recipe<'a> {
    finetune: FinetuneConfig,
    suite: Suite<'a>,
    cache: Option<ScoreCache>,
}

pub struct Scorer<'a> {
    pub eval: Evaluator<'a>,
    full: Recipe<'a>,
    /// The low fidelity, when the experiment's `[search] fidelity` is `multi`.
    low: Option<Recipe<'a>>,
    /// The FP32 baseline's validation accuracy and robust accuracy (the reward's reference).
    pub fp32: Score,
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
        let low = match eval.exp().search.fidelity {
            Fidelities::Full => None,
            Fidelities::Multi => Some(Recipe {
                finetune: eval.exp().finetune_at(Fidelity::Low),
                suite: eval.validation_suite_at(Fidelity::Low)?,
                cache: None,
            }),
        };
        let full = Recipe {
            finetune: eval.exp().finetune_at(Fidelity::Full),
            suite,
            cache: None,
        };
        Ok(Scorer {
            eval,
            full,
            low,
            fp32,
        })
    }

    /// The recipe of `fidelity`; the full one when the low is off (no agent asks for it then).
    fn recipe(&self, fidelity: Fidelity) -> &Recipe<'a> {
        match fidelity {
            Fidelity::Low => self.low.as_ref().unwrap_or(&self.full),
            Fidelity::Full => &self.full,
        }
    }

    pub fn exp(&self) -> &'a Experiment {
        self.eval.exp()
    }

    /// Reuses and records full-fidelity scores in `cache` (see `search::cache`), and the low
    /// fidelity's, when on, in its own file beside it.
    pub fn with_cache(mut self, cache: Option<ScoreCache>) -> Result<Self, SearchError> {
        if let (Some(low), Some(full)) = (&mut self.low, &cache) {
            let dir = full.path().parent().unwrap_or(Path::new("."));
            let path = cache_file_at(self.eval.exp(), Fidelity::Low, dir);
            low.cache = Some(ScoreCache::open(path)?);
        }
        self.full.cache = cache;
        Ok(self)
    }

    /// Fine-tunes and scores `policy` on the validation data at full fidelity, or takes its
    /// score from the cache.
    pub fn score(&self, space: &SearchSpace, policy: &Policy) -> Result<Scored, SearchError> {
        self.score_at(space, policy, Fidelity::Full)
    }

    /// `score` at `fidelity`.
    pub fn score_at(
        &self,
        space: &SearchSpace,
        policy: &Policy,
        fidelity: Fidelity,
    ) -> Result<Scored, SearchError> {
        let outcome = match self.cached(policy, fidelity) {
            Some(outcome) => outcome,
            None => {
                let r = self.recipe(fidelity);
                let outcome = outcome(&self.eval, &r.finetune, &r.suite, policy)?;
                self.remember(policy, fidelity, &outcome)?;
                outcome
            }
        };
        Ok(self.scored(space, policy, outcome))
    }

    /// The cached outcome of `policy` at `fidelity`, if the cache is on and holds it.
    pub fn cached(&self, policy: &Policy, fidelity: Fidelity) -> Option<Outcome> {
        (self.recipe(fidelity).cache.as_ref()).and_then(|c| c.get(&policy.to_string()))
    }

    /// Records an outcome scored elsewhere (by a worker) in the cache, if it is on.
    pub(super) fn remember(
        &self,
        policy: &Policy,
        fidelity: Fidelity,
        outcome: &Outcome,
    ) -> Result<(), SearchError> {
        match &self.recipe(fidelity).cache {
            Some(c) => c.put(&policy.to_string(), outcome),
            None => Ok(()),
        }
    }

    /// The low fidelity's cost as a fraction of a full score's, when it is on.
    pub fn low_cost(&self) -> Option<f64> {
        self.low.as_ref().map(|_| self.exp().search.low.cost)
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

/// Fine-tunes `policy` with `finetune` (its seed mixed with the policy) and scores it with
/// `suite` on the validation data: the one way a search scores a policy, at either fidelity,
/// here or in a worker process. A diverged fine-tune is the policy's failed outcome, not an
/// error.
pub(super) fn outcome(
    eval: &Evaluator,
    finetune: &FinetuneConfig,
    suite: &Suite,
    policy: &Policy,
) -> Result<Outcome, SearchError> {
    let t = match eval.finetune_with(policy, finetune, false) {
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
