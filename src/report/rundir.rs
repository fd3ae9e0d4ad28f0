//! Readers of the run directories described in docs/run-directory.md: a search run (config.json,
//! episodes.csv, references.csv, pareto.csv, best-policy.json) and a DQ study (dq.csv,
//! amplification.csv), into typed structs. Errors name the file, and for CSV the line, column
//! and value.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::table::{CsvFile, Row};
use crate::pareto::Objective;
use crate::quant::{Bits, LayerBits};

pub use super::dqdir::{AmplificationRow, DqDir, DqRow};

/// Why a run directory could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    #[error("{}: no such file ({hint})", path.display())]
    Missing { path: PathBuf, hint: &'static str },
    #[error("{}: cannot read", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{}{}: malformed CSV", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Csv {
        path: PathBuf,
        line: Option<u64>,
        source: csv::Error,
    },
    #[error("{}: the header has no column `{column}`", path.display())]
    MissingColumn { path: PathBuf, column: String },
    #[error("{}:{line}: column `{column}`: expected {expected}, got {value:?}", path.display())]
    BadValue {
        path: PathBuf,
        line: u64,
        column: String,
        value: String,
        expected: &'static str,
    },
    #[error("{}: {detail}", path.display())]
    Layers { path: PathBuf, detail: String },
    #[error("{}: neither a search run (config.json) nor a DQ study (dq.csv)", path.display())]
    NotARunDir { path: PathBuf },
}

/// A quantizable layer as config.json describes it (the fields the report uses).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LayerInfo {
    pub name: String,
    pub kind: String,
    pub params: u64,
    pub macs: u64,
}

/// Absolute budgets; `None` = no budget on that cost.
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize)]
pub struct Budget {
    pub latency_s: Option<f64>,
    pub energy_j: Option<f64>,
    pub size_bytes: Option<f64>,
}

/// The costs of uniform 8/8 on the run's profile.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct Costs {
    pub latency_s: f64,
    pub energy_j: f64,
    pub size_bytes: f64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Named {
    name: String,
}

#[derive(Deserialize)]
struct RawConfig {
    run: String,
    model: String,
    experiment: Option<Named>,
    layers: Vec<LayerInfo>,
    profile: Named,
    agent: Named,
    episodes: Option<u64>,
    seed: Option<u64>,
    budget: Budget,
    uniform8: Option<Costs>,
}

/// config.json: the fields the report reads, and the whole document for display.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub run: String,
    pub model: String,
    pub experiment: Option<String>,
    pub layers: Vec<LayerInfo>,
    pub profile: String,
    pub agent: String,
    pub episodes: Option<u64>,
    pub seed: Option<u64>,
    pub budget: Budget,
    pub uniform8: Option<Costs>,
    pub json: serde_json::Value,
}

/// One row of episodes.csv (and of references.csv and pareto.csv, which share its columns).
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    pub episode: u64,
    pub agent: String,
    pub profile: String,
    pub policy: String,
    /// One per quantizable layer, from the `w_<layer>`/`a_<layer>` columns.
    pub bits: Vec<LayerBits>,
    /// `None` when the fine-tune failed.
    pub accuracy: Option<f64>,
    pub robust_accuracy: Option<f64>,
    pub latency_s: f64,
    pub energy_j: f64,
    pub size_bytes: f64,
    /// `None` when the fine-tune failed (or the row is a reference without a reward).
    pub reward: Option<f64>,
    pub feasible: bool,
    pub failed: bool,
    pub seconds: f64,
}

impl Episode {
    /// The value of an objective; `None` for the accuracies of a failed fine-tune.
    pub fn objective(&self, objective: Objective) -> Option<f64> {
        match objective {
            Objective::Accuracy => self.accuracy,
            Objective::RobustAccuracy => self.robust_accuracy,
            Objective::Latency => Some(self.latency_s),
            Objective::Energy => Some(self.energy_j),
            Objective::Size => Some(self.size_bytes),
        }
    }
}

/// A CSV file with the episodes.csv columns.
#[derive(Debug, Clone)]
pub struct Episodes {
    pub path: PathBuf,
    /// Layer names, from the `w_<layer>` columns, in model order.
    pub layers: Vec<String>,
    pub rows: Vec<Episode>,
}

/// Validation and test scores of the best policy.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct Scores {
    pub accuracy: f64,
    pub robust_accuracy: f64,
}

/// One layer of best-policy.json.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BestLayer {
    pub name: String,
    pub w_bits: Bits,
    pub a_bits: Bits,
}

/// best-policy.json: the best-reward policy, re-scored on the test split.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BestPolicy {
    pub model: String,
    pub policy: String,
    pub layers: Vec<BestLayer>,
    pub episode: u64,
    pub reward: f64,
    pub validation: Scores,
    pub test: Scores,
    pub latency_s: f64,
    pub energy_j: f64,
    pub size_bytes: f64,
}

/// A search run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub dir: PathBuf,
    pub config: RunConfig,
    pub episodes: Episodes,
    pub references: Episodes,
    /// `None` before the first episode has been scored.
    pub pareto: Option<Episodes>,
    /// `None` until the search has finished.
    pub best: Option<BestPolicy>,
}

/// What a directory holds.
#[derive(Debug, Clone)]
pub enum AnyDir {
    Run(Box<RunDir>),
    Dq(DqDir),
}

/// Reads a search run or a DQ study, whichever `dir` holds (a DQ study has dq.csv).
pub fn read_any(dir: &Path) -> Result<AnyDir, RunDirError> {
    if dir.join("dq.csv").is_file() {
        Ok(AnyDir::Dq(DqDir::read(dir)?))
    } else if dir.join("config.json").is_file() {
        Ok(AnyDir::Run(Box::new(RunDir::read(dir)?)))
    } else {
        Err(RunDirError::NotARunDir {
            path: dir.to_path_buf(),
        })
    }
}

impl RunDir {
    /// Reads every file of a search run; pareto.csv and best-policy.json may be absent.
    pub fn read(dir: &Path) -> Result<RunDir, RunDirError> {
        let config = RunConfig::read(&dir.join("config.json"))?;
        let hint = "written by `bitsearch search`";
        let episodes = Episodes::read(&dir.join("episodes.csv"), hint)?;
        let references = Episodes::read(&dir.join("references.csv"), hint)?;
        let pareto_path = dir.join("pareto.csv");
        let pareto = match pareto_path.is_file() {
            true => Some(Episodes::read(&pareto_path, hint)?),
            false => None,
        };
        let best_path = dir.join("best-policy.json");
        let best = match best_path.is_file() {
            true => Some(read_json(&best_path, hint)?),
            false => None,
        };
        let run = RunDir {
            dir: dir.to_path_buf(),
            config,
            episodes,
            references,
            pareto,
            best,
        };
        for table in [&run.episodes, &run.references]
            .into_iter()
            .chain(&run.pareto)
        {
            run.check_layers(table)?;
        }
        Ok(run)
    }

    /// The layer columns of `table` must name config.json's layers, in order.
    fn check_layers(&self, table: &Episodes) -> Result<(), RunDirError> {
        let expected: Vec<&str> = self.config.layers.iter().map(|l| l.name.as_str()).collect();
        if table.layers != expected {
            return Err(RunDirError::Layers {
                path: table.path.clone(),
                detail: format!(
                    "layer columns {:?} differ from config.json's layers {:?}",
                    table.layers, expected
                ),
            });
        }
        Ok(())
    }

    /// The scored (not failed) episodes.
    pub fn scored(&self) -> impl Iterator<Item = &Episode> {
        self.episodes.rows.iter().filter(|e| !e.failed)
    }
}

/// Reads and deserializes a JSON file.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    hint: &'static str,
) -> Result<T, RunDirError> {
    let text = read_text(path, hint)?;
    serde_json::from_str(&text).map_err(|source| RunDirError::Json {
        path: path.to_path_buf(),
        source,
    })
}

fn read_text(path: &Path, hint: &'static str) -> Result<String, RunDirError> {
    if !path.is_file() {
        return Err(RunDirError::Missing {
            path: path.to_path_buf(),
            hint,
        });
    }
    std::fs::read_to_string(path).map_err(|source| RunDirError::Io {
        path: path.to_path_buf(),
        source,
    })
}

impl RunConfig {
    /// Reads config.json.
    pub fn read(path: &Path) -> Result<RunConfig, RunDirError> {
        let hint = "written first by `bitsearch search`";
        let json: serde_json::Value = read_json(path, hint)?;
        let raw: RawConfig =
            serde_json::from_value(json.clone()).map_err(|source| RunDirError::Json {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(RunConfig {
            run: raw.run,
            model: raw.model,
            experiment: raw.experiment.map(|e| e.name),
            layers: raw.layers,
            profile: raw.profile.name,
            agent: raw.agent.name,
            episodes: raw.episodes,
            seed: raw.seed,
            budget: raw.budget,
            uniform8: raw.uniform8,
            json,
        })
    }

    /// Each layer's share of the model's MACs, in [0, 1] (all zero if the model has no MACs).
    pub fn mac_shares(&self) -> Vec<f64> {
        let total: u64 = self.layers.iter().map(|l| l.macs).sum();
        self.layers
            .iter()
            .map(|l| match total {
                0 => 0.0,
                t => l.macs as f64 / t as f64,
            })
            .collect()
    }
}

/// Column indices of an episodes.csv header.
struct EpisodeColumns {
    fixed: [usize; 13],
    layers: Vec<(usize, usize)>,
}

const FIXED: [&str; 13] = [
    "episode",
    "agent",
    "profile",
    "policy",
    "accuracy",
    "robust_accuracy",
    "latency_s",
    "energy_j",
    "size_bytes",
    "reward",
    "feasible",
    "failed",
    "seconds",
];

impl Episodes {
    /// Reads a CSV file with the episodes.csv columns.
    pub fn read(path: &Path, hint: &'static str) -> Result<Episodes, RunDirError> {
        let file = CsvFile::open(path, hint)?;
        let (columns, layers) = episode_columns(&file)?;
        let rows = file
            .rows()
            .map(|row| parse_episode(&row, &columns))
            .collect::<Result<_, _>>()?;
        Ok(Episodes {
            path: path.to_path_buf(),
            layers,
            rows,
        })
    }
}

/// Finds the fixed columns and the `w_<layer>`,`a_<layer>` pairs between `policy` and `accuracy`.
fn episode_columns(file: &CsvFile) -> Result<(EpisodeColumns, Vec<String>), RunDirError> {
    let mut fixed = [0; 13];
    for (slot, name) in fixed.iter_mut().zip(FIXED) {
        *slot = file.column(name)?;
    }
    let (policy, accuracy) = (fixed[3], fixed[4]);
    let bad = |detail: String| RunDirError::Layers {
        path: file.path.clone(),
        detail,
    };
    let between = file.headers.get(policy + 1..accuracy).unwrap_or(&[]);
    if between.is_empty() || between.len() % 2 != 0 {
        return Err(bad(format!(
            "expected `w_<layer>`,`a_<layer>` column pairs between `policy` and `accuracy`, got {between:?}"
        )));
    }
    let mut layers = Vec::new();
    let mut pairs = Vec::new();
    for (k, pair) in between.chunks(2).enumerate() {
        let (w, a) = (&pair[0], &pair[1]);
        let name = w.strip_prefix("w_").unwrap_or("");
        if name.is_empty() || a.strip_prefix("a_") != Some(name) {
            return Err(bad(format!(
                "columns `{w}`,`{a}` are not a `w_<layer>`,`a_<layer>` pair"
            )));
        }
        layers.push(name.to_string());
        pairs.push((policy + 1 + 2 * k, policy + 2 + 2 * k));
    }
    Ok((
        EpisodeColumns {
            fixed,
            layers: pairs,
        },
        layers,
    ))
}

fn parse_bits(row: &Row, col: usize) -> Result<Bits, RunDirError> {
    row.get(col, "a bitwidth 1..=8 or 32")
}

fn parse_episode(row: &Row, c: &EpisodeColumns) -> Result<Episode, RunDirError> {
    let f = &c.fixed;
    let bits = c
        .layers
        .iter()
        .map(|&(w, a)| Ok(LayerBits::new(parse_bits(row, w)?, parse_bits(row, a)?)))
        .collect::<Result<_, RunDirError>>()?;
    let boolean = "`true` or `false`";
    let episode = Episode {
        episode: row.get(f[0], "a whole number")?,
        agent: row.text(f[1]).to_string(),
        profile: row.text(f[2]).to_string(),
        policy: row.text(f[3]).to_string(),
        bits,
        accuracy: row.optional_number(f[4])?,
        robust_accuracy: row.optional_number(f[5])?,
        latency_s: row.number(f[6])?,
        energy_j: row.number(f[7])?,
        size_bytes: row.number(f[8])?,
        reward: row.optional_number(f[9])?,
        feasible: row.get(f[10], boolean)?,
        failed: row.get(f[11], boolean)?,
        seconds: row.number(f[12])?,
    };
    // A scored (not failed) row must carry its accuracies.
    if !episode.failed {
        for (col, value) in [(f[4], episode.accuracy), (f[5], episode.robust_accuracy)] {
            if value.is_none() {
                return Err(row.bad(col, "a number (the row is not `failed`)"));
            }
        }
    }
    Ok(episode)
}
