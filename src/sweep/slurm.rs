//! The Slurm side of a sweep: the job-array script (one task per cell, each running its cell
//! with `--resume`, so a requeued or preempted task goes on where it stopped), the baseline job
//! the array waits for, and the record of what was submitted (`slurm.json`).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::SweepError;
use crate::slurm::{self, check_script_path, literal_output, quote};

/// slurm.json: the jobs each submission made, oldest first (a resumed sweep adds one).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SlurmJobs {
    pub submissions: Vec<Submission>,
}

/// One `bitsearch sweep --slurm`: the baseline job, the array job and the cells it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Submission {
    pub baseline_job: String,
    pub array_job: String,
    pub cells: Vec<usize>,
}

impl SlurmJobs {
    pub const FILE: &'static str = "slurm.json";

    /// slurm.json of `dir`, or no submissions yet.
    pub fn read(dir: &Path) -> SlurmJobs {
        std::fs::read_to_string(dir.join(Self::FILE))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    /// The array job that last ran `cell` (its task is `JOB_CELL`), if any.
    pub fn array_job_of(&self, cell: usize) -> Option<&str> {
        (self.submissions.iter().rev())
            .find(|s| s.cells.contains(&cell))
            .map(|s| s.array_job.as_str())
    }
}

/// The shared top of both scripts, logging to DIR/logs/LOG (`LOG` may hold `%a`, the task).
fn header(name: &str, dir: &str, log: &str, cwd: &str) -> String {
    slurm::header(name, cwd, &format!("{}/logs/{log}", literal_output(dir)))
}

/// The three paths of a script, checked by `check_script_path`, as text.
fn script_paths<'a>(
    exe: &'a Path,
    dir: &'a Path,
    cwd: &'a Path,
) -> Result<[&'a str; 3], SweepError> {
    Ok([
        check_script_path("the bitsearch executable", exe)?,
        check_script_path("the sweep directory (--out)", dir)?,
        check_script_path("the current directory", cwd)?,
    ])
}

/// DIR/sweep.sbatch: a job array whose task N runs cell N (`--array` is given at submission,
/// so a resume can submit only the cells left). Requeued tasks (`--requeue`) append to their
/// log; the runner is the task's last command (`exec`), so a cancel reaches it directly and a
/// partly written episode is never mistaken for a finished one. candle's threads follow the
/// task's CPUs.
pub fn array_script(exe: &Path, dir: &Path, cwd: &Path) -> Result<String, SweepError> {
    let [exe, dir, cwd] = script_paths(exe, dir, cwd)?;
    Ok(format!(
        "{}#SBATCH --requeue\n\
         export RAYON_NUM_THREADS=\"${{SLURM_CPUS_PER_TASK:-1}}\"\n\
         export CANDLE_NUM_THREADS=\"$RAYON_NUM_THREADS\"\n\
         exec {} sweep --quiet --cell \"$SLURM_ARRAY_TASK_ID\" --out {}\n",
        header("bitsearch-sweep", dir, "cell-%a.out", cwd),
        quote(exe),
        quote(dir)
    ))
}

/// DIR/baseline.sbatch: trains (or finds cached) every experiment's FP32 baseline once, before
/// the array starts (it is submitted first and the array depends on it), so cells never train
/// the same baseline side by side.
pub fn baseline_script(exe: &Path, dir: &Path, cwd: &Path) -> Result<String, SweepError> {
    let [exe, dir, cwd] = script_paths(exe, dir, cwd)?;
    Ok(format!(
        "{}export RAYON_NUM_THREADS=\"${{SLURM_CPUS_PER_TASK:-1}}\"\n\
         export CANDLE_NUM_THREADS=\"$RAYON_NUM_THREADS\"\n\
         exec {} sweep --quiet --baselines --out {}\n",
        header("bitsearch-baselines", dir, "baseline.out", cwd),
        quote(exe),
        quote(dir)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_array_script_runs_its_task_s_cell_from_the_submit_directory() {
        let s = array_script(
            Path::new("/b/bitsearch"),
            Path::new("/s w/it's \"100%\" #1"),
            Path::new("/w d"),
        )
        .unwrap();
        assert!(s.starts_with("#!/bin/bash\n#SBATCH --job-name=bitsearch-sweep\n"));
        assert!(s.contains("#SBATCH --chdir=\"/w d\"\n") && s.contains("#SBATCH --requeue\n"));
        // Quoted for sbatch's parser (`"` escaped, `#` inside quotes), `%` doubled for
        // --output's patterns.
        assert!(
            s.contains("#SBATCH --output=\"/s w/it's \\\"100%%\\\" #1/logs/cell-%a.out\"\n"),
            "{s}"
        );
        assert!(s.ends_with(
            "exec '/b/bitsearch' sweep --quiet --cell \"$SLURM_ARRAY_TASK_ID\" \
             --out '/s w/it'\\''s \"100%\" #1'\n"
        ));
        let b = baseline_script(Path::new("/b/bitsearch"), Path::new("/d"), Path::new("/w"));
        let b = b.unwrap();
        assert!(b.contains("sweep --quiet --baselines --out '/d'") && !b.contains("--requeue"));
    }

    /// Guards against a path with a line break writing a shell command into the script.
    #[test]
    fn a_path_with_a_control_character_or_backslash_is_refused() {
        let (exe, cwd) = (Path::new("/b/bitsearch"), Path::new("/w"));
        for bad in ["/s\ntouch /tmp/pwned\n", "/s\rx", "/s\tx", "/s\\x"] {
            let e = array_script(exe, Path::new(bad), cwd).unwrap_err();
            assert!(
                matches!(e, SweepError::Slurm(_)) && e.to_string().contains("(--out)"),
                "{e}"
            );
            assert!(baseline_script(exe, cwd, Path::new(bad)).is_err());
        }
    }

    #[test]
    fn the_last_submission_of_a_cell_names_its_array_job() {
        let jobs = SlurmJobs {
            submissions: vec![
                Submission {
                    baseline_job: "1".into(),
                    array_job: "2".into(),
                    cells: vec![0, 1, 2],
                },
                Submission {
                    baseline_job: "5".into(),
                    array_job: "6".into(),
                    cells: vec![1],
                },
            ],
        };
        assert_eq!(jobs.array_job_of(1), Some("6"));
        assert_eq!(jobs.array_job_of(2), Some("2"));
        assert_eq!(jobs.array_job_of(3), None);
    }
}
