//! Workers as Slurm jobs (`search --workers N --slurm`): each request `work/K.json` gets a job
//! script `work/K.sbatch` (one task, one CPU, one thread, running `bitsearch worker` on that
//! request with its SHA-256; its output file is `work/K.log`), submitted with
//! `sbatch --parsable --wait`. The coordinator stays where it is: it writes the requests,
//! reads the replies and logs the episodes, exactly as with local workers, so the episodes are
//! the same.
//!
//! A job is done when its reply appears (sbatch polls the controller every few seconds, up to
//! half a minute apart; the reply is the worker's last act), or when `sbatch --wait` exits. A
//! `CancelGuard` cancels the job if the search dies before either, whatever the signal.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{die_with_parent, pass_worker_crash_point};
use crate::rundir::work::{self, Reply, Written};
use crate::rundir::write_atomic;
use crate::search::SearchError;
use crate::slurm::{
    check_script_path, header, literal_output, quote, sbatch_command, submit_and_wait, CancelGuard,
    SlurmError, Waiting,
};

/// How often a waiting search looks for a job's reply.
const POLL: Duration = Duration::from_millis(200);

/// How long a job that exited 0 (so wrote its reply) may take to show the reply here: on a
/// network file system a file another node created can stay invisible for the attribute
/// cache's lifetime (NFS's `acdirmax`, 60 s by default).
const REPLY_GRACE: Duration = Duration::from_secs(60);

/// What every job script of a run holds, checked (`check_script_path`) and quoted once.
pub(super) struct Scripts {
    /// The worker command (`bitsearch worker`), each word quoted for bash.
    command: String,
    run: PathBuf,
    cwd: String,
}

/// A worker job queued or running.
pub(super) struct SlurmJob {
    waiting: Waiting,
    guard: CancelGuard,
}

impl Scripts {
    pub fn new(command: &[std::ffi::OsString], run: &Path, cwd: &Path) -> Result<Self, SlurmError> {
        let words = (command.iter())
            .map(|w| check_script_path("the worker command", Path::new(w)).map(quote))
            .collect::<Result<Vec<_>, _>>()?;
        check_script_path("the run directory", run)?;
        Ok(Scripts {
            command: words.join(" "),
            run: run.to_path_buf(),
            cwd: check_script_path("the current directory", cwd)?.to_string(),
        })
    }

    /// Episode K's script. The run directory's paths passed `check_script_path`, and the
    /// request's and log's only add `/work/K.json` and `/work/K.log` to it.
    fn text(&self, episode: usize, written: &Written) -> String {
        let text = |p: &Path| p.to_string_lossy().into_owned();
        let log = text(&work::log_path(&self.run, episode));
        format!(
            "{}#SBATCH --ntasks=1\n\
             #SBATCH --cpus-per-task=1\n\
             export CANDLE_NUM_THREADS=1\n\
             export RAYON_NUM_THREADS=1\n\
             exec {} {} {} --sha256 {}\n",
            header(
                &format!("bitsearch-worker-{episode}"),
                &self.cwd,
                &literal_output(&log)
            ),
            self.command,
            quote(&text(&self.run)),
            quote(&text(&written.path)),
            written.sha256
        )
    }

    /// Writes episode K's script and submits it (`sbatch --parsable --wait ARGS SCRIPT`),
    /// guarded from the moment its id is known. Slurm keeps its own copy of the script, so the
    /// command line, with the request's SHA-256, is the coordinator's whatever later happens to
    /// the file.
    pub fn submit(
        &self,
        run: &Path,
        episode: usize,
        written: &Written,
        sbatch_args: &[String],
    ) -> Result<SlurmJob, SearchError> {
        let script = work::script_path(run, episode);
        write_atomic(&script, self.text(episode, written).as_bytes())?;
        let args = [&["--wait".to_string()], sbatch_args].concat();
        let mut cmd = sbatch_command(&args, &script);
        // sbatch passes its environment on to the job.
        pass_worker_crash_point(&mut cmd);
        die_with_parent(&mut cmd);
        let waiting = submit_and_wait(cmd, &script)?;
        let guard = CancelGuard::new(waiting.job)?;
        Ok(SlurmJob { waiting, guard })
    }
}

impl SlurmJob {
    pub fn id(&self) -> u32 {
        self.waiting.job
    }

    /// Waits for the job's reply to `request`, or its end: the reply (None if there is none)
    /// and, without one, what became of the job.
    pub fn wait(mut self, request: &Path) -> Result<(Option<Reply>, String), SearchError> {
        let io = |source| SearchError::Io {
            path: request.to_path_buf(),
            source,
        };
        loop {
            if let Some(reply) = work::read_reply(request)? {
                // Done: the worker is exiting; sbatch would notice only at its next poll.
                self.guard.release();
                let _ = self.waiting.sbatch.kill();
                let _ = self.waiting.sbatch.wait();
                return Ok((Some(reply), String::new()));
            }
            if let Some(status) = self.waiting.sbatch.try_wait().map_err(io)? {
                self.guard.release();
                if !status.success() {
                    let reply = work::read_reply(request)?;
                    return Ok((
                        reply,
                        format!("the job's {status}, as sbatch --wait reports it"),
                    ));
                }
                return Ok((late_reply(request)?, "it wrote no reply".to_string()));
            }
            std::thread::sleep(POLL);
        }
    }
}

/// The reply of a job that exited 0, waiting up to `REPLY_GRACE` for it to be seen here.
fn late_reply(request: &Path) -> Result<Option<Reply>, SearchError> {
    let start = Instant::now();
    loop {
        let reply = work::read_reply(request)?;
        if reply.is_some() || start.elapsed() > REPLY_GRACE {
            return Ok(reply);
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The script runs the worker on its request with the request's digest, one thread on one
    /// CPU, every path quoted for bash and for sbatch.
    #[test]
    fn a_worker_script_runs_its_request_single_threaded() {
        let command = ["/b/bitsearch".into(), "worker".into()];
        let run = Path::new("/r un/it's 100%/mbrl-bitfusion");
        let scripts = Scripts::new(&command, run, Path::new("/w")).unwrap();
        let written = Written {
            path: work::request_path(run, 7),
            sha256: "ab12".into(),
        };
        let s = scripts.text(7, &written);
        assert!(s.starts_with("#!/bin/bash\n#SBATCH --job-name=bitsearch-worker-7\n"));
        assert!(s.contains("#SBATCH --chdir=\"/w\"\n"), "{s}");
        assert!(
            s.contains("#SBATCH --output=\"/r un/it's 100%%/mbrl-bitfusion/work/7.log\"\n"),
            "{s}"
        );
        assert!(s.contains("#SBATCH --cpus-per-task=1\nexport CANDLE_NUM_THREADS=1\n"));
        assert!(s.ends_with(
            "exec '/b/bitsearch' 'worker' '/r un/it'\\''s 100%/mbrl-bitfusion' \
             '/r un/it'\\''s 100%/mbrl-bitfusion/work/7.json' --sha256 ab12\n"
        ));
    }

    #[test]
    fn a_run_directory_a_script_cannot_hold_is_refused() {
        let command = ["/b/bitsearch".into(), "worker".into()];
        let e = Scripts::new(&command, Path::new("/r\nx"), Path::new("/w")).err();
        assert!(e.is_some_and(|e| e.to_string().starts_with("the run directory")));
    }
}
