//! The writer of a search run directory: episodes.csv only ever gains whole lines; every other
//! file is written to a temporary file and renamed into place. And the log as a resume reads
//! it back.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::csv_file::{csv_line, CsvFile};
use super::episodes::{header, Episode, Episodes};
use super::files::{append, write_atomic, write_json};
use super::{BestPolicy, RunConfig, RunDirError};

/// A run directory being written, for a model with these quantizable layers.
pub struct RunLog {
    pub dir: PathBuf,
    layers: Vec<String>,
}

impl RunLog {
    /// Creates `dir` if needed.
    pub fn new(dir: &Path, layers: Vec<String>) -> Result<Self, RunDirError> {
        std::fs::create_dir_all(dir).map_err(|source| RunDirError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(RunLog {
            dir: dir.to_path_buf(),
            layers,
        })
    }

    pub fn header(&self) -> Vec<String> {
        header(&self.layers)
    }

    /// Appends one whole line to `file` (with a header first if the file is new), then syncs it.
    pub fn append(&self, file: &str, row: &Episode) -> Result<(), RunDirError> {
        let path = self.dir.join(file);
        let mut bytes = Vec::new();
        // An empty file is a log whose first write a kill cut short (or whose repair dropped
        // its only, partial, line): it still needs its header.
        if std::fs::metadata(&path).map_or(true, |m| m.len() == 0) {
            bytes = csv_line(&path, &self.header())?;
        }
        bytes.extend(row.line(&path)?);
        append(&path, &bytes)
    }

    /// Writes all rows to `file` atomically.
    pub fn write_rows(&self, file: &str, rows: &[Episode]) -> Result<(), RunDirError> {
        let path = self.dir.join(file);
        let mut bytes = csv_line(&path, &self.header())?;
        for r in rows {
            bytes.extend(r.line(&path)?);
        }
        write_atomic(&path, &bytes)
    }

    /// Writes config.json.
    pub fn write_config(&self, config: &RunConfig) -> Result<(), RunDirError> {
        let path = self.dir.join(RunConfig::FILE);
        let json = config.to_json().map_err(|source| RunDirError::Json {
            path: path.clone(),
            source,
        })?;
        write_json(&path, &json)
    }

    /// Writes best-policy.json.
    pub fn write_best(&self, best: &BestPolicy) -> Result<(), RunDirError> {
        write_json(&self.dir.join(BestPolicy::FILE), best)
    }

    /// Writes any other JSON document (agent.json, an agent's measurements).
    pub fn write_json<T: Serialize>(&self, file: &str, value: &T) -> Result<(), RunDirError> {
        write_json(&self.dir.join(file), value)
    }

    /// The rows of `file` (none if it is absent or empty) for a resume. A last line cut by a
    /// kill (no final newline) is first dropped from the file, atomically, so the log again
    /// holds only whole lines and a kill during the repair leaves either the old or the repaired
    /// file; the header must be this model's, as the resume appends to it (an earlier version's
    /// header for the same layers is upgraded first).
    pub fn resume(&self, file: &str) -> Result<Vec<Episode>, RunDirError> {
        let path = self.dir.join(file);
        if !path.exists() {
            return Ok(Vec::new());
        }
        let mut text = std::fs::read_to_string(&path).map_err(|source| RunDirError::Io {
            path: path.clone(),
            source,
        })?;
        if !text.is_empty() && !text.ends_with('\n') {
            text.truncate(text.rfind('\n').map_or(0, |i| i + 1));
            crate::crashpoint::crash_point("log-repair");
            write_atomic(&path, text.as_bytes())?;
        }
        if text.is_empty() {
            return Ok(Vec::new());
        }
        let csv = CsvFile::parse(&path, &text)?;
        if csv.headers == self.header() {
            return Ok(Episodes::from_file(&csv)?.rows);
        }
        // A log of this model written by an earlier version (without a column added since):
        // rewritten, atomically, with today's header and the added columns empty, so the resume
        // appends lines of one shape.
        match Episodes::from_file(&csv) {
            Ok(old) if old.layers == self.layers => {
                self.write_rows(file, &old.rows)?;
                Ok(old.rows)
            }
            _ => Err(RunDirError::Layers {
                path,
                detail: format!(
                    "header {:?} does not match this run's model (expected {:?})",
                    csv.headers,
                    self.header()
                ),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::Format;

    fn row(e: usize) -> Episode {
        let b =
            |w, a| crate::quant::LayerBits::new(Format::new(w).unwrap(), Format::new(a).unwrap());
        Episode {
            episode: e,
            agent: "ddpg".into(),
            profile: "bitfusion".into(),
            policy: "8/4,2/3".into(),
            bits: vec![b(8, 4), b(2, 3)],
            accuracy: Some(0.1 + 0.2),
            robust_accuracy: Some(0.5),
            latency_s: 1.234e-5,
            energy_j: 3.0,
            size_bytes: 100.5,
            reward: Some(-1.0 / 3.0),
            feasible: true,
            failed: false,
            masking: crate::robust::Checks::parse("zero_grad+gradient_free"),
            broken_by: "eps=0.1;clean=2;fgsm=5;pgd=1;held=12".parse().ok(),
            fidelity: crate::fidelity::Fidelity::Full,
            seconds: 1.5,
        }
    }

    #[test]
    fn rows_round_trip_exactly_and_cut_lines_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let log = RunLog::new(dir.path(), vec!["conv1".into(), "fc1".into()]).unwrap();
        log.append("episodes.csv", &row(0)).unwrap();
        log.append("episodes.csv", &row(1)).unwrap();
        let path = dir.path().join("episodes.csv");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("episode,agent,profile,policy,w_conv1,a_conv1,w_fc1,a_fc1,accuracy")
        );
        // A kill in the middle of a write leaves a partial third line.
        std::fs::write(&path, format!("{text}2,ddpg,bitf")).unwrap();
        let rows = log.resume("episodes.csv").unwrap();
        assert_eq!(rows, vec![row(0), row(1)]);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }

    /// Guards the first write of a log: a kill after the file was created but before its header
    /// was written (or a repair that dropped a partial header) leaves it empty, and every later
    /// resume must still start it over with a header rather than fail on it forever.
    #[test]
    fn an_empty_or_headless_log_restarts_with_its_header() {
        for left in ["", "episode,agent,prof"] {
            let dir = tempfile::tempdir().unwrap();
            let log = RunLog::new(dir.path(), vec!["conv1".into(), "fc1".into()]).unwrap();
            let path = dir.path().join("episodes.csv");
            std::fs::write(&path, left).unwrap();
            assert_eq!(log.resume("episodes.csv").unwrap(), vec![]);
            log.append("episodes.csv", &row(0)).unwrap();
            assert_eq!(log.resume("episodes.csv").unwrap(), vec![row(0)]);
        }
    }

    #[test]
    fn malformed_line_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let log = RunLog::new(dir.path(), vec!["conv1".into(), "fc1".into()]).unwrap();
        log.append("episodes.csv", &row(0)).unwrap();
        let path = dir.path().join("episodes.csv");
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace(",8,4,2,3,", ",8,x,2,3,");
        std::fs::write(&path, text).unwrap();
        let e = log.resume("episodes.csv").unwrap_err().to_string();
        // The reader's form is `file:line: column ...`, as in every run-directory error.
        assert!(
            e.contains("episodes.csv") && e.contains("episodes.csv:2:"),
            "{e}"
        );
        assert!(e.contains("column `a_conv1`") && e.contains("\"x\""), "{e}");
    }

    #[test]
    fn a_log_of_another_model_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let log = RunLog::new(dir.path(), vec!["conv1".into(), "fc1".into()]).unwrap();
        log.append("episodes.csv", &row(0)).unwrap();
        let other = RunLog::new(dir.path(), vec!["conv1".into(), "fc2".into()]).unwrap();
        let e = other.resume("episodes.csv").unwrap_err().to_string();
        assert!(e.contains("does not match this run's model"), "{e}");
    }

    /// A run started before the `broken_by` and `fidelity` columns existed resumes: its rows
    /// keep every value (and are full-fidelity), the file gets today's header, and the appended
    /// lines match it.
    #[test]
    fn a_log_without_a_later_column_is_upgraded_on_resume() {
        let dir = tempfile::tempdir().unwrap();
        let log = RunLog::new(dir.path(), vec!["conv1".into(), "fc1".into()]).unwrap();
        log.append("episodes.csv", &row(0)).unwrap();
        let path = dir.path().join("episodes.csv");
        let text = std::fs::read_to_string(&path).unwrap();
        // The same line without the column, as the earlier version wrote it.
        let old: Vec<String> = (text.lines())
            .map(|l| {
                let mut f: Vec<&str> = l.split(',').collect();
                f.drain(f.len() - 3..f.len() - 1);
                f.join(",") + "\n"
            })
            .collect();
        assert!(!old[0].contains("broken_by") && old[0].contains("masking"));
        assert!(!old[0].contains("fidelity"));
        std::fs::write(&path, old.concat()).unwrap();
        let old_row = Episode {
            broken_by: None,
            fidelity: crate::fidelity::Fidelity::Full,
            ..row(0)
        };
        assert_eq!(log.resume("episodes.csv").unwrap(), vec![old_row.clone()]);
        log.append("episodes.csv", &row(1)).unwrap();
        assert_eq!(log.resume("episodes.csv").unwrap(), vec![old_row, row(1)]);
        let header = std::fs::read_to_string(&path).unwrap();
        assert!(header.starts_with(&log.header().join(",")));
    }
}
