//! `SearchError`: why a search stopped (a lower layer's error, an existing run without
//! `--resume`, a resume that does not match the interrupted run).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error(transparent)]
    Env(Box<crate::env::EnvError>),
    #[error(transparent)]
    RunDir(Box<crate::rundir::RunDirError>),
    #[error(transparent)]
    Quant(Box<crate::quant::QuantError>),
    #[error(transparent)]
    Calib(Box<crate::calib::CalibError>),
    #[error(transparent)]
    Score(Box<crate::score::ScoreError>),
    #[error(transparent)]
    Train(Box<crate::train::TrainError>),
    #[error(transparent)]
    Robust(Box<crate::robust::RobustError>),
    #[error(transparent)]
    Agent(Box<crate::agents::AgentError>),
    #[error(transparent)]
    Pareto(Box<crate::pareto::ParetoError>),
    #[error("tensor error: {0}")]
    Tensor(Box<candle_core::Error>),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{} already holds {episodes} episodes: pass --resume to continue it, or choose another --out", dir.display())]
    ExistingRun { dir: PathBuf, episodes: usize },
    #[error("{}: cannot resume: {what} differs from the interrupted run ({old} then, {new} now)", dir.display())]
    ConfigChanged {
        dir: PathBuf,
        what: String,
        old: String,
        new: String,
    },
    #[error("{}: cannot resume: replaying episode {episode} proposes {replayed}, the log says {logged}", dir.display())]
    ReplayMismatch {
        dir: PathBuf,
        episode: usize,
        replayed: String,
        logged: String,
    },
}

crate::errors::boxed_from!(
    SearchError;
    Env: crate::env::EnvError,
    RunDir: crate::rundir::RunDirError,
    Train: crate::train::TrainError,
    Robust: crate::robust::RobustError,
    Agent: crate::agents::AgentError,
    Pareto: crate::pareto::ParetoError,
    Quant: crate::quant::QuantError,
    Calib: crate::calib::CalibError,
    Score: crate::score::ScoreError,
    Tensor: candle_core::Error
);
