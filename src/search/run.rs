//! The episode loop (HAQ's Algorithm 1): propose → budget wall → fine-tune → score → append to
//! episodes.csv → learn → checkpoint; and resume by deterministic replay.
//!
//! Resume: every episode draws its randomness from `episode_seed(seed, k)`, so a killed run is
//! continued by replaying the logged episodes through a fresh agent (its proposals must match
//! the log, and it learns from the logged rewards), which restores networks, optimizer moments,
//! replay buffer and exploration noise exactly, then scoring the rest. The finished run equals
//! an uninterrupted one.

use std::path::PathBuf;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Serialize;

use super::log::{EpisodeRow, RunLog};
use super::score::{test_score, Outcome, Scorer};
use super::{Budget, Price, SearchError, SearchSpace};
use crate::agents::{self, Agent, AgentConfig, Context, Feedback, Proposal, Sensitivity};
use crate::data::Dataset;
use crate::experiment::Experiment;
use crate::hardware::Profile;
use crate::model::Model;
use crate::pareto::{non_dominated, Sense};
use crate::robust::calibrate;
use crate::train::progress_bar;

pub struct RunSpec<'a> {
    pub exp: &'a Experiment,
    pub data: &'a Dataset,
    pub base: &'a Model,
    pub profile: &'a Profile,
    pub agent: &'a AgentConfig,
    pub episodes: usize,
    pub seed: u64,
    pub dir: PathBuf,
    pub resume: bool,
    pub show: bool,
}

#[derive(Debug, Clone)]
pub struct RunSummary {
    pub dir: PathBuf,
    pub best: Option<EpisodeRow>,
    pub episodes: usize,
}

/// The seed of episode `k`'s randomness (proposal, agent update and fine-tune).
pub fn episode_seed(seed: u64, k: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (k as u64)
            .wrapping_add(1)
            .wrapping_mul(0xBF58_476D_1CE4_E5B9)
}

struct Env<'a> {
    spec: &'a RunSpec<'a>,
    space: SearchSpace,
    budget: Budget,
    log: RunLog,
}

pub fn run_search(spec: &RunSpec) -> Result<RunSummary, SearchError> {
    let supports = |b| spec.profile.supports(b);
    let space = SearchSpace::new(
        spec.base.shapes().to_vec(),
        spec.exp.bits.min,
        spec.exp.bits.max,
        spec.profile,
        &supports,
    )?;
    let budget = Budget::resolve(&spec.exp.budget, &space)?;
    let log = RunLog::new(
        &spec.dir,
        spec.base
            .layer_names()
            .iter()
            .map(|s| s.to_string())
            .collect(),
    )?;
    let env = Env {
        spec,
        space,
        budget,
        log,
    };
    let done = env.prepare()?;
    let scorer = Scorer::new(
        spec.exp,
        spec.data,
        spec.base,
        calibrate(spec.exp, spec.data, spec.base)?,
    )?;
    env.references(&scorer)?;
    let ctx = Context {
        space: &env.space,
        budget: &env.budget,
    };
    let sensitivity = if matches!(spec.agent, AgentConfig::Greedy(_)) {
        Some(sensitivity(&env, &scorer)?)
    } else {
        None
    };
    let mut agent = agents::build(spec.agent, &ctx, spec.seed, sensitivity)?;
    let mut rows = env.replay(agent.as_mut(), &ctx, &scorer, &done)?;
    let bar = progress_bar(
        spec.episodes as u64,
        spec.show,
        "search {bar:30} episode {pos}/{len}  {msg}  [{elapsed} < {eta}]",
    );
    bar.set_position(rows.len() as u64);
    for k in rows.len()..spec.episodes {
        let start = Instant::now();
        let mut rng = StdRng::seed_from_u64(episode_seed(spec.seed, k));
        let proposal = agent.propose(&ctx, &mut rng)?;
        let mut bits = proposal.bits.clone();
        env.budget.wall(&env.space, &mut bits);
        let (outcome, price) = scorer.score(&env.space, &bits, episode_seed(spec.seed, k))?;
        let reward = scorer.reward(&outcome);
        let row = env.row(
            k,
            agent.name(),
            &bits,
            &outcome,
            price,
            reward,
            start.elapsed().as_secs_f64(),
        )?;
        env.log.append("episodes.csv", &row)?;
        agent.learn(&ctx, &proposal, &feedback(&row, &scorer), &mut rng)?;
        rows.push(row);
        env.log.write_rows("pareto.csv", &pareto(&rows)?)?;
        env.log.write_json("agent.json", &agent.checkpoint())?;
        bar.set_message(best_message(&rows));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let best = best_row(&rows).cloned();
    if let Some(b) = &best {
        env.write_best(&scorer, b)?;
    }
    Ok(RunSummary {
        dir: spec.dir.clone(),
        best,
        episodes: rows.len(),
    })
}

fn feedback(row: &EpisodeRow, scorer: &Scorer) -> Feedback {
    let outcome: Outcome = match (row.accuracy, row.robust_accuracy) {
        (Some(accuracy), Some(robust_accuracy)) if !row.failed => Ok(super::Score {
            accuracy,
            robust_accuracy,
            masking_flagged: false,
        }),
        _ => Err("failed".into()),
    };
    Feedback {
        reward: row.reward.unwrap_or_else(|| scorer.reward(&outcome)),
        walled: row.bits.clone(),
        objectives: outcome
            .ok()
            .map(|s| [s.accuracy, s.robust_accuracy, row.latency_s, row.energy_j]),
    }
}

/// The best feasible, scored episode by reward (the first of equals).
fn best_row(rows: &[EpisodeRow]) -> Option<&EpisodeRow> {
    rows.iter().filter(|r| r.feasible && !r.failed).fold(
        None,
        |best: Option<&EpisodeRow>, r| match (best, r.reward) {
            (Some(b), Some(x)) if x <= b.reward.unwrap_or(f64::MIN) => Some(b),
            (_, Some(_)) => Some(r),
            (b, None) => b,
        },
    )
}

fn best_message(rows: &[EpisodeRow]) -> String {
    match best_row(rows) {
        Some(b) => format!(
            "best reward {:.3} ({}, acc {:.2}%)",
            b.reward.unwrap_or(0.0),
            b.policy,
            100.0 * b.accuracy.unwrap_or(0.0)
        ),
        None => "no feasible policy yet".into(),
    }
}

/// The non-dominated scored rows over accuracy↑, robust accuracy↑, latency↓, energy↓.
fn pareto(rows: &[EpisodeRow]) -> Result<Vec<EpisodeRow>, SearchError> {
    let scored: Vec<&EpisodeRow> = rows.iter().filter(|r| !r.failed).collect();
    let points: Vec<[f64; 4]> = scored
        .iter()
        .map(|r| {
            [
                r.accuracy.unwrap_or(0.0),
                r.robust_accuracy.unwrap_or(0.0),
                r.latency_s,
                r.energy_j,
            ]
        })
        .collect();
    let senses = [
        Sense::Maximize,
        Sense::Maximize,
        Sense::Minimize,
        Sense::Minimize,
    ];
    Ok(non_dominated(&points, &senses)?
        .into_iter()
        .map(|i| scored[i].clone())
        .collect())
}

/// Each operand's validation-loss increase at each bitwidth with only it quantized (no fine-tune).
fn sensitivity(env: &Env, scorer: &Scorer) -> Result<Sensitivity, SearchError> {
    let n = env.space.layers.len();
    let full = vec![
        (
            crate::quant::Bits::FULL_VALUE,
            crate::quant::Bits::FULL_VALUE
        );
        n
    ];
    let loss = |bits: &[(u8, u8)]| -> Result<f64, SearchError> {
        let q = crate::quant::Quantizer::new(env.space.policy(bits)?, scorer.clips.clone());
        Ok(crate::train::loss(scorer.base, &scorer.data.val, Some(&q))?)
    };
    let base = loss(&full)?;
    let mut s = Sensitivity {
        w: vec![Vec::new(); n],
        a: vec![Vec::new(); n],
    };
    for l in 0..n {
        for &b in env.space.values() {
            let mut bits = full.clone();
            bits[l].0 = b;
            s.w[l].push(loss(&bits)? - base);
            bits[l] = (crate::quant::Bits::FULL_VALUE, b);
            s.a[l].push(loss(&bits)? - base);
        }
    }
    env.log.write_json("sensitivity.json", &s)?;
    Ok(s)
}

/// The first leaf where two JSON values differ: (dotted path, old value, new value), so a
/// refused resume names the exact setting that changed.
fn first_difference(
    path: &str,
    old: Option<&serde_json::Value>,
    new: Option<&serde_json::Value>,
) -> Option<(String, String, String)> {
    use serde_json::Value;
    let show = |v: Option<&Value>| {
        v.map_or("(absent)".to_string(), |v| {
            v.to_string().chars().take(120).collect()
        })
    };
    match (old, new) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            keys.into_iter()
                .find_map(|k| first_difference(&format!("{path}.{k}"), a.get(k), b.get(k)))
        }
        (a, b) if a == b => None,
        (a, b) => Some((path.to_string(), show(a), show(b))),
    }
}

#[derive(Serialize)]
struct BestPolicy<'a> {
    model: &'a str,
    policy: &'a str,
    layers: Vec<serde_json::Value>,
    episode: usize,
    reward: Option<f64>,
    validation: serde_json::Value,
    test: serde_json::Value,
    latency_s: f64,
    energy_j: f64,
    size_bytes: f64,
}

impl Env<'_> {
    /// Checks (or, for a new run, writes) config.json and returns the completed episodes.
    fn prepare(&self) -> Result<Vec<EpisodeRow>, SearchError> {
        let done = self.log.read("episodes.csv")?;
        let config = self.config();
        let path = self.log.dir.join("config.json");
        if !done.is_empty() && !self.spec.resume {
            return Err(SearchError::ExistingRun {
                dir: self.log.dir.clone(),
                episodes: done.len(),
            });
        }
        if self.spec.resume && path.exists() {
            let text = std::fs::read_to_string(&path).map_err(|source| SearchError::Io {
                path: path.clone(),
                source,
            })?;
            let old: serde_json::Value =
                serde_json::from_str(&text).map_err(|source| SearchError::Json {
                    path: path.clone(),
                    source,
                })?;
            for key in [
                "experiment",
                "model",
                "profile",
                "agent",
                "seed",
                "budget",
                "layers",
            ] {
                if let Some((what, then, now)) =
                    first_difference(key, old.get(key), config.get(key))
                {
                    return Err(SearchError::ConfigChanged {
                        dir: self.log.dir.clone(),
                        what,
                        old: then,
                        new: now,
                    });
                }
            }
        }
        self.log.write_json("config.json", &config)?;
        Ok(done)
    }

    fn config(&self) -> serde_json::Value {
        let s = self.spec;
        serde_json::json!({
            "run": self.log.dir.file_name().map(|f| f.to_string_lossy().to_string()),
            "experiment": s.exp,
            "model": s.exp.model.arch.name(),
            "layers": self.space.layers,
            "profile": { "name": s.profile.name(), "compute": s.profile.compute().kind(), "file": s.profile.path() },
            "agent": { "name": s.agent.name(), "config": s.agent },
            "episodes": s.episodes,
            "seed": s.seed,
            "budget": self.budget,
            "uniform8": self.space.uniform8,
            "bits": { "min": self.space.min_bits, "max": self.space.max_bits },
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn row(
        &self,
        k: usize,
        agent: &str,
        bits: &[(u8, u8)],
        outcome: &Outcome,
        price: Price,
        reward: f64,
        seconds: f64,
    ) -> Result<EpisodeRow, SearchError> {
        let ok = outcome.as_ref().ok();
        Ok(EpisodeRow {
            episode: k,
            agent: agent.to_string(),
            profile: self.spec.profile.name().to_string(),
            policy: self.space.policy(bits)?.to_string(),
            bits: bits.to_vec(),
            accuracy: ok.map(|s| s.accuracy),
            robust_accuracy: ok.map(|s| s.robust_accuracy),
            latency_s: price.latency_s,
            energy_j: price.energy_j,
            size_bytes: price.size_bytes,
            reward: ok.map(|_| reward),
            feasible: self.budget.holds(&price),
            failed: ok.is_none(),
            seconds,
        })
    }

    /// Replays the logged episodes through the fresh agent (see the module doc).
    fn replay(
        &self,
        agent: &mut dyn Agent,
        ctx: &Context,
        scorer: &Scorer,
        done: &[EpisodeRow],
    ) -> Result<Vec<EpisodeRow>, SearchError> {
        for (k, row) in done.iter().enumerate() {
            let mut rng = StdRng::seed_from_u64(episode_seed(self.spec.seed, k));
            let proposal: Proposal = agent.propose(ctx, &mut rng)?;
            let mut bits = proposal.bits.clone();
            self.budget.wall(&self.space, &mut bits);
            if bits != row.bits || row.episode != k {
                return Err(SearchError::ReplayMismatch {
                    dir: self.log.dir.clone(),
                    episode: k,
                    replayed: self.space.policy(&bits)?.to_string(),
                    logged: row.policy.clone(),
                });
            }
            agent.learn(ctx, &proposal, &feedback(row, scorer), &mut rng)?;
        }
        Ok(done.to_vec())
    }

    /// Scores FP32 and (if `search.references`) the uniform min..=max policies once (kept
    /// across resumes).
    fn references(&self, scorer: &Scorer) -> Result<(), SearchError> {
        if self.log.dir.join("references.csv").exists() {
            return Ok(());
        }
        let n = self.space.layers.len();
        let f = crate::quant::Bits::FULL_VALUE;
        let full_price = self.space.full.unwrap_or_default();
        let mut rows = vec![self.row(
            0,
            "fp32",
            &vec![(f, f); n],
            &Ok(scorer.fp32),
            full_price,
            0.0,
            0.0,
        )?];
        let uniform: Vec<u8> = if self.spec.exp.search.references {
            self.space.values().to_vec()
        } else {
            Vec::new()
        };
        for b in uniform {
            let start = Instant::now();
            let bits = vec![(b, b); n];
            let (outcome, price) = scorer.score(
                &self.space,
                &bits,
                episode_seed(self.spec.seed, usize::MAX - b as usize),
            )?;
            let reward = scorer.reward(&outcome);
            rows.push(self.row(
                b as usize,
                "uniform",
                &bits,
                &outcome,
                price,
                reward,
                start.elapsed().as_secs_f64(),
            )?);
        }
        self.log.write_rows("references.csv", &rows)
    }

    /// best-policy.json: the best episode, re-scored on the test split.
    fn write_best(&self, scorer: &Scorer, b: &EpisodeRow) -> Result<(), SearchError> {
        let test = test_score(
            scorer,
            &self.space,
            &b.bits,
            episode_seed(self.spec.seed, b.episode),
        )?;
        let names = self.spec.base.layer_names();
        let best = BestPolicy {
            model: self.spec.exp.model.arch.name(),
            policy: &b.policy,
            layers: names
                .iter()
                .zip(&b.bits)
                .map(|(n, (w, a))| serde_json::json!({ "name": n, "w_bits": w, "a_bits": a }))
                .collect(),
            episode: b.episode,
            reward: b.reward,
            validation: serde_json::json!({ "accuracy": b.accuracy, "robust_accuracy": b.robust_accuracy }),
            test: serde_json::json!({ "accuracy": test.accuracy, "robust_accuracy": test.robust.worst_case, "suite": test.robust }),
            latency_s: b.latency_s,
            energy_j: b.energy_j,
            size_bytes: b.size_bytes,
        };
        self.log.write_json("best-policy.json", &best)
    }
}
