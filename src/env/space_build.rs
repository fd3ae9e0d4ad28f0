//! Building a `SearchSpace`: the declared formats per operand as the device runs them, every
//! layer priced at every (w, a) among them, and the agents' static features.

use super::{Format, LayerBits, Operand, SearchSpace};
use crate::env::EnvError;
use crate::hardware::{CostModel, Price};
use crate::model::{LayerKind, LayerShape};

impl SearchSpace {
    /// The space of min..=max bits on every operand, untied (see `with_choices`).
    pub fn new(
        layers: Vec<LayerShape>,
        min_bits: u8,
        max_bits: u8,
        device: &dyn CostModel,
        supports: &dyn Fn(Format) -> bool,
    ) -> Result<Self, EnvError> {
        let declared: Vec<u8> = (min_bits..=max_bits).collect();
        Self::with_choices(layers, &declared, false, device, supports)
    }

    /// Integer bitwidths on both operands (`with_formats`). `declared` is non-empty and in
    /// 1..=8 or 32 (the experiment checks both; a width outside is an error here too).
    pub fn with_choices(
        layers: Vec<LayerShape>,
        declared: &[u8],
        tie: bool,
        device: &dyn CostModel,
        supports: &dyn Fn(Format) -> bool,
    ) -> Result<Self, EnvError> {
        let ints = (declared.iter())
            .map(|&b| Format::new(b))
            .collect::<Result<Vec<Format>, _>>()?;
        Self::with_formats(layers, [ints.clone(), ints], tie, device, supports)
    }

    /// Prices every layer at every (w, a) the device runs for the `declared` formats of the
    /// weight and the activation (a missing entry is an error); `supports` says which integer
    /// widths the device runs natively. With `tie` the activation takes the weight's list.
    pub fn with_formats(
        layers: Vec<LayerShape>,
        declared: [Vec<Format>; 2],
        tie: bool,
        device: &dyn CostModel,
        supports: &dyn Fn(Format) -> bool,
    ) -> Result<Self, EnvError> {
        let [mut w, mut a] = declared;
        if tie {
            a = w.clone();
        }
        for list in [&mut w, &mut a] {
            list.sort_unstable();
            list.dedup();
        }
        if w.is_empty() || a.is_empty() {
            return Err(EnvError::NoBits);
        }
        // A width up to 8 rounds up within 1..=8, as it always has (a weight never reaches a
        // 9..16-bit integer that way); a wider integer activation is kept or runs unquantized.
        let top = |b: Format| {
            if b.width() <= Format::MAX {
                Format::MAX
            } else {
                b.width()
            }
        };
        let round_up = |b: Format| match b.is_plain() {
            false => b,
            true => (b.width()..=top(b))
                .filter_map(|v| Format::new(v).ok())
                .find(|&v| supports(v))
                .unwrap_or(Format::FULL),
        };
        let run = |list: &[Format]| {
            let mut out: Vec<Format> = list.iter().map(|&b| round_up(b)).collect();
            out.sort_unstable();
            out.dedup();
            out
        };
        let options = [run(&w), run(&a)];
        let mut values: Vec<Format> = options.iter().flatten().copied().collect();
        values.sort_unstable();
        values.dedup();
        let prices = price_all(device, &layers, &values, &options)?;
        let uniform8 = price_policy(device, &layers, LayerBits::uniform(Format::new(8)?))?;
        let full = price_policy(device, &layers, LayerBits::uniform(Format::FULL))?;
        // Each layer keeps the formats its operands take (`LayerShape::takes`: an attention
        // matmul's second operand, an activation, takes no group-wise format).
        let per_layer: Vec<[Vec<Format>; 2]> = (layers.iter())
            .map(|l| {
                let kept = [Operand::Weight, Operand::Activation].map(|op| {
                    let all = options[op.index()].iter().copied();
                    all.filter(|&f| l.takes(op, f)).collect::<Vec<_>>()
                });
                match kept.iter().any(|k| k.is_empty()) {
                    true => Err(EnvError::NoBits),
                    false => Ok(kept),
                }
            })
            .collect::<Result<_, _>>()?;
        let runs_as = (per_layer.iter())
            .map(|o| o.clone().map(|o| next_option(&values, &o)))
            .collect();
        Ok(SearchSpace {
            runs_as,
            options: per_layer,
            pruned: false,
            features: normalized_features(&layers),
            layers,
            min_bits: w[0].width().min(a[0].width()),
            max_bits: w[w.len() - 1].width().max(a[a.len() - 1].width()),
            declared: [w, a],
            tie,
            values,
            prices,
            uniform8,
            full,
        })
    }
}

/// For each of `values`, itself if it is one of `options`, else the next option above it
/// (the last option above them all).
fn next_option(values: &[Format], options: &[Format]) -> Vec<Format> {
    let last = options[options.len() - 1];
    (values.iter())
        .map(|v| options.iter().copied().find(|o| o >= v).unwrap_or(last))
        .collect()
}

/// prices[layer][i * n + j] for (values[i], values[j]); a pair no policy can hold (a value
/// that is not a weight option with one that is not an activation option) is left at zero and
/// never read (`SearchSpace::index` maps a policy's formats onto options).
fn price_all(
    device: &dyn CostModel,
    layers: &[LayerShape],
    values: &[Format],
    options: &[Vec<Format>; 2],
) -> Result<Vec<Vec<Price>>, EnvError> {
    let takes = |op: Operand, f: &Format| options[op.index()].contains(f);
    let mut prices = Vec::with_capacity(layers.len());
    for l in layers {
        let mut row = Vec::with_capacity(values.len() * values.len());
        for w in values {
            for a in values {
                row.push(
                    match takes(Operand::Weight, w) && takes(Operand::Activation, a) {
                        true => price(device, l, LayerBits::new(*w, *a))?,
                        false => Price::default(),
                    },
                );
            }
        }
        prices.push(row);
    }
    Ok(prices)
}

/// Every layer at `bits`, summed.
fn price_policy(
    device: &dyn CostModel,
    layers: &[LayerShape],
    bits: LayerBits,
) -> Result<Price, EnvError> {
    let mut total = Price::default();
    for l in layers {
        total = total + price(device, l, bits)?;
    }
    Ok(total)
}

fn price(device: &dyn CostModel, l: &LayerShape, bits: LayerBits) -> Result<Price, EnvError> {
    let c = device.layer_cost(l, bits)?;
    // Stored parameters only: an attention matmul's operands are activations, not model size.
    let size_bytes =
        l.weight_count() as f64 * bits.w.width() as f64 / 8.0 + 4.0 * l.bias_count() as f64;
    Ok(Price {
        latency_s: c.latency_s,
        energy_j: c.energy_j,
        size_bytes,
    })
}

fn normalized_features(layers: &[LayerShape]) -> Vec<[f32; 11]> {
    let mut raw: Vec<[f32; 11]> = Vec::with_capacity(2 * layers.len());
    for (i, l) in layers.iter().enumerate() {
        for operand in [0f32, 1.0] {
            raw.push([
                i as f32,
                (l.kind == LayerKind::Conv) as u8 as f32,
                l.is_depthwise() as u8 as f32,
                l.in_ch as f32,
                l.out_ch as f32,
                l.kernel as f32,
                l.stride as f32,
                (l.in_hw.0 * l.in_hw.1) as f32,
                l.params as f32,
                l.macs as f32,
                operand,
            ]);
        }
    }
    for f in 0..11 {
        let (lo, hi) = raw.iter().fold((f32::MAX, f32::MIN), |(lo, hi), r| {
            (lo.min(r[f]), hi.max(r[f]))
        });
        for r in raw.iter_mut() {
            r[f] = if hi > lo {
                (r[f] - lo) / (hi - lo)
            } else {
                0.0
            };
        }
    }
    raw
}
