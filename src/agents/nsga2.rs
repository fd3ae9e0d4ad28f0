//! NSGA-II (Deb et al., 2002) over the per-layer (w, a) bits. Objectives: accuracy and robust
//! accuracy (max), latency and energy (min). Each generation's individuals are proposed one per
//! episode; once all are scored, parents and children are merged and the next parents chosen by
//! front rank, then crowding distance; children come from binary tournaments, uniform crossover
//! and per-gene mutation. Genes are the walled policy that was actually scored (Lamarckian).

use std::collections::VecDeque;

use rand::rngs::StdRng;
use rand::Rng;

use super::{Agent, AgentError, Context, Feedback, Nsga2Config, Proposal};
use crate::pareto::{front_ranks, Sense};

const SENSES: [Sense; 4] = [
    Sense::Maximize,
    Sense::Maximize,
    Sense::Minimize,
    Sense::Minimize,
];
/// A failed fine-tune scores as dominated by everything that was scored.
const FAILED: [f64; 4] = [0.0, 0.0, f64::INFINITY, f64::INFINITY];

#[derive(Debug, Clone)]
struct Individual {
    genes: Vec<(u8, u8)>,
    objectives: [f64; 4],
}

pub struct Nsga2 {
    cfg: Nsga2Config,
    parents: Vec<Individual>,
    children: Vec<Individual>,
    pending: VecDeque<Vec<(u8, u8)>>,
    generation: usize,
}

impl Nsga2 {
    pub fn new(cfg: Nsga2Config) -> Self {
        Nsga2 {
            cfg,
            parents: Vec::new(),
            children: Vec::new(),
            pending: VecDeque::new(),
            generation: 0,
        }
    }

    fn random_genes(ctx: &Context, rng: &mut StdRng) -> Vec<(u8, u8)> {
        let (lo, hi) = (ctx.space.min_bits, ctx.space.max_bits);
        let pick = |rng: &mut StdRng| ctx.space.run_bits(rng.random_range(lo..=hi));
        (0..ctx.space.layers.len())
            .map(|_| (pick(rng), pick(rng)))
            .collect()
    }

    fn breed(&self, ctx: &Context, rng: &mut StdRng) -> Result<Vec<Vec<(u8, u8)>>, AgentError> {
        let (rank, crowd) = rank_and_crowding(&self.parents)?;
        let better =
            |i: usize, j: usize| rank[i] < rank[j] || (rank[i] == rank[j] && crowd[i] > crowd[j]);
        let tournament = |rng: &mut StdRng| {
            let (i, j) = (
                rng.random_range(0..self.parents.len()),
                rng.random_range(0..self.parents.len()),
            );
            if better(j, i) {
                j
            } else {
                i
            }
        };
        let (lo, hi) = (ctx.space.min_bits, ctx.space.max_bits);
        let pick = |rng: &mut StdRng| ctx.space.run_bits(rng.random_range(lo..=hi));
        let mut out = Vec::with_capacity(self.cfg.population);
        for _ in 0..self.cfg.population {
            let (p1, p2) = (tournament(rng), tournament(rng));
            let cross = rng.random::<f64>() < self.cfg.crossover;
            let mut child: Vec<(u8, u8)> = self.parents[p1]
                .genes
                .iter()
                .zip(&self.parents[p2].genes)
                .map(|(&a, &b)| if cross && rng.random::<bool>() { b } else { a })
                .collect();
            for g in child.iter_mut() {
                if rng.random::<f64>() < self.cfg.mutation {
                    g.0 = pick(rng);
                }
                if rng.random::<f64>() < self.cfg.mutation {
                    g.1 = pick(rng);
                }
            }
            out.push(child);
        }
        Ok(out)
    }

    /// Keeps the best `population` of parents ∪ children by rank, then crowding distance.
    fn select(&mut self) -> Result<(), AgentError> {
        let mut all: Vec<Individual> = self
            .parents
            .drain(..)
            .chain(self.children.drain(..))
            .collect();
        let (rank, crowd) = rank_and_crowding(&all)?;
        let mut order: Vec<usize> = (0..all.len()).collect();
        order.sort_by(|&i, &j| rank[i].cmp(&rank[j]).then(crowd[j].total_cmp(&crowd[i])));
        order.truncate(self.cfg.population);
        let mut keep = vec![false; all.len()];
        order.iter().for_each(|&i| keep[i] = true);
        let mut k = keep.iter();
        all.retain(|_| *k.next().unwrap_or(&false));
        self.parents = all;
        self.generation += 1;
        Ok(())
    }
}

/// Front ranks and crowding distances (infinite at each front's extremes).
fn rank_and_crowding(pop: &[Individual]) -> Result<(Vec<usize>, Vec<f64>), AgentError> {
    let points: Vec<[f64; 4]> = pop.iter().map(|i| i.objectives).collect();
    let rank = front_ranks(&points, &SENSES)?;
    let mut crowd = vec![0.0; pop.len()];
    for r in 0..=rank.iter().copied().max().unwrap_or(0) {
        let front: Vec<usize> = (0..pop.len()).filter(|&i| rank[i] == r).collect();
        for m in 0..SENSES.len() {
            let values: Vec<f64> = points.iter().map(|p| p[m]).collect();
            add_crowding(&front, &values, &mut crowd);
        }
    }
    Ok((rank, crowd))
}

/// Adds one objective's crowding distance to the members of `front`.
fn add_crowding(front: &[usize], values: &[f64], crowd: &mut [f64]) {
    let mut f = front.to_vec();
    f.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let (Some(&first), Some(&last)) = (f.first(), f.last()) else {
        return;
    };
    crowd[first] = f64::INFINITY;
    crowd[last] = f64::INFINITY;
    let span = values[last] - values[first];
    if !(span.is_finite() && span > 0.0) {
        return;
    }
    for w in f.windows(3) {
        crowd[w[1]] += (values[w[2]] - values[w[0]]) / span;
    }
}

impl Agent for Nsga2 {
    fn name(&self) -> &'static str {
        "nsga2"
    }

    fn propose(&mut self, ctx: &Context, rng: &mut StdRng) -> Result<Proposal, AgentError> {
        if self.pending.is_empty() {
            let next = if self.parents.is_empty() {
                (0..self.cfg.population)
                    .map(|_| Self::random_genes(ctx, rng))
                    .collect()
            } else {
                self.breed(ctx, rng)?
            };
            self.pending.extend(next);
        }
        let bits = self
            .pending
            .pop_front()
            .unwrap_or_else(|| Self::random_genes(ctx, rng));
        Ok(Proposal::from_bits(ctx.space, bits))
    }

    fn learn(
        &mut self,
        _: &Context,
        _: &Proposal,
        f: &Feedback,
        _: &mut StdRng,
    ) -> Result<(), AgentError> {
        self.children.push(Individual {
            genes: f.walled.clone(),
            objectives: f.objectives.unwrap_or(FAILED),
        });
        if self.pending.is_empty() {
            if self.parents.is_empty() {
                self.parents = std::mem::take(&mut self.children);
                self.generation = 1;
            } else {
                self.select()?;
            }
        }
        Ok(())
    }

    fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "agent": "nsga2",
            "generation": self.generation,
            "parents": self.parents.iter().map(|i| (&i.genes, i.objectives.to_vec())).collect::<Vec<_>>(),
            "pending_children": self.pending.len(),
        })
    }
}
