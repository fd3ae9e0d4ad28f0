//! `Quantizer`: a policy together with the calibrated activation clips, which is everything a
//! model's forward pass needs to fake-quantize each layer.
//!
//! A conv or linear layer quantizes its input at `a` bits (clip from `Clips::input`) and its
//! weights at `w` bits (per channel, no clip). An activation × activation matmul quantizes its
//! first operand at `a` bits and its second at `w` bits, each with its own calibrated clip
//! (`Clips::operand` holds the second's).

use super::{Format, Kind, LayerBits, LayerClips, Policy};

/// What one quantizable layer does in a quantized forward pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerQuant {
    pub bits: LayerBits,
    /// Clip of this layer's input (a matmul's first operand) for `bits.a` (unused at full
    /// precision).
    pub clip: f32,
    /// Clip of a matmul's second operand for `bits.w` (0 for a conv or linear layer, whose
    /// weights need none, and at full precision).
    pub operand_clip: f32,
}

/// Every layer's calibrated clips, per bitwidth.
#[derive(Debug, Clone, PartialEq)]
pub struct Clips {
    /// Each layer's input (a matmul's first operand).
    pub input: Vec<LayerClips>,
    /// A matmul's second operand; None for a conv or linear layer.
    pub operand: Vec<Option<LayerClips>>,
}

/// Input clips alone: layers with weights (no second operand).
impl From<Vec<LayerClips>> for Clips {
    fn from(input: Vec<LayerClips>) -> Self {
        let operand = vec![None; input.len()];
        Clips { input, operand }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Quantizer {
    policy: Policy,
    clips: Clips,
}

impl Quantizer {
    /// `clips` holds one entry per layer; callers check the policy length against the model.
    pub fn new(policy: Policy, clips: impl Into<Clips>) -> Self {
        Quantizer {
            policy,
            clips: clips.into(),
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn layer(&self, index: usize) -> Option<LayerQuant> {
        let bits = *self.policy.layers().get(index)?;
        // Integers wider than 8 bits take the 8-bit clip, and so do minifloats (scaled by it):
        // the widest clip calibrated, which the `max` and percentile methods give every width.
        let at = |clips: &LayerClips, b: Format| match b.kind() {
            Kind::Full | Kind::GroupInt { .. } => 0.0,
            Kind::Int(bits) => clips[(bits.min(Format::MAX) - 1) as usize],
            Kind::Float(_) => clips[(Format::MAX - 1) as usize],
        };
        let clip = at(self.clips.input.get(index)?, bits.a);
        let operand_clip = match self.clips.operand.get(index) {
            Some(Some(c)) => at(c, bits.w),
            _ => 0.0,
        };
        Some(LayerQuant {
            bits,
            clip,
            operand_clip,
        })
    }
}

impl LayerQuant {
    pub fn full() -> Self {
        LayerQuant {
            bits: LayerBits::uniform(Format::FULL),
            clip: 0.0,
            operand_clip: 0.0,
        }
    }
}
