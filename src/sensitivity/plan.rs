//! Which policies a sensitivity study scores: the reference (every operand at the reference
//! width), then for each layer in model order its weights at each format, then its activations
//! at each format, every other operand at the reference. A format equal to the reference gives
//! the reference policy again (its row costs nothing: the score cache holds it).

use crate::quant::{Format, LayerBits, Policy};
use crate::rundir::Varied;

/// The width every operand has unless a row varies it: 8, as the budget's yardstick (uniform
/// 8/8) and the "default int8".
pub const REFERENCE_BITS: u8 = 8;

/// One policy of the study.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// The varied layer; None for the reference.
    pub layer: Option<usize>,
    pub operand: Varied,
    pub format: Format,
    pub policy: Policy,
}

/// The probes of `n_layers` layers at `formats` (the weight's, the activation's) around
/// uniform `reference`, reference first.
pub fn probes(n_layers: usize, reference: Format, formats: [&[Format]; 2]) -> Vec<Probe> {
    let base = Policy::uniform(n_layers, reference);
    let mut out = vec![Probe {
        layer: None,
        operand: Varied::Reference,
        format: reference,
        policy: base.clone(),
    }];
    for layer in 0..n_layers {
        for (operand, formats) in [Varied::Weight, Varied::Activation]
            .into_iter()
            .zip(formats)
        {
            for &format in formats {
                let mut policy = base.clone();
                let r = policy.layers()[layer];
                policy.layers_mut()[layer] = match operand {
                    Varied::Weight => LayerBits::new(format, r.a),
                    _ => LayerBits::new(r.w, format),
                };
                out.push(Probe {
                    layer: Some(layer),
                    operand,
                    format,
                    policy,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(b: u8) -> Format {
        Format::new(b).unwrap()
    }

    #[test]
    fn the_reference_comes_first_then_each_layer_operand_and_format() {
        let both = [bits(2), bits(8)];
        let p = probes(2, bits(8), [&both, &both]);
        let text: Vec<String> = p.iter().map(|p| p.policy.to_string()).collect();
        assert_eq!(
            text,
            [
                "8/8,8/8", "2/8,8/8", "8/8,8/8", "8/2,8/8", "8/8,8/8", "8/8,2/8", "8/8,8/8",
                "8/8,8/2", "8/8,8/8"
            ]
        );
        assert_eq!(p.len(), 1 + 2 * 2 * 2);
        assert_eq!((p[0].layer, p[0].operand), (None, Varied::Reference));
        assert_eq!((p[3].layer, p[3].operand), (Some(0), Varied::Activation));
        assert_eq!(p[7].format, bits(2));
        // Each operand at its own formats.
        let (w, a) = ([Format::INT4_G32], [bits(16)]);
        let text: Vec<String> = (probes(1, bits(8), [&w, &a]).iter())
            .map(|p| p.policy.to_string())
            .collect();
        assert_eq!(text, ["8/8", "int4g32/8", "8/16"]);
    }
}
