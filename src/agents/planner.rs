//! A REINFORCE policy over the bit choices, trained on imagined episodes: one softmax per
//! operand over its options (conditioned on the step), π(policy) = Π_t softmax(θ_t)[v_t].
//! Each round samples `BATCH` policies `ITERATIONS` times, walls them, rewards each through
//! the model, and ascends Σ_b A_b ∇log π(b) with A the batch-standardized reward.

use rand::rngs::StdRng;
use rand::Rng;

use super::{AgentError, Context};
use crate::env::{Operand, SearchSpace};
use crate::quant::{LayerBits, Policy};

const BATCH: usize = 100;
const ITERATIONS: usize = 10;
const LR: f64 = 1.0;

pub struct Reinforce {
    /// One logit per option of each free operand (one per layer when tied, else weight then
    /// activation per layer).
    logits: Vec<Vec<f64>>,
}

/// The (layer, operand) of free operand `t`.
fn operand(space: &SearchSpace, t: usize) -> (usize, Operand) {
    if space.tie() {
        (t, Operand::Weight)
    } else {
        (t / 2, Operand::of_step(t))
    }
}

fn softmax(z: &[f64]) -> Vec<f64> {
    let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

impl Reinforce {
    pub fn new(space: &SearchSpace) -> Self {
        let logits = (0..space.operands())
            .map(|t| {
                let (l, op) = operand(space, t);
                vec![0.0; space.options(l, op).len()]
            })
            .collect();
        Reinforce { logits }
    }

    /// Trains on imagined episodes; returns every walled policy it imagined.
    pub fn train(
        &mut self,
        ctx: &Context,
        reward: &dyn Fn(&Policy) -> Result<f64, AgentError>,
        rng: &mut StdRng,
    ) -> Result<Vec<Policy>, AgentError> {
        let space = ctx.space;
        let option = |t: usize, i: usize| {
            let (l, op) = operand(space, t);
            space.options(l, op)[i]
        };
        let mut out = Vec::new();
        for _ in 0..ITERATIONS {
            let probs: Vec<Vec<f64>> = self.logits.iter().map(|z| softmax(z)).collect();
            let mut batch = Vec::with_capacity(BATCH);
            for _ in 0..BATCH {
                let choice: Vec<usize> = probs
                    .iter()
                    .map(|p| {
                        let u: f64 = rng.random();
                        let mut acc = 0.0;
                        p.iter()
                            .position(|q| {
                                acc += q;
                                u < acc
                            })
                            .unwrap_or(p.len() - 1)
                    })
                    .collect();
                let mut bits: Policy = if space.tie() {
                    (choice.iter().enumerate())
                        .map(|(t, &i)| LayerBits::uniform(option(t, i)))
                        .collect()
                } else {
                    (choice.chunks(2).enumerate())
                        .map(|(l, c)| LayerBits::new(option(2 * l, c[0]), option(2 * l + 1, c[1])))
                        .collect()
                };
                ctx.budget.wall(ctx.space, &mut bits);
                let r = reward(&bits)?;
                batch.push((choice, r));
                out.push(bits);
            }
            let n = batch.len() as f64;
            let mean = batch.iter().map(|b| b.1).sum::<f64>() / n;
            let sd = (batch.iter().map(|b| (b.1 - mean).powi(2)).sum::<f64>() / n).sqrt();
            if sd <= 0.0 {
                continue;
            }
            for (choice, r) in &batch {
                let a = (r - mean) / sd;
                for (t, &v) in choice.iter().enumerate() {
                    for (k, z) in self.logits[t].iter_mut().enumerate() {
                        let grad = if k == v { 1.0 } else { 0.0 } - probs[t][k];
                        *z += LR * a * grad / n;
                    }
                }
            }
        }
        Ok(out)
    }
}
