//! Slurm as bitsearch uses it: the top of a job script (every value quoted, for bash and for
//! sbatch's own reading of `#SBATCH` lines), the paths such a script can hold, and submitting
//! it with `sbatch --parsable` (returning the job id). The sweep's scripts are written and
//! submitted through here.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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

/// `sbatch --parsable ARGS SCRIPT`.
pub fn sbatch_command(args: &[String], script: &Path) -> Command {
    let mut cmd = Command::new("sbatch");
    cmd.arg("--parsable").args(args).arg(script);
    cmd
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
