//! Sweeps: the cross product of experiments × device profiles × agents × seeds, one ordinary
//! search run directory per cell, described by `DIR/sweep.json`. This module owns the plan, its
//! file, each cell's end record and status, and the Slurm job-array script; running a cell is
//! `bitsearch search` (the binary runs cells itself, locally or as Slurm array tasks).

mod slurm;
mod status;

pub use slurm::{array_script, baseline_script, SlurmJobs, Submission};
pub use status::{cell_states, write_cell_end, CellEnd, CellState, CellStatus};

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::rundir::{first_difference, write_json};

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    RunDir(Box<crate::rundir::RunDirError>),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a sweep file: {source}", path.display())]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("a sweep needs at least one {what}")]
    Empty { what: &'static str },
    #[error(
        "cells {a} and {b} would share the run directory {}: a run is named by the experiment's \
         file name, the agent's kind and the profile's `name`; give them different names",
        run.display()
    )]
    SameRun { a: String, b: String, run: PathBuf },
    #[error(
        "{}: the file name without `.toml` names the experiment's cell directories, so it must \
         be a plain name (not `.` or `..`)",
        path.display()
    )]
    BadExperimentName { path: PathBuf },
    #[error("{} already holds a sweep: pass --resume to continue it, or choose another --out", dir.display())]
    Exists { dir: PathBuf },
    #[error("{}: cannot resume: {what} differs from the sweep there ({old} then, {new} now)", dir.display())]
    Changed {
        dir: PathBuf,
        what: String,
        old: String,
        new: String,
    },
    #[error(transparent)]
    Slurm(Box<crate::slurm::SlurmError>),
    #[error("{}: cell {index}: {detail}", path.display())]
    BadCell {
        path: PathBuf,
        index: usize,
        detail: String,
    },
    #[error("{}: the sweep has {cells} cells, no cell {index}", dir.display())]
    NoCell {
        dir: PathBuf,
        index: usize,
        cells: usize,
    },
}

crate::errors::boxed_from!(
    SweepError;
    RunDir: crate::rundir::RunDirError,
    Slurm: crate::slurm::SlurmError
);

/// One cell: the search it runs and the run directory it writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cell {
    pub index: usize,
    pub experiment: PathBuf,
    pub profile: String,
    pub agent: String,
    pub seed: u64,
    /// The search's `--out`, relative to the sweep directory: `STEM/sSEED` (the search adds
    /// `AGENT-PROFILE`), so every seed's runs sit side by side for `compare`.
    pub out: PathBuf,
    /// The run directory, relative to the sweep directory: `out/AGENT-PROFILE`.
    pub run: PathBuf,
}

/// A profile or agent as given (a name or a file) and the name the search gives its run
/// directory: the profile's `name`, the agent's kind (`bitsearch search` names a run
/// `AGENT-PROFILE` by these, not by the file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub given: String,
    pub name: String,
}

impl Choice {
    pub fn new(given: &str, name: &str) -> Choice {
        Choice {
            given: given.to_string(),
            name: name.to_string(),
        }
    }
}

/// sweep.json: what was asked for and the cells it makes, in array-index order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub experiments: Vec<PathBuf>,
    pub profiles: Vec<String>,
    pub agents: Vec<String>,
    pub seeds: Vec<u64>,
    /// Episodes per search (`None`: each experiment's `search.episodes`).
    pub episodes: Option<usize>,
    /// Where the FP32 baselines (and the score cache beside them) live, shared by every cell.
    pub cache: PathBuf,
    /// Each cell's batch size (`search --workers`): `None` scores one policy at a time. Left
    /// out of sweep.json when `None`, so sweeps written before it read and resume as they were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<NonZeroUsize>,
    pub cells: Vec<Cell>,
}

impl Plan {
    pub const FILE: &'static str = "sweep.json";

    /// The cross product, experiment-major then seed, agent and profile (the order the study
    /// scripts loop in). `cache` should be absolute: cells may run from another directory.
    pub fn new(
        experiments: Vec<PathBuf>,
        profiles: Vec<Choice>,
        agents: Vec<Choice>,
        seeds: Vec<u64>,
        episodes: Option<usize>,
        cache: PathBuf,
    ) -> Result<Plan, SweepError> {
        for (what, n) in [
            ("--experiment", experiments.len()),
            ("--profile", profiles.len()),
            ("--agent", agents.len()),
            ("--seed", seeds.len()),
        ] {
            if n == 0 {
                return Err(SweepError::Empty { what });
            }
        }
        let mut cells: Vec<Cell> = Vec::new();
        for experiment in &experiments {
            for &seed in &seeds {
                for agent in &agents {
                    for profile in &profiles {
                        let out = Path::new(&stem(experiment)).join(format!("s{seed}"));
                        if !under(&out) {
                            return Err(SweepError::BadExperimentName {
                                path: experiment.clone(),
                            });
                        }
                        let run = out.join(format!("{}-{}", agent.name, profile.name));
                        let cell = Cell {
                            index: cells.len(),
                            experiment: experiment.clone(),
                            profile: profile.given.clone(),
                            agent: agent.given.clone(),
                            seed,
                            out,
                            run,
                        };
                        if let Some(twin) = cells.iter().find(|c| c.run == cell.run) {
                            return Err(SweepError::SameRun {
                                a: twin.describe(),
                                b: cell.describe(),
                                run: cell.run,
                            });
                        }
                        cells.push(cell);
                    }
                }
            }
        }
        let given = |v: Vec<Choice>| v.into_iter().map(|c| c.given).collect();
        Ok(Plan {
            experiments,
            profiles: given(profiles),
            agents: given(agents),
            seeds,
            episodes,
            cache,
            workers: None,
            cells,
        })
    }

    /// Reads DIR/sweep.json. Each cell's `out` and `run` must stay under DIR (relative, no
    /// `..`, `run` inside `out`) and its index must be its place: the file is read back by every
    /// cell's runner, and a hand-edited or planted one must not steer a search elsewhere.
    pub fn read(dir: &Path) -> Result<Plan, SweepError> {
        let path = dir.join(Self::FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| SweepError::Io {
            path: path.clone(),
            source,
        })?;
        let plan: Plan = serde_json::from_str(&text).map_err(|source| SweepError::Json {
            path: path.clone(),
            source,
        })?;
        for (i, cell) in plan.cells.iter().enumerate() {
            let bad = |detail: String| SweepError::BadCell {
                path: path.clone(),
                index: i,
                detail,
            };
            if cell.index != i {
                return Err(bad(format!("`index` is {}, not its place {i}", cell.index)));
            }
            for (field, p) in [("out", &cell.out), ("run", &cell.run)] {
                if !under(p) {
                    return Err(bad(format!(
                        "`{field}` must be a relative path inside the sweep directory (no `..`), \
                         got {p:?}"
                    )));
                }
            }
            if !cell.run.starts_with(&cell.out) || cell.run == cell.out {
                return Err(bad(format!(
                    "`run` {:?} must lie inside `out` {:?}",
                    cell.run, cell.out
                )));
            }
        }
        Ok(plan)
    }

    /// Writes DIR/sweep.json for a new sweep, or checks that a resumed one asks for the same
    /// cells (a changed plan would mix two sweeps in one directory).
    pub fn create_or_check(&self, dir: &Path, resume: bool) -> Result<(), SweepError> {
        let path = dir.join(Self::FILE);
        if !path.exists() {
            std::fs::create_dir_all(dir).map_err(|source| SweepError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
            return Ok(write_json(&path, self)?);
        }
        if !resume {
            return Err(SweepError::Exists {
                dir: dir.to_path_buf(),
            });
        }
        let json = |p: &Plan| serde_json::to_value(p).unwrap_or_default();
        let (old, new) = (json(&Plan::read(dir)?), json(self));
        match first_difference("sweep", Some(&old), Some(&new)) {
            Some((what, old, new)) => Err(SweepError::Changed {
                dir: dir.to_path_buf(),
                what,
                old,
                new,
            }),
            None => Ok(()),
        }
    }

    /// Cell `index`, or an error naming the sweep.
    pub fn cell(&self, dir: &Path, index: usize) -> Result<&Cell, SweepError> {
        self.cells.get(index).ok_or(SweepError::NoCell {
            dir: dir.to_path_buf(),
            index,
            cells: self.cells.len(),
        })
    }
}

impl Cell {
    /// `N (EXPERIMENT, seed S, AGENT on PROFILE)`, as given, for errors.
    fn describe(&self) -> String {
        format!(
            "{} ({}, seed {}, {} on {})",
            self.index,
            self.experiment.display(),
            self.seed,
            self.agent,
            self.profile
        )
    }
}

/// Whether `path` is relative and made of plain names only (no `..`, `.`, root or prefix), so
/// joined to a directory it stays inside it.
fn under(path: &Path) -> bool {
    let mut parts = path.components().peekable();
    parts.peek().is_some() && parts.all(|c| matches!(c, std::path::Component::Normal(_)))
}

/// An experiment's cell-directory name: its file name without `.toml`.
fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Run directories to compare: each directory that holds a sweep becomes its cells' run
/// directories that have logged an episode (so a partial sweep compares what it has); any other
/// directory stays as given. The second list names the cells left out.
pub fn expand_runs(dirs: &[PathBuf]) -> Result<(Vec<PathBuf>, Vec<PathBuf>), SweepError> {
    let (mut runs, mut skipped) = (Vec::new(), Vec::new());
    for dir in dirs {
        if !dir.join(Plan::FILE).is_file() {
            runs.push(dir.clone());
            continue;
        }
        for cell in &Plan::read(dir)?.cells {
            let run = dir.join(&cell.run);
            match status::logged_episodes(&run) {
                Some(n) if n > 0 => runs.push(run),
                _ => skipped.push(run),
            }
        }
    }
    Ok((runs, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(experiments: &[&str]) -> Result<Plan, SweepError> {
        Plan::new(
            experiments.iter().map(PathBuf::from).collect(),
            vec![
                Choice::new("bitfusion", "bitfusion"),
                Choice::new("hardware-profiles/t4.toml", "t4"),
            ],
            vec![Choice::new("agents/mbrl-long.toml", "mbrl")],
            vec![0, 1],
            Some(3),
            PathBuf::from("/cache"),
        )
    }

    #[test]
    fn cells_are_the_cross_product_with_one_run_directory_each() {
        let p = plan(&["experiments/lenet5-mnist.toml"]).unwrap();
        let runs: Vec<String> = (p.cells.iter())
            .map(|c| c.run.display().to_string())
            .collect();
        assert_eq!(
            runs,
            [
                "lenet5-mnist/s0/mbrl-bitfusion",
                "lenet5-mnist/s0/mbrl-t4",
                "lenet5-mnist/s1/mbrl-bitfusion",
                "lenet5-mnist/s1/mbrl-t4",
            ]
        );
        assert!(p.cells.iter().enumerate().all(|(i, c)| c.index == i));
        assert_eq!(p.cells[3].profile, "hardware-profiles/t4.toml");
        // the run is named as the search names it (the agent's kind), the cell keeps the file
        assert_eq!(p.cells[3].agent, "agents/mbrl-long.toml");
        assert_eq!(p.agents, ["agents/mbrl-long.toml"]);
    }

    /// Two profile files with one `name` (or two agent files of one kind) would make the search
    /// write two cells into one run directory: refused before anything is written.
    #[test]
    fn two_choices_the_search_names_alike_are_refused() {
        let e = Plan::new(
            vec![PathBuf::from("e.toml")],
            vec![
                Choice::new("bitfusion", "bitfusion"),
                Choice::new("boards/fusion-copy.toml", "bitfusion"),
            ],
            vec![Choice::new("mbrl", "mbrl")],
            vec![0],
            None,
            PathBuf::from("/cache"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("boards/fusion-copy.toml")
                && e.contains("mbrl on bitfusion")
                && e.contains("e/s0/mbrl-bitfusion"),
            "{e}"
        );
    }

    #[test]
    fn two_experiments_with_one_file_name_are_refused() {
        let e = plan(&["a/e.toml", "b/e.toml"]).unwrap_err().to_string();
        assert!(e.contains("a/e.toml") && e.contains("b/e.toml"), "{e}");
        let e = Plan::new(vec![], vec![], vec![], vec![], None, PathBuf::new());
        assert!(e.unwrap_err().to_string().contains("--experiment"));
    }

    #[test]
    fn a_resumed_sweep_must_ask_for_the_same_cells() {
        let dir = tempfile::tempdir().unwrap();
        let p = plan(&["e.toml"]).unwrap();
        p.create_or_check(dir.path(), false).unwrap();
        let again = p.create_or_check(dir.path(), false).unwrap_err();
        assert!(again.to_string().contains("--resume"), "{again}");
        p.create_or_check(dir.path(), true).unwrap();
        let mut other = p.clone();
        other.episodes = Some(4);
        let e = other.create_or_check(dir.path(), true).unwrap_err();
        assert!(e.to_string().contains("sweep.episodes"), "{e}");
        assert_eq!(Plan::read(dir.path()).unwrap(), p);
    }
}
