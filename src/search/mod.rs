//! The search: HAQ's Algorithm 1 (`run`) over the environment (`crate::env`) with an agent
//! (`crate::agents`), in synchronous batches (`batch`) scored here or by worker processes,
//! children of the search or Slurm jobs (`pool`, and the worker's side, `worker`); scoring a
//! policy, the reference policies, resume by replay, what it writes into the run directory
//! (`crate::rundir`), and the final front re-scored on the test split (`front`).

mod batch;
mod cache;
mod episode;
mod error;
mod front_test;
mod output;
mod pool;
mod references;
mod resume;
mod run;
mod score;
mod spec;
mod worker;

pub use cache::{cache_file, cache_file_at, ScoreCache};
pub use error::{SearchError, WorkerId};
pub use pool::{Place, Workers, WORKER_CRASH_VAR};
pub use run::{run_search, run_search_with};
pub use score::{Scored, Scorer};
pub use spec::{episode_seed, RunSpec, RunSummary};
pub use worker::serve;
