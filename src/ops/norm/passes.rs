//! BatchNorm's passes over an (N, C, H·W) batch of f32 values, on batch statistics: the per-channel
//! statistics and the normalizing pass with what follows it inside the op (a ReLU or a ReLU6, or
//! a residual add and a ReLU); `backward.rs` has the backward.
//!
//! With x̂ = (x − mean)·inv, inv = 1/√(var + ε), and m = N·H·W values per channel:
//! - forward `z = x·scale + shift` (scale = γ·inv, shift = β − γ·inv·mean), then `z + r` when a
//!   residual `r` joins, then `max(·, 0)` when a ReLU follows (`min(max(·, 0), 6)`: a ReLU6);
//! - backward from `dz` (the upstream gradient, through the ReLU's mask when there is one):
//!   dβ = Σ dz, dγ = Σ dz·x̂, dx = γ·inv·(dz − dβ/m − x̂·dγ/m), and `dr = dz`.
//!
//! The ReLU's mask is candle's: `dz = 0 + dy·[z ≥ 0]` (the gradient passes at 0), what its ReLU
//! backward leaves in a zero-filled gradient slot, recomputed here from `x` (and `r`) rather than
//! kept. So the fused op gives the bits of BatchNorm, then candle's ReLU (or `ops::add_relu`),
//! signed zeros and NaN included. A ReLU6's is `ops::relu6`'s (candle's `clamp`,
//! `activation::relu6_candle_pass`), so the same holds for it. Each channel's sums run in f64 in a
//! fixed order (examples, then pixels), whatever the thread count.

use crate::ops::activation::{relu6_candle, Activation};
use crate::ops::instruction_set::with_widest_vectors;
use crate::ops::parallel::{filled_chunks, for_each_chunk};
use candle_core::Result;
use std::mem::MaybeUninit;

/// An (N, C, H·W) batch's sizes.
#[derive(Clone, Copy)]
pub(super) struct Dims {
    pub n: usize,
    pub c: usize,
    pub hw: usize,
}

/// What the op applies after normalizing.
#[derive(Clone, Copy)]
pub(super) struct Then<'a> {
    /// A residual added to the normalized values (same shape as x).
    pub residual: Option<&'a [f32]>,
    /// The rectifier after the (joined) normalized values: `Identity`, `Relu`, or `Relu6`
    /// (not after a join).
    pub act: Activation,
}

/// Per channel: the batch's mean, biased variance and 1/√(var + ε), and the normalization's
/// affine map `x·scale + shift`.
#[derive(Default)]
pub(super) struct Stats {
    pub mean: Vec<f32>,
    pub var: Vec<f32>,
    pub inv: Vec<f32>,
    pub scale: Vec<f32>,
    pub shift: Vec<f32>,
}

/// Channel `ch`'s mean and biased variance over its N planes, summed in f64 plane by plane.
fn channel_stats(x: &[f32], d: Dims, ch: usize) -> (f32, f32) {
    let planes = || (0..d.n).map(move |i| &x[(i * d.c + ch) * d.hw..][..d.hw]);
    let count = (d.n * d.hw) as f64;
    let mean = planes().flatten().map(|&v| f64::from(v)).sum::<f64>() / count;
    let var = planes()
        .flatten()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / count;
    (mean as f32, var as f32)
}

/// Channels summed together by `group_stats`.
pub(super) const GROUP: usize = 4;

/// `channel_stats` of the `GROUP` channels from `first` on, into `out`: the same sums in the
/// same order per channel (from −0, as `Iterator::sum` starts), the channels' chains of adds
/// interleaved so that they overlap instead of each waiting on its own last add.
// Index loops: pixel `q` of every channel's plane in one step, each channel's chain its own.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
fn group_stats(x: &[f32], d: Dims, first: usize, out: &mut [(f32, f32)]) {
    let count = (d.n * d.hw) as f64;
    let plane = |i: usize, k: usize| &x[(i * d.c + first + k) * d.hw..][..d.hw];
    let mut sum = [-0.0f64; GROUP];
    for i in 0..d.n {
        let p: [&[f32]; GROUP] = std::array::from_fn(|k| plane(i, k));
        for q in 0..d.hw {
            for k in 0..GROUP {
                sum[k] += f64::from(p[k][q]);
            }
        }
    }
    let mean = sum.map(|s| s / count);
    let mut sq = [-0.0f64; GROUP];
    for i in 0..d.n {
        let p: [&[f32]; GROUP] = std::array::from_fn(|k| plane(i, k));
        for q in 0..d.hw {
            for k in 0..GROUP {
                sq[k] += (f64::from(p[k][q]) - mean[k]).powi(2);
            }
        }
    }
    for (k, o) in out.iter_mut().enumerate() {
        *o = (mean[k] as f32, (sq[k] / count) as f32);
    }
}

/// The batch's statistics, groups of channels in parallel (`channel_stats` for the channels
/// past the last whole group).
pub(super) fn stats(x: &[f32], d: Dims, gamma: &[f32], beta: &[f32], eps: f64) -> Result<Stats> {
    let mut per = vec![(0.0, 0.0); d.c];
    for_each_chunk(
        &mut per,
        GROUP,
        || (),
        |_, g, out| {
            match out.len() {
                GROUP => with_widest_vectors(
                    #[inline(always)]
                    || group_stats(x, d, g * GROUP, out),
                ),
                _ => (out.iter_mut().enumerate())
                    .for_each(|(k, o)| *o = channel_stats(x, d, g * GROUP + k)),
            }
            Ok(())
        },
    )?;
    let inv: Vec<f32> = per
        .iter()
        .map(|&(_, var)| (1.0 / (f64::from(var) + eps).sqrt()) as f32)
        .collect();
    let scale = (0..d.c).map(|ch| gamma[ch] * inv[ch]).collect();
    let shift = (0..d.c)
        .map(|ch| beta[ch] - gamma[ch] * inv[ch] * per[ch].0)
        .collect();
    let (mean, var) = per.into_iter().unzip();
    Ok(Stats {
        mean,
        var,
        inv,
        scale,
        shift,
    })
}

/// `then(x·scale + shift)` per channel, one piece per (example, channel) plane.
pub(super) fn normalize(x: &[f32], d: Dims, s: &Stats, then: Then) -> Result<Vec<f32>> {
    let fill = |_: &mut (), p: usize, out: &mut [MaybeUninit<f32>]| {
        let (scale, shift) = (s.scale[p % d.c], s.shift[p % d.c]);
        let xs = &x[p * d.hw..][..out.len()];
        let rs = then.residual.map(|r| &r[p * d.hw..][..out.len()]);
        with_widest_vectors(
            #[inline(always)]
            || match (rs, then.act) {
                (None, Activation::Identity) => write_with(out, xs, |v| v * scale + shift),
                (None, Activation::Relu) => write_with(out, xs, |v| (v * scale + shift).max(0.0)),
                (None, Activation::Relu6) => {
                    write_with(out, xs, |v| relu6_candle(v * scale + shift))
                }
                (Some(rs), act) => {
                    for ((o, &v), &r) in out.iter_mut().zip(xs).zip(rs) {
                        let z = v * scale + shift + r;
                        o.write(match act {
                            Activation::Identity => z,
                            Activation::Relu => z.max(0.0),
                            Activation::Relu6 => relu6_candle(z),
                        });
                    }
                }
            },
        );
        Ok(())
    };
    // SAFETY: each arm writes all of `out`: `xs` and `rs` are cut to its length.
    unsafe { filled_chunks(x.len(), d.hw.max(1), || (), fill) }
}

/// `out[i] = f(xs[i])` for every element of `out` (`xs` is as long).
#[inline(always)]
fn write_with(out: &mut [MaybeUninit<f32>], xs: &[f32], f: impl Fn(f32) -> f32) {
    for (o, &v) in out.iter_mut().zip(xs) {
        o.write(f(v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Grouped statistics equal `channel_stats` channel by channel bit for bit, on channel
    /// counts with and without a partial group, odd planes, and a channel of −0 only (whose
    /// mean keeps its sign only if the sum starts from −0).
    #[test]
    fn grouped_statistics_equal_channel_by_channel_bit_for_bit() -> Result<()> {
        let mut state = 7u64;
        for (n, c, hw) in [(3, 9, 35), (2, 4, 1), (1, 3, 5), (5, 8, 16)] {
            let mut x: Vec<f32> = (0..n * c * hw)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.3) * 7.0
                })
                .collect();
            for i in 0..n {
                x[(i * c + 1) * hw..][..hw].fill(-0.0);
            }
            let d = Dims { n, c, hw };
            let (ones, zeros) = (vec![1.0; c], vec![0.0; c]);
            let got = stats(&x, d, &ones, &zeros, 1e-5)?;
            for ch in 0..c {
                let (mean, var) = channel_stats(&x, d, ch);
                assert_eq!(
                    got.mean[ch].to_bits(),
                    mean.to_bits(),
                    "mean {ch} of {n}×{c}×{hw}"
                );
                assert_eq!(
                    got.var[ch].to_bits(),
                    var.to_bits(),
                    "var {ch} of {n}×{c}×{hw}"
                );
            }
            assert!(got.mean[1].is_sign_negative(), "−0 channel");
        }
        Ok(())
    }
}
