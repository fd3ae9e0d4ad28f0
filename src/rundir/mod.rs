//! The run-directory format (docs/run-directory.md), one owner for every file the tool writes
//! and reads back: the episode row and its CSV files (episodes.csv, references.csv,
//! pareto.csv), config.json, best-policy.json and the rule that picks the best episode,
//! front-test.csv (the front re-scored on the test split), the atomic writes, the directory's
//! lock (one writer at a time), the work directory through which a search hands policies to
//! worker processes (`work`), the reader of a DQ study (dq.csv, amplification.csv), and a
//! sensitivity study's files (sensitivity.csv, sensitivity.json), and measured.csv (policies
//! timed on a real runtime). The
//! search writes through `RunLog`; its resume and the report read through the same types.

mod best;
mod config;
mod csv_file;
mod dir;
mod dq;
mod episodes;
mod error;
mod files;
mod front_test;
mod lock;
mod log;
mod measured;
mod sensitivity;
pub mod work;

pub use best::{
    best_row, standard_error, BestLayer, BestPolicy, Scores, SuiteAttack, SuiteSummary, SuiteWorst,
    TestScores, UniformBest,
};
pub use config::{
    first_difference, AgentInfo, BitsRecord, BudgetRecord, KeptWidths, ProfileInfo, RunConfig,
};
pub use csv_file::write_csv;
pub use dir::{dir_kind, read_any, AnyDir, DirKind, RunDir};
pub use dq::{AmplificationRow, DqDir, DqRow};
pub use episodes::{header, pareto_rows, Episode, Episodes};
pub use error::RunDirError;
pub use files::{create_dir, open_no_follow, write_atomic, write_json};
pub use front_test::{FrontTest, FrontTestRow};
pub use lock::{lock_holder, this_command, Holder, RunLock};
pub use log::RunLog;
pub use measured::{median_abs_error, Measured, MeasuredRow};
pub use sensitivity::{Sensitivity, SensitivityConfig, SensitivityDir, SensitivityRow, Varied};
