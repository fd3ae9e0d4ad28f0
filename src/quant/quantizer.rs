//! `Quantizer`: a policy together with the calibrated activation clips, which is everything a
//! model's forward pass needs to fake-quantize each layer.

use super::{Bits, LayerBits, LayerClips, Policy};

/// What one quantizable layer does in a quantized forward pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LayerQuant {
    pub bits: LayerBits,
    /// Clip of this layer's input for `bits.a` (unused at full precision).
    pub clip: f32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Quantizer {
    policy: Policy,
    clips: Vec<LayerClips>,
}

impl Quantizer {
    /// `clips` holds one entry per layer; callers check the policy length against the model.
    pub fn new(policy: Policy, clips: Vec<LayerClips>) -> Self {
        Quantizer { policy, clips }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn layer(&self, index: usize) -> Option<LayerQuant> {
        let bits = *self.policy.layers().get(index)?;
        let clip = match bits.a {
            a if a.is_full() => 0.0,
            a => self.clips.get(index)?[(a.get() - 1) as usize],
        };
        Some(LayerQuant { bits, clip })
    }
}

impl LayerQuant {
    pub fn full() -> Self {
        LayerQuant {
            bits: LayerBits::uniform(Bits::FULL),
            clip: 0.0,
        }
    }
}
