//! Each cell's state, read from the sweep directory alone (so it works while Slurm runs the
//! cells elsewhere): its run directory's episodes.csv and lock, and the end record
//! `cells/N.json` its runner writes when the search returns.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Plan, SweepError};
use crate::rundir::{lock_holder, write_json, Holder};

/// What a cell's runner records when its search returns: done, or failed with the error. A
/// killed runner records nothing, which is how an interrupted cell is told from a failed one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellEnd {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A cell's state.
#[derive(Debug, Clone, PartialEq)]
pub enum CellState {
    /// No episode logged and nobody at work on it.
    NotStarted,
    /// A process holds its run directory's lock.
    Running(Holder),
    /// Its search finished.
    Done,
    /// Its search returned an error.
    Failed(String),
    /// Episodes logged, nobody running it, no end: killed or preempted; `--resume` goes on.
    Stopped,
}

/// A cell with its state and the episodes its episodes.csv holds.
#[derive(Debug, Clone, PartialEq)]
pub struct CellStatus {
    pub index: usize,
    pub run: PathBuf,
    pub state: CellState,
    pub episodes: usize,
}

fn end_path(dir: &Path, index: usize) -> PathBuf {
    dir.join("cells").join(format!("{index}.json"))
}

/// Records cell `index`'s end (`None`: removes it, as a runner does when it starts).
pub fn write_cell_end(dir: &Path, index: usize, end: Option<&CellEnd>) -> Result<(), SweepError> {
    let path = end_path(dir, index);
    let io = |source| SweepError::Io {
        path: path.clone(),
        source,
    };
    match end {
        Some(end) => {
            crate::rundir::create_dir(&dir.join("cells"))?;
            Ok(write_json(&path, end)?)
        }
        None => match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(e)),
            _ => Ok(()),
        },
    }
}

/// Whole lines in `run/episodes.csv` after its header; `None` without the file. (Counted, not
/// parsed: a status must not fail on the line a running search is appending.)
pub(super) fn logged_episodes(run: &Path) -> Option<usize> {
    let text = std::fs::read(run.join("episodes.csv")).ok()?;
    Some(
        text.iter()
            .filter(|&&b| b == b'\n')
            .count()
            .saturating_sub(1),
    )
}

/// The state of every cell of the sweep in `dir`, in index order.
pub fn cell_states(dir: &Path) -> Result<Vec<CellStatus>, SweepError> {
    let plan = Plan::read(dir)?;
    let mut out = Vec::with_capacity(plan.cells.len());
    for cell in &plan.cells {
        let run = dir.join(&cell.run);
        let episodes = logged_episodes(&run).unwrap_or(0);
        let end: Option<CellEnd> = std::fs::read_to_string(end_path(dir, cell.index))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        let state = match (lock_holder(&run), end) {
            (Some(holder), _) => CellState::Running(holder),
            (None, Some(CellEnd { ok: true, .. })) => CellState::Done,
            (None, Some(CellEnd { error, .. })) => {
                CellState::Failed(error.unwrap_or_else(|| "failed".into()))
            }
            (None, None) if episodes > 0 => CellState::Stopped,
            (None, None) => CellState::NotStarted,
        };
        out.push(CellStatus {
            index: cell.index,
            run: cell.run.clone(),
            state,
            episodes,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::Choice;

    #[test]
    fn states_follow_the_log_the_lock_and_the_end_record() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let plan = Plan::new(
            vec!["e.toml".into()],
            ["a", "b", "c", "d"].map(|p| Choice::new(p, p)).to_vec(),
            vec![Choice::new("random", "random")],
            vec![0],
            Some(3),
            "/cache".into(),
        )
        .unwrap();
        plan.create_or_check(d, false).unwrap();
        let log = |i: usize, lines: &str| {
            let run = d.join(&plan.cells[i].run);
            std::fs::create_dir_all(&run).unwrap();
            std::fs::write(run.join("episodes.csv"), format!("episode,...\n{lines}")).unwrap();
        };
        log(0, "0,x\n1,x\n2,x\n");
        write_cell_end(
            d,
            0,
            Some(&CellEnd {
                ok: true,
                error: None,
            }),
        )
        .unwrap();
        log(1, "0,x\n1,x\n2,partial");
        let _lock = crate::rundir::RunLock::acquire(&d.join(&plan.cells[1].run), "t").unwrap();
        log(2, "0,x\n");
        let failed = CellEnd {
            ok: false,
            error: Some("boom".into()),
        };
        write_cell_end(d, 3, Some(&failed)).unwrap();
        let s = cell_states(d).unwrap();
        assert_eq!((&s[0].state, s[0].episodes), (&CellState::Done, 3));
        assert!(matches!(s[1].state, CellState::Running(_)), "{:?}", s[1]);
        assert_eq!(s[1].episodes, 2, "the line being written is not counted");
        assert_eq!((&s[2].state, s[2].episodes), (&CellState::Stopped, 1));
        assert_eq!(s[3].state, CellState::Failed("boom".into()));
        write_cell_end(d, 3, None).unwrap();
        assert_eq!(cell_states(d).unwrap()[3].state, CellState::NotStarted);
    }
}
