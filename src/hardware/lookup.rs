//! Measured per-layer lookup tables: a CSV `layer,macs,params,w_bits,a_bits,latency_us,energy_uj`
//! (per batch of the profile's `batch`) that overrides the compute model for every layer it lists.
//! A listed layer must have a row for every (w, a) the profile supports and for 32/32 (the FP32
//! reference); a missing row is an error, never zero, and so is a format its rows cannot hold (a
//! minifloat, group-wise int4, a 9..16-bit integer: `Table::row_width`). A layer is named by its
//! name *and* its work (MACs per example, parameters), so a table measured on one model never
//! prices another model's layer of the same name.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::HardwareError;
use super::profile::ProfileFile;
use crate::atomic::write_atomic;
use crate::model::LayerShape;
use crate::quant::Format;
use crate::validate::positive;

/// One row of a measured table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableRow {
    pub layer: String,
    pub macs: u64,
    pub params: u64,
    pub w_bits: u8,
    pub a_bits: u8,
    pub latency_us: f64,
    pub energy_uj: f64,
}

/// A row as read, before its bitwidths are checked.
#[derive(Debug, Deserialize)]
struct RawRow {
    layer: String,
    macs: u64,
    params: u64,
    w_bits: i64,
    a_bits: i64,
    latency_us: f64,
    energy_uj: f64,
}

/// A validated table: (layer, w, a) → (latency in s, energy in J), and each layer's work.
#[derive(Debug, Clone)]
pub struct Table {
    path: PathBuf,
    /// Layer name → (MACs per example, parameters) it was measured at.
    layers: BTreeMap<String, (u64, u64)>,
    entries: HashMap<(String, u8, u8), (f64, f64)>,
}

impl Table {
    /// Reads `path` and checks that each listed layer has a row for every pair of `precisions`,
    /// and for 32/32.
    pub fn load(path: &Path, precisions: &[Format]) -> Result<Table, HardwareError> {
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_path(path)
            .map_err(|e| syntax(path, &e))?;
        let mut table = Table {
            path: path.to_path_buf(),
            layers: BTreeMap::new(),
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
        let mut pairs: Vec<(Format, Format)> = precisions
            .iter()
            .flat_map(|&w| precisions.iter().map(move |&a| (w, a)))
            .collect();
        pairs.push((Format::FULL, Format::FULL));
        for layer in table.layers.keys() {
            for &(w, a) in &pairs {
                if !table
                    .entries
                    .contains_key(&(layer.clone(), w.width(), a.width()))
                {
                    return Err(HardwareError::TableMissing {
                        path: path.to_path_buf(),
                        layer: layer.clone(),
                        w: w.width(),
                        a: a.width(),
                    });
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
                .filter(|&b| Format::new(b).is_ok())
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
        let work = (row.macs, row.params);
        match self.layers.get(&row.layer) {
            Some(&first) if first != work => {
                return Err(HardwareError::TableWork {
                    path: path.clone(),
                    line,
                    layer: row.layer,
                    first,
                    here: work,
                })
            }
            Some(_) => {}
            None => {
                self.layers.insert(row.layer.clone(), work);
            }
        }
        self.entries.insert(key, (latency_s, energy_j));
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The layers this table overrides.
    pub fn layers(&self) -> impl Iterator<Item = &str> {
        self.layers.keys().map(String::as_str)
    }

    /// Whether the table lists `layer` (its rows then price it, or its pricing fails).
    pub fn lists(&self, layer: &str) -> bool {
        self.layers.contains_key(layer)
    }

    /// The `w_bits`/`a_bits` value of a row for `format`: an integer of 1..=8 bits or full
    /// precision (32). `None` for every other format, which a table has no rows for.
    pub fn row_width(format: Format) -> Option<u8> {
        let plain = format.int_bits().is_some_and(|b| b <= Format::MAX) || format.is_full();
        plain.then(|| format.width())
    }

    /// Every row in a fixed order, as bytes for the profile's digest.
    pub(crate) fn digest_bytes(&self) -> Vec<u8> {
        let mut rows: Vec<String> = (self.entries.iter())
            .map(|((layer, w, a), (lat, en))| {
                let (macs, params) = self.layers.get(layer).copied().unwrap_or_default();
                format!("{layer},{macs},{params},{w},{a},{lat:e},{en:e}\n")
            })
            .collect();
        rows.sort();
        rows.concat().into_bytes()
    }

    /// `Ok(None)` when the table does not list `layer`; `(latency_s, energy_j)` when it has the
    /// row; an error naming the layer and bits when it lists the layer but lacks the row, or
    /// naming both works when the table's layer of that name is not this one.
    pub fn lookup(
        &self,
        layer: &LayerShape,
        w: u8,
        a: u8,
    ) -> Result<Option<(f64, f64)>, HardwareError> {
        let Some(&(macs, params)) = self.layers.get(&layer.name) else {
            return Ok(None);
        };
        if (macs, params) != (layer.macs, layer.params as u64) {
            return Err(HardwareError::TableOtherLayer {
                path: self.path.clone(),
                layer: layer.name.clone(),
                table: (macs, params),
                model: (layer.macs, layer.params as u64),
            });
        }
        match self.entries.get(&(layer.name.clone(), w, a)) {
            Some(&entry) => Ok(Some(entry)),
            None => Err(HardwareError::TableMissing {
                path: self.path.clone(),
                layer: layer.name.clone(),
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

/// A calibration's table: one row per layer and (w, a) in (1..=8 ∪ {32})², its latency
/// `latency_s(layer index, w, a)` as measured and its energy as `profile`'s model estimates (a
/// calibration times latency, not energy).
pub fn calibration_rows(
    layers: &[LayerShape],
    profile: &ProfileFile,
    latency_s: impl Fn(usize, u8, u8) -> f64,
) -> Result<Vec<TableRow>, HardwareError> {
    use super::cost::CostModel;
    let model = profile.clone().check(Path::new("<calibration>"))?;
    let widths: Vec<u8> = (1..=8).chain([super::compute::FULL_BITS]).collect();
    let mut rows = Vec::new();
    for (l, layer) in layers.iter().enumerate() {
        for &w in &widths {
            for &a in &widths {
                let bits = crate::quant::LayerBits::new(Format::new(w)?, Format::new(a)?);
                rows.push(TableRow {
                    layer: layer.name.clone(),
                    macs: layer.macs,
                    params: layer.params as u64,
                    w_bits: w,
                    a_bits: a,
                    latency_us: latency_s(l, w, a) * 1e6,
                    energy_uj: model.layer_cost(layer, bits)?.energy_j * 1e6,
                });
            }
        }
    }
    Ok(rows)
}

/// Writes rows as the table CSV, whole and atomically (never through a link at `path`).
pub fn write_table(path: &Path, rows: &[TableRow]) -> Result<(), HardwareError> {
    let fail = |e: &dyn std::fmt::Display| HardwareError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut writer = csv::Writer::from_writer(Vec::new());
    for row in rows {
        writer.serialize(row).map_err(|e| fail(&e))?;
    }
    let bytes = writer.into_inner().map_err(|e| fail(&e))?;
    write_atomic(path, &bytes).map_err(|e| fail(&e))
}

/// Writes `profile` to `out` (after `header`, its comment lines) with `table` set to
/// `<out stem>.csv` beside it, and `rows` as that table, each whole and atomically (a link at
/// either path is replaced, never written through); returns the table's path.
pub fn write_profile_with_table(
    out: &Path,
    mut profile: ProfileFile,
    rows: &[TableRow],
    header: &str,
) -> Result<PathBuf, HardwareError> {
    let fail = |path: &Path, e: &dyn std::fmt::Display| HardwareError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "profile".to_string());
    let csv_name = format!("{stem}.csv");
    let csv_path = out.with_file_name(&csv_name);
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| fail(dir, &e))?;
    }
    profile.table = Some(csv_name);
    let body = toml::to_string(&profile).map_err(|e| fail(out, &e))?;
    write_atomic(out, format!("{header}{body}").as_bytes()).map_err(|e| fail(out, &e))?;
    write_table(&csv_path, rows)?;
    Ok(csv_path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::Rule;

    /// A link planted at the profile's or the table's path (a shared hardware-profiles/) is
    /// replaced by the written file; its target is never written through.
    #[test]
    fn a_written_profile_replaces_a_planted_link_instead_of_following_it() {
        let dir = tempfile::tempdir().unwrap();
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("hardware-profiles/bitfusion.toml"),
        )
        .unwrap();
        let profile: ProfileFile = toml::from_str(&text).unwrap();
        let victim = dir.path().join("victim.txt");
        std::fs::write(&victim, "precious").unwrap();
        let out = dir.path().join("host.toml");
        std::os::unix::fs::symlink(&victim, &out).unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("host.csv")).unwrap();
        let row = TableRow {
            layer: "fc1".into(),
            macs: 10,
            params: 20,
            w_bits: 32,
            a_bits: 32,
            latency_us: 1.0,
            energy_uj: 1.0,
        };
        let csv = write_profile_with_table(&out, profile, &[row], "# test\n").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        for path in [&out, &csv] {
            let meta = std::fs::symlink_metadata(path).unwrap();
            assert!(meta.file_type().is_file(), "{}", path.display());
        }
        assert!(std::fs::read_to_string(&csv)
            .unwrap()
            .contains("fc1,10,20,32,32"));
    }

    fn load(csv: &str) -> Result<Table, HardwareError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, csv).unwrap();
        Table::load(&path, &[Format::new(4).unwrap()])
    }

    /// Guards the FP32 reference's price: a table without 32/32 for a listed layer used to load,
    /// and the reference row was then priced as zero.
    #[test]
    fn a_listed_layer_needs_a_full_precision_row() {
        let head = "layer,macs,params,w_bits,a_bits,latency_us,energy_uj\n";
        let e = load(&format!("{head}fc1,10,20,4,4,1.5,0.25\n")).unwrap_err();
        assert!(
            matches!(e, HardwareError::TableMissing { w: 32, a: 32, .. }),
            "{e}"
        );
        assert!(load(&format!(
            "{head}fc1,10,20,4,4,1.5,0.25\nfc1,10,20,32,32,3,1\n"
        ))
        .is_ok());
    }

    #[test]
    fn a_layer_whose_work_changes_between_rows_is_refused() {
        let head = "layer,macs,params,w_bits,a_bits,latency_us,energy_uj\n";
        let e = load(&format!(
            "{head}fc1,10,20,4,4,1.5,0.25\nfc1,11,20,32,32,3,1\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("line 3") && e.contains("macs=11, params=20") && e.contains("macs=10"),
            "{e}"
        );
    }

    #[test]
    fn a_non_positive_measurement_names_file_line_field_and_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        let csv = "layer,macs,params,w_bits,a_bits,latency_us,energy_uj\n\
                   fc1,1,2,4,4,1.5,0.25\nfc1,1,2,8,8,0,0.5\n";
        std::fs::write(&path, csv).unwrap();
        let four = [Format::new(4).unwrap()];
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
