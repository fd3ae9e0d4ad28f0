//! The episode loop, HAQ's Algorithm 1, in synchronous batches of `--workers` policies (one by
//! default): the agent proposes (one action per layer and operand), the budget wall lowers bits
//! until every budget holds, the policies are fine-tuned and scored (at full fidelity, or at the
//! low one where the agent asks), their rows appended to episodes.csv, and the agent learns from
//! the rewards (`batch`), until `--episodes` full-fidelity rows are in. Resume, the reference
//! policies and the other files are kept apart (`resume`, `references`, `output`), so this
//! reads as the algorithm.

use std::time::Instant;

use indicatif::ProgressBar;

use super::batch::Batch;
use super::cache::ScoreCache;
use super::pool::{Place, Pool, Workers};
use super::score::Scorer;
use super::spec::{Run, RunSpec, RunSummary};
use super::{output, references, resume, SearchError};
use crate::agents::{self, Agent, AgentError};
use crate::quant::Policy;
use crate::rundir::{best_row, work, Episode};
use crate::score::Evaluator;
use crate::train::progress_bar;

/// A search scoring one policy at a time, in its own process.
pub fn run_search(spec: &RunSpec) -> Result<RunSummary, SearchError> {
    run_search_with(spec, &Workers::default())
}

/// A search scoring its batches as `workers` says.
pub fn run_search_with(spec: &RunSpec, workers: &Workers) -> Result<RunSummary, SearchError> {
    let run = Run::open(spec, workers.count)?;
    // Built before anything is written or trained, so an agent that refuses the space
    // (exhaustive) or batches (DDPG) fails fast.
    let ctx = run.context();
    let mut agent = agents::build(spec.agent, &ctx, spec.seed)?;
    if run.workers > 1 && !agent.batches() {
        let (agent, batch) = (agent.name(), run.workers);
        return Err(AgentError::Sequential { agent, batch }.into());
    }
    // Before anything is written: a batch size of 1 scores in this process, and a path
    // Slurm's scripts cannot hold is refused now, not at the first batch.
    if run.workers < 2 && workers.place != Place::Local {
        return Err(SearchError::SlurmWithoutBatches {
            workers: run.workers,
        });
    }
    let pool = (run.workers > 1)
        .then(|| Pool::new(workers, &spec.dir, run.workers))
        .transpose()?;
    let done = resume::logged(&run)?;
    // A killed run's work files; replies it left for unlogged episodes serve the resume.
    work::clean(&spec.dir, spec.resume.then_some(done.len()))?;
    let cache = spec.scores.clone().map(ScoreCache::open).transpose()?;
    let eval = Evaluator::new(spec.exp, spec.data, spec.base)?;
    let scorer = Scorer::new(eval)?.with_cache(cache)?;
    references::score_once(&run, &scorer)?;
    // Before the references, so an agent modelling both fidelities sees them as full data.
    if let Some(cost) = scorer.low_cost() {
        agent.offer_low_fidelity(cost);
    }
    let probe = |policy: &Policy| Ok(scorer.eval.loss(policy)?);
    if let Some(m) = agent.prepare(&ctx, &probe)? {
        run.log.write_json(m.file, &m.json)?;
    }
    // The run's uniform references are data for the agent, in the same order on every start.
    for reference in references::seeds(&run, &scorer)? {
        agent.observe_reference(&ctx, &reference)?;
    }
    // An agent with finitely many policies ends the search once it has proposed them all; a
    // resume replays every logged episode, even past a smaller --episodes. Episodes are
    // full-fidelity scores: low ones come on top.
    let episodes = agent
        .policies()
        .map_or(spec.episodes, |n| n.min(spec.episodes));
    let bar = progress_bar(episodes.max(full(&done)) as u64, spec.show, BAR);
    bar.set_position(full(&done) as u64);
    let rows = batches(
        &run,
        agent.as_mut(),
        &scorer,
        pool.as_ref(),
        &done,
        episodes,
        &bar,
    )?;
    work::clean(&spec.dir, None)?;
    work::remove_if_empty(&spec.dir);
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
        episodes: full(&rows),
        lock: run.lock,
    })
}

/// The full-fidelity rows of `rows`: the episodes `--episodes` counts.
fn full(rows: &[Episode]) -> usize {
    rows.iter().filter(|r| r.fidelity.is_full()).count()
}

/// Runs the batches until `episodes` full-fidelity episodes and every row `done` logged are
/// in: those replayed (only what they lack is scored), the rest proposed, scored and learned
/// anew; returns every row, low-fidelity ones included.
fn batches(
    run: &Run,
    agent: &mut dyn Agent,
    scorer: &Scorer,
    pool: Option<&Pool>,
    done: &[Episode],
    episodes: usize,
    bar: &ProgressBar,
) -> Result<Vec<Episode>, SearchError> {
    let ctx = run.context();
    let mut rows = Vec::with_capacity(episodes.max(done.len()));
    // Whether pareto.csv and agent.json lag the log: a kill may have come between an
    // episode's line and them, so a resume with nothing left to run still rewrites them.
    let mut behind = false;
    let mut scored = 0;
    while scored < episodes || rows.len() < done.len() {
        let k = rows.len();
        let start = Instant::now();
        // Never more full scores than the episodes left: a batch's size depends only on the
        // rows before it, so a resume replays the same batches.
        let left = (episodes.saturating_sub(scored)).max(done.len().saturating_sub(k));
        let batch = Batch::propose(run, agent, &ctx, k, run.workers.min(left))?;
        scored += batch.full();
        let logged = &done[k.min(done.len())..done.len().min(k + batch.len())];
        batch.replay(run, logged)?;
        let fresh = batch.len() > logged.len();
        let new = batch.score(run, agent.name(), scorer, pool, logged, start)?;
        batch.learn(agent, &ctx, &new, scorer)?;
        rows.extend(new);
        behind = !fresh;
        if fresh {
            output::after_episode(run, &rows, agent)?;
            bar.set_position(scored as u64);
            bar.set_message(output::progress(&rows));
        }
    }
    if behind {
        output::after_episode(run, &rows, agent)?;
    }
    Ok(rows)
}

const BAR: &str = "search {bar:30} episode {pos}/{len}  {msg}  [{elapsed} < {eta}]";
