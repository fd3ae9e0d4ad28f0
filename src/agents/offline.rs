//! An offline bench for agents (test-only): a search against a table of scored policies instead
//! of fine-tunes. `BITSEARCH_ORACLE=DIR` names an exhaustive run on the small space
//! (experiments/lenet5-mnist-small.toml, bitfusion, 50% latency budget); each episode's walled
//! policy is looked up in DIR/episodes.csv, and the hypervolume of everything scored on
//! accuracy × robust accuracy × latency is reported as a fraction of the whole table's, both
//! against the table's worst point. The full space has no table: a smooth stand-in fitted to
//! it (`FullSpace`) checks scaling and speed only.
//!
//! cargo test --release --lib agents::offline -- --ignored --nocapture

use std::collections::BTreeMap;
use std::path::Path;

use super::gp::Gp;
use super::synthetic::run_episodes;
use super::{build, Agent, AgentConfig, Context, MbrlConfig, Planner};
use crate::env::{Budget, BudgetConfig, Limit, Objectives, SearchSpace};
use crate::hardware::{resolve_profile, Profile};
use crate::model::Arch;
use crate::pareto::{hypervolume, worst_point, Reference, Sense};
use crate::quant::{Format, LayerBits, Policy};

const SENSES: [Sense; 3] = [Sense::Maximize, Sense::Maximize, Sense::Minimize];

/// Objectives of a scored policy: accuracy, robust accuracy, latency, energy, and its reward.
type Row = ([f64; 4], f64);

/// Scores a walled policy; None = not scorable (a failed fine-tune).
type Scorer = Box<dyn Fn(&Policy) -> Option<Row>>;

pub struct Bench {
    pub space: SearchSpace,
    pub budget: Budget,
    pub score: Scorer,
}

/// What the bench's experiment ranks by: accuracy × robust accuracy × latency.
fn objectives() -> Objectives {
    let cfg = BudgetConfig {
        latency: Some(Limit::Fraction(0.5)),
        ..Default::default()
    };
    Objectives::resolve(&cfg, true, None)
}

fn bitfusion(choices: &[u8], tie: bool) -> (SearchSpace, Budget) {
    let p = Profile::load(&resolve_profile("bitfusion").unwrap()).unwrap();
    let layers = Arch::Lenet5.layer_shapes((1, 28, 28), 10).unwrap();
    let space = SearchSpace::with_choices(layers, choices, tie, &p, &|b| p.supports(b)).unwrap();
    let cfg = BudgetConfig {
        latency: Some(Limit::Fraction(0.5)),
        ..Default::default()
    };
    let budget = Budget::resolve(&cfg, &space).unwrap();
    (space, budget)
}

/// The table of an exhaustive run: walled policy → its row.
pub fn read_table(dir: &Path) -> BTreeMap<Policy, Row> {
    let mut r = csv::Reader::from_path(dir.join("episodes.csv")).unwrap();
    let head = r.headers().unwrap().clone();
    let col = |name: &str| head.iter().position(|h| h == name).unwrap();
    let ws: Vec<usize> = (0..head.len())
        .filter(|&i| head[i].starts_with("w_"))
        .collect();
    let num = |rec: &csv::StringRecord, i: usize| rec[i].parse::<f64>().unwrap();
    let mut out = BTreeMap::new();
    for rec in r.records() {
        let rec = rec.unwrap();
        if &rec[col("failed")] == "true" || &rec[col("feasible")] != "true" {
            continue;
        }
        let bits: Policy = ws
            .iter()
            .map(|&i| LayerBits::new(rec[i].parse().unwrap(), rec[i + 1].parse().unwrap()))
            .collect();
        let o = ["accuracy", "robust_accuracy", "latency_s", "energy_j"].map(|c| num(&rec, col(c)));
        out.insert(bits, (o, num(&rec, col("reward"))));
    }
    out
}

impl Bench {
    pub fn small(dir: &Path) -> (Bench, Vec<[f64; 3]>) {
        let (space, budget) = bitfusion(&[2, 4, 8], true);
        let table = read_table(dir);
        let all = table.values().map(|(o, _)| [o[0], o[1], o[2]]).collect();
        let score = Box::new(move |b: &Policy| table.get(b).copied());
        (
            Bench {
                space,
                budget,
                score,
            },
            all,
        )
    }

    /// The default full space (2..8 bits, weights and activations apart) scored by a stand-in:
    /// GPs fitted to the table, read at a per-layer mix of weight and activation coordinates
    /// (accuracy leans on weights, robust accuracy on activations), minus a penalty for a
    /// layer's weight and activation bits differing, plus ±0.005 of noise hashed from the policy.
    pub fn full(dir: &Path) -> Bench {
        let (space, budget) = bitfusion(&[2, 3, 4, 5, 6, 7, 8], false);
        let (prices, _) = bitfusion(&[2, 3, 4, 5, 6, 7, 8], false);
        let table = read_table(dir);
        let coord = |b: Format| ((b.width() as f64).log2() - 1.0) / 2.0;
        let x: Vec<Vec<f64>> = table
            .keys()
            .map(|b| b.iter().map(|l| coord(l.w)).collect())
            .collect();
        let fit = |k: usize| Gp::fit(&x, &table.values().map(|r| r.0[k]).collect::<Vec<_>>());
        let (acc, rob) = (fit(0).unwrap(), fit(1).unwrap());
        let score = Box::new(move |bits: &Policy| {
            let mix = |lean: f64| -> Vec<f64> {
                bits.iter()
                    .map(|l| lean * coord(l.w) + (1.0 - lean) * coord(l.a))
                    .collect()
            };
            let apart: f64 = bits.iter().map(|l| (coord(l.w) - coord(l.a)).powi(2)).sum();
            let h = bits.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, l| {
                ((h ^ l.w.width() as u64).wrapping_mul(0x100_0000_01b3) ^ l.a.width() as u64)
                    .wrapping_mul(0x100_0000_01b3)
            });
            let noise = |k: u32| ((h >> (k * 16)) & 0xffff) as f64 / 65535.0 * 0.01 - 0.005;
            let a = acc.predict(&mix(0.6)).0 - 0.02 * apart + noise(0);
            let r = rob.predict(&mix(0.3)).0 - 0.02 * apart + noise(1);
            let p = prices.price(bits);
            Some(([a, r, p.latency_s, p.energy_j], a + r - 1.5))
        });
        Bench {
            space,
            budget,
            score,
        }
    }

    /// Runs `episodes` rounds; returns the distinct scored points and the slowest proposal.
    pub fn run(&self, agent: &mut dyn Agent, episodes: usize, seed: u64) -> (Vec<[f64; 3]>, f64) {
        let objectives = objectives();
        let ctx = Context {
            space: &self.space,
            budget: &self.budget,
            objectives: &objectives,
        };
        let mut seen = BTreeMap::new();
        let (_, slowest) = run_episodes(&ctx, agent, episodes, seed, |_, walled| {
            let row = (self.score)(walled);
            if let Some((o, _)) = row {
                seen.insert(walled.clone(), [o[0], o[1], o[2]]);
            }
            (row.map_or(-1.0, |r| r.1), row.map(|r| [r.0[0], r.0[1]]))
        });
        (seen.into_values().collect(), slowest)
    }
}

pub fn hv(points: &[[f64; 3]], reference: &[f64]) -> f64 {
    hypervolume(points, &SENSES, &Reference::Given(reference.to_vec())).unwrap()
}

fn mean_sd(xs: &[f64]) -> (f64, f64) {
    let m = xs.iter().sum::<f64>() / xs.len() as f64;
    let v = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (xs.len() - 1).max(1) as f64;
    (m, v.sqrt())
}

fn shipped(name: &str) -> AgentConfig {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("agents");
    AgentConfig::load(&dir.join(format!("{name}.toml"))).unwrap()
}

/// The agents to compare: the shipped ones, and mbrl variants from BITSEARCH_MBRL
/// (`init,kappa;init,kappa;...`).
fn contenders() -> Vec<(String, AgentConfig)> {
    let shipped_agents = std::env::var("BITSEARCH_AGENTS");
    let shipped_agents = shipped_agents
        .as_deref()
        .unwrap_or("mbrl,random,nsga2,ddpg");
    let mut out: Vec<(String, AgentConfig)> = shipped_agents
        .split(',')
        .filter(|n| !n.is_empty())
        .map(|n| (n.to_string(), shipped(n)))
        .collect();
    let AgentConfig::Mbrl(base) = shipped("mbrl") else {
        unreachable!()
    };
    for v in std::env::var("BITSEARCH_MBRL")
        .unwrap_or_default()
        .split(';')
    {
        let f: Vec<&str> = v.split(',').collect();
        if f.len() >= 2 {
            let c = MbrlConfig {
                init: f[0].parse().unwrap(),
                kappa: f[1].parse().unwrap(),
                planner: match f.get(2) {
                    Some(&"reinforce") => Planner::Reinforce,
                    Some(&"uniform") => Planner::Uniform,
                    _ => base.planner,
                },
                ..base.clone()
            };
            out.push((format!("mbrl({v})"), AgentConfig::Mbrl(c)));
        }
    }
    out
}

#[test]
#[ignore = "needs BITSEARCH_ORACLE=DIR of an exhaustive run on the small space"]
fn small_space_hypervolume_against_the_exhaustive_front() {
    let dir = std::env::var("BITSEARCH_ORACLE").expect("BITSEARCH_ORACLE");
    let (bench, all) = Bench::small(Path::new(&dir));
    let reference = worst_point(&all, &SENSES).unwrap();
    let whole = hv(&all, &reference);
    println!("{} feasible policies in the table", all.len());
    let objectives = objectives();
    let ctx = Context {
        space: &bench.space,
        budget: &bench.budget,
        objectives: &objectives,
    };
    for (name, cfg) in contenders() {
        for episodes in [30, 60] {
            let mut fractions = Vec::new();
            let mut slowest: f64 = 0.0;
            for seed in 1..=5 {
                let mut agent = build(&cfg, &ctx, seed).unwrap();
                let (pts, t) = bench.run(agent.as_mut(), episodes, seed);
                slowest = slowest.max(t);
                fractions.push(hv(&pts, &reference) / whole);
            }
            let (m, sd) = mean_sd(&fractions);
            println!(
                "{name:32} {episodes:3} episodes: {m:.4} ± {sd:.4}  (slowest proposal {:.3} s) {fractions:.3?}",
                slowest
            );
        }
    }
}

#[test]
#[ignore = "needs BITSEARCH_ORACLE=DIR of an exhaustive run on the small space"]
fn full_space_stand_in_hypervolume_and_speed() {
    let dir = std::env::var("BITSEARCH_ORACLE").expect("BITSEARCH_ORACLE");
    let bench = Bench::full(Path::new(&dir));
    let objectives = objectives();
    let ctx = Context {
        space: &bench.space,
        budget: &bench.budget,
        objectives: &objectives,
    };
    let episodes: usize = std::env::var("BITSEARCH_EPISODES").map_or(60, |e| e.parse().unwrap());
    let mut runs = Vec::new();
    for (name, cfg) in contenders() {
        let mut per_seed = Vec::new();
        let mut slowest: f64 = 0.0;
        for seed in 1..=5 {
            let mut agent = build(&cfg, &ctx, seed).unwrap();
            let (pts, t) = bench.run(agent.as_mut(), episodes, seed);
            slowest = slowest.max(t);
            per_seed.push(pts);
        }
        runs.push((name, per_seed, slowest));
    }
    // One shared reference: the worst point anyone scored; normalized by the union's front.
    let union: Vec<[f64; 3]> = runs
        .iter()
        .flat_map(|r| r.1.iter().flatten().copied())
        .collect();
    let reference = worst_point(&union, &SENSES).unwrap();
    let whole = hv(&union, &reference);
    for (name, per_seed, slowest) in runs {
        let f: Vec<f64> = per_seed.iter().map(|p| hv(p, &reference) / whole).collect();
        let (m, sd) = mean_sd(&f);
        println!("{name:32} {episodes:3} episodes: {m:.4} ± {sd:.4}  (slowest proposal {slowest:.3} s) {f:.3?}");
    }
}
