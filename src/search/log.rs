//! The run directory's files (docs/run-directory.md): episodes.csv only ever gains whole lines;
//! everything else is written to a temporary file and renamed into place.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::SearchError;

/// One scored policy: a line of episodes.csv, references.csv or pareto.csv.
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeRow {
    pub episode: usize,
    pub agent: String,
    pub profile: String,
    pub policy: String,
    pub bits: Vec<(u8, u8)>,
    pub accuracy: Option<f64>,
    pub robust_accuracy: Option<f64>,
    pub latency_s: f64,
    pub energy_j: f64,
    pub size_bytes: f64,
    pub reward: Option<f64>,
    pub feasible: bool,
    pub failed: bool,
    pub seconds: f64,
}

pub struct RunLog {
    pub dir: PathBuf,
    layers: Vec<String>,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> SearchError + '_ {
    move |source| SearchError::Io {
        path: path.to_path_buf(),
        source,
    }
}

// Floats are written with Rust's shortest round-trip form, so a resumed run reads back exactly
// the rewards it logged.
fn opt(v: Option<f64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

impl RunLog {
    pub fn new(dir: &Path, layers: Vec<String>) -> Result<Self, SearchError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        Ok(RunLog {
            dir: dir.to_path_buf(),
            layers,
        })
    }

    pub fn header(&self) -> Vec<String> {
        let mut h: Vec<String> = ["episode", "agent", "profile", "policy"]
            .map(String::from)
            .to_vec();
        for l in &self.layers {
            h.push(format!("w_{l}"));
            h.push(format!("a_{l}"));
        }
        h.extend(
            [
                "accuracy",
                "robust_accuracy",
                "latency_s",
                "energy_j",
                "size_bytes",
                "reward",
                "feasible",
                "failed",
                "seconds",
            ]
            .map(String::from),
        );
        h
    }

    fn line(&self, r: &EpisodeRow) -> Result<String, SearchError> {
        let mut f: Vec<String> = vec![
            r.episode.to_string(),
            r.agent.clone(),
            r.profile.clone(),
            r.policy.clone(),
        ];
        for &(w, a) in &r.bits {
            f.push(w.to_string());
            f.push(a.to_string());
        }
        f.extend([
            opt(r.accuracy),
            opt(r.robust_accuracy),
            r.latency_s.to_string(),
            r.energy_j.to_string(),
            r.size_bytes.to_string(),
            opt(r.reward),
            r.feasible.to_string(),
            r.failed.to_string(),
            format!("{:.3}", r.seconds),
        ]);
        to_csv_line(&f)
    }

    /// Appends one whole line (with a header first if the file is new), then syncs it.
    pub fn append(&self, file: &str, row: &EpisodeRow) -> Result<(), SearchError> {
        let path = self.dir.join(file);
        let mut text = String::new();
        if !path.exists() {
            text.push_str(&to_csv_line(&self.header())?);
        }
        text.push_str(&self.line(row)?);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        f.write_all(text.as_bytes()).map_err(io(&path))?;
        f.sync_data().map_err(io(&path))
    }

    /// Writes all rows to `file` atomically.
    pub fn write_rows(&self, file: &str, rows: &[EpisodeRow]) -> Result<(), SearchError> {
        let mut text = to_csv_line(&self.header())?;
        for r in rows {
            text.push_str(&self.line(r)?);
        }
        write_atomic(&self.dir.join(file), text.as_bytes())
    }

    pub fn write_json<T: Serialize>(&self, file: &str, value: &T) -> Result<(), SearchError> {
        let path = self.dir.join(file);
        let text = serde_json::to_string_pretty(value).map_err(|e| SearchError::Json {
            path: path.clone(),
            source: e,
        })?;
        write_atomic(&path, text.as_bytes())
    }

    /// Reads `file` (empty if absent). A last line cut by a kill (no final newline) is dropped
    /// from the file first, so the log again holds only whole lines.
    pub fn read(&self, file: &str) -> Result<Vec<EpisodeRow>, SearchError> {
        let path = self.dir.join(file);
        if !path.exists() {
            return Ok(Vec::new());
        }
        let mut text = std::fs::read_to_string(&path).map_err(io(&path))?;
        if !text.is_empty() && !text.ends_with('\n') {
            text.truncate(text.rfind('\n').map_or(0, |i| i + 1));
            std::fs::write(&path, &text).map_err(io(&path))?;
        }
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(text.as_bytes());
        let bad = |line: usize, what: String| SearchError::BadLog {
            path: path.clone(),
            line,
            what,
        };
        let header: Vec<String> = rdr
            .headers()
            .map_err(|e| bad(1, e.to_string()))?
            .iter()
            .map(String::from)
            .collect();
        if header != self.header() {
            return Err(bad(
                1,
                format!(
                    "header {:?} does not match this run's model (expected {:?})",
                    header,
                    self.header()
                ),
            ));
        }
        let mut rows = Vec::new();
        for (i, rec) in rdr.records().enumerate() {
            let rec = rec.map_err(|e| bad(i + 2, e.to_string()))?;
            rows.push(self.parse(&rec).map_err(|what| bad(i + 2, what))?);
        }
        Ok(rows)
    }

    fn parse(&self, rec: &csv::StringRecord) -> Result<EpisodeRow, String> {
        let get = |i: usize| rec.get(i).ok_or_else(|| format!("missing column {i}"));
        let num = |i: usize| -> Result<f64, String> {
            get(i)?
                .parse::<f64>()
                .map_err(|_| format!("column {} is not a number: {:?}", i + 1, rec.get(i)))
        };
        let onum = |i: usize| -> Result<Option<f64>, String> {
            if get(i)?.is_empty() {
                Ok(None)
            } else {
                num(i).map(Some)
            }
        };
        let flag = |i: usize| -> Result<bool, String> {
            get(i)?
                .parse::<bool>()
                .map_err(|_| format!("column {} is not true/false", i + 1))
        };
        let bit = |i: usize| -> Result<u8, String> {
            get(i)?
                .parse::<u8>()
                .map_err(|_| format!("column {} is not a bitwidth", i + 1))
        };
        let n = self.layers.len();
        let bits = (0..n)
            .map(|l| Ok((bit(4 + 2 * l)?, bit(5 + 2 * l)?)))
            .collect::<Result<_, String>>()?;
        let k = 4 + 2 * n;
        Ok(EpisodeRow {
            episode: get(0)?
                .parse()
                .map_err(|_| "episode is not a number".to_string())?,
            agent: get(1)?.to_string(),
            profile: get(2)?.to_string(),
            policy: get(3)?.to_string(),
            bits,
            accuracy: onum(k)?,
            robust_accuracy: onum(k + 1)?,
            latency_s: num(k + 2)?,
            energy_j: num(k + 3)?,
            size_bytes: num(k + 4)?,
            reward: onum(k + 5)?,
            feasible: flag(k + 6)?,
            failed: flag(k + 7)?,
            seconds: num(k + 8)?,
        })
    }
}

fn to_csv_line(fields: &[String]) -> Result<String, SearchError> {
    let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
    w.write_record(fields)
        .map_err(|e| SearchError::Csv(e.to_string()))?;
    let bytes = w
        .into_inner()
        .map_err(|e| SearchError::Csv(e.to_string()))?;
    String::from_utf8(bytes).map_err(|e| SearchError::Csv(e.to_string()))
}

/// Write-then-rename, so readers and resumes never see half a file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SearchError> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_data().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(e: usize) -> EpisodeRow {
        EpisodeRow {
            episode: e,
            agent: "ddpg".into(),
            profile: "bitfusion".into(),
            policy: "8/4,2/3".into(),
            bits: vec![(8, 4), (2, 3)],
            accuracy: Some(0.1 + 0.2),
            robust_accuracy: None,
            latency_s: 1.234e-5,
            energy_j: 3.0,
            size_bytes: 100.5,
            reward: Some(-1.0 / 3.0),
            feasible: true,
            failed: false,
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
        let rows = log.read("episodes.csv").unwrap();
        assert_eq!(rows, vec![row(0), row(1)]);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
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
        let e = log.read("episodes.csv").unwrap_err().to_string();
        assert!(e.contains("episodes.csv") && e.contains("line 2"), "{e}");
    }
}
