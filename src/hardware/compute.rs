//! Compute models, one per physical idea, each turning a layer's (w, a) formats into a
//! throughput (MACs per cycle), an energy per MAC and the widths the operands are stored at:
//!
//! - `bit-serial` (BISMO): every w-bit × a-bit MAC is w·a binary MACs, so
//!   `MACs/cycle = binary_macs_per_cycle / (w·a)`, `E_mac = w·a · E_binary_mac`.
//! - `bit-fusion` (Bit Fusion): operands are rounded up to 2, 4 or 8 bits and fused BitBricks give
//!   `MACs/cycle = units · ⌊8/max(a,2)⌋ · ⌊8/max(w,2)⌋`, `E_mac = E_8x8 · w'·a'/64` (w', a' rounded).
//! - `precision-modes` (CPUs, GPUs, NPUs): a list of modes, each a (weight, activation) format pair
//!   with its throughput; a layer runs in a mode that holds both its formats (`precision_modes`).
//!
//! Bit-serial and bit-fusion devices compute integers only. They run an integer operand at its
//! width, group-wise int4 as 4 bits (its scales aside), and a minifloat as full precision (32),
//! which has an explicit rule per model: bit-serial treats it as a 32-bit integer operand (w·a with
//! 32); bit-fusion as four temporal 8-bit passes per 32-bit operand (a quarter of the 8-bit rate
//! per operand, E ∝ 32·a'/64), and a 9..16-bit integer as two (E ∝ 16·a'/64). Precision-modes
//! require a 32/32 mode.

use serde::{Deserialize, Serialize};

pub use super::precision_modes::{
    holds, Holding, Mode, ModeFile, PrecisionModes, PrecisionModesFile, Selection, Storage,
};
use crate::quant::{Format, Kind, LayerBits};

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
        let (w, a) = (integer_width(bits.w), integer_width(bits.a));
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
                let mode = m.select(bits)?;
                let (w_stored_bits, a_stored_bits) = m.stored(bits, mode);
                Some(ModeRun {
                    mode: mode.name.clone(),
                    macs_per_cycle: mode.macs_per_cycle,
                    mac_j: mode.mac_j,
                    w_stored_bits,
                    a_stored_bits,
                })
            }
        }
    }
}

/// The integer width an integer-only device (bit-serial, bit-fusion) computes an operand at: an
/// integer's own, group-wise int4's 4 (its scales aside), and full precision's 32 for a minifloat,
/// which such a device has no arithmetic for.
fn integer_width(f: Format) -> u8 {
    match f.kind() {
        Kind::Int(b) | Kind::GroupInt { bits: b, .. } => b,
        Kind::Float(_) | Kind::Full => FULL_BITS,
    }
}

/// Bit Fusion's operand width: BitBricks fuse in powers of two from 2 to 8 bits; a 9..16-bit
/// operand is taken as 16 bits (two temporal 8-bit passes), a full-precision one as 32.
fn fused_width(bits: u8) -> u8 {
    match bits {
        0..=2 => 2,
        3..=4 => 4,
        5..=8 => 8,
        9..=16 => 16,
        _ => FULL_BITS,
    }
}

/// Parallel lanes per operand in one fusion unit: 8/width, so 1/2 for a 16-bit operand and 1/4
/// for a 32-bit one (two or four temporal 8-bit passes), `⌊8/max(b,2)⌋` for b ≤ 8, never zero.
fn lanes(fused: u8) -> f64 {
    8.0 / f64::from(fused)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(w: u8, a: u8) -> LayerBits {
        LayerBits::new(Format::new(w).unwrap(), Format::new(a).unwrap())
    }

    fn formats(w: &str, a: &str) -> LayerBits {
        LayerBits::new(w.parse().unwrap(), a.parse().unwrap())
    }

    #[test]
    fn fusion_lanes_match_the_floor_formula() {
        // ⌊8/max(b,2)⌋ for b = 1..=8 is 4,4,2,2,1,1,1,1.
        for b in 1..=8u8 {
            let expected = (8 / b.max(2)) as f64;
            assert_eq!(lanes(fused_width(b)), expected, "b={b}");
        }
        assert_eq!(lanes(fused_width(32)), 0.25);
        // A 9..16-bit activation takes two temporal 8-bit passes.
        assert_eq!(lanes(fused_width(12)), 0.5);
        assert_eq!(lanes(fused_width(16)), 0.5);
    }

    #[test]
    fn precision_mode_selection_rules() {
        let mode = |name: &str, w: u8, a: u8, r| Mode {
            name: name.into(),
            w: Format::new(w).unwrap(),
            a: Format::new(a).unwrap(),
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
        assert_eq!(m.select(bits(3, 8)).unwrap().name, "q8");
        m.selection = Selection::Narrowest;
        assert_eq!(m.select(bits(3, 8)).unwrap().name, "q4");
        assert_eq!(m.select(bits(32, 8)).unwrap().name, "f32");
        let run = ComputeModel::PrecisionModes(m).run(bits(3, 8)).unwrap();
        assert_eq!((run.w_stored_bits, run.a_stored_bits), (3, 32));
    }

    /// Integer-only devices have no float arithmetic: a minifloat operand is priced exactly as
    /// full precision (32), whatever its width; group-wise int4 as int4.
    #[test]
    fn integer_devices_price_a_minifloat_as_full_precision_and_int4g_as_int4() {
        let serial = ComputeModel::BitSerial(BitSerial {
            binary_macs_per_cycle: 1024.0,
            binary_mac_j: 1e-12,
        });
        let fusion = ComputeModel::BitFusion(BitFusion {
            fusion_units: 512.0,
            mac_8x8_j: 1e-12,
        });
        for model in [&serial, &fusion] {
            for (float, full) in [
                (formats("fp8e4m3", "8"), bits(32, 8)),
                (formats("fp16", "bf16"), bits(32, 32)),
                (formats("4", "fp8e5m2"), bits(4, 32)),
            ] {
                assert_eq!(
                    model.run(float),
                    model.run(full),
                    "{float} on {}",
                    model.kind()
                );
            }
            assert_eq!(
                model.run(formats("int4g32", "8")),
                model.run(bits(4, 8)),
                "{}",
                model.kind()
            );
        }
        // 1024 binary MACs/cycle over 32 x 8 planes.
        assert_eq!(
            serial.run(formats("fp8e4m3", "8")).unwrap().macs_per_cycle,
            4.0
        );
        assert_eq!(
            serial.run(formats("fp8e4m3", "8")).unwrap().mode,
            "bit-serial 32x8"
        );
        // 512 units x 1/4 lane (32-bit weights) x 1 lane (8-bit activations).
        assert_eq!(
            fusion.run(formats("fp8e4m3", "8")).unwrap().macs_per_cycle,
            128.0
        );
    }
}
