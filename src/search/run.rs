//! The episode loop, HAQ's Algorithm 1: the agent proposes a policy (one action per layer and
//! operand), the budget wall lowers bits until every budget holds, the policy is fine-tuned and
//! scored, the row is appended to episodes.csv, and the agent learns from the reward. Resume,
//! the reference policies and the other files are kept apart (`resume`, `references`,
//! `output`), so this reads as the algorithm.

use std::time::Instant;

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::cache::ScoreCache;
use super::episode::{feedback, record};
use super::score::Scorer;
use super::spec::{Run, RunSpec, RunSummary};
use super::{output, references, resume, SearchError};
use crate::agents;
use crate::crashpoint;
use crate::quant::Policy;
use crate::rundir::best_row;
use crate::score::Evaluator;
use crate::train::progress_bar;

pub fn run_search(spec: &RunSpec) -> Result<RunSummary, SearchError> {
    let run = Run::open(spec)?;
    let done = resume::logged(&run)?;
    // Built before any training, so an agent that refuses the space (exhaustive) fails fast.
    let ctx = run.context();
    let mut agent = agents::build(spec.agent, &ctx, spec.seed)?;
    let cache = spec.scores.clone().map(ScoreCache::open).transpose()?;
    let eval = Evaluator::new(spec.exp, spec.data, spec.base)?;
    let scorer = Scorer::new(eval)?.with_cache(cache);
    references::score_once(&run, &scorer)?;
    let probe = |policy: &Policy| Ok(scorer.eval.loss(policy)?);
    if let Some(m) = agent.prepare(&ctx, &probe)? {
        run.log.write_json(m.file, &m.json)?;
    }
    // The run's uniform references are data for the agent, in the same order on every start.
    for reference in references::seeds(&run, &scorer)? {
        agent.observe_reference(&ctx, &reference)?;
    }
    let mut rows = resume::replay(&run, agent.as_mut(), &ctx, &scorer, &done)?;
    // A kill between an episode's line and the files derived from it left them stale; a resume
    // with nothing left to run must still bring them up to date.
    if !rows.is_empty() {
        output::after_episode(&run, &rows, agent.as_ref())?;
    }
    // An agent with finitely many policies ends the search once it has proposed them all.
    let episodes = agent
        .policies()
        .map_or(spec.episodes, |n| n.min(spec.episodes));
    let bar = progress_bar(episodes as u64, spec.show, BAR);
    bar.set_position(rows.len() as u64);
    for k in rows.len()..episodes {
        let start = Instant::now();
        let mut rng = StdRng::seed_from_u64(run.seed(k));
        let proposal = agent.propose(&ctx, &mut rng)?;
        let mut policy = proposal.bits.clone();
        run.budget.wall(&run.space, &mut policy);
        let scored = scorer.score(&run.space, &policy)?;
        let seconds = start.elapsed().as_secs_f64();
        let row = record(&run, k, agent.name(), &policy, &scored, seconds);
        run.log.append("episodes.csv", &row)?;
        crashpoint::crash_point("episode-appended");
        agent.learn(&ctx, &proposal, &feedback(&row, &scorer), &mut rng)?;
        rows.push(row);
        output::after_episode(&run, &rows, agent.as_ref())?;
        bar.set_message(output::progress(&rows));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let best = best_row(&rows).cloned();
    let best_policy = match &best {
        Some(b) => output::write_best(&run, &scorer, b)?,
        None => None,
    };
    if let Some(after) = spec.after_episodes {
        after(&spec.dir);
    }
    super::front_test::rescore_front(&run, &scorer, &rows)?;
    Ok(RunSummary {
        dir: spec.dir.clone(),
        best,
        best_policy,
        episodes: rows.len(),
        lock: run.lock,
    })
}

const BAR: &str = "search {bar:30} episode {pos}/{len}  {msg}  [{elapsed} < {eta}]";
