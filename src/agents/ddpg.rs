//! HAQ's DDPG agent (Wang et al., CVPR 2019, and its released `lib/rl/ddpg.py`,
//! `rl_quantize.py`). The actor maps a step's state to an action in [0,1] (sigmoid output); the
//! critic scores (state, action). Exploration: a truncated normal around the actor's action with
//! sigma decaying ×`sigma_decay` per episode, after `warmup` episodes of uniform actions.
//!
//! Learning follows HAQ's schedule. At the end of an episode every step is stored as a
//! transition carrying the episode's raw final reward, and the action that was actually trained:
//! where the budget wall lowered a bit, the action is the centre of the walled bitwidth's bin and
//! the states are re-walked along the walled policy. Past the warm-up, each stored transition is
//! followed by one update on a sampled batch: the moving-average baseline moves towards the
//! batch's mean reward, `b ← d·b + (1 − d)·mean(r)`, and the advantage `r − b` is computed then,
//! against the current baseline; critic on `(Q(s,a) − (r − b + γ (1 − done) Q'(s', μ'(s'))))²`,
//! actor on `−Q(s, μ(s))`, then soft target updates with tau.

use candle_core::{Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

use super::nets::Mlp;
use super::replay::{ReplayBuffer, Transition};
use super::{Agent, AgentError, Context, DdpgConfig, Feedback, Proposal};
use crate::env::{Operand, SearchSpace, STATE_DIM};
use crate::quant::{Format, LayerBits, Policy};

pub struct Ddpg {
    cfg: DdpgConfig,
    actor: Mlp,
    critic: Mlp,
    actor_target: Mlp,
    critic_target: Mlp,
    actor_opt: AdamW,
    critic_opt: AdamW,
    replay: ReplayBuffer,
    sigma: f64,
    baseline: Option<f64>,
    episodes: usize,
    updates: usize,
}

fn adam(vars: Vec<candle_core::Var>, lr: f64) -> Result<AdamW, AgentError> {
    Ok(AdamW::new(
        vars,
        ParamsAdamW {
            lr,
            weight_decay: 0.0,
            ..ParamsAdamW::default()
        },
    )?)
}

impl Ddpg {
    pub fn new(cfg: DdpgConfig, space: &SearchSpace, seed: u64) -> Result<Self, AgentError> {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x6464_7067);
        let h = cfg.hidden;
        let actor = Mlp::new(&[STATE_DIM, h, h, 1], &mut rng)?;
        let critic = Mlp::new(&[STATE_DIM + 1, h, h, 1], &mut rng)?;
        Ok(Ddpg {
            actor_target: actor.copy()?,
            critic_target: critic.copy()?,
            actor_opt: adam(actor.vars(), cfg.actor_lr)?,
            critic_opt: adam(critic.vars(), cfg.critic_lr)?,
            replay: ReplayBuffer::new(cfg.replay_episodes * space.steps()),
            sigma: cfg.sigma,
            baseline: None,
            episodes: 0,
            updates: 0,
            actor,
            critic,
            cfg,
        })
    }

    fn act(&self, state: &[f32; STATE_DIM]) -> Result<f32, AgentError> {
        let x = Tensor::from_slice(state, (1, STATE_DIM), &Device::Cpu)?;
        let y = candle_nn::ops::sigmoid(&self.actor.forward(&x)?)?;
        Ok(y.flatten_all()?.to_vec1::<f32>()?[0])
    }

    /// A sample of N(mean, sigma) truncated to [0,1] (rejection; the clamp is a safety net).
    fn explore(&self, mean: f32, rng: &mut StdRng) -> f32 {
        let Ok(normal) = Normal::new(mean as f64, self.sigma) else {
            return mean;
        };
        for _ in 0..100 {
            let v = normal.sample(rng);
            if (0.0..=1.0).contains(&v) {
                return v as f32;
            }
        }
        mean.clamp(0.0, 1.0)
    }

    fn q(net: &Mlp, s: &Tensor, a: &Tensor) -> candle_core::Result<Tensor> {
        net.forward(&Tensor::cat(&[s, a], 1)?)
    }

    /// One DDPG update on a sampled batch, with the advantage taken against the baseline as it
    /// stands now (HAQ's `update_policy`).
    fn update(&mut self, rng: &mut StdRng) -> Result<(), AgentError> {
        let batch = self.replay.sample(self.cfg.batch, rng);
        if batch.is_empty() {
            return Ok(());
        }
        let n = batch.len();
        let mean = batch.iter().map(|t| t.reward as f64).sum::<f64>() / n as f64;
        let d = self.cfg.baseline_decay;
        let baseline = self.baseline.map_or(mean, |b| d * b + (1.0 - d) * mean);
        self.baseline = Some(baseline);
        let stack =
            |f: &dyn Fn(&Transition) -> Vec<f32>, width: usize| -> candle_core::Result<Tensor> {
                Tensor::from_vec(
                    batch.iter().flat_map(|t| f(t)).collect::<Vec<f32>>(),
                    (n, width),
                    &Device::Cpu,
                )
            };
        let s = stack(&|t| t.state.to_vec(), STATE_DIM)?;
        let s2 = stack(&|t| t.next.to_vec(), STATE_DIM)?;
        let a = stack(&|t| vec![t.action], 1)?;
        let advantage = stack(&|t| vec![(t.reward as f64 - baseline) as f32], 1)?;
        let not_done = stack(&|t| vec![if t.done { 0.0 } else { 1.0 }], 1)?;
        let a2 = candle_nn::ops::sigmoid(&self.actor_target.forward(&s2)?)?;
        let q_next = Self::q(&self.critic_target, &s2, &a2)?.detach();
        let target = (advantage + (q_next * not_done)?.affine(self.cfg.discount, 0.0)?)?.detach();
        let critic_loss = (Self::q(&self.critic, &s, &a)? - target)?
            .sqr()?
            .mean_all()?;
        self.critic_opt.backward_step(&critic_loss)?;
        let mu = candle_nn::ops::sigmoid(&self.actor.forward(&s)?)?;
        let actor_loss = Self::q(&self.critic, &s, &mu)?.mean_all()?.neg()?;
        self.actor_opt.backward_step(&actor_loss)?;
        self.actor_target.soft_update(&self.actor, self.cfg.tau)?;
        self.critic_target.soft_update(&self.critic, self.cfg.tau)?;
        self.updates += 1;
        Ok(())
    }

    /// Walks the steps of one episode: `choose` picks step t's action from its state, which
    /// shows the previous action and the resource spent by the bits decided so far.
    fn walk(
        ctx: &Context,
        mut choose: impl FnMut(usize, &[f32; STATE_DIM]) -> Result<f32, AgentError>,
    ) -> Result<Proposal, AgentError> {
        let (resource, budget) = ctx.budget.primary(ctx.space);
        let (mut actions, mut states, mut decided) = (Vec::new(), Vec::new(), Vec::new());
        let mut prev = 0.0;
        for t in 0..ctx.space.steps() {
            let state = ctx.space.state(t, prev, &decided, resource, budget);
            let a = choose(t, &state)?;
            decided.push(ctx.space.action_to_bits(a, Operand::of_step(t)));
            states.push(state);
            actions.push(a);
            prev = a;
        }
        let bits = (decided.chunks(2))
            .map(|c| LayerBits::new(c[0], c[1]))
            .collect();
        Ok(Proposal {
            actions,
            bits,
            states,
            fidelity: crate::fidelity::Fidelity::Full,
        })
    }

    /// The episode as it was trained: each action whose bitwidth the wall changed is replaced by
    /// the centre of the walled bitwidth's bin (the others are kept as proposed), and the states
    /// are walked again along those actions.
    fn trained(ctx: &Context, p: &Proposal, walled: &Policy) -> Result<Proposal, AgentError> {
        let bits: Vec<Format> = walled.iter().flat_map(|b| [b.w, b.a]).collect();
        Self::walk(ctx, |t, _| {
            let proposed = p.actions.get(t).copied().unwrap_or(0.0);
            let proposed_bits = ctx.space.action_to_bits(proposed, Operand::of_step(t));
            let b = bits.get(t).copied().unwrap_or(proposed_bits);
            Ok(if b == proposed_bits {
                proposed
            } else {
                ctx.space.bits_to_action(b, Operand::of_step(t))
            })
        })
    }

    /// The actor's policy without exploration noise (the bits it would propose at sigma = 0).
    pub fn greedy_bits(&self, ctx: &Context) -> Result<Policy, AgentError> {
        Ok(Self::walk(ctx, |_, s| self.act(s))?.bits)
    }

    pub fn sigma(&self) -> f64 {
        self.sigma
    }
}

impl Agent for Ddpg {
    fn name(&self) -> &'static str {
        "ddpg"
    }

    fn propose(&mut self, ctx: &Context, rng: &mut StdRng) -> Result<Proposal, AgentError> {
        let warming_up = self.episodes < self.cfg.warmup;
        Self::walk(ctx, |_, state| {
            Ok(if warming_up {
                rng.random::<f32>()
            } else {
                self.explore(self.act(state)?, rng)
            })
        })
    }

    /// Stores the episode's transitions (raw final reward, trained actions); past the warm-up,
    /// runs one update after each stored transition, as HAQ's `rl_quantize.py` does.
    fn learn(
        &mut self,
        ctx: &Context,
        p: &Proposal,
        f: &Feedback,
        rng: &mut StdRng,
    ) -> Result<(), AgentError> {
        let trained = Self::trained(ctx, p, &f.walled)?;
        let past_warmup = self.episodes >= self.cfg.warmup;
        let last = trained.states.len().saturating_sub(1);
        for (t, (s, &a)) in trained.states.iter().zip(&trained.actions).enumerate() {
            let next = trained.states.get(t + 1).copied().unwrap_or(*s);
            self.replay.push(Transition {
                state: *s,
                action: a,
                reward: f.reward as f32,
                next,
                done: t == last,
            });
            if past_warmup {
                self.update(rng)?;
            }
        }
        self.episodes += 1;
        if past_warmup {
            self.sigma *= self.cfg.sigma_decay;
        }
        Ok(())
    }

    fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "agent": "ddpg",
            "episodes_learned": self.episodes,
            "updates": self.updates,
            "sigma": self.sigma,
            "reward_baseline": self.baseline,
            "replay_transitions": self.replay.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::synthetic::{mean, Problem};
    use crate::agents::RandomAgent;

    /// HAQ's defaults (agents/ddpg.toml), with `hidden` and `warmup` as given.
    fn haq(hidden: usize, warmup: usize) -> DdpgConfig {
        DdpgConfig {
            hidden,
            actor_lr: 1e-4,
            critic_lr: 1e-3,
            batch: 64,
            replay_episodes: 128,
            tau: 0.01,
            discount: 1.0,
            warmup,
            sigma: 0.5,
            sigma_decay: 0.99,
            baseline_decay: 0.5,
        }
    }

    /// One episode: propose, let `wall` change the bits, learn from `reward`.
    fn episode(
        ddpg: &mut Ddpg,
        ctx: &Context,
        rng: &mut StdRng,
        reward: f64,
        wall: impl Fn(&mut Policy),
    ) -> (Proposal, Policy) {
        let p = ddpg.propose(ctx, rng).unwrap();
        let mut walled = p.bits.clone();
        wall(&mut walled);
        let f = Feedback {
            reward,
            price: ctx.space.price(&walled),
            walled: walled.clone(),
            scores: None,
            fidelity: crate::fidelity::Fidelity::Full,
        };
        ddpg.learn(ctx, &p, &f, rng).unwrap();
        (p, walled)
    }

    #[test]
    fn transitions_keep_the_raw_reward_and_the_baseline_moves_when_sampled() {
        let pb = Problem::new();
        let mut rng = StdRng::seed_from_u64(0);
        let mut ddpg = Ddpg::new(haq(16, 2), &pb.space, 0).unwrap();
        for reward in [-1.0, -3.0] {
            episode(&mut ddpg, &pb.ctx(), &mut rng, reward, |_| {});
        }
        let stored: Vec<f32> = ddpg.replay.iter().map(|t| t.reward).collect();
        assert_eq!(stored, [[-1.0; 10], [-3.0; 10]].concat());
        assert_eq!(ddpg.baseline, None, "no batch sampled during the warm-up");
        // The first batch sets the baseline to its mean reward; the next moves it half-way
        // (baseline_decay 0.5) towards theirs, and only then is the advantage taken.
        let batch_mean = |ddpg: &Ddpg, rng: &StdRng| {
            let batch = ddpg.replay.sample(64, &mut rng.clone());
            batch.iter().map(|t| t.reward as f64).sum::<f64>() / 64.0
        };
        let mean1 = batch_mean(&ddpg, &rng);
        ddpg.update(&mut rng).unwrap();
        assert_eq!(ddpg.baseline, Some(mean1));
        assert!(mean1 > -3.0 && mean1 < -1.0, "a mixed batch: {mean1}");
        let mean2 = batch_mean(&ddpg, &rng);
        ddpg.update(&mut rng).unwrap();
        let b2 = ddpg.baseline.unwrap();
        assert!((b2 - (0.5 * mean1 + 0.5 * mean2)).abs() < 1e-12, "{b2}");
        assert_eq!(
            ddpg.replay.iter().next().unwrap().reward,
            -1.0,
            "stored raw"
        );
    }

    #[test]
    fn transitions_store_the_walled_actions_and_the_states_they_lead_to() {
        let pb = Problem::new();
        let mut rng = StdRng::seed_from_u64(1);
        let mut ddpg = Ddpg::new(haq(16, 5), &pb.space, 1).unwrap();
        // As if the wall had changed conv2's weight bits (step 2).
        let [two, three] = [2, 3].map(|b| Format::new(b).unwrap());
        let (p, walled) = episode(&mut ddpg, &pb.ctx(), &mut rng, -1.0, |bits| {
            let w = &mut bits.layers_mut()[1].w;
            *w = if *w == two { three } else { two };
        });
        let stored: Vec<&Transition> = ddpg.replay.iter().collect();
        let actions: Vec<f32> = stored.iter().map(|t| t.action).collect();
        let mut want = p.actions.clone();
        want[2] = pb.space.bits_to_action(walled[1].w, Operand::Weight);
        assert_eq!(actions, want, "only the walled step's action changes");
        // Step 3's state shows the walled action as the previous one and a different spend.
        assert_eq!(stored[3].state[11], want[2]);
        assert_ne!(stored[3].state[12], p.states[3][12]);
        assert_eq!(stored[2].next, stored[3].state);
        assert_eq!(
            &stored[..3].iter().map(|t| t.state).collect::<Vec<_>>(),
            &p.states[..3]
        );
        assert!(stored[9].done && !stored[8].done);
    }

    #[test]
    fn one_update_per_stored_transition_after_the_warm_up() {
        let pb = Problem::new();
        let mut rng = StdRng::seed_from_u64(2);
        let mut ddpg = Ddpg::new(haq(16, 2), &pb.space, 2).unwrap();
        let mut updates = Vec::new();
        for _ in 0..4 {
            episode(&mut ddpg, &pb.ctx(), &mut rng, -1.0, |_| {});
            updates.push(ddpg.updates);
        }
        assert_eq!(updates, [0, 0, 10, 20]);
        assert_eq!(ddpg.sigma(), 0.5 * 0.99 * 0.99);
    }

    /// Fails if DDPG cannot learn: the synthetic optimum is a per-step pattern (see
    /// `synthetic`), uniform proposals are ~2.5 bits per step away from it. HAQ's defaults
    /// except a 128-wide network: 300 learns it as well (greedy 0.2–0.6 bits at 200 episodes,
    /// seeds 0–2) but is ~5× slower. Measured at 300 episodes, seeds 0–5: greedy 0.3, 0.4, 0.3,
    /// 0.3, 0.4, 1.4 bits; last 20 proposals 0.34–0.59 (1.41 for seed 5, stuck with every
    /// activation at 2 bits).
    #[test]
    fn ddpg_learns_a_per_step_pattern() {
        let pb = Problem::new();
        let episodes = 300;
        let mut ddpg = Ddpg::new(haq(128, 20), &pb.space, 0).unwrap();
        let ddpg_distances = pb.run(&mut ddpg, episodes, 0);
        let random = mean(&pb.run(&mut RandomAgent, episodes, 0));
        let greedy = Problem::distance(&ddpg.greedy_bits(&pb.ctx()).unwrap());
        let last = mean(&ddpg_distances[episodes - 20..]);
        assert!(
            random > 2.0,
            "uniform proposals are far from the optimum: {random}"
        );
        assert!(
            greedy <= 0.5,
            "greedy policy {greedy} bits per step from the optimum"
        );
        assert!(
            last < random / 3.0,
            "last 20 proposals {last} vs random {random}"
        );
    }
}
