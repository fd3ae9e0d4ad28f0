//! A synthetic problem with a known optimum, to check that an agent learns: LeNet-5's ten steps
//! on Bit Fusion (2–8 bits, no budget, so the wall changes nothing), rewarded by
//! `−Σ_t |bits_t − target_t| / steps`, the mean distance in bits to a fixed per-step pattern.
//! Nothing is trained, so hundreds of episodes run in seconds.

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::{Agent, Context, Feedback};
use crate::env::{Budget, BudgetConfig, Limit, Objectives, SearchSpace};
use crate::hardware::{resolve_profile, Profile};
use crate::model::Arch;
use crate::quant::{Format, Policy};

/// The optimum: one bitwidth per step (weight, activation per layer), neither all high nor all
/// low, so the actor has to tell the steps apart.
pub const TARGET: [u8; 10] = [8, 3, 2, 6, 7, 2, 4, 8, 2, 5];

pub struct Problem {
    pub space: SearchSpace,
    pub budget: Budget,
    pub objectives: Objectives,
}

impl Problem {
    pub fn new() -> Self {
        let p = Profile::load(&resolve_profile("bitfusion").unwrap()).unwrap();
        let layers = Arch::Lenet5.layer_shapes((1, 28, 28), 10).unwrap();
        let space = SearchSpace::new(layers, 2, 8, &p, &|b| p.supports(b)).unwrap();
        let cfg = BudgetConfig::default();
        let budget = Budget::resolve(&cfg, &space).unwrap();
        let objectives = Objectives::resolve(&cfg, true, None);
        Problem {
            space,
            budget,
            objectives,
        }
    }

    pub fn ctx(&self) -> Context<'_> {
        Context {
            space: &self.space,
            budget: &self.budget,
            objectives: &self.objectives,
        }
    }

    /// Mean distance in bits from `bits` to the target pattern.
    pub fn distance(bits: &Policy) -> f64 {
        let flat = bits.iter().flat_map(|l| [l.w.width(), l.a.width()]);
        let total: u32 = flat
            .zip(TARGET)
            .map(|(b, t)| (b as i32 - t as i32).unsigned_abs())
            .sum();
        total as f64 / TARGET.len() as f64
    }

    /// Runs `episodes` propose → wall → reward → learn rounds; returns each episode's distance.
    pub fn run(&self, agent: &mut dyn Agent, episodes: usize, seed: u64) -> Vec<f64> {
        let walled = run_episodes(&self.ctx(), agent, episodes, seed, |_, w| {
            (-Self::distance(w), None)
        });
        walled.0.iter().map(Self::distance).collect()
    }
}

/// The search loop without training: per episode (at most `agent.policies()`), propose with
/// the episode's rng (seeded as the tests seed it), wall, score through `score(k, walled)` →
/// (reward, (accuracy, robust accuracy)), learn. Returns the walled policies and the slowest
/// proposal's seconds.
pub fn run_episodes(
    ctx: &Context,
    agent: &mut dyn Agent,
    episodes: usize,
    seed: u64,
    mut score: impl FnMut(usize, &Policy) -> (f64, Option<[f64; 2]>),
) -> (Vec<Policy>, f64) {
    let n = agent.policies().map_or(episodes, |p| p.min(episodes));
    let mut out = Vec::with_capacity(n);
    let mut slowest: f64 = 0.0;
    for k in 0..n {
        let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(1_000_003) + k as u64);
        let start = std::time::Instant::now();
        let p = agent.propose(ctx, &mut rng).unwrap();
        slowest = slowest.max(start.elapsed().as_secs_f64());
        let mut walled = p.bits.clone();
        ctx.budget.wall(ctx.space, &mut walled);
        let (reward, scores) = score(k, &walled);
        let f = Feedback {
            reward,
            price: ctx.space.price(&walled),
            walled: walled.clone(),
            scores,
            fidelity: crate::fidelity::Fidelity::Full,
        };
        agent.learn(ctx, &p, &f, &mut rng).unwrap();
        out.push(walled);
    }
    (out, slowest)
}

pub fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len().max(1) as f64
}

/// A problem with a known front: LeNet-5 on Bit Fusion in the tied {2, 4, 8} space under a
/// 50% latency budget (108 feasible policies), or the untied 2..8 space (or another profile
/// and budget, `Front::on`), scored without training. With x_l ∈ [0, 1] the log2-scaled bits
/// of layer l (the mean of weight and activation), accuracy rises with bits and robust
/// accuracy falls with them, each with its own per-layer weights and an interaction, so the
/// two conflict and the front has many points. The agents rank by `objectives`: the
/// experiment's, accuracy × robust accuracy × the budgeted cost, unless a test says otherwise.
pub struct Front {
    pub space: SearchSpace,
    pub budget: Budget,
    pub objectives: Objectives,
}

impl Front {
    pub fn new(choices: &[u8], tie: bool) -> Self {
        let cfg = BudgetConfig {
            latency: Some(Limit::Fraction(0.5)),
            ..BudgetConfig::default()
        };
        Self::on("bitfusion", choices, tie, &cfg)
    }

    /// The problem on `profile` under `budget`.
    pub fn on(profile: &str, choices: &[u8], tie: bool, budget: &BudgetConfig) -> Self {
        let p = Profile::load(&resolve_profile(profile).unwrap()).unwrap();
        let layers = Arch::Lenet5.layer_shapes((1, 28, 28), 10).unwrap();
        let space =
            SearchSpace::with_choices(layers, choices, tie, &p, &|b| p.supports(b)).unwrap();
        let objectives = Objectives::resolve(budget, true, None);
        let budget = Budget::resolve(budget, &space).unwrap();
        Front {
            space,
            budget,
            objectives,
        }
    }

    pub fn ctx(&self) -> Context<'_> {
        Context {
            space: &self.space,
            budget: &self.budget,
            objectives: &self.objectives,
        }
    }

    /// (accuracy, robust accuracy) of a policy.
    pub fn scores(&self, bits: &Policy) -> [f64; 2] {
        let lg = |b: Format| (b.width() as f64).log2();
        let x: Vec<f64> = bits
            .iter()
            .map(|l| (lg(l.w) + lg(l.a)) / 4.0 - 0.5)
            .collect();
        let acc = 0.5 + 0.2 * x[0] + 0.05 * x[1] + 0.1 * x[2] + 0.03 * x[3] + 0.12 * x[4]
            - 0.08 * x[0] * x[2];
        let rob = 0.8 - 0.15 * x[0] - 0.1 * x[1] + 0.04 * x[2] - 0.12 * x[4] + 0.1 * x[1] * x[3];
        [acc, rob]
    }

    /// Runs `episodes` rounds (every `fail_every`-th fine-tune fails, if set); returns the
    /// walled policies in order.
    pub fn run(
        &self,
        agent: &mut dyn Agent,
        episodes: usize,
        seed: u64,
        fail_every: Option<usize>,
    ) -> Vec<Policy> {
        let failed = |k: usize| fail_every.is_some_and(|n| k % n == n - 1);
        run_episodes(&self.ctx(), agent, episodes, seed, |k, w| {
            let o = self.scores(w);
            (o[0] + o[1], (!failed(k)).then_some(o))
        })
        .0
    }

    /// Runs `episodes` rounds in batches of `batch` (`Agent::propose_batch`, each proposal
    /// with its episode's rng, seeded as `run_episodes` seeds it; every fine-tune succeeds),
    /// learning each batch in order; returns the walled policies, batch by batch.
    pub fn run_batches(
        &self,
        agent: &mut dyn Agent,
        episodes: usize,
        seed: u64,
        batch: usize,
    ) -> Vec<Vec<Policy>> {
        let ctx = self.ctx();
        let mut out: Vec<Vec<Policy>> = Vec::new();
        let mut k = 0;
        while k < episodes {
            let n = batch.min(episodes - k);
            let mut rngs: Vec<StdRng> = (k..k + n)
                .map(|k| StdRng::seed_from_u64(seed.wrapping_mul(1_000_003) + k as u64))
                .collect();
            let proposals = agent.propose_batch(&ctx, &mut rngs).unwrap();
            let mut walled_batch = Vec::new();
            for (p, rng) in proposals.iter().zip(&mut rngs) {
                let mut walled = p.bits.clone();
                ctx.budget.wall(ctx.space, &mut walled);
                let f = Feedback {
                    reward: 0.0,
                    price: self.space.price(&walled),
                    scores: Some(self.scores(&walled)),
                    walled: walled.clone(),
                    fidelity: crate::fidelity::Fidelity::Full,
                };
                agent.learn(&ctx, p, &f, rng).unwrap();
                walled_batch.push(walled);
            }
            k += walled_batch.len();
            out.push(walled_batch);
        }
        out
    }

    /// The hypervolume of `policies` on the objectives `on`, as a fraction of every feasible
    /// policy's, against the worst feasible point.
    pub fn fraction(&self, policies: &[Policy], on: &Objectives) -> f64 {
        use crate::pareto::{hypervolume, worst_point, Reference};
        let senses = on.senses();
        let point = |b: &Policy| {
            let [acc, rob] = self.scores(b);
            on.point(acc, rob, &self.space.price(b))
        };
        let all: Vec<Vec<f64>> = super::exhaustive::feasible(&self.space, &self.budget)
            .iter()
            .map(point)
            .collect();
        let r = Reference::Given(worst_point(&all, &senses).unwrap());
        let got: Vec<Vec<f64>> = policies.iter().map(point).collect();
        hypervolume(&got, &senses, &r).unwrap() / hypervolume(&all, &senses, &r).unwrap()
    }
}
