//! The search's worker processes (`--workers N`, N > 1): each policy of a batch that needs a
//! score is written as a request into the run's `work/` (`rundir::work`) and scored by a
//! process of its own (`bitsearch worker RUN REQUEST --sha256 HEX`), single-threaded
//! (`CANDLE_NUM_THREADS=1`, `RAYON_NUM_THREADS=1`), so a batch of N uses N cores: a child of
//! the search here, or a Slurm job of one CPU (`slurm`, `--slurm`). The coordinator waits for
//! them in proposal order and reads their replies; a worker that fails is an error naming it
//! (its pid or job id), its request and its stderr.
//!
//! A local worker dies with the search (`PR_SET_PDEATHSIG`): a killed search leaves no worker
//! writing into a directory whose lock the next search takes over. A Slurm job is cancelled
//! when the search dies (`slurm::CancelGuard`).

mod slurm;

use std::ffi::OsString;
use std::fs::File;
use std::num::NonZeroUsize;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::{SearchError, WorkerId};
use crate::crashpoint;
use crate::fidelity::Fidelity;
use crate::quant::Policy;
use crate::robust::{Breakdown, Checks};
use crate::rundir::work::{self, Reply, Request, Written};
use crate::score::{Failure, Outcome, Score};

/// Set in the search's environment, arms a crash point in its workers instead
/// (`BITSEARCH_CRASH_AT` itself is not passed on: the kill campaign's points are the
/// coordinator's). A worker's own point is `worker-episode-K`, hit after it scored episode K
/// and before its reply.
pub const WORKER_CRASH_VAR: &str = "BITSEARCH_WORKER_CRASH_AT";

/// Where a search's workers run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Place {
    /// Child processes of the search, on this machine.
    #[default]
    Local,
    /// One Slurm job per request (`sbatch --wait`), submitted with these extra arguments
    /// (`--sbatch-arg`); the run directory must be shared with the nodes.
    Slurm { sbatch_args: Vec<String> },
}

/// How a search scores its policies.
#[derive(Debug, Clone, Default)]
pub struct Workers {
    /// The batch size: policies proposed, scored at once and learned in order. None: the one
    /// config.json records on a resume, else 1 (one policy at a time, scored in the search's
    /// own process, as before batches existed).
    pub count: Option<NonZeroUsize>,
    /// The program that scores a request, with its leading arguments (`bitsearch worker`);
    /// the run directory, the request file and `--sha256 HEX` are appended.
    pub command: Vec<OsString>,
    /// Where the FP32 baseline is cached (the search's `--cache`), for the workers to load it.
    pub cache: PathBuf,
    /// Where the workers run.
    pub place: Place,
}

/// Worker processes for one run directory.
pub(super) struct Pool<'a> {
    workers: &'a Workers,
    /// Absolute, as the workers are told them.
    run: PathBuf,
    cwd: PathBuf,
    cache: PathBuf,
    /// With Slurm: the paths its job scripts hold, checked and quoted.
    scripts: Option<slurm::Scripts>,
}

/// A worker at work on one request.
pub(super) struct Job {
    /// The worker's place in its batch, from 1 (how errors name it).
    index: usize,
    request: PathBuf,
    /// Its stderr (with Slurm, the job's output file).
    log: PathBuf,
    running: Running,
}

enum Running {
    Local(Child),
    Slurm(slurm::SlurmJob),
}

impl<'a> Pool<'a> {
    /// Workers for the run in `run`, batches of `count`. With Slurm, a path its job scripts
    /// cannot hold is refused here, before any episode.
    pub fn new(workers: &'a Workers, run: &Path, count: usize) -> Result<Self, SearchError> {
        if workers.command.is_empty() {
            return Err(SearchError::NoWorkerCommand { workers: count });
        }
        let absolute = |p: &Path| {
            std::path::absolute(p).map_err(|source| SearchError::Io {
                path: p.to_path_buf(),
                source,
            })
        };
        let (run, cwd) = (absolute(run)?, absolute(Path::new("."))?);
        let scripts = match &workers.place {
            Place::Local => None,
            Place::Slurm { .. } => Some(slurm::Scripts::new(&workers.command, &run, &cwd)?),
        };
        Ok(Pool {
            workers,
            run,
            cwd,
            cache: absolute(&workers.cache)?,
            scripts,
        })
    }

    /// A reply to episode K's request that a killed run's worker left, if it is for `policy`
    /// (on a resume, config.json is unchanged, so it is that policy's score).
    pub fn kept(&self, episode: usize, policy: &Policy) -> Option<Reply> {
        let request = work::request_path(&self.run, episode);
        let reply = work::read_reply(&request).ok().flatten()?;
        (reply.episode == episode && reply.policy == policy.to_string()).then_some(reply)
    }

    /// Writes episode K's request and starts the worker that scores it, here or as a Slurm
    /// job. Spawned from the thread that waits for it: the death signal follows the thread
    /// that started the child (the worker, or `sbatch --wait`).
    pub fn start(
        &self,
        index: usize,
        episode: usize,
        policy: &Policy,
        fidelity: Fidelity,
    ) -> Result<Job, SearchError> {
        let request = Request {
            episode,
            policy: policy.to_string(),
            cwd: self.cwd.clone(),
            cache: self.cache.clone(),
            fidelity,
        };
        let written = work::write_request(&self.run, &request)?;
        // The worker's stderr; a Slurm job's output file, which the job appends to.
        let log = work::open_log(&self.run, episode)?;
        let running = match (&self.workers.place, &self.scripts) {
            (Place::Slurm { sbatch_args }, Some(scripts)) => {
                Running::Slurm(scripts.submit(&self.run, episode, &written, sbatch_args)?)
            }
            _ => Running::Local(self.spawn(index, &written, log)?),
        };
        Ok(Job {
            index,
            request: written.path,
            log: work::log_path(&self.run, episode),
            running,
        })
    }

    /// A local worker on `written`, its stderr into `log`.
    fn spawn(&self, index: usize, written: &Written, log: File) -> Result<Child, SearchError> {
        let (program, args) = (&self.workers.command[0], &self.workers.command[1..]);
        let mut cmd = Command::new(program);
        cmd.args(args)
            .arg(&self.run)
            .arg(&written.path)
            .args(["--sha256", &written.sha256])
            .env("CANDLE_NUM_THREADS", "1")
            .env("RAYON_NUM_THREADS", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        pass_worker_crash_point(&mut cmd);
        die_with_parent(&mut cmd);
        cmd.spawn().map_err(|source| SearchError::WorkerStart {
            index,
            request: written.path.clone(),
            source,
        })
    }
}

impl Job {
    /// Waits for the worker and reads its reply.
    pub fn wait(self) -> Result<Reply, SearchError> {
        let io = |source| SearchError::Io {
            path: self.request.clone(),
            source,
        };
        let (reply, status, worker) = match self.running {
            Running::Local(mut child) => {
                let status = child.wait().map_err(io)?;
                let reply = match status.success() {
                    true => work::read_reply(&self.request)?,
                    false => None,
                };
                let status = match status.success() {
                    true => "it wrote no reply".to_string(),
                    false => status.to_string(),
                };
                (reply, status, WorkerId::Pid(child.id()))
            }
            Running::Slurm(job) => {
                let worker = WorkerId::SlurmJob(job.id());
                let (reply, status) = job.wait(&self.request)?;
                (reply, status, worker)
            }
        };
        let Some(reply) = reply else {
            return Err(SearchError::Worker {
                index: self.index,
                worker,
                request: self.request,
                status,
                tail: tail(&self.log),
                log: self.log,
            });
        };
        crashpoint::crash_point("worker-replied");
        Ok(reply)
    }
}

/// `BITSEARCH_CRASH_AT` is the search's own; a worker gets `WORKER_CRASH_VAR`'s point instead.
fn pass_worker_crash_point(cmd: &mut Command) {
    cmd.env_remove(crashpoint::VAR);
    if let Some(point) = std::env::var_os(WORKER_CRASH_VAR) {
        cmd.env(crashpoint::VAR, point);
    }
}

/// The last lines of a worker's stderr, for the error that names it.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    match lines.len() {
        0 => "(empty)".into(),
        n => lines[n.saturating_sub(3)..].join(" | "),
    }
}

/// The outcome a reply carries, checked against the request it answers.
pub(super) fn outcome_of(
    run: &Path,
    reply: &Reply,
    episode: usize,
    policy: &Policy,
) -> Result<Outcome, SearchError> {
    let path = work::reply_path(&work::request_path(run, episode));
    let bad = |detail: String| SearchError::BadReply {
        path: path.clone(),
        detail,
    };
    if reply.episode != episode || reply.policy != policy.to_string() {
        return Err(bad(format!(
            "answers episode {} ({}), not episode {episode} ({policy})",
            reply.episode, reply.policy
        )));
    }
    let Some(s) = &reply.score else {
        return Ok(Err(Failure::Logged));
    };
    let masking = Checks::parse(&s.masking)
        .ok_or_else(|| bad(format!("masking {:?} is not a list of checks", s.masking)))?;
    let broken_by = match &s.broken_by {
        Some(text) => Some(
            (text.parse::<Breakdown>())
                .map_err(|()| bad(format!("broken_by {text:?} is malformed")))?,
        ),
        None => None,
    };
    Ok(Ok(Score {
        accuracy: s.accuracy,
        robust_accuracy: s.robust_accuracy,
        masking,
        broken_by,
    }))
}

/// Has the kernel kill the child when the thread that started it ends, so no worker outlives a
/// killed search.
fn die_with_parent(cmd: &mut Command) {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: runs in the forked child before exec and calls only prctl(2), getppid(2) and
    // _exit(2), which are async-signal-safe; it touches no memory of the parent.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent died before the signal was armed.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}
