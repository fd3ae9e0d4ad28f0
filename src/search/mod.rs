//! The search: HAQ's environment (state per layer and operand, action → bits, budget wall,
//! reward), the episode loop, the run directory with its append-only log, and resume.

mod budget;
mod log;
mod run;
mod score;
mod space;
#[cfg(test)]
mod tests;

pub use budget::{Budget, BudgetConfig, Limit};
pub use log::{write_atomic, EpisodeRow, RunLog};
pub use run::{episode_seed, run_search, RunSpec, RunSummary};
pub use score::{test_score, Outcome, Score, Scorer, TestScore};
pub use space::{Price, SearchSpace, STATE_DIM};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error(
        "infeasible {resource} budget: {budget:.4e} is below {floor:.4e}, the {resource} with every \
         operand at the minimum of {min_bits} bits (uniform 8/8 costs {uniform8:.4e}); raise the budget or lower bits.min"
    )]
    InfeasibleBudget {
        resource: &'static str,
        budget: f64,
        floor: f64,
        uniform8: f64,
        min_bits: u8,
    },
    #[error(transparent)]
    Hardware(Box<crate::hardware::HardwareError>),
    #[error(transparent)]
    Quant(Box<crate::quant::QuantError>),
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
    #[error("writing CSV: {0}")]
    Csv(String),
    #[error("{}: line {line}: {what}", path.display())]
    BadLog {
        path: PathBuf,
        line: usize,
        what: String,
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
    Hardware: crate::hardware::HardwareError,
    Train: crate::train::TrainError,
    Robust: crate::robust::RobustError,
    Agent: crate::agents::AgentError,
    Pareto: crate::pareto::ParetoError,
    Quant: crate::quant::QuantError,
    Tensor: candle_core::Error
);
