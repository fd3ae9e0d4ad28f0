//! Compute models, one per physical idea, each turning a layer's (w, a) bitwidths into a
//! throughput (MACs per cycle), an energy per MAC and the widths the operands are stored at:
//!
//! - `bit-serial` (BISMO): every w-bit × a-bit MAC is w·a binary MACs, so
//!   `MACs/cycle = binary_macs_per_cycle / (w·a)`, `E_mac = w·a · E_binary_mac`.
//! - `bit-fusion` (Bit Fusion): operands are rounded up to 2, 4 or 8 bits and fused BitBricks give
//!   `MACs/cycle = units · ⌊8/max(a,2)⌋ · ⌊8/max(w,2)⌋`, `E_mac = E_8x8 · w'·a'/64` (w', a' rounded).
//! - `precision-modes` (CPUs, GPUs, NPUs): a list of (w, a) modes with their throughput; a layer runs
//!   in a mode that holds both its w and a (the fastest, or the narrowest, as the profile says).
//!
//! Full precision (32) is priced by an explicit rule per model: bit-serial treats it as a 32-bit
//! integer operand (w·a with 32); bit-fusion as four temporal 8-bit passes per 32-bit operand
//! (a quarter of the 8-bit rate per operand, E ∝ 32·a'/64); precision-modes require a 32/32 mode.

use serde::{Deserialize, Serialize};

use crate::quant::LayerBits;

/// The bitwidth value that stands for full precision.
pub const FULL_BITS: u8 = 32;

/// The `[compute]` table of a profile file, tagged by `model`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "kebab-case")]
pub enum ComputeFile {
    BitSerial(BitSerialFile),
    BitFusion(BitFusionFile),
    PrecisionModes(PrecisionModesFile),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BitSerialFile {
    pub binary_macs_per_cycle: f64,
    pub pj_per_binary_mac: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BitFusionFile {
    pub fusion_units: f64,
    pub mac_pj_8x8: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrecisionModesFile {
    pub selection: Selection,
    pub weight_storage: Storage,
    pub activation_storage: Storage,
    pub modes: Vec<ModeFile>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModeFile {
    pub name: String,
    pub w_bits: i64,
    pub a_bits: i64,
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
    /// Stored packed at its own bitwidth and unpacked on the fly.
    Packed,
    /// Stored at the width of the mode that computes it.
    Mode,
}

/// A validated compute model.
#[derive(Debug, Clone, PartialEq)]
pub enum ComputeModel {
    BitSerial(BitSerial),
    BitFusion(BitFusion),
    PrecisionModes(PrecisionModes),
}

#[derive(Debug, Clone, PartialEq)]
pub struct BitSerial {
    pub binary_macs_per_cycle: f64,
    pub binary_mac_j: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BitFusion {
    pub fusion_units: f64,
    pub mac_8x8_j: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PrecisionModes {
    pub selection: Selection,
    pub weight_storage: Storage,
    pub activation_storage: Storage,
    pub modes: Vec<Mode>,
}

/// One validated (w, a) mode; bits are 1..=8 or 32.
#[derive(Debug, Clone, PartialEq)]
pub struct Mode {
    pub name: String,
    pub w_bits: u8,
    pub a_bits: u8,
    pub macs_per_cycle: f64,
    pub mac_j: f64,
}

/// How a compute model runs one (w, a): the mode, its rate and energy, and the stored widths.
#[derive(Debug, Clone, PartialEq)]
pub struct ModeRun {
    pub mode: String,
    pub macs_per_cycle: f64,
    pub mac_j: f64,
    pub w_stored_bits: u8,
    pub a_stored_bits: u8,
}

impl ComputeModel {
    /// The name used in profile files.
    pub fn kind(&self) -> &'static str {
        match self {
            ComputeModel::BitSerial(_) => "bit-serial",
            ComputeModel::BitFusion(_) => "bit-fusion",
            ComputeModel::PrecisionModes(_) => "precision-modes",
        }
    }

    /// How `bits` runs; `None` only when no precision mode holds it.
    pub fn run(&self, bits: LayerBits) -> Option<ModeRun> {
        let (w, a) = (bits.w.width(), bits.a.width());
        match self {
            ComputeModel::BitSerial(m) => {
                let planes = f64::from(w) * f64::from(a);
                Some(ModeRun {
                    mode: format!("bit-serial {w}x{a}"),
                    macs_per_cycle: m.binary_macs_per_cycle / planes,
                    mac_j: m.binary_mac_j * planes,
                    w_stored_bits: w,
                    a_stored_bits: a,
                })
            }
            ComputeModel::BitFusion(m) => {
                let (fw, fa) = (fused_width(w), fused_width(a));
                Some(ModeRun {
                    mode: format!("fusion {fw}x{fa}"),
                    macs_per_cycle: m.fusion_units * lanes(fw) * lanes(fa),
                    mac_j: m.mac_8x8_j * f64::from(fw) * f64::from(fa) / 64.0,
                    w_stored_bits: fw,
                    a_stored_bits: fa,
                })
            }
            ComputeModel::PrecisionModes(m) => {
                let mode = m.select(w, a)?;
                let stored = |storage: Storage, own: u8, mode_bits: u8| match storage {
                    Storage::Packed => own,
                    Storage::Mode => mode_bits,
                };
                Some(ModeRun {
                    mode: mode.name.clone(),
                    macs_per_cycle: mode.macs_per_cycle,
                    mac_j: mode.mac_j,
                    w_stored_bits: stored(m.weight_storage, w, mode.w_bits),
                    a_stored_bits: stored(m.activation_storage, a, mode.a_bits),
                })
            }
        }
    }
}

impl PrecisionModes {
    /// The mode a (w, a) layer runs in, by the profile's selection rule.
    pub fn select(&self, w: u8, a: u8) -> Option<&Mode> {
        let holding = self.modes.iter().filter(|m| m.w_bits >= w && m.a_bits >= a);
        match self.selection {
            Selection::Fastest => holding.min_by(|x, y| {
                y.macs_per_cycle
                    .total_cmp(&x.macs_per_cycle)
                    .then(x.mac_j.total_cmp(&y.mac_j))
            }),
            Selection::Narrowest => holding.min_by(|x, y| {
                (u32::from(x.w_bits) + u32::from(x.a_bits))
                    .cmp(&(u32::from(y.w_bits) + u32::from(y.a_bits)))
                    .then(y.macs_per_cycle.total_cmp(&x.macs_per_cycle))
            }),
        }
    }
}

/// Bit Fusion's operand width: BitBricks fuse in powers of two from 2 to 8 bits; a full-precision
/// operand is taken as 32 bits.
fn fused_width(bits: u8) -> u8 {
    match bits {
        0..=2 => 2,
        3..=4 => 4,
        5..=8 => 8,
        _ => FULL_BITS,
    }
}

/// Parallel lanes per operand in one fusion unit: 8/width, and 1/4 for a 32-bit operand (four
/// temporal 8-bit passes), so `⌊8/max(b,2)⌋` for b ≤ 8 and never zero.
fn lanes(fused: u8) -> f64 {
    8.0 / f64::from(fused)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::Format;

    fn bits(w: u8, a: u8) -> LayerBits {
        LayerBits::new(Format::new(w).unwrap(), Format::new(a).unwrap())
    }

    #[test]
    fn fusion_lanes_match_the_floor_formula() {
        // ⌊8/max(b,2)⌋ for b = 1..=8 is 4,4,2,2,1,1,1,1.
        for b in 1..=8u8 {
            let expected = (8 / b.max(2)) as f64;
            assert_eq!(lanes(fused_width(b)), expected, "b={b}");
        }
        assert_eq!(lanes(fused_width(32)), 0.25);
    }

    #[test]
    fn precision_mode_selection_rules() {
        let mode = |name: &str, w, a, r| Mode {
            name: name.into(),
            w_bits: w,
            a_bits: a,
            macs_per_cycle: r,
            mac_j: 1.0,
        };
        let mut m = PrecisionModes {
            selection: Selection::Fastest,
            weight_storage: Storage::Packed,
            activation_storage: Storage::Mode,
            modes: vec![
                mode("q4", 4, 32, 1.0),
                mode("q8", 8, 32, 2.0),
                mode("f32", 32, 32, 0.5),
            ],
        };
        assert_eq!(m.select(3, 8).unwrap().name, "q8");
        m.selection = Selection::Narrowest;
        assert_eq!(m.select(3, 8).unwrap().name, "q4");
        assert_eq!(m.select(32, 8).unwrap().name, "f32");
        let run = ComputeModel::PrecisionModes(m).run(bits(3, 8)).unwrap();
        assert_eq!((run.w_stored_bits, run.a_stored_bits), (3, 32));
    }
}
