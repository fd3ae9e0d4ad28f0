//! BatchNorm's backward on batch statistics (the formulas are in `passes.rs`): the per-channel
//! sums dβ = Σ dz and dγ = Σ dz·x̂, then dx plane by plane.
//!
//! `dz`, the gradient reaching the normalized values, is the upstream gradient passed back
//! through the fused rectifier's mask. It is stored only when a residual joined (it is then the
//! residual's gradient too); otherwise each pass recomputes a plane of it from `x` and the
//! upstream gradient where it needs one, in a buffer that stays in cache, which spares a write
//! and a read of an activation-sized array. The recomputation is the same function on the same
//! values, so the bits do not depend on which way a plane was found.

use super::passes::{Dims, Stats, Then, GROUP};
use crate::ops::activation::{relu6_candle_pass, Activation};
use crate::ops::instruction_set::with_widest_vectors;
use crate::ops::parallel::{filled_chunks, for_each_chunk};
use candle_core::Result;
use std::mem::MaybeUninit;

/// The backward's results: dx, dγ, dβ, and `dz` when a residual joined (its gradient), else
/// None.
pub(super) struct Grads {
    pub dx: Vec<f32>,
    pub dgamma: Vec<f32>,
    pub dbeta: Vec<f32>,
    pub dz: Option<Vec<f32>>,
}

/// Where the passes find `dz`, plane by plane.
enum Upstream<'a> {
    /// A whole array: the upstream gradient itself (no rectifier), or `dz` stored for a residual.
    Stored(&'a [f32]),
    /// Recomputed per plane from the upstream gradient through the rectifier's mask.
    Masked(&'a [f32], Activation),
}

impl Upstream<'_> {
    /// Plane `p`'s `dz`, from the array or recomputed into `buf` (`hw` long). Inlined, so that
    /// the recomputation runs in its caller's `with_widest_vectors` copy.
    #[inline(always)]
    fn plane<'b>(
        &'b self,
        x: &[f32],
        d: Dims,
        s: &Stats,
        p: usize,
        buf: &'b mut [f32],
    ) -> &'b [f32] {
        let at = p * d.hw;
        match *self {
            Upstream::Stored(gz) => &gz[at..][..d.hw],
            Upstream::Masked(g, act) => {
                let src = (&x[at..][..d.hw], &g[at..][..d.hw], None);
                let affine = (s.scale[p % d.c], s.shift[p % d.c]);
                mask_plane(&mut buf[..d.hw], src, affine, act);
                &buf[..d.hw]
            }
        }
    }
}

/// A value the mask writes: into an initialized buffer, or into a fresh output.
trait Put {
    fn put(&mut self, v: f32);
}

impl Put for f32 {
    #[inline(always)]
    fn put(&mut self, v: f32) {
        *self = v;
    }
}

impl Put for MaybeUninit<f32> {
    #[inline(always)]
    fn put(&mut self, v: f32) {
        self.write(v);
    }
}

/// The rectifier's backward on one plane, `z` recomputed as the forward computed it: a ReLU's
/// `dz = 0 + g·[z ≥ 0]`, a ReLU6's `0 + relu6_candle_pass(g, z)` (what the separate ops leave
/// in the normalized values' zero-filled gradient slot). Writes every element of `dz` (the
/// sources are as long).
#[inline(always)]
fn mask_plane<T: Put>(
    dz: &mut [T],
    src: (&[f32], &[f32], Option<&[f32]>),
    affine: (f32, f32),
    act: Activation,
) {
    // One loop per rectifier, so each loop vectorizes without a branch inside.
    match act {
        Activation::Identity => mask_with(dz, src, affine, |g, _| g),
        Activation::Relu => mask_with(dz, src, affine, |g, z| {
            0.0 + g * if z >= 0.0 { 1.0 } else { 0.0 }
        }),
        Activation::Relu6 => mask_with(dz, src, affine, |g, z| 0.0 + relu6_candle_pass(g, z)),
    }
}

/// `dz = pass(g, z)` over a plane, `z = x·scale + shift (+ r)`.
#[inline(always)]
fn mask_with<T: Put>(
    dz: &mut [T],
    (x, g, r): (&[f32], &[f32], Option<&[f32]>),
    (scale, shift): (f32, f32),
    pass: impl Fn(f32, f32) -> f32,
) {
    match r {
        None => {
            for ((d, &v), &g) in dz.iter_mut().zip(x).zip(g) {
                d.put(pass(g, v * scale + shift));
            }
        }
        Some(r) => {
            for (((d, &v), &g), &r) in dz.iter_mut().zip(x).zip(g).zip(r) {
                d.put(pass(g, v * scale + shift + r));
            }
        }
    }
}

/// Per channel `(dγ, dβ) = (Σ dz·x̂, Σ dz)`, summed in f64 from +0 in a fixed order (examples,
/// then pixels), `GROUP` channels per piece in parallel.
fn grad_sums(up: &Upstream, x: &[f32], d: Dims, s: &Stats) -> Result<Vec<(f32, f32)>> {
    let mut sums = vec![(0.0f32, 0.0f32); d.c];
    let bufs = || -> Vec<Vec<f32>> { (0..GROUP).map(|_| vec![0.0; d.hw]).collect() };
    for_each_chunk(&mut sums, GROUP, bufs, |bufs, g, out| {
        with_widest_vectors(
            #[inline(always)]
            || match out.len() {
                GROUP => group_grad_sums::<GROUP>(up, x, d, s, g * GROUP, bufs, out),
                _ => (out.iter_mut().enumerate()).for_each(|(k, o)| {
                    let o = std::slice::from_mut(o);
                    group_grad_sums::<1>(up, x, d, s, g * GROUP + k, bufs, o)
                }),
            },
        );
        Ok(())
    })?;
    Ok(sums)
}

/// `grad_sums` of the `K` channels from `first` on, into `out`, with `K` plane buffers: each
/// channel's two sums in its own order, the `2·K` chains of adds interleaved so that they
/// overlap instead of each waiting on its own last add (one channel alone is two chains:
/// latency-bound).
// Index loops: pixel `q` of every channel's plane in one step, each channel's chains its own.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
fn group_grad_sums<const K: usize>(
    up: &Upstream,
    x: &[f32],
    d: Dims,
    s: &Stats,
    first: usize,
    bufs: &mut [Vec<f32>],
    out: &mut [(f32, f32)],
) {
    let (mean, inv): ([f32; K], [f32; K]) = (
        std::array::from_fn(|k| s.mean[first + k]),
        std::array::from_fn(|k| s.inv[first + k]),
    );
    let (mut db, mut dg) = ([0.0f64; K], [0.0f64; K]);
    for i in 0..d.n {
        let plane = |k: usize| i * d.c + first + k;
        let mut gp: [&[f32]; K] = [&[]; K];
        for (k, (slot, buf)) in gp.iter_mut().zip(bufs.iter_mut()).enumerate() {
            *slot = up.plane(x, d, s, plane(k), buf);
        }
        let xp: [&[f32]; K] = std::array::from_fn(|k| &x[plane(k) * d.hw..][..d.hw]);
        for q in 0..d.hw {
            for k in 0..K {
                let g = f64::from(gp[k][q]);
                db[k] += g;
                dg[k] += g * f64::from((xp[k][q] - mean[k]) * inv[k]);
            }
        }
    }
    for (k, o) in out.iter_mut().enumerate() {
        *o = (dg[k] as f32, db[k] as f32);
    }
}

/// The gradients from the upstream gradient `g` of the op's output.
pub(super) fn grads(
    x: &[f32],
    g: &[f32],
    d: Dims,
    s: &Stats,
    gamma: &[f32],
    then: Then,
) -> Result<Grads> {
    let dz = match (then.act, then.residual) {
        (Activation::Identity, _) | (_, None) => None,
        (act, Some(r)) => {
            let fill = |_: &mut (), p: usize, out: &mut [MaybeUninit<f32>]| {
                let at = p * d.hw;
                let src = (&x[at..][..d.hw], &g[at..][..d.hw], Some(&r[at..][..d.hw]));
                let affine = (s.scale[p % d.c], s.shift[p % d.c]);
                with_widest_vectors(
                    #[inline(always)]
                    || mask_plane(out, src, affine, act),
                );
                Ok(())
            };
            // SAFETY: `mask_plane` writes every element of `out`, a whole plane as its sources.
            Some(unsafe { filled_chunks(x.len(), d.hw.max(1), || (), fill)? })
        }
    };
    let up = match (&dz, then.act) {
        (Some(dz), _) => Upstream::Stored(dz),
        (None, Activation::Identity) => Upstream::Stored(g),
        (None, act) => Upstream::Masked(g, act),
    };
    let sums = grad_sums(&up, x, d, s)?;
    let m = (d.n * d.hw) as f64;
    let fill = |buf: &mut Vec<f32>, p: usize, out: &mut [MaybeUninit<f32>]| {
        let ch = p % d.c;
        let (mean, inv) = (s.mean[ch], s.inv[ch]);
        let (dg, db) = sums[ch];
        let k = gamma[ch] * inv;
        let (db_m, dg_m) = ((f64::from(db) / m) as f32, (f64::from(dg) / m) as f32);
        with_widest_vectors(
            #[inline(always)]
            || {
                let gz = up.plane(x, d, s, p, buf);
                for (o, (&v, &g)) in out.iter_mut().zip(x[p * d.hw..][..d.hw].iter().zip(gz)) {
                    let xhat = (v - mean) * inv;
                    // `0 +`: what candle's zero-filled gradient slot makes of it (−0 becomes +0),
                    // so a convolution fused before the BatchNorm (`conv_bn`) reads the bits it
                    // would read from the slot; for this op's own input the slot adds the same zero
                    // again.
                    o.write(0.0 + k * (g - db_m - xhat * dg_m));
                }
            },
        );
        Ok(())
    };
    // SAFETY: the loop writes every element of `out`, a whole plane as its sources.
    let dx = unsafe { filled_chunks(x.len(), d.hw.max(1), || vec![0.0; d.hw], fill)? };
    let (dgamma, dbeta) = sums.into_iter().unzip();
    Ok(Grads {
        dx,
        dgamma,
        dbeta,
        dz,
    })
}

#[cfg(test)]
mod tests {
    use super::super::passes::stats;
    use super::*;

    /// The backward's grouped sums equal one channel's plain sums (from +0, examples then
    /// pixels) bit for bit, with and without a partial group, on odd planes.
    #[test]
    fn grouped_gradient_sums_equal_channel_by_channel_bit_for_bit() -> Result<()> {
        let mut state = 11u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.4) * 5.0
        };
        for (n, c, hw) in [(3, 9, 35), (2, 4, 1), (1, 3, 5), (5, 8, 16)] {
            let x: Vec<f32> = (0..n * c * hw).map(|_| next()).collect();
            let gz: Vec<f32> = (0..n * c * hw).map(|_| next()).collect();
            let d = Dims { n, c, hw };
            let (ones, zeros) = (vec![1.0; c], vec![0.0; c]);
            let s = stats(&x, d, &ones, &zeros, 1e-5)?;
            let got = grad_sums(&Upstream::Stored(&gz), &x, d, &s)?;
            for (ch, got) in got.iter().enumerate() {
                let (mut db, mut dg) = (0.0f64, 0.0f64);
                for i in 0..n {
                    let at = (i * c + ch) * hw;
                    for (&g, &v) in gz[at..][..hw].iter().zip(&x[at..][..hw]) {
                        db += f64::from(g);
                        dg += f64::from(g) * f64::from((v - s.mean[ch]) * s.inv[ch]);
                    }
                }
                let want = (dg as f32, db as f32);
                assert_eq!(
                    (got.0.to_bits(), got.1.to_bits()),
                    (want.0.to_bits(), want.1.to_bits()),
                    "channel {ch} of {n}×{c}×{hw}"
                );
            }
        }
        Ok(())
    }
}
