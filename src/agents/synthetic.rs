//! A synthetic problem with a known optimum, to check that an agent learns: LeNet-5's ten steps
//! on Bit Fusion (2–8 bits, no budget, so the wall changes nothing), rewarded by
//! `−Σ_t |bits_t − target_t| / steps`, the mean distance in bits to a fixed per-step pattern.
//! Nothing is trained, so hundreds of episodes run in seconds.

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::{Agent, Context, Feedback};
use crate::env::{Budget, BudgetConfig, SearchSpace};
use crate::hardware::{resolve_profile, Profile};
use crate::model::Arch;

/// The optimum: one bitwidth per step (weight, activation per layer), neither all high nor all
/// low, so the actor has to tell the steps apart.
pub const TARGET: [u8; 10] = [8, 3, 2, 6, 7, 2, 4, 8, 2, 5];

pub struct Problem {
    pub space: SearchSpace,
    pub budget: Budget,
}

impl Problem {
    pub fn new() -> Self {
        let p = Profile::load(&resolve_profile("bitfusion").unwrap()).unwrap();
        let layers = Arch::Lenet5.layer_shapes((1, 28, 28), 10).unwrap();
        let space = SearchSpace::new(layers, 2, 8, &p, &|b| p.supports(b)).unwrap();
        let budget = Budget::resolve(&BudgetConfig::default(), &space).unwrap();
        Problem { space, budget }
    }

    pub fn ctx(&self) -> Context<'_> {
        Context {
            space: &self.space,
            budget: &self.budget,
        }
    }

    /// Mean distance in bits from `bits` to the target pattern.
    pub fn distance(bits: &[(u8, u8)]) -> f64 {
        let flat = bits.iter().flat_map(|&(w, a)| [w, a]);
        let total: u32 = flat
            .zip(TARGET)
            .map(|(b, t)| (b as i32 - t as i32).unsigned_abs())
            .sum();
        total as f64 / TARGET.len() as f64
    }

    /// Runs `episodes` propose → wall → reward → learn rounds; returns each episode's distance.
    pub fn run(&self, agent: &mut dyn Agent, episodes: usize, seed: u64) -> Vec<f64> {
        let ctx = self.ctx();
        let mut out = Vec::with_capacity(episodes);
        for k in 0..episodes {
            let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(1_000_003) + k as u64);
            let p = agent.propose(&ctx, &mut rng).unwrap();
            let mut walled = p.bits.clone();
            self.budget.wall(&self.space, &mut walled);
            let d = Self::distance(&walled);
            let f = Feedback {
                reward: -d,
                walled,
                objectives: None,
            };
            agent.learn(&ctx, &p, &f, &mut rng).unwrap();
            out.push(d);
        }
        out
    }
}

pub fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len().max(1) as f64
}
