//! Model-based search (`mbrl`): a learned model of the environment, planned on between real
//! episodes. Cost is known exactly (`SearchSpace::price`), so only the scores are learned:
//! accuracy, and robust accuracy when it is an objective, each by a Gaussian process (`gp.rs`)
//! over the scored policies.
//!
//! Each proposal is the unscored feasible policy with the largest imagined reward: the
//! hypervolume improvement, on the experiment's objectives (`Context::objectives`: accuracy,
//! robust accuracy if it counts, the costs), that its optimistic point (mean + κ·sd of each
//! learned score, exact costs) adds to the front of the feasible policies scored so far. The
//! candidates are every feasible policy when the space is small enough to enumerate, else
//! random policies through the budget wall plus mutations of the front members. The first
//! `init` proposals are random feasible policies (the model needs data); a failed fine-tune is
//! scored (never proposed again) but teaches the model nothing.
//!
//! The run's uniform references (`Agent::observe_reference`) are data like any scored policy,
//! never proposed, and members of the front when within the budgets (an over-budget one, such
//! as uniform 8/8 under a tight budget, teaches the models but is no front member); they are
//! not episodes, so `init` still counts the agent's own proposals.
//!
//! A batch (`Agent::propose_batch`, the search's `--workers`) is planned by the Kriging
//! believer: each proposal is believed to score the models' posterior mean and joins the data
//! as such (never proposed again, on the front if it would be, no longer uncertain) before the
//! next is planned; the beliefs are dropped once the batch is proposed, and `learn` brings the
//! real scores. A batch's first proposal is the one `propose` would make.
//!
//! Deterministic given (seed, feedback): ordered sets, fixed-order sums, no threads.

use std::collections::BTreeSet;

use rand::rngs::StdRng;
use rand::Rng;

use super::exhaustive::feasible;
use super::gp::{Gp, Hyper};
use super::planner::Reinforce;
use super::{random_policy, Agent, AgentError, Context, Feedback, MbrlConfig, Planner, Proposal};
use crate::env::{Operand, SearchSpace};
use crate::pareto::{dominates, hypervolume_gain, non_dominated, Sense};
use crate::quant::{Bits, LayerBits, Policy};

/// A scored policy: its point on the objectives, and whether it meets the budgets (every
/// episode does, the wall saw to it; a reference need not).
struct Point {
    bits: Policy,
    values: Vec<f64>,
    feasible: bool,
}

pub struct Mbrl {
    cfg: MbrlConfig,
    /// The senses of the context's objectives (the front needs them).
    senses: Vec<Sense>,
    /// Every feasible policy, when the space is small enough to enumerate.
    all: Option<Vec<Policy>>,
    /// Every policy scored (as walled), failed or not.
    scored: BTreeSet<Policy>,
    /// The scored policies with their points.
    data: Vec<Point>,
    failed: usize,
    /// References taken in as data (part of `data`), and those among `all`.
    references: usize,
    references_in_all: usize,
    policy: Option<Reinforce>,
    /// The last acquisition: hyper-parameters of the models and the imagined reward.
    last: Option<(Hyper, Option<Hyper>, f64)>,
}

impl Mbrl {
    pub fn new(cfg: MbrlConfig, ctx: &Context) -> Self {
        let small = ctx.space.size().is_some_and(|s| s <= cfg.enumerate as u128);
        let all = small.then(|| feasible(ctx.space, ctx.budget));
        Mbrl {
            cfg,
            senses: ctx.objectives.senses(),
            all,
            scored: BTreeSet::new(),
            data: Vec::new(),
            failed: 0,
            references: 0,
            references_in_all: 0,
            policy: None,
            last: None,
        }
    }

    /// Whether the model has too little data to choose: fewer than `init` of the agent's own
    /// scored proposals.
    fn warming_up(&self) -> bool {
        self.data.len() - self.references < self.cfg.init
    }

    /// Unscored feasible candidates, in a deterministic order.
    fn candidates(&self, ctx: &Context, rng: &mut StdRng) -> Vec<Policy> {
        if let Some(all) = &self.all {
            return all
                .iter()
                .filter(|b| !self.scored.contains(*b))
                .cloned()
                .collect();
        }
        let mut out = BTreeSet::new();
        let mut add = |mut bits: Policy| {
            ctx.budget.wall(ctx.space, &mut bits);
            if !self.scored.contains(&bits) {
                out.insert(bits);
            }
        };
        if self.cfg.planner == Planner::Uniform || self.warming_up() {
            for _ in 0..self.cfg.candidates {
                add(random_policy(ctx.space, rng));
            }
        }
        for p in self.front() {
            for _ in 0..self.cfg.mutations {
                add(mutate(ctx.space, &p.bits, rng));
            }
        }
        out.into_iter().collect()
    }

    /// The feasible scored policies no other feasible scored policy dominates.
    fn front(&self) -> Vec<&Point> {
        let feasible: Vec<&Point> = self.data.iter().filter(|d| d.feasible).collect();
        let points: Vec<&[f64]> = feasible.iter().map(|d| d.values.as_slice()).collect();
        non_dominated(&points, &self.senses)
            .unwrap_or_default()
            .into_iter()
            .map(|i| feasible[i])
            .collect()
    }

    /// The candidate with the largest imagined reward (ties, typically no gain anywhere, go
    /// to the most uncertain); None before the models can be fitted.
    fn plan(&mut self, ctx: &Context, candidates: &[Policy]) -> Result<Option<usize>, AgentError> {
        let Some(model) = Imagination::new(ctx, &self.data, &self.front(), candidates, &self.cfg)?
        else {
            return Ok(None);
        };
        let mut best: Option<((f64, f64), usize)> = None;
        for (i, bits) in candidates.iter().enumerate() {
            let key = model.reward(bits)?;
            if best.is_none_or(|(b, _)| key > b) {
                best = Some((key, i));
            }
        }
        self.last =
            best.map(|((g, _), _)| (model.acc.hyper(), model.rob.as_ref().map(Gp::hyper), g));
        Ok(best.map(|(_, i)| i))
    }

    /// A batch: each proposal but the last is believed (`believe`) before the next is planned.
    fn propose_believing(
        &mut self,
        ctx: &Context,
        rngs: &mut [StdRng],
    ) -> Result<Vec<Proposal>, AgentError> {
        let mut out = Vec::with_capacity(rngs.len());
        let last = rngs.len().saturating_sub(1);
        for (i, rng) in rngs.iter_mut().enumerate() {
            let proposal = self.propose(ctx, rng)?;
            if i < last {
                self.believe(ctx, &proposal.bits);
            }
            out.push(proposal);
        }
        Ok(out)
    }

    /// Takes `bits`, a proposal of the batch not yet scored, as scored: never proposed again,
    /// and believed to score the models' posterior mean (a point of the data, so of the front
    /// if it would be one); only the first until the models can be fitted.
    fn believe(&mut self, ctx: &Context, bits: &Policy) {
        self.scored.insert(bits.clone());
        let Some((acc, rob)) = fit_models(ctx, &self.data) else {
            return;
        };
        let x = encode(ctx.space, bits);
        let robust = rob.map_or(0.0, |gp| gp.predict(&x).0);
        let price = ctx.space.price(bits);
        self.data.push(Point {
            bits: bits.clone(),
            values: ctx.objectives.point(acc.predict(&x).0, robust, &price),
            feasible: ctx.budget.holds(&price),
        });
    }
}

/// The learned model and the front an imagined episode is rewarded against.
struct Imagination<'a> {
    ctx: &'a Context<'a>,
    acc: Gp,
    /// None when robust accuracy is not an objective.
    rob: Option<Gp>,
    kappa: f64,
    senses: Vec<Sense>,
    front: Vec<Vec<f64>>,
    reference: Vec<f64>,
}

impl<'a> Imagination<'a> {
    fn new(
        ctx: &'a Context<'a>,
        data: &[Point],
        front: &[&Point],
        candidates: &[Policy],
        cfg: &MbrlConfig,
    ) -> Result<Option<Self>, AgentError> {
        let column = |k: usize| data.iter().map(|d| d.values[k]).collect::<Vec<f64>>();
        let Some((acc, rob)) = fit_models(ctx, data) else {
            return Ok(None);
        };
        let scores = ctx.objectives.scores();
        // Below every observed score by a tenth of their range; above every cost seen or
        // proposable.
        let mut reference: Vec<f64> = (0..scores).map(|k| below(&column(k))).collect();
        let costs: Vec<Vec<f64>> = (candidates.iter())
            .map(|b| ctx.objectives.cost_point(&ctx.space.price(b)))
            .collect();
        for k in scores..ctx.objectives.len() {
            let worst = (costs.iter().map(|c| c[k - scores]))
                .chain(column(k))
                .fold(f64::NEG_INFINITY, f64::max);
            reference.push(worst * (1.0 + 1e-6));
        }
        Ok(Some(Imagination {
            ctx,
            acc,
            rob,
            kappa: cfg.kappa,
            senses: ctx.objectives.senses(),
            front: front.iter().map(|d| d.values.clone()).collect(),
            reference,
        }))
    }

    /// An imagined episode's reward: the hypervolume its optimistic point adds to the front,
    /// and the summed uncertainty of the models (the tie-break).
    fn reward(&self, bits: &Policy) -> Result<(f64, f64), AgentError> {
        let x = encode(self.ctx.space, bits);
        let k = self.kappa;
        let (ma, sa) = self.acc.predict(&x);
        let mut point = vec![ma + k * sa];
        let mut sd = sa;
        if let Some(rob) = &self.rob {
            let (mr, sr) = rob.predict(&x);
            point.push(mr + k * sr);
            sd += sr;
        }
        point.extend(self.ctx.objectives.cost_point(&self.ctx.space.price(bits)));
        // Late in a search most candidates are dominated: skip their hypervolume.
        if self
            .front
            .iter()
            .any(|f| f == &point || dominates(f, &point, &self.senses))
        {
            return Ok((0.0, sd));
        }
        let gain = hypervolume_gain(&self.front, &point, &self.senses, &self.reference)?;
        Ok((gain, sd))
    }
}

/// The models of the learned scores on `data`: accuracy, and robust accuracy when it is an
/// objective; None while either cannot be fitted.
fn fit_models(ctx: &Context, data: &[Point]) -> Option<(Gp, Option<Gp>)> {
    let x: Vec<Vec<f64>> = data.iter().map(|d| encode(ctx.space, &d.bits)).collect();
    let column = |k: usize| data.iter().map(|d| d.values[k]).collect::<Vec<f64>>();
    let acc = Gp::fit(&x, &column(0))?;
    let rob = match ctx.objectives.scores() > 1 {
        true => Some(Gp::fit(&x, &column(1))?),
        false => None,
    };
    Some((acc, rob))
}

/// A reference value below every observed one, by a tenth of their range.
fn below(values: &[f64]) -> f64 {
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    lo - 0.1 * (hi - lo) - 1e-6
}

/// One coordinate per operand: log2 of its bits, scaled to [0,1] over the space's range.
fn encode(space: &SearchSpace, bits: &Policy) -> Vec<f64> {
    let lg = |b: Bits| (b.get() as f64).log2();
    let (lo, hi) = (lg(space.floor()), lg(space.ceiling()));
    let scale = |b: Bits| {
        if hi > lo {
            (lg(b) - lo) / (hi - lo)
        } else {
            0.0
        }
    };
    if space.tie() {
        bits.iter().map(|l| scale(l.w)).collect()
    } else {
        bits.iter().flat_map(|l| [scale(l.w), scale(l.a)]).collect()
    }
}

/// `bits` with one operand set to another of its options, at random.
fn mutate(space: &SearchSpace, bits: &Policy, rng: &mut StdRng) -> Policy {
    let mut out = bits.clone();
    let op = rng.random_range(0..space.operands());
    let (l, operand) = if space.tie() {
        (op, Operand::Weight)
    } else {
        (op / 2, Operand::of_step(op))
    };
    let v = space.options(l, operand);
    let b = v[rng.random_range(0..v.len())];
    let layer = &mut out.layers_mut()[l];
    let changed = match operand {
        Operand::Weight => LayerBits::new(b, layer.a),
        Operand::Activation => LayerBits::new(layer.w, b),
    };
    *layer = space.run_layer(l, changed);
    out
}

impl Agent for Mbrl {
    fn name(&self) -> &'static str {
        "mbrl"
    }

    /// In an enumerated space, once every feasible policy is scored nothing is left to learn
    /// (the references among them were scored before the first episode).
    fn policies(&self) -> Option<usize> {
        self.all.as_ref().map(|a| a.len() - self.references_in_all)
    }

    fn propose(&mut self, ctx: &Context, rng: &mut StdRng) -> Result<Proposal, AgentError> {
        let mut candidates = self.candidates(ctx, rng);
        if self.cfg.planner == Planner::Reinforce && self.all.is_none() && !self.warming_up() {
            if let Some(model) =
                Imagination::new(ctx, &self.data, &self.front(), &candidates, &self.cfg)?
            {
                let policy = self.policy.get_or_insert_with(|| Reinforce::new(ctx.space));
                let scored = &self.scored;
                let imagined = policy.train(
                    ctx,
                    &|b: &Policy| {
                        if scored.contains(b) {
                            Ok(0.0)
                        } else {
                            model.reward(b).map(|r| r.0)
                        }
                    },
                    rng,
                )?;
                let mut set: BTreeSet<Policy> = candidates.into_iter().collect();
                set.extend(imagined.into_iter().filter(|b| !self.scored.contains(b)));
                candidates = set.into_iter().collect();
            }
        }
        if candidates.is_empty() {
            // Everything feasible is scored (or the sample found nothing new): a random policy.
            let mut bits = random_policy(ctx.space, rng);
            ctx.budget.wall(ctx.space, &mut bits);
            return Ok(Proposal::from_bits(ctx.space, bits));
        }
        let pick = if self.warming_up() {
            None
        } else {
            self.plan(ctx, &candidates)?
        };
        let i = pick.unwrap_or_else(|| rng.random_range(0..candidates.len()));
        Ok(Proposal::from_bits(ctx.space, candidates[i].clone()))
    }

    fn batches(&self) -> bool {
        true
    }

    /// The Kriging believer (module doc): the beliefs are dropped at the end, leaving the agent
    /// as it was but for its planner's training and last plan.
    fn propose_batch(
        &mut self,
        ctx: &Context,
        rngs: &mut [StdRng],
    ) -> Result<Vec<Proposal>, AgentError> {
        let (data, scored) = (self.data.len(), self.scored.clone());
        let out = self.propose_believing(ctx, rngs);
        self.data.truncate(data);
        self.scored = scored;
        out
    }

    fn observe_reference(&mut self, ctx: &Context, f: &Feedback) -> Result<(), AgentError> {
        if !self.scored.insert(f.walled.clone()) {
            return Ok(());
        }
        if self.all.as_ref().is_some_and(|a| a.contains(&f.walled)) {
            self.references_in_all += 1;
        }
        if let Some(values) = f.point(ctx.objectives) {
            self.data.push(Point {
                bits: f.walled.clone(),
                values,
                feasible: ctx.budget.holds(&f.price),
            });
            self.references += 1;
        }
        Ok(())
    }

    fn learn(
        &mut self,
        ctx: &Context,
        _: &Proposal,
        f: &Feedback,
        _: &mut StdRng,
    ) -> Result<(), AgentError> {
        self.scored.insert(f.walled.clone());
        match f.point(ctx.objectives) {
            Some(values) => self.data.push(Point {
                bits: f.walled.clone(),
                values,
                feasible: true,
            }),
            None => self.failed += 1,
        }
        Ok(())
    }

    fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "agent": "mbrl",
            "scored": self.scored.len(),
            "failed": self.failed,
            "references": self.references,
            "enumerated": self.all.as_ref().map(Vec::len),
            "front": self.front().iter().map(|d| d.bits.to_string()).collect::<Vec<_>>(),
            "last_plan": self.last.map(|(a, r, g)| serde_json::json!({
                "accuracy_model": a, "robust_model": r, "imagined_reward": g,
            })),
        })
    }
}

#[cfg(test)]
#[path = "mbrl_tests.rs"]
mod tests;
