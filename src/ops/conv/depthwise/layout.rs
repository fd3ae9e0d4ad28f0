//! The buffers one depthwise plane is laid out in for the direct convolution's kernels, each a
//! flat "wide" grid on which every tap of the filter is a constant offset (`direct::kernels`):
//!
//! - `Phases`, the input side: the plane zero-padded by `p` and split into its `s²` phases,
//!   phase `(ry, rx)` holding the padded values at rows `s·i + ry` and columns `s·j + rx`, so
//!   output `(oy, ox)`'s tap `(ky, kx)` is phase `(ky mod s, kx mod s)`'s value at `(oy + ky/s,
//!   ox + kx/s)`: a stride-`s` convolution becomes a stride-1 correlation over the phases
//!   (stride 1: one phase, the padded plane itself);
//! - `Spread`, the input gradient's: the output gradient spread `s` apart and offset by
//!   `k − 1 − p` on a `(h + k − 1) × (w + k − 1)` plane, whose stride-1 correlation with the
//!   flipped filter is the transposed convolution (values spread outside the plane are ones no
//!   input pixel receives, and are dropped);
//! - `Wide`, the weight gradient's: the output gradient on the phases' grid, zero in the
//!   wrap-around columns and up to whole vectors.
//!
//! Each layout writes the same positions of its buffer for every plane, so a buffer zeroed once
//! keeps its zeros however often it is refilled.

use crate::ops::activation::Activation;
use crate::ops::conv::direct::kernels::{OutGrid, LANES, TAIL};
use crate::ops::conv::geometry::Geometry;
use crate::ops::instruction_set::with_widest_vectors;
use crate::quant::ActGrid;
use std::ops::Range;

/// The input plane's phases (see the module doc).
pub(super) struct Phases {
    g: Geometry,
    /// Rows and columns of a phase.
    hq: usize,
    wq: usize,
    /// Per phase column `rx`: its first source column, and where its values start in phase
    /// row 0 of phase `(0, rx)`.
    starts: Vec<(usize, usize)>,
}

impl Phases {
    pub(super) fn new(g: Geometry) -> Phases {
        let (s, p) = (g.stride, g.padding);
        let (hq, wq) = ((g.h + 2 * p).div_ceil(s), (g.w + 2 * p).div_ceil(s));
        let starts = (0..s)
            .map(|rx| {
                let x0 = (rx + s - p % s) % s;
                (x0, rx * hq * wq + (x0 + p) / s)
            })
            .collect();
        Phases { g, hq, wq, starts }
    }

    /// Values of all phases.
    pub(super) fn len(&self) -> usize {
        self.g.stride * self.g.stride * self.hq * self.wq
    }

    /// A zeroed buffer for the phases and the kernels' `TAIL`.
    pub(super) fn buffer(&self) -> Vec<f32> {
        vec![0.0; self.len() + TAIL]
    }

    /// Tap `(ky, kx)`'s offset: its phase's start plus `(ky/s)·wq + kx/s`.
    pub(super) fn taps(&self) -> Vec<usize> {
        let (k, s) = (self.g.k, self.g.stride);
        let phase = self.hq * self.wq;
        (0..k * k)
            .map(|t| {
                let (ky, kx) = (t / k, t % k);
                (ky % s * s + kx % s) * phase + ky / s * self.wq + kx / s
            })
            .collect()
    }

    /// The output plane on the phases' rows: `(oy, ox)` is wide pixel `oy·wq + ox`.
    pub(super) fn grid(&self) -> OutGrid {
        OutGrid::new(self.g.oh, self.g.ow, self.wq)
    }

    /// Plane `src` (h × w) into the phases' middles of `dst` (a `buffer`), quantized by `act`
    /// if given (over the whole phases: +0 quantizes to +0).
    pub(super) fn fill<'a>(
        &self,
        src: &[f32],
        act: Option<ActGrid>,
        dst: &'a mut [f32],
    ) -> &'a [f32] {
        let (s, p, w) = (self.g.stride, self.g.padding, self.g.w);
        let phase = self.hq * self.wq;
        // Row `y` lands in phase row `ry = (y + p) % s`, at `i = (y + p) / s`, kept as running
        // counters: the divisions were a third of this loop's time on MobileNet's small planes.
        let (mut ry, mut i) = (p % s, p / s);
        for row in src.chunks_exact(w.max(1)) {
            for &(x0, start) in &self.starts {
                let at = ry * s * phase + start + i * self.wq;
                let src = &row[x0.min(row.len())..];
                let dst = &mut dst[at..][..src.len().div_ceil(s)];
                // Stride 1 is a row copy; 2 a deinterleave the compiler vectorizes (a strided
                // iterator it does not).
                match s {
                    1 => dst.copy_from_slice(src),
                    2 => {
                        let (pairs, last) = src.split_at(src.len() / 2 * 2);
                        let (d, tail) = dst.split_at_mut(pairs.len() / 2);
                        d.iter_mut()
                            .zip(pairs.chunks_exact(2))
                            .for_each(|(d, p)| *d = p[0]);
                        tail.copy_from_slice(last);
                    }
                    _ => dst
                        .iter_mut()
                        .zip(src.iter().step_by(s))
                        .for_each(|(d, &v)| *d = v),
                }
            }
            ry += 1;
            if ry == s {
                (ry, i) = (0, i + 1);
            }
        }
        let len = self.len();
        if let Some(q) = act {
            q.quantize_in_place(&mut dst[..len]);
        }
        dst
    }
}

/// The output gradient spread for the input gradient (see the module doc).
pub(super) struct Spread {
    g: Geometry,
    /// Columns of the spread plane, `w + k − 1`.
    wg: usize,
    /// The output rows and columns that land inside the spread plane.
    rows: Range<usize>,
    cols: Range<usize>,
}

impl Spread {
    pub(super) fn new(g: Geometry) -> Spread {
        let (s, off) = (g.stride, g.k as isize - 1 - g.padding as isize);
        // Outputs `o` with `0 ≤ off + s·o < size`.
        let inside = |size: usize, outs: usize| {
            let lo = if off < 0 { (-off) as usize } else { 0 };
            let lo = lo.div_ceil(s).min(outs);
            let hi = (size as isize - off).max(0) as usize;
            lo..hi.div_ceil(s).clamp(lo, outs)
        };
        let (hg, wg) = (g.h + g.k - 1, g.w + g.k - 1);
        Spread {
            g,
            wg,
            rows: inside(hg, g.oh),
            cols: inside(wg, g.ow),
        }
    }

    /// Values of the spread plane.
    pub(super) fn len(&self) -> usize {
        (self.g.h + self.g.k - 1) * self.wg
    }

    pub(super) fn buffer(&self) -> Vec<f32> {
        vec![0.0; self.len() + TAIL]
    }

    /// The flipped filter's taps `ky·wg + kx`.
    pub(super) fn taps(&self) -> Vec<usize> {
        let k = self.g.k;
        (0..k * k).map(|t| t / k * self.wg + t % k).collect()
    }

    /// The input gradient's plane (h × w) on the spread plane's rows.
    pub(super) fn grid(&self) -> OutGrid {
        OutGrid::new(self.g.h, self.g.w, self.wg)
    }

    /// The gradient `g` of the output plane `y` (both oh × ow), passed back through
    /// `activation`, spread into `dst` (a `buffer`).
    pub(super) fn fill<'a>(
        &self,
        (g, y): (&[f32], &[f32]),
        activation: Activation,
        dst: &'a mut [f32],
    ) -> &'a [f32] {
        let (s, ow) = (self.g.stride, self.g.ow);
        let off = self.g.k as isize - 1 - self.g.padding as isize;
        let place = |o: usize| (off + (s * o) as isize) as usize;
        for oy in self.rows.clone() {
            let row = &mut dst[place(oy) * self.wg..][..self.wg];
            for ox in self.cols.clone() {
                let at = oy * ow + ox;
                row[place(ox)] = activation.pass(g[at], y[at]);
            }
        }
        dst
    }
}

/// The output gradient on the phases' grid, for the weight gradient (see the module doc).
pub(super) struct Wide {
    oh: usize,
    ow: usize,
    wq: usize,
    /// Wide pixels, rounded up to whole vectors.
    len: usize,
}

impl Wide {
    pub(super) fn new(phases: &Phases) -> Wide {
        let (oh, ow, wq) = (phases.g.oh, phases.g.ow, phases.wq);
        Wide {
            oh,
            ow,
            wq,
            len: OutGrid::wide_len(oh, ow, wq).div_ceil(LANES) * LANES,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn buffer(&self) -> Vec<f32> {
        vec![0.0; self.len]
    }

    /// The gradient `g` of the output plane `y`, passed back through `activation`, into the
    /// valid pixels of `dst` (a `buffer`).
    pub(super) fn fill<'a>(
        &self,
        (g, y): (&[f32], &[f32]),
        activation: Activation,
        dst: &'a mut [f32],
    ) -> &'a [f32] {
        with_widest_vectors(
            #[inline(always)]
            || {
                for oy in 0..self.oh {
                    let src = g[oy * self.ow..][..self.ow].iter().zip(&y[oy * self.ow..]);
                    for (d, (&gv, &yv)) in dst[oy * self.wq..][..self.ow].iter_mut().zip(src) {
                        *d = activation.pass(gv, yv);
                    }
                }
            },
        );
        dst
    }
}
