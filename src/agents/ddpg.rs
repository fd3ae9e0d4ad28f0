//! HAQ's DDPG agent. The actor maps a step's state to an action in [0,1] (sigmoid output);
//! the critic scores (state, action). Exploration: a truncated normal around the actor's action
//! with sigma decaying ×`sigma_decay` per episode, after `warmup` episodes of uniform actions.
//! Every transition of an episode is stored with the episode's final reward minus a moving-
//! average baseline; each episode past the warm-up runs one update per step:
//! critic on `(Q(s,a) − (r + γ (1 − done) Q'(s', μ'(s'))))²`, actor on `−Q(s, μ(s))`, then
//! soft target updates with tau.

use candle_core::{Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

use super::nets::Mlp;
use super::replay::{ReplayBuffer, Transition};
use super::{Agent, AgentError, Context, DdpgConfig, Feedback, Proposal};
use crate::env::{SearchSpace, STATE_DIM};

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

    fn update(&mut self, rng: &mut StdRng) -> Result<(), AgentError> {
        let batch = self.replay.sample(self.cfg.batch, rng);
        if batch.is_empty() {
            return Ok(());
        }
        let n = batch.len();
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
        let r = stack(&|t| vec![t.reward], 1)?;
        let not_done = stack(&|t| vec![if t.done { 0.0 } else { 1.0 }], 1)?;
        let a2 = candle_nn::ops::sigmoid(&self.actor_target.forward(&s2)?)?;
        let q_next = Self::q(&self.critic_target, &s2, &a2)?.detach();
        let target = (r + (q_next * not_done)?.affine(self.cfg.discount, 0.0)?)?.detach();
        let critic_loss = (Self::q(&self.critic, &s, &a)? - target)?
            .sqr()?
            .mean_all()?;
        self.critic_opt.backward_step(&critic_loss)?;
        let mu = candle_nn::ops::sigmoid(&self.actor.forward(&s)?)?;
        let actor_loss = Self::q(&self.critic, &s, &mu)?.mean_all()?.neg()?;
        self.actor_opt.backward_step(&actor_loss)?;
        self.actor_target.soft_update(&self.actor, self.cfg.tau)?;
        self.critic_target.soft_update(&self.critic, self.cfg.tau)?;
        Ok(())
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
        let (resource, budget) = ctx.budget.primary(ctx.space);
        let (mut actions, mut states, mut decided) = (Vec::new(), Vec::new(), Vec::new());
        let mut prev = 0.0;
        for t in 0..ctx.space.steps() {
            let state = ctx.space.state(t, prev, &decided, resource, budget);
            let a = if self.episodes < self.cfg.warmup {
                rng.random::<f32>()
            } else {
                self.explore(self.act(&state)?, rng)
            };
            decided.push(ctx.space.action_to_bits(a));
            states.push(state);
            actions.push(a);
            prev = a;
        }
        let bits = decided.chunks(2).map(|c| (c[0], c[1])).collect();
        Ok(Proposal {
            actions,
            bits,
            states,
        })
    }

    fn learn(
        &mut self,
        ctx: &Context,
        p: &Proposal,
        f: &Feedback,
        rng: &mut StdRng,
    ) -> Result<(), AgentError> {
        let baseline = *self.baseline.get_or_insert(f.reward);
        let advantage = (f.reward - baseline) as f32;
        self.baseline =
            Some(self.cfg.baseline_decay * baseline + (1.0 - self.cfg.baseline_decay) * f.reward);
        let last = p.states.len().saturating_sub(1);
        for (t, (s, &a)) in p.states.iter().zip(&p.actions).enumerate() {
            let next = if t < last { p.states[t + 1] } else { *s };
            self.replay.push(Transition {
                state: *s,
                action: a,
                reward: advantage,
                next,
                done: t == last,
            });
        }
        self.episodes += 1;
        if self.episodes > self.cfg.warmup {
            for _ in 0..ctx.space.steps() {
                self.update(rng)?;
            }
            self.sigma *= self.cfg.sigma_decay;
        }
        Ok(())
    }

    fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "agent": "ddpg",
            "episodes_learned": self.episodes,
            "sigma": self.sigma,
            "reward_baseline": self.baseline,
            "replay_transitions": self.replay.len(),
        })
    }
}
