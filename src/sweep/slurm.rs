//! The Slurm side of a sweep: the job-array script (one task per cell, each running its cell
//! with `--resume`, so a requeued or preempted task goes on where it stopped), the baseline job
//! the array waits for, and the record of what was submitted (`slurm.json`).

use std::path::Path;

use serde::{Deserialize, Serialize};

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

/// A value for a bash script, single-quoted.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The shared top of both scripts: the shell, the working directory and the log file.
fn header(name: &str, dir: &Path, log: &str, cwd: &Path) -> String {
    let dir = dir.display().to_string();
    format!(
        "#!/bin/bash\n\
         #SBATCH --job-name={name}\n\
         #SBATCH --chdir={}\n\
         #SBATCH --output={}/logs/{log}\n\
         #SBATCH --open-mode=append\n",
        cwd.display(),
        dir
    )
}

/// DIR/sweep.sbatch: a job array whose task N runs cell N (`--array` is given at submission,
/// so a resume can submit only the cells left). Requeued tasks (`--requeue`) append to their
/// log; the runner is the task's last command (`exec`), so a cancel reaches it directly and a
/// partly written episode is never mistaken for a finished one. candle's threads follow the
/// task's CPUs.
pub fn array_script(exe: &Path, dir: &Path, cwd: &Path) -> String {
    format!(
        "{}#SBATCH --requeue\n\
         export RAYON_NUM_THREADS=\"${{SLURM_CPUS_PER_TASK:-1}}\"\n\
         export CANDLE_NUM_THREADS=\"$RAYON_NUM_THREADS\"\n\
         exec {} sweep --quiet --cell \"$SLURM_ARRAY_TASK_ID\" --out {}\n",
        header("bitsearch-sweep", dir, "cell-%a.out", cwd),
        quote(&exe.display().to_string()),
        quote(&dir.display().to_string())
    )
}

/// DIR/baseline.sbatch: trains (or finds cached) every experiment's FP32 baseline once, before
/// the array starts (it is submitted first and the array depends on it), so cells never train
/// the same baseline side by side.
pub fn baseline_script(exe: &Path, dir: &Path, cwd: &Path) -> String {
    format!(
        "{}export RAYON_NUM_THREADS=\"${{SLURM_CPUS_PER_TASK:-1}}\"\n\
         export CANDLE_NUM_THREADS=\"$RAYON_NUM_THREADS\"\n\
         exec {} sweep --quiet --baselines --out {}\n",
        header("bitsearch-baselines", dir, "baseline.out", cwd),
        quote(&exe.display().to_string()),
        quote(&dir.display().to_string())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_array_script_runs_its_task_s_cell_from_the_submit_directory() {
        let s = array_script(
            Path::new("/b/bitsearch"),
            Path::new("/s w/it's"),
            Path::new("/w"),
        );
        assert!(s.starts_with("#!/bin/bash\n#SBATCH --job-name=bitsearch-sweep\n"));
        assert!(s.contains("#SBATCH --chdir=/w\n") && s.contains("#SBATCH --requeue\n"));
        assert!(s.contains("--output=/s w/it's/logs/cell-%a.out"), "{s}");
        assert!(s.ends_with(
            "exec '/b/bitsearch' sweep --quiet --cell \"$SLURM_ARRAY_TASK_ID\" --out '/s w/it'\\''s'\n"
        ));
        let b = baseline_script(Path::new("/b/bitsearch"), Path::new("/d"), Path::new("/w"));
        assert!(b.contains("sweep --quiet --baselines --out '/d'") && !b.contains("--requeue"));
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
