//! `SearchError`: why a search stopped (a lower layer's error, an existing run without
//! `--resume`, a resume that does not match the interrupted run, a worker or its Slurm job that
//! failed) or why a worker could not score its request.

use std::path::PathBuf;

/// How an error names a worker: a local process, or a Slurm job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerId {
    Pid(u32),
    SlurmJob(u32),
}

impl std::fmt::Display for WorkerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WorkerId::Pid(pid) => write!(f, "pid {pid}"),
            WorkerId::SlurmJob(job) => write!(f, "Slurm job {job}"),
        }
    }
}

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
    #[error(transparent)]
    Experiment(Box<crate::experiment::ExperimentError>),
    #[error(transparent)]
    Data(Box<crate::data::DataError>),
    #[error(transparent)]
    Model(Box<crate::model::ModelError>),
    #[error(transparent)]
    Slurm(Box<crate::slurm::SlurmError>),
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
    #[error("{}: cannot resume with --workers {given}: the run proposed and scored its episodes in batches of {recorded} (config.json `workers`), and they depend on it; resume with --workers {recorded}, or without --workers", dir.display())]
    WorkersChanged {
        dir: PathBuf,
        recorded: usize,
        given: usize,
    },
    #[error("the agent proposed no policy for the batch at episode {episode}")]
    EmptyBatch { episode: usize },
    #[error("--slurm runs each batch's workers as Slurm jobs, and this run scores one policy at a time, in the search's own process (a batch of {workers}): give --workers N with N > 1")]
    SlurmWithoutBatches { workers: usize },
    #[error("--workers {workers} needs the command that starts a worker; none was given")]
    NoWorkerCommand { workers: usize },
    #[error("cannot start worker {index} for {}: {source}", request.display())]
    WorkerStart {
        index: usize,
        request: PathBuf,
        source: std::io::Error,
    },
    #[error("worker {index} ({worker}) failed on {} ({status}); its stderr, {}: {tail}; `--resume` scores again only the episodes episodes.csv has no line for", request.display(), log.display())]
    Worker {
        index: usize,
        worker: WorkerId,
        request: PathBuf,
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error("{}: {detail}", path.display())]
    BadReply { path: PathBuf, detail: String },
    #[error("{}: config.json records no experiment file for a worker to load", dir.display())]
    NoExperiment { dir: PathBuf },
    #[error("{}: the experiment resolves differently from the run's config.json ({what}: {old} then, {new} now); a worker scores only the search's own experiment", dir.display())]
    ExperimentChanged {
        dir: PathBuf,
        what: String,
        old: String,
        new: String,
    },
    #[error("no FP32 baseline of the experiment under {}: the search trains it before it starts a worker", cache.display())]
    NoBaseline { cache: PathBuf },
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
    Experiment: crate::experiment::ExperimentError,
    Data: crate::data::DataError,
    Model: crate::model::ModelError,
    Slurm: crate::slurm::SlurmError,
    Tensor: candle_core::Error
);
