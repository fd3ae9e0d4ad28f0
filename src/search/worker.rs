//! A worker's side of the `work/` protocol (`rundir::work`): `bitsearch worker RUN REQUEST`
//! scores the one policy its request names, exactly as the search would (the experiment
//! config.json records, the cached FP32 baseline, the validation suite, the policy-seeded
//! fine-tune, at the request's fidelity: `score::outcome`), and writes the reply beside the request. It writes nothing
//! else: the search alone logs, caches and prices. It reads only a request of the run it is
//! named, with the SHA-256 its command line gives (`work::read_request`).

use std::path::Path;
use std::time::Instant;

use super::score::outcome;
use super::SearchError;
use crate::crashpoint::crash_point;
use crate::experiment::{Experiment, Overrides};
use crate::quant::Policy;
use crate::rundir::work::{self, Reply, ReplyScore};
use crate::rundir::{first_difference, RunConfig};
use crate::score::Evaluator;
use crate::train::load_baseline;

/// Scores the request at `request` of the search in `run` (`RUN/work/K.json`, hashing to
/// `sha256`) and writes its reply. Changes the process's working directory to the search's
/// (the request's `cwd`), where the experiment's paths resolve as they did for the search: a
/// worker is a process of its own.
pub fn serve(run: &Path, request: &Path, sha256: &str) -> Result<Reply, SearchError> {
    let start = Instant::now();
    let absolute = |p: &Path| {
        std::path::absolute(p).map_err(|source| SearchError::Io {
            path: p.to_path_buf(),
            source,
        })
    };
    let (run, request_path) = (absolute(run)?, absolute(request)?);
    let request = work::read_request(&run, &request_path, sha256)?;
    let config = RunConfig::read(&run.join(RunConfig::FILE))?;
    std::env::set_current_dir(&request.cwd).map_err(|source| SearchError::Io {
        path: request.cwd.clone(),
        source,
    })?;
    let exp = experiment(&run, &config)?;
    let data = exp.data.load()?;
    let base = load_baseline(&exp.baseline(), &data, &request.cache)?.ok_or_else(|| {
        SearchError::NoBaseline {
            cache: request.cache.clone(),
        }
    })?;
    // The layers the search scores: with `[quant] attention` the attention matmuls too.
    let model = base.model.with_attention(exp.quant.attention)?;
    let eval = Evaluator::new(&exp, &data, &model)?;
    let suite = eval.validation_suite_at(request.fidelity)?;
    let policy = Policy::parse(&request.policy)?;
    let finetune = exp.finetune_at(request.fidelity);
    let scored = outcome(&eval, &finetune, &suite, &policy)?;
    crash_point(&format!("worker-episode-{}", request.episode));
    let reply = Reply {
        episode: request.episode,
        policy: request.policy,
        score: scored.ok().map(|s| ReplyScore {
            accuracy: s.accuracy,
            robust_accuracy: s.robust_accuracy,
            masking: s.masking.to_string(),
            broken_by: s.broken_by.map(|b| b.to_string()),
        }),
        seconds: start.elapsed().as_secs_f64(),
    };
    work::write_reply(&request_path, &reply)?;
    Ok(reply)
}

/// The experiment config.json records, loaded again from its file and overrides; refused if it
/// no longer resolves to the recorded one (the file was edited since the search started), as
/// the worker would score another experiment.
fn experiment(run: &Path, config: &RunConfig) -> Result<Experiment, SearchError> {
    let (path, overrides) =
        config
            .experiment_source()
            .ok_or_else(|| SearchError::NoExperiment {
                dir: run.to_path_buf(),
            })?;
    let exp = Experiment::load_with(&path, &Overrides::from_recorded(&overrides))?;
    let now = serde_json::to_value(&exp).map_err(|source| SearchError::Json {
        path: path.clone(),
        source,
    })?;
    match first_difference("experiment", Some(&config.experiment), Some(&now)) {
        Some((what, old, new)) => Err(SearchError::ExperimentChanged {
            dir: run.to_path_buf(),
            what,
            old,
            new,
        }),
        None => Ok(exp),
    }
}
