//! The work directory of a search that scores in batches (`RUN/work/`): the files through which
//! the search (the coordinator, which alone holds the run's lock, appends episodes.csv and owns
//! the resume) hands policies to worker processes and gets their scores back.
//!
//! For episode K: the request `work/K.json` (written by the coordinator), the reply
//! `work/K.score.json` (written by the worker, and nothing else is), the worker's stderr
//! `work/K.log` (with Slurm, the job's output file) and, with Slurm, the job's script
//! `work/K.sbatch`; each JSON file is written whole (write-then-rename), so a reader never sees
//! half of one. A worker needs only the run directory and its request: the experiment is the
//! one config.json records (its path relative to the request's `cwd`, with its overrides), the
//! FP32 baseline the one cached under the request's `cache`. So a worker can be a local process
//! or a job on another node that shares the directory.
//!
//! A worker reads only a request of the run it is named (`RUN/work/K.json`, no link) whose
//! SHA-256 is the one on its command line: what the coordinator wrote, even if the worker
//! starts long after it (a Slurm job in a queue), when someone else with write access to the
//! directory may have changed it.
//!
//! The coordinator removes a batch's files once its episodes are logged, and on every start
//! the files of a killed run: requests, logs, scripts and temporaries always, replies unless a
//! resume can still use them (a reply for an episode the log does not hold yet is that policy's
//! score, computed under the same config.json).

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use std::io::Read;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::files::{
    create_dir, open_no_follow, open_no_follow_or, read_json, remove_temporaries, write_atomic,
    write_json,
};
use super::RunDirError;
use crate::fidelity::Fidelity;

/// The work directory's name inside a run directory.
pub const DIR: &str = "work";

/// A policy for a worker to score: `work/K.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub episode: usize,
    /// The walled policy, in text form (`8/8,4/4,...`).
    pub policy: String,
    /// The coordinator's working directory: config.json's experiment path, and the paths
    /// inside the experiment, are relative to it.
    pub cwd: PathBuf,
    /// Where the FP32 baseline is cached (the search's `--cache`), absolute.
    pub cache: PathBuf,
    /// The fidelity to score at; absent (full) in a request of a run without low scores.
    #[serde(default, skip_serializing_if = "is_full")]
    pub fidelity: Fidelity,
}

fn is_full(f: &Fidelity) -> bool {
    f.is_full()
}

/// A policy's validation scores as a worker measured them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplyScore {
    pub accuracy: f64,
    pub robust_accuracy: f64,
    /// The masking checks that fired, as episodes.csv's `masking` column writes them.
    pub masking: String,
    /// episodes.csv's `broken_by`, absent when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broken_by: Option<String>,
}

/// A worker's answer to a request: `work/K.score.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub episode: usize,
    pub policy: String,
    /// None when the policy's fine-tune failed (diverged).
    pub score: Option<ReplyScore>,
    /// The worker's wall time for the request, start-up included.
    pub seconds: f64,
}

/// `RUN/work/K.json`.
pub fn request_path(run: &Path, episode: usize) -> PathBuf {
    run.join(DIR).join(format!("{episode}.json"))
}

/// The reply beside a request: `work/K.json` → `work/K.score.json`.
pub fn reply_path(request: &Path) -> PathBuf {
    request.with_extension("score.json")
}

/// `RUN/work/K.log`, the worker's stderr.
pub fn log_path(run: &Path, episode: usize) -> PathBuf {
    run.join(DIR).join(format!("{episode}.log"))
}

/// `RUN/work/K.sbatch`, the Slurm job's script.
pub fn script_path(run: &Path, episode: usize) -> PathBuf {
    run.join(DIR).join(format!("{episode}.sbatch"))
}

/// A request as written: where, and the SHA-256 of its bytes (hex) that its worker checks.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    pub path: PathBuf,
    pub sha256: String,
}

/// Writes `request` (creating `work/`).
pub fn write_request(run: &Path, request: &Request) -> Result<Written, RunDirError> {
    create_dir(&run.join(DIR))?;
    let path = request_path(run, request.episode);
    let text = serde_json::to_string_pretty(request).map_err(|source| RunDirError::Json {
        path: path.clone(),
        source,
    })?;
    write_atomic(&path, text.as_bytes())?;
    Ok(Written {
        sha256: hex_sha256(text.as_bytes()),
        path,
    })
}

/// The request at `path`, if it is one of the run in `run` (`RUN/work/K.json`, both paths as
/// given or both absolute, neither the file nor `work/` a link) and its bytes hash to `sha256`.
pub fn read_request(run: &Path, path: &Path, sha256: &str) -> Result<Request, RunDirError> {
    let named = (path.file_name().and_then(|n| n.to_str()))
        .and_then(|n| n.strip_suffix(".json"))
        .filter(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|k| k.parse().ok());
    if named.is_none_or(|k| request_path(run, k) != path) {
        return Err(RunDirError::NotARequest {
            path: path.to_path_buf(),
            run: run.to_path_buf(),
        });
    }
    let dir = run.join(DIR);
    if std::fs::symlink_metadata(&dir).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(RunDirError::Symlink { path: dir });
    }
    let io = |source| RunDirError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = Vec::new();
    open_no_follow_or(path, std::fs::OpenOptions::new().read(true), io)?
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if hex_sha256(&bytes) != sha256 {
        return Err(RunDirError::RequestChanged {
            path: path.to_path_buf(),
        });
    }
    serde_json::from_slice(&bytes).map_err(|source| RunDirError::Json {
        path: path.to_path_buf(),
        source,
    })
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writes the reply to the request at `request`.
pub fn write_reply(request: &Path, reply: &Reply) -> Result<(), RunDirError> {
    write_json(&reply_path(request), reply)
}

/// The reply to `request`, or None while there is none.
pub fn read_reply(request: &Path) -> Result<Option<Reply>, RunDirError> {
    let path = reply_path(request);
    match path.exists() {
        true => read_json(&path, "written by a worker").map(Some),
        false => Ok(None),
    }
}

/// Creates (or empties) the worker's stderr file of episode K (with Slurm, the job's output
/// file, which the job then appends to: created here, it is a file of the tool's, not a link).
pub fn open_log(run: &Path, episode: usize) -> Result<File, RunDirError> {
    let mut options = OpenOptions::new();
    open_no_follow(
        &log_path(run, episode),
        options.create(true).write(true).truncate(true),
    )
}

/// What a file of `work/` is: the episode it belongs to and whether it is a reply; None for a
/// name the tool does not write there.
fn owned(name: &str) -> Option<(usize, bool)> {
    let (k, reply) = match name.strip_suffix(".score.json") {
        Some(k) => (k, true),
        None => (
            [".json", ".log", ".sbatch"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))?,
            false,
        ),
    };
    let digits = !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| k.parse().ok().map(|k| (k, reply))).flatten()
}

/// Removes the work files of a killed run or of logged episodes: every request, log and
/// temporary file, and every reply but those of episodes from `keep` on (a resume's unlogged
/// episodes; None keeps none). Files the tool does not write are left alone. Only the lock
/// holder calls it.
pub fn clean(run: &Path, keep: Option<usize>) -> Result<(), RunDirError> {
    let dir = run.join(DIR);
    if !dir.is_dir() || dir.is_symlink() {
        return Ok(());
    }
    remove_temporaries(&dir)?;
    let io = |source| RunDirError::Io {
        path: dir.clone(),
        source,
    };
    for entry in std::fs::read_dir(&dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let Some((k, reply)) = entry.file_name().to_str().and_then(owned) else {
            continue;
        };
        if reply && keep.is_some_and(|from| k >= from) {
            continue;
        }
        remove(&entry.path())?;
    }
    Ok(())
}

/// Removes episode K's request, reply, log and script, once its line is logged.
pub fn finish(run: &Path, episode: usize) -> Result<(), RunDirError> {
    let request = request_path(run, episode);
    let (log, script) = (log_path(run, episode), script_path(run, episode));
    for path in [reply_path(&request), log, script, request] {
        remove(&path)?;
    }
    Ok(())
}

/// Removes `work/` itself when nothing is left in it (the end of a run).
pub fn remove_if_empty(run: &Path) {
    // Fails, harmlessly, when it holds anything (or is absent).
    let _ = std::fs::remove_dir(run.join(DIR));
}

/// Removes a file (a link as a link); an absent one is fine.
fn remove(path: &Path) -> Result<(), RunDirError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(RunDirError::Write {
            path: path.to_path_buf(),
            source: e,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_request_and_its_reply_round_trip() {
        let run = tempfile::tempdir().unwrap();
        let request = Request {
            episode: 7,
            policy: "8/8,2/4".into(),
            cwd: "/somewhere".into(),
            cache: "/somewhere/runs".into(),
            fidelity: Fidelity::Low,
        };
        let written = write_request(run.path(), &request).unwrap();
        let path = written.path;
        assert_eq!(path, run.path().join("work/7.json"));
        assert_eq!(
            read_request(run.path(), &path, &written.sha256).unwrap(),
            request
        );
        assert_eq!(read_reply(&path).unwrap(), None);
        let reply = Reply {
            episode: 7,
            policy: request.policy.clone(),
            score: Some(ReplyScore {
                accuracy: 0.1 + 0.2,
                robust_accuracy: 2.0 / 3.0,
                masking: "none".into(),
                broken_by: None,
            }),
            seconds: 1.5,
        };
        write_reply(&path, &reply).unwrap();
        assert_eq!(read_reply(&path).unwrap(), Some(reply), "exact floats back");
    }

    fn request(run: &Path, episode: usize) -> Written {
        let request = Request {
            episode,
            policy: "8/8".into(),
            cwd: "/w".into(),
            cache: "/w/runs".into(),
            fidelity: Fidelity::Low,
        };
        write_request(run, &request).unwrap()
    }

    /// Guards a worker against scoring a file the search did not write for it: a path outside
    /// its run's `work/` (or through `..`) would have it read any JSON and write its reply
    /// beside it.
    #[test]
    fn a_request_outside_the_run_s_work_directory_is_refused() {
        let run = tempfile::tempdir().unwrap();
        let w = request(run.path(), 3);
        let other = tempfile::tempdir().unwrap();
        let elsewhere = other.path().join("3.json");
        std::fs::copy(&w.path, &elsewhere).unwrap();
        let dotdot = run.path().join("work/../work/3.json");
        let renamed = run.path().join("work/x3.json");
        std::fs::copy(&w.path, &renamed).unwrap();
        for bad in [elsewhere, dotdot, renamed] {
            let e = read_request(run.path(), &bad, &w.sha256).unwrap_err();
            assert!(matches!(e, RunDirError::NotARequest { .. }), "{bad:?}: {e}");
        }
    }

    /// Guards a worker that starts late (a queued Slurm job): a request edited after the search
    /// wrote it (another policy, another `cwd` or `cache`) is not scored.
    #[test]
    fn a_request_changed_after_it_was_written_is_refused() {
        let run = tempfile::tempdir().unwrap();
        let w = request(run.path(), 3);
        let text = std::fs::read_to_string(&w.path).unwrap();
        std::fs::write(&w.path, text.replace("/w/runs", "/tmp/other")).unwrap();
        let e = read_request(run.path(), &w.path, &w.sha256).unwrap_err();
        assert!(matches!(e, RunDirError::RequestChanged { .. }), "{e}");
    }

    #[test]
    fn a_request_through_a_link_is_refused() {
        let run = tempfile::tempdir().unwrap();
        let w = request(run.path(), 3);
        let real = run.path().join("real.json");
        std::fs::rename(&w.path, &real).unwrap();
        std::os::unix::fs::symlink(&real, &w.path).unwrap();
        let e = read_request(run.path(), &w.path, &w.sha256).unwrap_err();
        assert!(matches!(e, RunDirError::Symlink { .. }), "{e}");
    }

    /// Guards the start of a run: a killed run's requests, logs and temporaries go, replies
    /// only where no resume can use them, and a file the tool does not write stays.
    #[test]
    fn cleaning_keeps_unlogged_replies_and_files_not_ours() {
        let run = tempfile::tempdir().unwrap();
        let work = run.path().join(DIR);
        std::fs::create_dir(&work).unwrap();
        let files = [
            "3.json",
            "3.score.json",
            "3.log",
            "3.sbatch",
            "4.json",
            "4.score.json",
            ".4.score.json.bitsearch.tmp-99",
            "notes.txt",
            "x.json",
        ];
        for f in files {
            std::fs::write(work.join(f), "{}").unwrap();
        }
        clean(run.path(), Some(4)).unwrap();
        assert_eq!(names(&work), ["4.score.json", "notes.txt", "x.json"]);
        clean(run.path(), None).unwrap();
        assert_eq!(names(&work), ["notes.txt", "x.json"]);
        finish(run.path(), 9).unwrap();
        remove_if_empty(run.path());
        assert!(work.is_dir(), "a directory holding a user's file stays");
    }
}
