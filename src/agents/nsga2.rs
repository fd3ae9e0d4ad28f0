//! NSGA-II (Deb et al., 2002) over the per-layer (w, a) bits. Objectives: the experiment's
//! (`Context::objectives`: accuracy, robust accuracy if it counts, the costs). Each generation's individuals are proposed one per
//! episode; once all are scored, parents and children are merged and the next parents chosen by
//! front rank, then crowding distance; children come from binary tournaments, uniform crossover
//! and per-gene mutation. Genes are the walled policy that was actually scored (Lamarckian).
//! An individual whose fine-tune failed has no objectives: it is dominated by every scored one,
//! so the failed form a last front of their own (one rank below the worst scored front).
//! The run's uniform references within the budgets (`Agent::observe_reference`) join the first
//! generation's pool as scored individuals, so they are parents from the start without being
//! episodes; an over-budget or failed reference is left out (genes are always feasible).
//! A generation is a natural batch (`Agent::propose_batch`): a batch proposes the generation's
//! next individuals but never crosses into the next generation, which needs the current one
//! learned first; selection waits until every proposed individual is learned.

use std::collections::VecDeque;

use rand::rngs::StdRng;
use rand::Rng;

use super::{random_policy, Agent, AgentError, Context, Feedback, Nsga2Config, Proposal};
use crate::env::Operand;
use crate::pareto::{front_ranks, Sense};
use crate::quant::{Format, Policy};

#[derive(Debug, Clone)]
struct Individual {
    genes: Policy,
    /// Its point on the objectives; None when the fine-tune failed.
    objectives: Option<Vec<f64>>,
}

pub struct Nsga2 {
    cfg: Nsga2Config,
    /// The senses of the context's objectives.
    senses: Vec<Sense>,
    parents: Vec<Individual>,
    children: Vec<Individual>,
    pending: VecDeque<Policy>,
    /// Individuals proposed and not yet learned (a batch in flight).
    outstanding: usize,
    generation: usize,
    /// References that joined the first generation's pool.
    references: usize,
}

impl Nsga2 {
    pub fn new(cfg: Nsga2Config, ctx: &Context) -> Self {
        Nsga2 {
            cfg,
            senses: ctx.objectives.senses(),
            parents: Vec::new(),
            children: Vec::new(),
            pending: VecDeque::new(),
            outstanding: 0,
            generation: 0,
            references: 0,
        }
    }

    /// One of the options of layer `l`'s `operand`, drawn uniformly.
    fn pick(ctx: &Context, l: usize, operand: Operand, rng: &mut StdRng) -> Format {
        let v = ctx.space.options(l, operand);
        v[rng.random_range(0..v.len())]
    }

    fn breed(&self, ctx: &Context, rng: &mut StdRng) -> Result<Vec<Policy>, AgentError> {
        let (rank, crowd) = rank_and_crowding(&self.parents, &self.senses)?;
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
        let mut out = Vec::with_capacity(self.cfg.population);
        for _ in 0..self.cfg.population {
            let (p1, p2) = (tournament(rng), tournament(rng));
            let cross = rng.random::<f64>() < self.cfg.crossover;
            let mut child: Policy = self.parents[p1]
                .genes
                .iter()
                .zip(&self.parents[p2].genes)
                .map(|(&a, &b)| if cross && rng.random::<bool>() { b } else { a })
                .collect();
            for (l, g) in child.layers_mut().iter_mut().enumerate() {
                if rng.random::<f64>() < self.cfg.mutation {
                    g.w = Self::pick(ctx, l, Operand::Weight, rng);
                }
                if rng.random::<f64>() < self.cfg.mutation {
                    g.a = Self::pick(ctx, l, Operand::Activation, rng);
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
        let (rank, crowd) = rank_and_crowding(&all, &self.senses)?;
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

/// Front ranks and crowding distances (infinite at each front's extremes). The failed share
/// the rank after the last scored front, with no crowding distance.
fn rank_and_crowding(
    pop: &[Individual],
    senses: &[Sense],
) -> Result<(Vec<usize>, Vec<f64>), AgentError> {
    let scored: Vec<usize> = (0..pop.len())
        .filter(|&i| pop[i].objectives.is_some())
        .collect();
    let points: Vec<&[f64]> = pop.iter().filter_map(|i| i.objectives.as_deref()).collect();
    let scored_rank = front_ranks(&points, senses)?;
    let failed_rank = scored_rank.iter().max().map_or(0, |r| r + 1);
    let mut rank = vec![failed_rank; pop.len()];
    for (&i, &r) in scored.iter().zip(&scored_rank) {
        rank[i] = r;
    }
    let mut crowd = vec![0.0; pop.len()];
    for r in 0..failed_rank {
        let front: Vec<usize> = scored.iter().copied().filter(|&i| rank[i] == r).collect();
        for m in 0..senses.len() {
            let values: Vec<f64> = pop
                .iter()
                .map(|i| i.objectives.as_ref().map_or(0.0, |o| o[m]))
                .collect();
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
                    .map(|_| random_policy(ctx.space, rng))
                    .collect()
            } else {
                self.breed(ctx, rng)?
            };
            self.pending.extend(next);
        }
        let bits = self
            .pending
            .pop_front()
            .unwrap_or_else(|| random_policy(ctx.space, rng));
        self.outstanding += 1;
        Ok(Proposal::from_bits(ctx.space, bits))
    }

    fn batches(&self) -> bool {
        true
    }

    /// The generation's next individuals, at most to its end: the next generation is bred
    /// from this one once it is learned.
    fn propose_batch(
        &mut self,
        ctx: &Context,
        rngs: &mut [StdRng],
    ) -> Result<Vec<Proposal>, AgentError> {
        let mut out = Vec::with_capacity(rngs.len());
        for rng in rngs.iter_mut() {
            if !out.is_empty() && self.pending.is_empty() {
                break;
            }
            out.push(self.propose(ctx, rng)?);
        }
        Ok(out)
    }

    fn observe_reference(&mut self, ctx: &Context, f: &Feedback) -> Result<(), AgentError> {
        let objectives = f.point(ctx.objectives);
        if objectives.is_some() && ctx.budget.holds(&f.price) && self.parents.is_empty() {
            self.children.push(Individual {
                genes: f.walled.clone(),
                objectives,
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
        self.children.push(Individual {
            genes: f.walled.clone(),
            objectives: f.point(ctx.objectives),
        });
        self.outstanding = self.outstanding.saturating_sub(1);
        if self.pending.is_empty() && self.outstanding == 0 {
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
            "references": self.references,
            "parents": self.parents.iter().map(|i| (i.genes.to_string(), &i.objectives)).collect::<Vec<_>>(),
            "pending_children": self.pending.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::synthetic::Problem;
    use crate::env::Price;
    use rand::SeedableRng;

    fn nsga2(population: usize, pb: &Problem) -> Nsga2 {
        let cfg = Nsga2Config {
            population,
            mutation: 0.2,
            crossover: 0.9,
        };
        Nsga2::new(cfg, &pb.ctx())
    }

    const MAX2_MIN2: [Sense; 4] = [
        Sense::Maximize,
        Sense::Maximize,
        Sense::Minimize,
        Sense::Minimize,
    ];

    /// Proposes and learns one generation; `score` gives each proposal's accuracy, robust
    /// accuracy and latency (the synthetic problem's objectives).
    fn generation(
        agent: &mut Nsga2,
        pb: &Problem,
        rng: &mut StdRng,
        score: impl Fn(usize) -> Option<[f64; 3]>,
    ) {
        let ctx = pb.ctx();
        for i in 0..agent.cfg.population {
            let p = agent.propose(&ctx, rng).unwrap();
            let o = score(i);
            let f = Feedback {
                reward: 0.0,
                walled: p.bits.clone(),
                scores: o.map(|o| [o[0], o[1]]),
                price: Price {
                    latency_s: o.map_or(1.0, |o| o[2]),
                    ..Price::default()
                },
                fidelity: crate::fidelity::Fidelity::Full,
            };
            agent.learn(&ctx, &p, &f, rng).unwrap();
        }
    }

    #[test]
    fn failed_individuals_rank_below_every_scored_one() {
        let ind = |objectives: Option<[f64; 4]>| Individual {
            genes: Policy::parse("8/8").unwrap(),
            objectives: objectives.map(|o| o.to_vec()),
        };
        // The worst scored point (0 accuracy, huge latency) still beats a failure.
        let pop = [
            None,
            Some([0.9, 0.5, 1.0, 1.0]),
            Some([0.0, 0.0, 1e9, 1e9]),
            None,
        ];
        let pop: Vec<Individual> = pop.into_iter().map(ind).collect();
        let (rank, crowd) = rank_and_crowding(&pop, &MAX2_MIN2).unwrap();
        assert_eq!(rank, vec![2, 0, 1, 2]);
        assert_eq!((crowd[0], crowd[3]), (0.0, 0.0));
        let (rank, _) = rank_and_crowding(&[ind(None), ind(None)], &MAX2_MIN2).unwrap();
        assert_eq!(rank, vec![0, 0], "all failed: one front");
    }

    /// Guards ranking by the experiment's objectives: of two policies equal in accuracy, the
    /// faster one leads when latency is the cost and the frugal one when energy is.
    #[test]
    fn ranks_by_the_costs_of_the_context() {
        use crate::env::Objectives;
        use crate::pareto::Objective;
        let mut pb = Problem::new();
        let fast = Price {
            latency_s: 1.0,
            energy_j: 2.0,
            size_bytes: 0.0,
        };
        let frugal = Price {
            latency_s: 2.0,
            energy_j: 1.0,
            size_bytes: 0.0,
        };
        for (cost, leader) in [(Objective::Latency, 0), (Objective::Energy, 1)] {
            pb.objectives = Objectives::of(true, &[cost]);
            let ctx = pb.ctx();
            let mut agent = nsga2(2, &pb);
            let mut rng = StdRng::seed_from_u64(0);
            for price in [fast, frugal] {
                let p = agent.propose(&ctx, &mut rng).unwrap();
                let f = Feedback {
                    reward: 0.0,
                    walled: p.bits.clone(),
                    scores: Some([0.9, 0.5]),
                    price,
                    fidelity: crate::fidelity::Fidelity::Full,
                };
                agent.learn(&ctx, &p, &f, &mut rng).unwrap();
            }
            let (rank, _) = rank_and_crowding(&agent.parents, &agent.senses).unwrap();
            assert_eq!(rank[leader], 0, "{cost:?}: {rank:?}");
            assert_eq!(rank[1 - leader], 1, "{cost:?}: {rank:?}");
        }
    }

    #[test]
    fn references_within_budget_join_the_first_parents() {
        use crate::env::{Budget, BudgetConfig, Limit};
        let mut pb = Problem::new();
        let cfg = BudgetConfig {
            latency: Some(Limit::Fraction(0.5)),
            ..BudgetConfig::default()
        };
        pb.budget = Budget::resolve(&cfg, &pb.space).unwrap();
        let ctx = pb.ctx();
        let mut agent = nsga2(4, &pb);
        let uniform = |b: u8| Policy::uniform(5, Format::new(b).unwrap());
        // 4/4 meets the budget; 8/8 does not; 2/2 failed its fine-tune.
        for (b, scores) in [(2, None), (4, Some([0.9, 0.5])), (8, Some([0.95, 0.4]))] {
            let walled = uniform(b);
            let f = Feedback {
                reward: 0.0,
                price: pb.space.price(&walled),
                scores,
                walled,
                fidelity: crate::fidelity::Fidelity::Full,
            };
            agent.observe_reference(&ctx, &f).unwrap();
        }
        let mut rng = StdRng::seed_from_u64(0);
        generation(&mut agent, &pb, &mut rng, |_| Some([0.5, 0.2, 2.0]));
        assert_eq!(agent.generation, 1);
        assert_eq!(agent.parents.len(), 5, "four episodes and one reference");
        assert_eq!(agent.parents[0].genes, uniform(4));
        assert_eq!(agent.summary()["references"], 1);
    }

    /// Guards batches at a generation's end: a batch stops there (the next generation is bred
    /// from this one, learned), and selection waits for every proposal of the batch, so
    /// batches of 3 over generations of 4 propose exactly what one at a time does.
    #[test]
    fn batches_stop_at_the_generation_and_propose_what_one_at_a_time_does() {
        use crate::agents::synthetic::Front;
        let pb = Front::new(&[2, 3, 4, 5, 6, 7, 8], false);
        let cfg = Nsga2Config {
            population: 4,
            mutation: 0.2,
            crossover: 0.9,
        };
        let mut batched = Nsga2::new(cfg.clone(), &pb.ctx());
        let batches = pb.run_batches(&mut batched, 12, 3, 3);
        let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
        assert_eq!(sizes, [3, 1, 3, 1, 3, 1]);
        assert_eq!(batched.generation, 3);
        let mut single = Nsga2::new(cfg, &pb.ctx());
        let one: Vec<Policy> = pb.run_batches(&mut single, 12, 3, 1).concat();
        assert_eq!(batches.concat(), one);
    }

    #[test]
    fn a_generation_with_failures_selects_the_scored_and_goes_on() {
        let pb = Problem::new();
        let mut rng = StdRng::seed_from_u64(0);
        let mut agent = nsga2(4, &pb);
        // First generation: half fail. Second: all scored. Third: all fail.
        generation(&mut agent, &pb, &mut rng, |i| {
            (i % 2 == 0).then_some([0.5, 0.2, 2.0])
        });
        assert_eq!(agent.generation, 1);
        generation(&mut agent, &pb, &mut rng, |i| {
            Some([0.8, 0.4, 1.0 + i as f64])
        });
        assert_eq!(agent.generation, 2);
        assert!(
            agent.parents.iter().all(|p| p.objectives.is_some()),
            "six scored candidates for four places: no failed parent"
        );
        generation(&mut agent, &pb, &mut rng, |_| None);
        assert_eq!(agent.generation, 3);
        assert!(agent.parents.iter().all(|p| p.objectives.is_some()));
        assert_eq!(agent.summary()["parents"].as_array().unwrap().len(), 4);
    }
}
