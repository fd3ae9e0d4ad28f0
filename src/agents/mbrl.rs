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
//! `init` proposals (the model needs data) are a space-filling design: each the candidate whose
//! operands take the options the policies seen so far hold least often, so every option of
//! every operand is shown about equally often; a failed fine-tune is scored (never proposed
//! again) but teaches the model nothing.
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
//! **Two fidelities** (`offer_low_fidelity`, the experiment's `[search] fidelity = "multi"`):
//! the models take the fidelity as one more input (0 low, 1 full), so they learn both and the
//! correction between them jointly. The front holds full scores only, and a candidate's value
//! is always its imagined gain at full fidelity. Each step weighs two actions per unscored
//! candidate x by value per fixed cost: a full score is worth gain(x) at cost 1; a low score,
//! where x has none yet, is worth gain(x) · r(x) at cost c, r(x) the fraction of the full
//! fidelity's variance at x that the low score would remove (`Gp::variance_reduction`). So a
//! candidate is screened cheaply while the cheap score says much of the full one, and promoted
//! to a full score only when its full-fidelity gain per unit cost beats every cheaper step. The
//! first `init` proposals are low scores (the references are full data).
//!
//! Deterministic given (seed, feedback): ordered sets, fixed-order sums, no threads.

use std::collections::{BTreeMap, BTreeSet};

use rand::rngs::StdRng;
use rand::Rng;

use super::exhaustive::feasible;
use super::gp::{Gp, Hyper};
use super::planner::Reinforce;
use super::{random_policy, Agent, AgentError, Context, Feedback, MbrlConfig, Planner, Proposal};
use crate::env::{Operand, SearchSpace};
use crate::fidelity::Fidelity;
use crate::pareto::{non_dominated, Sense};
use crate::quant::{Format, Kind, LayerBits, Policy};
use imagination::{fit_models, Imagination};

/// A scored policy: its point on the objectives, and whether it meets the budgets (every
/// episode does, the wall saw to it; a reference need not).
struct Point {
    bits: Policy,
    values: Vec<f64>,
    feasible: bool,
    fidelity: Fidelity,
}

pub struct Mbrl {
    cfg: MbrlConfig,
    /// The senses of the context's objectives (the front needs them).
    senses: Vec<Sense>,
    /// Every feasible policy, when the space is small enough to enumerate.
    all: Option<Vec<Policy>>,
    /// Every policy scored (as walled) at full fidelity, failed or not.
    scored: BTreeSet<Policy>,
    /// Every policy scored at the low fidelity.
    screened: BTreeSet<Policy>,
    /// A low score's fixed cost (a fraction of a full score's), when the search offers one.
    low_cost: Option<f64>,
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
            screened: BTreeSet::new(),
            low_cost: None,
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

    /// The feasible full-fidelity policies no other one dominates.
    fn front(&self) -> Vec<&Point> {
        let feasible: Vec<&Point> = (self.data.iter())
            .filter(|d| d.feasible && d.fidelity.is_full())
            .collect();
        let points: Vec<&[f64]> = feasible.iter().map(|d| d.values.as_slice()).collect();
        non_dominated(&points, &self.senses)
            .unwrap_or_default()
            .into_iter()
            .map(|i| feasible[i])
            .collect()
    }

    /// The candidate with the largest imagined reward per unit cost (ties, typically no gain
    /// anywhere, go to the most uncertain) and the fidelity to score it at; None before the
    /// models can be fitted.
    fn plan(
        &mut self,
        ctx: &Context,
        candidates: &[Policy],
    ) -> Result<Option<(usize, Fidelity)>, AgentError> {
        let Some(model) = Imagination::new(ctx, self, candidates)? else {
            return Ok(None);
        };
        let mut best: Option<((f64, f64), usize, Fidelity)> = None;
        for (i, bits) in candidates.iter().enumerate() {
            let (gain, sd) = model.reward(bits)?;
            let mut actions = vec![((gain, sd), Fidelity::Full)];
            if let Some(cost) = self.low_cost.filter(|_| !self.screened.contains(bits)) {
                actions.push(((gain * model.told_by_low(bits) / cost, sd), Fidelity::Low));
            }
            for (key, fidelity) in actions {
                if best.is_none_or(|(b, _, _)| key > b) {
                    best = Some((key, i, fidelity));
                }
            }
        }
        let hypers = (model.acc.hyper(), model.rob.as_ref().map(Gp::hyper));
        drop(model);
        self.last = best.map(|((g, _), _, _)| (hypers.0, hypers.1, g));
        Ok(best.map(|(_, i, f)| (i, f)))
    }

    /// The models' input for `bits` at `fidelity`: one more coordinate when there are two.
    fn input(&self, space: &SearchSpace, bits: &Policy, fidelity: Fidelity) -> Vec<f64> {
        let mut x = encode(space, bits);
        if self.low_cost.is_some() {
            x.push(if fidelity.is_full() { 1.0 } else { 0.0 });
        }
        x
    }

    /// The fidelity of a warm-up proposal: low when the search offers it.
    fn warm_up_fidelity(&self, bits: &Policy) -> Fidelity {
        match self.low_cost.is_some() && !self.screened.contains(bits) {
            true => Fidelity::Low,
            false => Fidelity::Full,
        }
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
                self.believe(ctx, &proposal.bits, proposal.fidelity);
            }
            out.push(proposal);
        }
        Ok(out)
    }

    /// Takes `bits`, a proposal of the batch not yet scored, as scored: never proposed again,
    /// and believed to score the models' posterior mean (a point of the data, so of the front
    /// if it would be one); only the first until the models can be fitted.
    fn believe(&mut self, ctx: &Context, bits: &Policy, fidelity: Fidelity) {
        self.mark(bits, fidelity);
        let Some((acc, rob)) = fit_models(ctx, self) else {
            return;
        };
        let x = self.input(ctx.space, bits, fidelity);
        let robust = rob.map_or(0.0, |gp| gp.predict(&x).0);
        let price = ctx.space.price(bits);
        self.data.push(Point {
            bits: bits.clone(),
            values: ctx.objectives.point(acc.predict(&x).0, robust, &price),
            feasible: ctx.budget.holds(&price),
            fidelity,
        });
    }

    /// A warm-up pick: the candidate whose operands' options the policies scored, screened or
    /// believed so far hold least often (the sum over operands of each option's count), ties
    /// broken at random. A random first design can miss an option altogether (on cnn6, the
    /// 2-bit input quantizer every robust policy needs), and a model never shown an option does
    /// not propose it. Depends only on the agent's sets and the rng, so a resume proposes what
    /// the first run did.
    fn least_covered(&self, space: &SearchSpace, candidates: &[Policy], rng: &mut StdRng) -> usize {
        let mut counts: Vec<BTreeMap<Format, usize>> = vec![BTreeMap::new(); space.operands()];
        for bits in self.scored.iter().chain(&self.screened) {
            for (j, v) in operand_values(space, bits).into_iter().enumerate() {
                *counts[j].entry(v).or_insert(0) += 1;
            }
        }
        let cost = |bits: &Policy| -> usize {
            let values = operand_values(space, bits).into_iter().enumerate();
            values
                .map(|(j, v)| counts[j].get(&v).copied().unwrap_or(0))
                .sum()
        };
        let costs: Vec<usize> = candidates.iter().map(cost).collect();
        let least = costs.iter().copied().min().unwrap_or(0);
        let ties: Vec<usize> = (0..candidates.len())
            .filter(|&i| costs[i] == least)
            .collect();
        ties[rng.random_range(0..ties.len())]
    }

    /// Records `bits` as scored at `fidelity`.
    fn mark(&mut self, bits: &Policy, fidelity: Fidelity) {
        match fidelity {
            Fidelity::Full => self.scored.insert(bits.clone()),
            Fidelity::Low => self.screened.insert(bits.clone()),
        };
    }
}

/// Per operand, log2 of its width scaled to [0,1] over the space's range; in a space with
/// named formats also its exponent bits / 8 (0 for integers) and its group density 32 / group
/// (0 for a per-channel or per-tensor scale): the kernel then sees fp8 and int8, or int4g32
/// and int4, as neighbours that differ, not as one width.
fn encode(space: &SearchSpace, bits: &Policy) -> Vec<f64> {
    let lg = |b: Format| (b.width() as f64).log2();
    let (lo, hi) = (lg(space.floor()), lg(space.ceiling()));
    let named = space.has_named_formats();
    let code = |b: Format| {
        let width = if hi > lo {
            (lg(b) - lo) / (hi - lo)
        } else {
            0.0
        };
        let mut x = vec![width];
        if named {
            let (exp, group) = match b.kind() {
                Kind::Float(m) => (m.exp_bits() as f64 / 8.0, 0.0),
                Kind::GroupInt { group, .. } => (0.0, 32.0 / group as f64),
                Kind::Int(_) | Kind::Full => (0.0, 0.0),
            };
            x.extend([exp, group]);
        }
        x
    };
    operand_values(space, bits)
        .into_iter()
        .flat_map(code)
        .collect()
}

/// Each operand's format, in the space's order (weight then activation per layer; the weight
/// alone when tied).
fn operand_values(space: &SearchSpace, bits: &Policy) -> Vec<Format> {
    let one = |l: &LayerBits| match space.tie() {
        true => vec![l.w],
        false => vec![l.w, l.a],
    };
    bits.iter().flat_map(one).collect()
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
            let mut policy = (self.policy.take()).unwrap_or_else(|| Reinforce::new(ctx.space));
            let imagined = match Imagination::new(ctx, self, &candidates) {
                Ok(Some(model)) => {
                    let scored = &self.scored;
                    let reward = |b: &Policy| match scored.contains(b) {
                        true => Ok(0.0),
                        false => model.reward(b).map(|r| r.0),
                    };
                    policy.train(ctx, &reward, rng).map(Some)
                }
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            };
            self.policy = Some(policy);
            if let Some(imagined) = imagined? {
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
        let (i, fidelity) = match pick {
            Some(p) => p,
            None => {
                let i = self.least_covered(ctx.space, &candidates, rng);
                (i, self.warm_up_fidelity(&candidates[i]))
            }
        };
        Ok(Proposal::from_bits(ctx.space, candidates[i].clone()).at(fidelity))
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
        let screened = self.screened.clone();
        let out = self.propose_believing(ctx, rngs);
        self.data.truncate(data);
        self.scored = scored;
        self.screened = screened;
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
                fidelity: Fidelity::Full,
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
        self.mark(&f.walled, f.fidelity);
        match f.point(ctx.objectives) {
            Some(values) => self.data.push(Point {
                bits: f.walled.clone(),
                values,
                feasible: true,
                fidelity: f.fidelity,
            }),
            None => self.failed += 1,
        }
        Ok(())
    }

    fn offer_low_fidelity(&mut self, cost: f64) -> bool {
        self.low_cost = Some(cost);
        true
    }

    fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "agent": "mbrl",
            "scored": self.scored.len(),
            "screened": self.screened.len(),
            "low_cost": self.low_cost,
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

#[path = "mbrl_imagination.rs"]
mod imagination;

#[cfg(test)]
#[path = "mbrl_tests.rs"]
mod tests;
