//! Resume by deterministic replay. Every episode draws its randomness from
//! `episode_seed(seed, k)`, so a killed run is continued by replaying the logged episodes
//! through a fresh agent in the batches they ran in (`batch`: its proposals must match the
//! log, and it learns from the logged rewards), which restores networks, optimizer moments,
//! replay buffer, exploration noise and a batch's beliefs exactly, then scoring the rest. The
//! finished run equals an uninterrupted one. This module checks config.json first (the batch
//! size included, `Run::open`). (agent.json is only a summary; it is not read back.)
//!
//! The replay needs the agent to rank as it did: a resume reuses the objectives config.json
//! records, and a config.json that records none (written before the objectives came from the
//! experiment) resumes as it was started: each agent's former objectives, no references given
//! to the agent, nothing pruned from the space (`Run::legacy`).

use super::output::config;
use super::references;
use super::spec::Run;
use super::SearchError;
use crate::rundir::{first_difference, Episode, RunConfig};

/// The settings a resume must find unchanged in config.json.
const UNCHANGED: [&str; 9] = [
    "experiment",
    "model",
    "profile",
    "agent",
    "seed",
    "budget",
    "layers",
    "objectives",
    "bits",
];

/// The settings the reference policies' scores and prices depend on (not the agent or seed).
const REFERENCES: [&str; 5] = ["experiment", "model", "profile", "budget", "layers"];

/// Checks (or, for a new run, writes) config.json and returns the episodes already logged.
/// A new run into a directory whose references.csv was scored under other settings (or with no
/// config.json to say which) removes it first, so `references::score_once` scores it again.
pub(super) fn logged(run: &Run) -> Result<Vec<Episode>, SearchError> {
    let done = run.log.resume("episodes.csv")?;
    let dir = &run.log.dir;
    if !done.is_empty() && !run.spec.resume {
        return Err(SearchError::ExistingRun {
            dir: dir.clone(),
            episodes: done.len(),
        });
    }
    let config = config(run)?;
    let path = dir.join(RunConfig::FILE);
    if run.spec.resume && path.exists() {
        let json = |c: &RunConfig| {
            c.to_json().map_err(|source| SearchError::Json {
                path: path.clone(),
                source,
            })
        };
        let (old, new) = (json(&RunConfig::read(&path)?)?, json(&config)?);
        for key in UNCHANGED {
            if let Some((what, then, now)) = first_difference(key, old.get(key), new.get(key)) {
                return Err(SearchError::ConfigChanged {
                    dir: dir.clone(),
                    what,
                    old: then,
                    new: now,
                });
            }
        }
    }
    if !run.spec.resume {
        drop_stale_references(run, &config)?;
    }
    run.log.write_config(&config)?;
    Ok(done)
}

fn drop_stale_references(run: &Run, config: &RunConfig) -> Result<(), SearchError> {
    let dir = &run.log.dir;
    let refs = dir.join(references::FILE);
    if !refs.exists() {
        return Ok(());
    }
    // An unreadable old config.json cannot vouch for the references either.
    let old = RunConfig::read(&dir.join(RunConfig::FILE)).ok();
    let same = match (old.as_ref().map(RunConfig::to_json), config.to_json()) {
        (Some(Ok(old)), Ok(new)) => REFERENCES
            .iter()
            .all(|&k| first_difference(k, old.get(k), new.get(k)).is_none()),
        _ => false,
    };
    if !same {
        std::fs::remove_file(&refs).map_err(|source| SearchError::Io { path: refs, source })?;
    }
    Ok(())
}
