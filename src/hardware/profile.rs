//! Device profiles: the TOML file (`ProfileFile`, unchecked, straight from serde) and the validated
//! `Profile` that `ProfileFile::check` builds from it. Schema: `hardware-profiles/README.md`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::compute::{BitFusion, BitSerial, ComputeFile, ComputeModel, Mode, PrecisionModes};
use super::error::HardwareError;
use super::lookup::Table;
use crate::quant::{Format, Kind};
use crate::validate::{non_negative, path_name, positive};

/// A profile file as written, before any rule is checked.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileFile {
    pub name: String,
    pub description: String,
    /// Where each number comes from: key (usually a field name) → citation.
    pub sources: BTreeMap<String, String>,
    /// Examples processed together; latency and energy are reported per batch.
    pub batch: i64,
    /// Integer widths (1..=8) the device may be asked to run, for weights and activations alike.
    /// Full precision (32), minifloats and wider integer activations are always accepted and
    /// priced by the compute model's rule (`Profile::supports`).
    pub precisions: Vec<i64>,
    pub clock_hz: f64,
    /// Fixed cost of every layer (launch, synchronisation), per batch, in microseconds.
    pub layer_overhead_us: f64,
    /// Optional measured per-layer CSV, relative to this file; overrides the model for its layers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    pub memory: MemoryFile,
    pub compute: ComputeFile,
}

/// The memory system: off-chip bandwidth, on-chip buffer, and energy per byte of each.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryFile {
    pub bandwidth_gb_per_s: f64,
    pub buffer_bytes: f64,
    pub dram_pj_per_byte: f64,
    pub sram_pj_per_byte: f64,
}

/// The validated memory system, in SI units.
#[derive(Debug, Clone, PartialEq)]
pub struct Memory {
    pub bandwidth_bytes_per_s: f64,
    pub buffer_bytes: f64,
    pub dram_j_per_byte: f64,
    pub sram_j_per_byte: f64,
}

/// A validated device profile: what `CostModel` is implemented for.
#[derive(Debug, Clone)]
pub struct Profile {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) sources: BTreeMap<String, String>,
    pub(crate) path: PathBuf,
    pub(crate) batch: u64,
    pub(crate) precisions: Vec<Format>,
    pub(crate) clock_hz: f64,
    pub(crate) overhead_s: f64,
    pub(crate) memory: Memory,
    pub(crate) compute: ComputeModel,
    pub(crate) table: Option<Table>,
    /// SHA-256 of everything that prices a layer (see `price_digest`).
    pub(crate) digest: String,
}

impl Profile {
    /// Reads, parses and validates a profile file (and its table, if it names one).
    pub fn load(path: &Path) -> Result<Profile, HardwareError> {
        ProfileFile::read(path)?.check(path)
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn description(&self) -> &str {
        &self.description
    }
    pub fn sources(&self) -> &BTreeMap<String, String> {
        &self.sources
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn batch(&self) -> u64 {
        self.batch
    }
    /// The supported integer widths 1..=8 (other formats: `supports`).
    pub fn precisions(&self) -> &[Format] {
        &self.precisions
    }
    pub fn clock_hz(&self) -> f64 {
        self.clock_hz
    }
    pub fn overhead_s(&self) -> f64 {
        self.overhead_s
    }
    pub fn memory(&self) -> &Memory {
        &self.memory
    }
    pub fn compute(&self) -> &ComputeModel {
        &self.compute
    }
    pub fn table(&self) -> Option<&Table> {
        self.table.as_ref()
    }
    /// SHA-256 (hex) of the numbers that price a layer: batch, precisions, clock, overhead,
    /// memory, compute model and every table row. Name, description and sources are left out
    /// (they price nothing), so a run records, and a resume checks, the price model itself.
    pub fn digest(&self) -> &str {
        &self.digest
    }
    /// Whether the profile prices `b`: an integer of 1..=8 bits when `precisions` lists it,
    /// group-wise int4 when it lists 4; every other format (full precision, a minifloat, a
    /// 9..16-bit integer activation) always, as the compute model runs it.
    pub fn supports(&self, b: Format) -> bool {
        match b.kind() {
            Kind::Int(bits) if bits <= Format::MAX => self.precisions.contains(&b),
            Kind::GroupInt { bits, .. } => {
                Format::new(bits).is_ok_and(|int| self.precisions.contains(&int))
            }
            Kind::Int(_) | Kind::Float(_) | Kind::Full => true,
        }
    }
}

impl ProfileFile {
    /// Reads and parses (but does not validate) a profile file.
    pub fn read(path: &Path) -> Result<ProfileFile, HardwareError> {
        let text = std::fs::read_to_string(path).map_err(|source| HardwareError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| HardwareError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })
    }

    /// Applies every rule and builds the validated profile; `path` names the file in errors and
    /// anchors the relative `table` path.
    pub fn check(self, path: &Path) -> Result<Profile, HardwareError> {
        let p = path.to_path_buf();
        // The name becomes part of every run directory's path (`AGENT-NAME`).
        path_name(&p, "name", &self.name)?;
        if self.sources.is_empty() {
            return Err(HardwareError::NoSources { path: p });
        }
        if self.batch < 1 {
            return Err(HardwareError::BatchTooSmall {
                path: p,
                value: self.batch,
            });
        }
        let precisions = check_precisions(&p, &self.precisions)?;
        let clock_hz = positive(&p, "clock_hz", self.clock_hz)?;
        let overhead_us = non_negative(&p, "layer_overhead_us", self.layer_overhead_us)?;
        let m = &self.memory;
        let memory = Memory {
            bandwidth_bytes_per_s: positive(&p, "memory.bandwidth_gb_per_s", m.bandwidth_gb_per_s)?
                * 1e9,
            buffer_bytes: positive(&p, "memory.buffer_bytes", m.buffer_bytes)?,
            dram_j_per_byte: positive(&p, "memory.dram_pj_per_byte", m.dram_pj_per_byte)? * 1e-12,
            sram_j_per_byte: positive(&p, "memory.sram_pj_per_byte", m.sram_pj_per_byte)? * 1e-12,
        };
        let digest = price_digest(&self);
        let compute = check_compute(&p, self.compute)?;
        let table = match &self.table {
            None => None,
            Some(rel) => {
                let base = path.parent().unwrap_or_else(|| Path::new("."));
                let table = Table::load(&base.join(rel), &precisions).map_err(|e| {
                    HardwareError::InTable {
                        profile: p.clone(),
                        source: Box::new(e),
                    }
                })?;
                Some(table)
            }
        };
        let digest = match &table {
            Some(t) => hex_sha256(&[digest.as_bytes(), &t.digest_bytes()]),
            None => digest,
        };
        Ok(Profile {
            digest,
            name: self.name,
            description: self.description,
            sources: self.sources,
            path: p,
            batch: self.batch as u64,
            precisions,
            clock_hz,
            overhead_s: overhead_us * 1e-6,
            memory,
            compute,
            table,
        })
    }
}

/// The digest of a profile file's pricing fields (its table is added by `check`).
fn price_digest(f: &ProfileFile) -> String {
    let fields = (
        f.batch,
        &f.precisions,
        f.clock_hz,
        f.layer_overhead_us,
        &f.memory,
        &f.compute,
    );
    // Serializing plain numbers, vectors and derived structs cannot fail.
    hex_sha256(&[&serde_json::to_vec(&fields).unwrap_or_default()])
}

/// The hex SHA-256 of `parts` fed in order (a profile's digest, an imported table's).
pub fn hex_sha256(parts: &[&[u8]]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn check_precisions(path: &Path, values: &[i64]) -> Result<Vec<Format>, HardwareError> {
    if values.is_empty() {
        return Err(HardwareError::NoPrecisions {
            path: path.to_path_buf(),
        });
    }
    let mut out: Vec<Format> = Vec::new();
    for (i, &v) in values.iter().enumerate() {
        let bits = u8::try_from(v)
            .ok()
            .filter(|b| (Format::MIN..=Format::MAX).contains(b))
            .and_then(|b| Format::new(b).ok())
            .ok_or_else(|| HardwareError::PrecisionOutOfRange {
                path: path.to_path_buf(),
                field: format!("precisions[{i}]"),
                value: v,
            })?;
        if out.contains(&bits) {
            return Err(HardwareError::DuplicatePrecision {
                path: path.to_path_buf(),
                value: v,
            });
        }
        out.push(bits);
    }
    out.sort();
    Ok(out)
}

fn check_compute(path: &Path, file: ComputeFile) -> Result<ComputeModel, HardwareError> {
    Ok(match file {
        ComputeFile::BitSerial(f) => ComputeModel::BitSerial(BitSerial {
            binary_macs_per_cycle: positive(
                path,
                "compute.binary_macs_per_cycle",
                f.binary_macs_per_cycle,
            )?,
            binary_mac_j: positive(path, "compute.pj_per_binary_mac", f.pj_per_binary_mac)? * 1e-12,
        }),
        ComputeFile::BitFusion(f) => ComputeModel::BitFusion(BitFusion {
            fusion_units: positive(path, "compute.fusion_units", f.fusion_units)?,
            mac_8x8_j: positive(path, "compute.mac_pj_8x8", f.mac_pj_8x8)? * 1e-12,
        }),
        ComputeFile::PrecisionModes(f) => {
            let modes = (f.modes.iter().enumerate())
                .map(|(i, m)| m.check(path, i))
                .collect::<Result<Vec<Mode>, _>>()?;
            if !modes.iter().any(|m| m.w.is_full() && m.a.is_full()) {
                return Err(HardwareError::NoFullPrecisionMode {
                    path: path.to_path_buf(),
                });
            }
            ComputeModel::PrecisionModes(PrecisionModes {
                selection: f.selection,
                weight_storage: f.weight_storage,
                activation_storage: f.activation_storage,
                modes,
            })
        }
    })
}

/// The folder of shipped profiles used when a name is not found under the current directory.
pub const BUILTIN_PROFILE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/hardware-profiles");

/// Resolves `NAME` to `hardware-profiles/NAME.toml` (current directory first, then the crate's
/// own folder); anything that looks like a path (has a separator or ends in `.toml`) is a file.
pub fn resolve_profile(name_or_file: &str) -> Result<PathBuf, HardwareError> {
    let as_path = Path::new(name_or_file);
    if name_or_file.ends_with(".toml") || name_or_file.contains(std::path::MAIN_SEPARATOR) {
        return Ok(as_path.to_path_buf());
    }
    let file = format!("{name_or_file}.toml");
    let tried = [
        Path::new("hardware-profiles").join(&file),
        Path::new(BUILTIN_PROFILE_DIR).join(&file),
    ];
    for candidate in &tried {
        if candidate.is_file() {
            return Ok(candidate.clone());
        }
    }
    Err(HardwareError::ProfileNotFound {
        name: name_or_file.to_string(),
        tried: tried
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// Every `*.toml` file in `dir`, sorted by name.
pub fn profile_files(dir: &Path) -> Result<Vec<PathBuf>, HardwareError> {
    let io = |source| HardwareError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.extension().is_some_and(|e| e == "toml") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}
