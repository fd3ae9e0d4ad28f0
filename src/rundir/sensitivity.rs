//! A sensitivity study directory (`bitsearch sensitivity`): sensitivity.csv, one row per
//! quantizable layer × operand × format with only that operand at that format and every other
//! one at the reference (uniform 8/8), after the reference row itself; and sensitivity.json,
//! what was run. One writer and one reader each; the reader checks every rule a row obeys and
//! names the file, line, column and value of the first it breaks.
//!
//! For a row r and the reference row R:
//!   accuracy_drop = R.accuracy − r.accuracy (likewise robust_accuracy_drop; positive = lost),
//!   latency_saved = 1 − r.latency_s / R.latency_s (likewise energy_saved),
//!   layer_latency_share = the layer's latency at the reference / R.latency_s (likewise energy).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::config::ProfileInfo;
use super::csv_file::{write_csv, CsvFile, Record};
use super::files::read_json;
use super::RunDirError;
use crate::model::LayerShape;
use crate::quant::{Format, Operand};
use crate::robust::{Checks, CHECKS_FORMAT};

/// What a row varies: nothing (the reference), one layer's weights or its activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Varied {
    Reference,
    Weight,
    Activation,
}

impl Varied {
    pub fn name(self) -> &'static str {
        match self {
            Varied::Reference => "reference",
            Varied::Weight => "weight",
            Varied::Activation => "activation",
        }
    }

    fn parse(text: &str) -> Option<Varied> {
        [Varied::Reference, Varied::Weight, Varied::Activation]
            .into_iter()
            .find(|v| v.name() == text)
    }
}

/// One scored policy of the study.
#[derive(Debug, Clone, PartialEq)]
pub struct SensitivityRow {
    /// The varied layer; empty for the reference.
    pub layer: String,
    pub operand: Varied,
    /// The operand's format in policy notation (today a width: `2`..`8`, `32`).
    pub format: String,
    pub policy: String,
    /// Validation accuracy and measured robust accuracy; `None` when the fine-tune diverged.
    pub accuracy: Option<f64>,
    pub robust_accuracy: Option<f64>,
    pub masking: Checks,
    /// Against the reference row, in [−1, 1]; `None` when either diverged.
    pub accuracy_drop: Option<f64>,
    pub robust_accuracy_drop: Option<f64>,
    pub latency_s: f64,
    pub energy_j: f64,
    /// Fractions of the reference's latency and energy this row's policy saves.
    pub latency_saved: f64,
    pub energy_saved: f64,
    /// The varied layer's share of the reference's latency and energy; `None` on the reference.
    pub layer_latency_share: Option<f64>,
    pub layer_energy_share: Option<f64>,
}

/// sensitivity.csv: the reference row first, then the layers' rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Sensitivity {
    pub rows: Vec<SensitivityRow>,
}

const HINT: &str = "written by `bitsearch sensitivity`";
const COLUMNS: [&str; 17] = [
    "layer",
    "operand",
    "format",
    "policy",
    "failed",
    "accuracy",
    "robust_accuracy",
    "accuracy_drop",
    "robust_accuracy_drop",
    "masking_flagged",
    "masking",
    "latency_s",
    "energy_j",
    "latency_saved",
    "energy_saved",
    "layer_latency_share",
    "layer_energy_share",
];

impl Sensitivity {
    pub const FILE: &'static str = "sensitivity.csv";

    /// Writes `path` whole and atomically.
    pub fn write(&self, path: &Path) -> Result<(), RunDirError> {
        let header: Vec<String> = COLUMNS.map(String::from).to_vec();
        write_csv(path, &header, self.rows.iter().map(fields))
    }

    /// Reads `path`, checking every row (see `parse`) and that exactly the first row is the
    /// reference, with drops of 0.
    pub fn read(path: &Path) -> Result<Sensitivity, RunDirError> {
        let file = CsvFile::open(path, HINT)?;
        let cols = file.columns(COLUMNS)?;
        let mut rows = Vec::with_capacity(file.rows.len());
        for (i, r) in file.records().enumerate() {
            // Before the row's own rules, so a misplaced reference is named as such.
            let reference = r.text(cols[1]) == Varied::Reference.name();
            if reference != (i == 0) {
                let rule = "`reference` on the first row and on no other";
                return Err(r.bad(cols[1], rule));
            }
            let row = parse(&r, &cols)?;
            let nonzero = |d: Option<f64>| d.is_some_and(|d| d != 0.0);
            if reference && nonzero(row.accuracy_drop) {
                return Err(r.bad(cols[7], "0 on the reference row"));
            }
            if reference && nonzero(row.robust_accuracy_drop) {
                return Err(r.bad(cols[8], "0 on the reference row"));
            }
            rows.push(row);
        }
        Ok(Sensitivity { rows })
    }

    /// The reference row, if the file has any row.
    pub fn reference(&self) -> Option<&SensitivityRow> {
        self.rows.first().filter(|r| r.operand == Varied::Reference)
    }
}

/// A number as the file writes it: Rust's shortest round-trip form; empty for `None`.
fn opt(v: Option<f64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// The fields of a row's line, in `COLUMNS` order.
fn fields(r: &SensitivityRow) -> Vec<String> {
    vec![
        r.layer.clone(),
        r.operand.name().to_string(),
        r.format.clone(),
        r.policy.clone(),
        r.accuracy.is_none().to_string(),
        opt(r.accuracy),
        opt(r.robust_accuracy),
        opt(r.accuracy_drop),
        opt(r.robust_accuracy_drop),
        (!r.masking.is_empty()).to_string(),
        r.masking.to_string(),
        r.latency_s.to_string(),
        r.energy_j.to_string(),
        r.latency_saved.to_string(),
        r.energy_saved.to_string(),
        opt(r.layer_latency_share),
        opt(r.layer_energy_share),
    ]
}

/// A fraction in [lo, 1], or `None` for an empty field.
fn fraction(
    r: &Record,
    col: usize,
    lo: f64,
    rule: &'static str,
) -> Result<Option<f64>, RunDirError> {
    match r.optional_number(col)? {
        Some(v) if !(lo..=1.0).contains(&v) => Err(r.bad(col, rule)),
        v => Ok(v),
    }
}

/// One row, checked: the operand names what varies, a layer exactly when it is not the
/// reference, the format reads as policy notation does, the scores are present exactly when
/// `failed` is false, the masking flag agrees with the checks, fractions are fractions.
fn parse(r: &Record, c: &[usize; 17]) -> Result<SensitivityRow, RunDirError> {
    let operand = Varied::parse(r.text(c[1]))
        .ok_or_else(|| r.bad(c[1], "`reference`, `weight` or `activation`"))?;
    let layer = r.text(c[0]).to_string();
    if layer.is_empty() != (operand == Varied::Reference) {
        return Err(r.bad(c[0], "a layer name, empty exactly on the reference row"));
    }
    let format = r.text(c[2]).to_string();
    let allowed = |f: Format| match operand {
        Varied::Reference => true,
        Varied::Weight => f.allowed_for(Operand::Weight),
        Varied::Activation => f.allowed_for(Operand::Activation),
    };
    if !format.parse::<Format>().is_ok_and(allowed) {
        let rule =
            "a format its operand takes, in policy notation: 1..16, 32 or a name such as fp8e4m3";
        return Err(r.bad(c[2], rule));
    }
    let failed = r.flag(c[4])?;
    let score = |col: usize, lo: f64| -> Result<Option<f64>, RunDirError> {
        let rule = "a fraction in [0, 1] (or [-1, 1] for a drop), empty exactly when `failed`";
        let v = fraction(r, col, lo, rule)?;
        match v.is_none() == failed {
            true => Ok(v),
            false => Err(r.bad(col, rule)),
        }
    };
    let masking = Checks::parse(r.text(c[10])).ok_or_else(|| r.bad(c[10], CHECKS_FORMAT))?;
    if r.flag(c[9])? == masking.is_empty() {
        return Err(r.bad(c[9], "`true` exactly when `masking` is not `none`"));
    }
    let share = |col: usize| -> Result<Option<f64>, RunDirError> {
        let rule = "a fraction in [0, 1], empty exactly on the reference row";
        let v = fraction(r, col, 0.0, rule)?;
        match v.is_none() == (operand == Varied::Reference) {
            true => Ok(v),
            false => Err(r.bad(col, rule)),
        }
    };
    Ok(SensitivityRow {
        layer,
        operand,
        format,
        policy: r.text(c[3]).to_string(),
        accuracy: score(c[5], 0.0)?,
        robust_accuracy: score(c[6], 0.0)?,
        // A drop is empty when either this row or the reference failed, so it is checked
        // only as a fraction.
        accuracy_drop: fraction(r, c[7], -1.0, "a difference of fractions, in [-1, 1]")?,
        robust_accuracy_drop: fraction(r, c[8], -1.0, "a difference of fractions, in [-1, 1]")?,
        masking,
        latency_s: r.number(c[11])?,
        energy_j: r.number(c[12])?,
        latency_saved: r.number(c[13])?,
        energy_saved: r.number(c[14])?,
        layer_latency_share: share(c[15])?,
        layer_energy_share: share(c[16])?,
    })
}

/// sensitivity.json: what a study ran, written before its first score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensitivityConfig {
    /// The validated experiment, as config.json records a search's.
    pub experiment: serde_json::Value,
    pub model: String,
    pub layers: Vec<LayerShape>,
    pub profile: ProfileInfo,
    /// The width every operand has unless a row varies it.
    pub reference: u8,
    /// The formats each operand is tried at, in policy notation, ascending.
    pub formats: Vec<String>,
    /// The FP32 baseline the policies are fine-tuned from, and the score cache beside it.
    pub baseline: PathBuf,
    pub scores: PathBuf,
    pub command: String,
}

impl SensitivityConfig {
    pub const FILE: &'static str = "sensitivity.json";

    pub fn read(path: &Path) -> Result<SensitivityConfig, RunDirError> {
        read_json(path, "written first by `bitsearch sensitivity`")
    }

    /// The number of rows a finished study has: the reference, then every layer × operand ×
    /// format.
    pub fn planned_rows(&self) -> usize {
        1 + 2 * self.layers.len() * self.formats.len()
    }
}

/// A sensitivity study read back.
#[derive(Debug, Clone)]
pub struct SensitivityDir {
    pub dir: PathBuf,
    pub config: SensitivityConfig,
    pub table: Sensitivity,
}

impl SensitivityDir {
    pub fn read(dir: &Path) -> Result<SensitivityDir, RunDirError> {
        Ok(SensitivityDir {
            dir: dir.to_path_buf(),
            config: SensitivityConfig::read(&dir.join(SensitivityConfig::FILE))?,
            table: Sensitivity::read(&dir.join(Sensitivity::FILE))?,
        })
    }
}

#[cfg(test)]
#[path = "sensitivity_tests.rs"]
mod tests;
