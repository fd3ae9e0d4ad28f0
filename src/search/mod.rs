//! The search: HAQ's Algorithm 1 (`run`) over the environment (`crate::env`) with an agent
//! (`crate::agents`); scoring a policy, the reference policies, resume by replay, what it
//! writes into the run directory (`crate::rundir`), and the final front re-scored on the test
//! split (`front`).

mod cache;
mod episode;
mod error;
mod front_test;
mod output;
mod references;
mod resume;
mod run;
mod score;
mod spec;

pub use cache::{cache_file, ScoreCache};
pub use error::SearchError;
pub use run::run_search;
pub use score::{Scored, Scorer};
pub use spec::{episode_seed, RunSpec, RunSummary};
