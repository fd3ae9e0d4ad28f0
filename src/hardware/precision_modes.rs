//! The `precision-modes` compute model (CPUs, GPUs, NPUs): a list of modes, each computing one
//! (weight format, activation format) pair at its own throughput and energy, and the rule that
//! picks the mode a layer runs in.
//!
//! A mode's operand format *holds* a layer's operand format natively or by widening:
//!
//! - natively: an integer of n bits in an integer mode of ≥ n bits (group-wise int4 as int4, its
//!   scales aside); a minifloat in a mode of the same format; full precision in full precision;
//! - by widening: a minifloat in a float mode whose exponent and mantissa are each at least its
//!   own, so every value converts exactly (fp8e4m3 and fp8e5m2 into fp16 or bf16; fp16 and bf16,
//!   neither of which holds the other, into fp32 only), or in full precision; an integer of n bits
//!   in a float mode whose significand (mantissa + 1) has ≥ n bits, so every integer converts
//!   exactly (int4 into fp8e4m3, int8 into fp16 or bf16, int16 into full precision only), or in
//!   full precision;
//! - never: a minifloat in an integer mode, full precision in anything but full precision.
//!
//! A layer runs in a mode that holds both its operands natively, when one exists; otherwise in a
//! mode that holds both, natively or by widening (the 32/32 mode every profile has holds every
//! format). Among those, `selection` picks the fastest (ties: least energy per MAC) or the
//! narrowest (smallest sum of the mode's two widths; ties: fastest).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::HardwareError;
use crate::quant::{Format, Kind, LayerBits, Operand};
use crate::validate::positive;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrecisionModesFile {
    pub selection: Selection,
    pub weight_storage: Storage,
    pub activation_storage: Storage,
    pub modes: Vec<ModeFile>,
}

/// One `[[compute.modes]]` entry as written: each operand by its integer width (`w_bits`, the
/// form every file had before formats), by its format (`w_format`), or by both when they agree.
/// Absent fields are not serialized, so an integer-only file keeps its digest.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModeFile {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub w_bits: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub a_bits: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub w_format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub a_format: Option<String>,
    pub macs_per_cycle: f64,
    pub mac_pj: f64,
}

/// Which of the modes that hold a layer's (w, a) it runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Selection {
    /// The highest throughput (ties: lowest energy per MAC) — a runtime free to pick any kernel.
    Fastest,
    /// The smallest w+a (ties: fastest) — a library that runs each bitwidth in its own kernel.
    Narrowest,
}

/// The width an operand occupies in memory when computed in a wider mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Storage {
    /// Stored packed at its own format's width and unpacked on the fly.
    Packed,
    /// Stored at the width of the mode's format that computes it.
    Mode,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PrecisionModes {
    pub selection: Selection,
    pub weight_storage: Storage,
    pub activation_storage: Storage,
    pub modes: Vec<Mode>,
}

/// One validated mode: the formats it computes in (integers up to 8 bits for weights and 16
/// for activations, minifloats, full precision; never group-wise), its rate and energy.
#[derive(Debug, Clone, PartialEq)]
pub struct Mode {
    pub name: String,
    pub w: Format,
    pub a: Format,
    pub macs_per_cycle: f64,
    pub mac_j: f64,
}

/// How a mode's operand format holds a layer's operand format (`holds`); natively beats widened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Holding {
    Native,
    Widened,
}

/// How the mode format `mode` holds the operand format `operand`, if it does (the module's rule).
pub fn holds(mode: Format, operand: Format) -> Option<Holding> {
    let int_bits = |k: Kind| match k {
        Kind::Int(b) | Kind::GroupInt { bits: b, .. } => Some(u32::from(b)),
        _ => None,
    };
    match (operand.kind(), mode.kind()) {
        (Kind::Full, Kind::Full) => Some(Holding::Native),
        (Kind::Float(_), Kind::Float(_)) if operand == mode => Some(Holding::Native),
        (Kind::Float(f), Kind::Float(m)) => m.holds(f).then_some(Holding::Widened),
        (Kind::Float(_), Kind::Full) => Some(Holding::Widened),
        (k, Kind::Int(m)) => int_bits(k)
            .filter(|&b| u32::from(m) >= b)
            .map(|_| Holding::Native),
        (k, Kind::Float(m)) => int_bits(k)
            .filter(|&b| m.man_bits() + 1 >= b)
            .map(|_| Holding::Widened),
        (k, Kind::Full) => int_bits(k).map(|_| Holding::Widened),
        _ => None,
    }
}

impl PrecisionModes {
    /// The mode a layer at `bits` runs in, by the module's rule and the profile's selection;
    /// `None` only when no mode holds it (a checked profile's 32/32 mode holds every format).
    pub fn select(&self, bits: LayerBits) -> Option<&Mode> {
        let fits = |m: &Mode| Some(holds(m.w, bits.w)?.max(holds(m.a, bits.a)?));
        let best = self.modes.iter().filter_map(fits).min()?;
        let holding = self.modes.iter().filter(|m| fits(m) == Some(best));
        match self.selection {
            Selection::Fastest => holding.min_by(|x, y| {
                y.macs_per_cycle
                    .total_cmp(&x.macs_per_cycle)
                    .then(x.mac_j.total_cmp(&y.mac_j))
            }),
            Selection::Narrowest => holding.min_by(|x, y| {
                (u32::from(x.w.width()) + u32::from(x.a.width()))
                    .cmp(&(u32::from(y.w.width()) + u32::from(y.a.width())))
                    .then(y.macs_per_cycle.total_cmp(&x.macs_per_cycle))
            }),
        }
    }

    /// The widths a layer's operands are stored at when `mode` computes them.
    pub fn stored(&self, bits: LayerBits, mode: &Mode) -> (u8, u8) {
        let stored = |storage: Storage, own: Format, mode: Format| match storage {
            Storage::Packed => own.width(),
            Storage::Mode => mode.width(),
        };
        (
            stored(self.weight_storage, bits.w, mode.w),
            stored(self.activation_storage, bits.a, mode.a),
        )
    }
}

impl ModeFile {
    /// An integer mode (`w_bits`, `a_bits`; 32 = full precision), as calibrations write them.
    pub fn int(name: &str, w_bits: i64, a_bits: i64, macs_per_cycle: f64, mac_pj: f64) -> Self {
        ModeFile {
            name: name.to_string(),
            w_bits: Some(w_bits),
            a_bits: Some(a_bits),
            w_format: None,
            a_format: None,
            macs_per_cycle,
            mac_pj,
        }
    }

    /// Checks mode `index` of `path` and builds it.
    pub fn check(&self, path: &Path, index: usize) -> Result<Mode, HardwareError> {
        let field = |name: &str| format!("compute.modes[{index}].{name}");
        let operand = |op: Operand, bits: Option<i64>, format: &Option<String>| {
            let (b, f) = match op {
                Operand::Weight => ("w_bits", "w_format"),
                Operand::Activation => ("a_bits", "a_format"),
            };
            mode_format(path, op, (&field(b), bits), (&field(f), format.as_deref()))
        };
        Ok(Mode {
            name: self.name.clone(),
            w: operand(Operand::Weight, self.w_bits, &self.w_format)?,
            a: operand(Operand::Activation, self.a_bits, &self.a_format)?,
            macs_per_cycle: positive(path, &field("macs_per_cycle"), self.macs_per_cycle)?,
            mac_j: positive(path, &field("mac_pj"), self.mac_pj)? * 1e-12,
        })
    }
}

/// One operand of a mode from its `*_bits` and `*_format` fields (each `(field name, value)`).
fn mode_format(
    path: &Path,
    operand: Operand,
    (bits_field, bits): (&str, Option<i64>),
    (format_field, format): (&str, Option<&str>),
) -> Result<Format, HardwareError> {
    let (range, what) = match operand {
        Operand::Weight => ("1..=8", "weights"),
        Operand::Activation => ("1..=16", "activations"),
    };
    let from_bits = |value: i64| {
        u8::try_from(value)
            .ok()
            .and_then(|b| Format::new(b).ok())
            .filter(|f| f.allowed_for(operand))
            .ok_or_else(|| HardwareError::ModeBitsOutOfRange {
                path: path.to_path_buf(),
                field: bits_field.to_string(),
                range,
                value,
            })
    };
    let Some(name) = format else {
        return match bits {
            Some(value) => from_bits(value),
            None => Err(HardwareError::ModeOperandMissing {
                path: path.to_path_buf(),
                bits: bits_field.to_string(),
                format: format_field.to_string(),
            }),
        };
    };
    let parsed: Format = name.parse().map_err(|_| HardwareError::ModeFormatUnknown {
        path: path.to_path_buf(),
        field: format_field.to_string(),
        value: name.to_string(),
    })?;
    let computed = !matches!(parsed.kind(), Kind::GroupInt { .. }) && parsed.allowed_for(operand);
    if !computed {
        return Err(HardwareError::ModeFormatNotComputed {
            path: path.to_path_buf(),
            field: format_field.to_string(),
            operand: what,
            range,
            value: name.to_string(),
        });
    }
    match bits {
        Some(value) if value != i64::from(parsed.width()) => Err(HardwareError::ModeFormatWidth {
            path: path.to_path_buf(),
            bits_field: bits_field.to_string(),
            bits: value,
            format_field: format_field.to_string(),
            format: parsed.name(),
            width: parsed.width(),
        }),
        _ => Ok(parsed),
    }
}

#[cfg(test)]
#[path = "precision_modes_tests.rs"]
mod tests;
