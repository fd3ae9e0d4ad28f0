//! Measured per-layer lookup tables: a CSV `layer,w_bits,a_bits,latency_us,energy_uj` (per batch of
//! the profile's `batch`) that overrides the compute model for every layer it lists. A listed layer
//! must have a row for every (w, a) the profile supports; a missing row is an error, never zero.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::HardwareError;
use crate::quant::Bits;
use crate::validate::positive;

/// One row of a measured table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableRow {
    pub layer: String,
    pub w_bits: u8,
    pub a_bits: u8,
    pub latency_us: f64,
    pub energy_uj: f64,
}

/// A row as read, before its bitwidths are checked.
#[derive(Debug, Deserialize)]
struct RawRow {
    layer: String,
    w_bits: i64,
    a_bits: i64,
    latency_us: f64,
    energy_uj: f64,
}

/// A validated table: (layer, w, a) → (latency in s, energy in J).
#[derive(Debug, Clone)]
pub struct Table {
    path: PathBuf,
    layers: BTreeSet<String>,
    entries: HashMap<(String, u8, u8), (f64, f64)>,
}

impl Table {
    /// Reads `path` and checks that each listed layer has a row for every pair of `precisions`.
    pub fn load(path: &Path, precisions: &[Bits]) -> Result<Table, HardwareError> {
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_path(path)
            .map_err(|e| syntax(path, &e))?;
        let mut table = Table {
            path: path.to_path_buf(),
            layers: BTreeSet::new(),
            entries: HashMap::new(),
        };
        let headers = reader.headers().map_err(|e| syntax(path, &e))?.clone();
        let mut record = csv::StringRecord::new();
        while reader
            .read_record(&mut record)
            .map_err(|e| syntax(path, &e))?
        {
            let line = record.position().map_or(0, |p| p.line());
            let row: RawRow = record
                .deserialize(Some(&headers))
                .map_err(|e| syntax(path, &e))?;
            table.insert(row, line)?;
        }
        for layer in &table.layers {
            for &w in precisions {
                for &a in precisions {
                    if !table
                        .entries
                        .contains_key(&(layer.clone(), w.get(), a.get()))
                    {
                        return Err(HardwareError::TableMissing {
                            path: path.to_path_buf(),
                            layer: layer.clone(),
                            w: w.get(),
                            a: a.get(),
                        });
                    }
                }
            }
        }
        Ok(table)
    }

    fn insert(&mut self, row: RawRow, line: u64) -> Result<(), HardwareError> {
        let path = &self.path;
        let bits = |field: &str, value: i64| {
            u8::try_from(value)
                .ok()
                .filter(|&b| Bits::new(b).is_ok())
                .ok_or_else(|| HardwareError::TableBits {
                    path: path.clone(),
                    line,
                    field: field.to_string(),
                    value,
                })
        };
        let (w, a) = (bits("w_bits", row.w_bits)?, bits("a_bits", row.a_bits)?);
        let value = |field: &str, v: f64| {
            positive(path, field, v).map_err(|source| HardwareError::TableField { line, source })
        };
        let latency_s = value("latency_us", row.latency_us)? * 1e-6;
        let energy_j = value("energy_uj", row.energy_uj)? * 1e-6;
        let key = (row.layer.clone(), w, a);
        if self.entries.contains_key(&key) {
            return Err(HardwareError::TableDuplicate {
                path: path.clone(),
                line,
                layer: row.layer,
                w,
                a,
            });
        }
        self.layers.insert(row.layer);
        self.entries.insert(key, (latency_s, energy_j));
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The layers this table overrides.
    pub fn layers(&self) -> impl Iterator<Item = &str> {
        self.layers.iter().map(String::as_str)
    }

    /// `Ok(None)` when the table does not list `layer`; `(latency_s, energy_j)` when it has the
    /// row; an error naming the layer and bits when it lists the layer but lacks the row.
    pub fn lookup(&self, layer: &str, w: u8, a: u8) -> Result<Option<(f64, f64)>, HardwareError> {
        if !self.layers.contains(layer) {
            return Ok(None);
        }
        match self.entries.get(&(layer.to_string(), w, a)) {
            Some(&entry) => Ok(Some(entry)),
            None => Err(HardwareError::TableMissing {
                path: self.path.clone(),
                layer: layer.to_string(),
                w,
                a,
            }),
        }
    }
}

fn syntax(path: &Path, e: &csv::Error) -> HardwareError {
    if let csv::ErrorKind::Io(io) = e.kind() {
        return HardwareError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(io.kind(), io.to_string()),
        };
    }
    HardwareError::TableSyntax {
        path: path.to_path_buf(),
        line: e.position().map_or(0, |p| p.line()),
        message: e.to_string(),
    }
}

/// Writes rows as the table CSV.
pub fn write_table(path: &Path, rows: &[TableRow]) -> Result<(), HardwareError> {
    let fail = |e: &dyn std::fmt::Display| HardwareError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut writer = csv::Writer::from_path(path).map_err(|e| fail(&e))?;
    for row in rows {
        writer.serialize(row).map_err(|e| fail(&e))?;
    }
    writer.flush().map_err(|e| fail(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::Rule;

    #[test]
    fn a_non_positive_measurement_names_file_line_field_and_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        let csv = "layer,w_bits,a_bits,latency_us,energy_uj\nfc1,4,4,1.5,0.25\nfc1,8,8,0,0.5\n";
        std::fs::write(&path, csv).unwrap();
        let four = [Bits::new(4).unwrap()];
        let e = Table::load(&path, &four).unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(&e, HardwareError::TableField { line: 3, source } if source.rule == Rule::Positive),
            "{msg}"
        );
        assert!(
            msg.contains("t.csv, line 3: field `latency_us` must be greater than zero, got 0"),
            "{msg}"
        );
    }
}
