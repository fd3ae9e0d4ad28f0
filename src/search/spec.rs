//! What a search is given (`RunSpec`) and returns (`RunSummary`), the seed of each episode, and
//! the `Run` it works in: HAQ's environment on the target device and the run directory.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use super::SearchError;
use crate::agents::{former_objectives, AgentConfig, Context};
use crate::data::Dataset;
use crate::env::{Budget, Objectives, SearchSpace};
use crate::experiment::Experiment;
use crate::hardware::Profile;
use crate::model::Model;
use crate::pareto::Objective;
use crate::rundir::{this_command, BestPolicy, Episode, RunConfig, RunLock, RunLog};

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
    /// The score cache file (`search::cache_file`), or None to score every policy afresh.
    pub scores: Option<PathBuf>,
    /// Called with the run directory once the episodes are done and best-policy.json is
    /// written, before the front's test-split re-score (which can take longer than the
    /// episodes): the command line writes report.html there, so a person can open it while the
    /// re-score runs. Still under the run's lock.
    pub after_episodes: Option<&'a dyn Fn(&Path)>,
}

#[derive(Debug)]
pub struct RunSummary {
    pub dir: PathBuf,
    pub best: Option<Episode>,
    /// best-policy.json as written: the best episode's test scores and the uniform yardstick.
    pub best_policy: Option<BestPolicy>,
    pub episodes: usize,
    /// The run directory's lock, still held, so the caller can write the report before any
    /// other process writes the directory; dropping it releases the lock.
    pub lock: RunLock,
}

/// The seed of episode `k`'s randomness (proposal and agent update; the fine-tune's seed comes
/// from the policy, `score::policy_seed`).
pub fn episode_seed(seed: u64, k: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (k as u64)
            .wrapping_add(1)
            .wrapping_mul(0xBF58_476D_1CE4_E5B9)
}

/// One search at work: its spec, the space and budget on its device, what its agent ranks by,
/// its run directory.
pub(super) struct Run<'a> {
    pub spec: &'a RunSpec<'a>,
    pub space: SearchSpace,
    pub budget: Budget,
    pub objectives: Objectives,
    /// A resumed run whose config.json records no `objectives`: it was started before the
    /// objectives came from the experiment, and resumes as it was started (each agent's
    /// former objectives, `agents::former_objectives`, no references given to the agent, and
    /// no width pruned from the space).
    pub legacy: bool,
    /// The batch size (`--workers`), as given, else as config.json records it on a resume.
    pub workers: usize,
    pub log: RunLog,
    /// Held for the whole run (and handed to the caller in `RunSummary`): no other search or
    /// report writes the directory meanwhile.
    pub lock: RunLock,
}

impl<'a> Run<'a> {
    /// Locks the run directory (before anything in it is read or written), prices the model's
    /// layers on the device, resolves the budgets (an infeasible one is an error before any
    /// training) and opens the run directory.
    pub fn open(spec: &'a RunSpec<'a>, workers: Option<NonZeroUsize>) -> Result<Self, SearchError> {
        let lock = RunLock::acquire(&spec.dir, &this_command())?;
        if let Some(notice) = lock.took_over() {
            eprintln!("{notice}");
        }
        let supports = |b| spec.profile.supports(b);
        let mut space = SearchSpace::with_formats(
            spec.base.shapes().to_vec(),
            spec.exp.bits.declared_formats(),
            spec.exp.bits.tie,
            spec.profile,
            &supports,
        )?;
        let budget = Budget::resolve(&spec.exp.budget, &space)?;
        // A resume reuses the objectives and the batch size its config.json recorded.
        let recorded = recorded(spec);
        let workers = batch_size(spec, recorded.as_ref(), workers)?;
        let legacy = recorded.as_ref().is_some_and(|c| c.objectives.is_none());
        let objectives = match recorded.and_then(|c| c.objectives) {
            Some(list) => Objectives::of(list.contains(&Objective::RobustAccuracy), &list),
            None if legacy => former_objectives(spec.agent, &spec.exp.objectives()),
            None => spec.exp.objectives(),
        };
        if spec.exp.bits.prune_dominated && !legacy {
            space.prune_dominated(&objectives, &budget);
        }
        let layers = spec
            .base
            .layer_names()
            .iter()
            .map(|s| s.to_string())
            .collect();
        let log = RunLog::new(&spec.dir, layers)?;
        Ok(Run {
            spec,
            space,
            budget,
            objectives,
            legacy,
            workers,
            log,
            lock,
        })
    }

    /// What the agent sees of the problem.
    pub fn context(&self) -> Context<'_> {
        Context {
            space: &self.space,
            budget: &self.budget,
            objectives: &self.objectives,
        }
    }

    /// The seed of episode `k`.
    pub fn seed(&self, k: usize) -> u64 {
        episode_seed(self.spec.seed, k)
    }
}

/// The batch size: as given, else the recorded one on a resume (1 in a config.json from
/// before batches), else 1. A resume given another is refused: its batches, so its episodes,
/// would differ from the ones logged.
fn batch_size(
    spec: &RunSpec,
    recorded: Option<&RunConfig>,
    given: Option<NonZeroUsize>,
) -> Result<usize, SearchError> {
    let recorded = recorded.map(|c| c.workers.unwrap_or(1));
    match (given.map(NonZeroUsize::get), recorded) {
        (Some(given), Some(recorded)) if given != recorded => Err(SearchError::WorkersChanged {
            dir: spec.dir.clone(),
            recorded,
            given,
        }),
        (Some(n), _) | (None, Some(n)) => Ok(n),
        (None, None) => Ok(1),
    }
}

/// The config.json a resume continues from, if it can be read (if not, the resume's check
/// reports why before any episode).
fn recorded(spec: &RunSpec) -> Option<RunConfig> {
    let path = spec.dir.join(RunConfig::FILE);
    (spec.resume && path.exists())
        .then(|| RunConfig::read(&path).ok())
        .flatten()
}
