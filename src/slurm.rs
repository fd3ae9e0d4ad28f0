//! Slurm as bitsearch uses it: the top of a job script (every value quoted, for bash and for
//! sbatch's own reading of `#SBATCH` lines), the paths such a script can hold, submitting it
//! with `sbatch --parsable` (returning the job id, or following the job to its end with
//! `--wait`), and a guard that cancels a job (`scancel`) when the process waiting for it dies
//! first. The sweep's job array and the search's worker jobs are both written and submitted
//! through here.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    #[error("{what} {path:?} cannot go into an sbatch script: it {rule}")]
    ScriptPath {
        what: &'static str,
        path: PathBuf,
        rule: &'static str,
    },
    #[error("cannot run sbatch (is Slurm installed and SLURM_CONF set?): {source}")]
    NoSbatch { source: std::io::Error },
    #[error("sbatch {} failed: {stderr}", script.display())]
    Refused { script: PathBuf, stderr: String },
    #[error("sbatch {} printed {stdout:?}, not a job id", script.display())]
    NoJobId { script: PathBuf, stdout: String },
    #[error("cannot start the guard that cancels Slurm job {job} if this process dies: {source}")]
    Guard { job: u32, source: std::io::Error },
}

/// A value for a bash script, single-quoted.
pub fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// A value for an `#SBATCH` line, double-quoted. sbatch reads these lines itself, not through
/// bash (`_get_argument` in Slurm's src/sbatch/opt.c): quotes group characters, a backslash
/// escapes the next one, an unquoted `#` starts a comment, and a line ends the option. So `"`
/// and `\` are escaped and the whole value quoted; a line break cannot be expressed at all,
/// which is why `check_script_path` refuses control characters before any script is written.
fn sbatch_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// `path` can be written into an sbatch script: valid UTF-8 (written as given), no control
/// character (a newline would end the `#SBATCH` line and start a shell command), and no
/// backslash (in `--output` it turns off Slurm's `%a` filename patterns). Returns its text.
pub fn check_script_path<'a>(what: &'static str, path: &'a Path) -> Result<&'a str, SlurmError> {
    let refuse = |rule: &'static str| SlurmError::ScriptPath {
        what,
        path: path.to_path_buf(),
        rule,
    };
    let text = path.to_str().ok_or_else(|| refuse("must be valid UTF-8"))?;
    if text.chars().any(char::is_control) {
        return Err(refuse(
            "must not hold a control character (a newline, a tab)",
        ));
    }
    if text.contains('\\') {
        return Err(refuse("must not hold a backslash"));
    }
    Ok(text)
}

/// A path for `--output` naming exactly that file: `%` starts a filename pattern there (`%a`:
/// the array task), so a literal one is doubled.
pub fn literal_output(path: &str) -> String {
    path.replace('%', "%%")
}

/// The top every script shares: the shell, the job's name, its working directory and its
/// output file (`output` as `--output` reads it: see `literal_output`), appended to so a
/// requeued job keeps what it wrote before and a file created beforehand is not replaced.
pub fn header(name: &str, cwd: &str, output: &str) -> String {
    format!(
        "#!/bin/bash\n\
         #SBATCH --job-name={name}\n\
         #SBATCH --chdir={}\n\
         #SBATCH --output={}\n\
         #SBATCH --open-mode=append\n",
        sbatch_quote(cwd),
        sbatch_quote(output)
    )
}

/// `sbatch --parsable ARGS SCRIPT`, to be run (`submit`) or followed (`submit_and_wait`).
pub fn sbatch_command(args: &[String], script: &Path) -> Command {
    let mut cmd = Command::new("sbatch");
    cmd.arg("--parsable").args(args).arg(script);
    cmd
}

/// Whether sbatch runs and finds its configuration (`sbatch --version` reads slurm.conf): a
/// command that will submit jobs checks it before any long work.
pub fn check_sbatch() -> Result<(), SlurmError> {
    let out = Command::new("sbatch")
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|source| SlurmError::NoSbatch { source })?;
    match out.status.success() {
        true => Ok(()),
        false => Err(SlurmError::Refused {
            script: PathBuf::from("--version"),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        }),
    }
}

/// Submits `script` with `sbatch_command(args, script)`; returns the job id.
pub fn submit(args: &[String], script: &Path) -> Result<u32, SlurmError> {
    let out = sbatch_command(args, script)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| SlurmError::NoSbatch { source })?;
    if !out.status.success() {
        return Err(SlurmError::Refused {
            script: script.to_path_buf(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    job_id(&String::from_utf8_lossy(&out.stdout), script)
}

/// A job followed to its end by `sbatch --wait`.
pub struct Waiting {
    pub job: u32,
    /// `sbatch --wait`: it exits when the job ends, with the job's exit code (1 if a signal
    /// ended it).
    pub sbatch: Child,
    /// Kept open to its end: sbatch must not meet a closed pipe while it waits.
    _stdout: BufReader<ChildStdout>,
}

/// Spawns `cmd` (a `sbatch_command` given `--wait`) and reads the job id it prints as soon as
/// the job is queued; sbatch goes on waiting for the job's end.
pub fn submit_and_wait(mut cmd: Command, script: &Path) -> Result<Waiting, SlurmError> {
    let mut sbatch = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| SlurmError::NoSbatch { source })?;
    let mut stdout = BufReader::new(sbatch.stdout.take().ok_or_else(|| SlurmError::NoJobId {
        script: script.to_path_buf(),
        stdout: String::new(),
    })?);
    let mut line = String::new();
    // Nothing read (or an unreadable pipe): sbatch refused the job and exited.
    if stdout.read_line(&mut line).unwrap_or(0) == 0 {
        let mut stderr = String::new();
        if let Some(mut e) = sbatch.stderr.take() {
            let _ = e.read_to_string(&mut stderr);
        }
        let _ = sbatch.wait();
        return Err(SlurmError::Refused {
            script: script.to_path_buf(),
            stderr: stderr.trim().to_string(),
        });
    }
    let job = job_id(&line, script)?;
    Ok(Waiting {
        job,
        sbatch,
        _stdout: stdout,
    })
}

/// The job id of `--parsable`'s `ID` or `ID;CLUSTER` (Slurm's job ids are 32-bit).
fn job_id(stdout: &str, script: &Path) -> Result<u32, SlurmError> {
    let id = stdout.trim().split(';').next().unwrap_or_default();
    // `parse` alone would take a leading `+`.
    let digits = !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit());
    digits
        .then(|| id.parse().ok())
        .flatten()
        .ok_or_else(|| SlurmError::NoJobId {
            script: script.to_path_buf(),
            stdout: stdout.trim().to_string(),
        })
}

/// Cancels a job unless released: a shell in a process group of its own (so a Ctrl-C sent to
/// this process's group does not end it too) reads a pipe that only this process writes. A
/// line on it (`release`) ends the shell; the pipe closing without one (this process died, by
/// any signal, or dropped the guard on an error) makes it run `scancel JOB`.
pub struct CancelGuard {
    shell: Child,
}

impl CancelGuard {
    pub fn new(job: u32) -> Result<Self, SlurmError> {
        let shell = Command::new("/bin/sh")
            .args([
                "-c",
                r#"read -r line || exec scancel "$1""#,
                "bitsearch-guard",
            ])
            .arg(job.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|source| SlurmError::Guard { job, source })?;
        Ok(CancelGuard { shell })
    }

    /// The job ended (or no longer needs cancelling): the shell exits without scancel.
    pub fn release(mut self) {
        if let Some(mut pipe) = self.shell.stdin.take() {
            let _ = pipe.write_all(b"done\n");
        }
    }
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        // Closes the pipe (unless `release` wrote its line first), then reaps the shell.
        drop(self.shell.stdin.take());
        let _ = self.shell.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_for_bash_and_for_sbatch() {
        assert_eq!(quote("it's"), r"'it'\''s'");
        let h = header("n", "/w d", &literal_output("/s/\"100%\" #1/x.out"));
        assert_eq!(
            h,
            "#!/bin/bash\n#SBATCH --job-name=n\n#SBATCH --chdir=\"/w d\"\n\
             #SBATCH --output=\"/s/\\\"100%%\\\" #1/x.out\"\n#SBATCH --open-mode=append\n"
        );
    }

    /// Guards against a path with a line break writing a shell command into a script.
    #[test]
    fn a_script_path_with_a_control_character_or_backslash_is_refused() {
        for bad in ["/s\ntouch /tmp/pwned\n", "/s\rx", "/s\tx", "/s\\x"] {
            let e = check_script_path("the run directory", Path::new(bad)).unwrap_err();
            assert!(e.to_string().starts_with("the run directory "), "{e}");
        }
        assert_eq!(
            check_script_path("x", Path::new("/a b/c")).unwrap(),
            "/a b/c"
        );
    }

    #[test]
    fn a_job_id_is_digits_before_the_cluster() {
        let s = Path::new("s.sbatch");
        assert_eq!(job_id("123\n", s).unwrap(), 123);
        assert_eq!(job_id("45;cluster\n", s).unwrap(), 45);
        for bad in [
            "",
            "Submitted batch job 3",
            "3 4",
            "-1",
            "+1",
            "99999999999",
        ] {
            assert!(job_id(bad, s).is_err(), "{bad:?}");
        }
    }
}
