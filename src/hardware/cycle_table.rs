//! A simulator's per-layer cycle table in HAQ's layout, and its conversion into a profile's
//! measured table.
//!
//! HAQ (mit-han-lab/haq, `lib/simulator/lookup_tables/*_latency_table.npy`) saves an int64 array
//! `[layers, B, B]` of cycles per batch, indexed `[layer, w_bits − 1, a_bits − 1]` for the
//! bitwidths 1..=B, its layers in the model's order (HAQ's env walks `model.modules()` and adds
//! `table[i, w − 1, a − 1]` for its i-th quantizable layer). The conversion, for the clock the
//! simulated device runs at:
//!
//! ```text
//! latency_us(layer, w, a)   = cycles[layer, w − 1, a − 1] / clock_hz · 1e6
//! latency_us(layer, 32, 32) = latency_us(layer, B, B)
//! energy_uj(layer, w, a)    = the base profile's roofline estimate (the table has no energy)
//! ```
//!
//! Full precision is not in the table, but a profile's table needs a 32/32 row for every layer
//! (the FP32 reference every run prices); it is priced as the widest width the simulator has,
//! B/B, which is also the reference HAQ's own search divides by (`--float_bit 8`).

use std::path::{Path, PathBuf};

use super::error::HardwareError;
use super::lookup::TableRow;
use super::profile::Profile;
use crate::model::LayerShape;
use crate::npy::NpyI64;
use crate::quant::{Format, LayerBits};

/// A validated cycle table: every entry positive, widths 1..=B for both operands.
#[derive(Debug, Clone)]
pub struct CycleTable {
    path: PathBuf,
    layers: usize,
    widths: u8,
    /// `[layer][w − 1][a − 1]`, C order.
    cycles: Vec<u64>,
}

impl CycleTable {
    /// Reads a `.npy` file and checks it has HAQ's layout.
    pub fn load(path: &Path) -> Result<CycleTable, HardwareError> {
        CycleTable::from_npy(NpyI64::load(path)?, path)
    }

    /// Checks an int64 array: three dimensions `[layers, B, B]` with 1 ≤ B ≤ 8 and at least one
    /// layer, every entry > 0 (a zero would price a layer as free).
    pub fn from_npy(npy: NpyI64, path: &Path) -> Result<CycleTable, HardwareError> {
        let shape_error = |rule: &'static str| HardwareError::CycleTableShape {
            path: path.to_path_buf(),
            rule,
            shape: format!("{:?}", npy.shape),
        };
        let &[layers, w, a] = npy.shape.as_slice() else {
            return Err(shape_error(
                "must be [layers, w_bits, a_bits] (three dimensions)",
            ));
        };
        if layers == 0 {
            return Err(shape_error("must have at least one layer"));
        }
        let widths = u8::try_from(w)
            .ok()
            .filter(|&b| w == a && (Format::MIN..=Format::MAX).contains(&b))
            .ok_or_else(|| shape_error("must have equal w and a dimensions of 1..=8 widths"))?;
        let mut cycles = Vec::with_capacity(npy.values.len());
        for (i, &v) in npy.values.iter().enumerate() {
            let ok = u64::try_from(v).ok().filter(|&c| c > 0);
            cycles.push(ok.ok_or_else(|| HardwareError::CycleTableEntry {
                path: path.to_path_buf(),
                index: [i / (w * w), (i / w) % w, i % w],
                value: v,
            })?);
        }
        Ok(CycleTable {
            path: path.to_path_buf(),
            layers,
            widths,
            cycles,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The number of layers (the first dimension).
    pub fn layers(&self) -> usize {
        self.layers
    }

    /// B: the widest bitwidth of both operands.
    pub fn widths(&self) -> u8 {
        self.widths
    }

    /// Every entry, `[layer][w − 1][a − 1]` in C order.
    pub fn raw(&self) -> &[u64] {
        &self.cycles
    }

    /// Cycles of `layer` at (w, a); full precision reads B. `None` outside the table, and for
    /// any format but an integer or full precision (the simulator ran integer widths only).
    pub fn cycles(&self, layer: usize, bits: LayerBits) -> Option<u64> {
        let index = |b: Format| match (b.is_full(), b.int_bits()) {
            (true, _) => Some(usize::from(self.widths) - 1),
            (false, Some(w)) => (w <= self.widths).then(|| usize::from(w) - 1),
            (false, None) => None,
        };
        let (w, a) = (index(bits.w)?, index(bits.a)?);
        let b = usize::from(self.widths);
        (layer < self.layers).then(|| self.cycles[(layer * b + w) * b + a])
    }
}

/// The rows of a profile table for `layers` (the model the simulator ran, in its order) from
/// `table`: one per (w, a) in the profile's precisions squared and 32/32, latency from the
/// cycles at `clock_hz`, energy from `profile`'s roofline (whose batch must be the table's).
pub fn cycle_table_rows(
    table: &CycleTable,
    layers: &[LayerShape],
    profile: &Profile,
    clock_hz: f64,
) -> Result<Vec<TableRow>, HardwareError> {
    if table.layers() != layers.len() {
        return Err(HardwareError::CycleTableLayers {
            path: table.path().to_path_buf(),
            table: table.layers(),
            model: layers.len(),
        });
    }
    let pairs: Vec<LayerBits> = (profile.precisions().iter())
        .flat_map(|&w| {
            profile
                .precisions()
                .iter()
                .map(move |&a| LayerBits::new(w, a))
        })
        .chain([LayerBits::uniform(Format::FULL)])
        .collect();
    let mut rows = Vec::with_capacity(layers.len() * pairs.len());
    for (l, layer) in layers.iter().enumerate() {
        for &bits in &pairs {
            let cycles = table
                .cycles(l, bits)
                .ok_or_else(|| HardwareError::CycleTableWidths {
                    path: table.path().to_path_buf(),
                    widths: table.widths(),
                    profile: profile.name().to_string(),
                    bits: bits.to_string(),
                })?;
            rows.push(TableRow {
                layer: layer.name.clone(),
                macs: layer.macs,
                params: layer.params as u64,
                w_bits: bits.w.width(),
                a_bits: bits.a.width(),
                latency_us: cycles as f64 / clock_hz * 1e6,
                energy_uj: profile.model_cost(layer, bits)?.energy_j * 1e6,
            });
        }
    }
    Ok(rows)
}

#[cfg(test)]
#[path = "cycle_table_tests.rs"]
mod tests;
