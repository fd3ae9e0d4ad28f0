//! Register-tiled kernels of a direct stride-1 convolution on the "wide" grid (`im2col.rs`'s
//! `Wide` explains the grid; `planes.rs` fills its planes):
//! the work of im2col + gemm without the column matrix and without gemm's packing.
//!
//! A plane set `x` holds `C` zero-padded planes of `hw` values each (channel `c` at `c·hw`),
//! followed by at least `TAIL` values. A tap `(ki, kj)` of a k×k kernel is the offset
//! `s = ki·wp + kj`. For row `o` of the kernel `w` and wide output `q`:
//!
//! - `Correlation::run`: `out[o, q] = Σ_c Σ_tap w[o, c, tap] · x[c·hw + s_tap + q]`, stored
//!   with bias and ReLU straight into NCHW planes (`Narrowed`) — the forward pass, and the input
//!   gradient as the same correlation with the flipped, transposed kernel over the padded output
//!   gradient;
//! - `TapDots::accumulate`: 16 running lane sums of `g[o, q] · x[c·hw + s_tap + q]` per weight
//!   (`g`'s wrap-around columns and tail are zero), reduced by `add_lane_sums` — the weight
//!   gradient.
//!
//! Pixels are the vector lanes: 16 consecutive wide outputs share every weight, so each
//! product is one fused multiply-add of a contiguous load and a broadcast weight, and a tile of
//! up to 4 output channels × 6 vectors stays in registers (`avx512.rs`; `avx2.rs` holds each
//! vector as two halves, in smaller tiles). Every sum runs in a fixed order (channels, then
//! taps; pixels lane by lane, then a fixed tree over the 16 lanes), the same on every path and
//! at every thread count: `f32::mul_add` is the exact fused operation even where the CPU lacks
//! FMA, so the portable path gives the same bits.

#[cfg(target_arch = "x86_64")]
use super::{avx2, avx512};
use crate::ops::activation::{relu_pass, Activation};
pub(crate) use crate::ops::instruction_set::Isa;
use std::mem::MaybeUninit;

/// Pixels per vector: a 512-bit register holds 16 f32.
pub(crate) const LANES: usize = 16;

/// Pixels per tile at most, and so the values a plane set needs past its last plane.
pub(crate) const TAIL: usize = 6 * LANES;

/// The operands of one correlation. `w` is `rows × (c·taps)` (row `o`, column `c·taps + t`).
pub(crate) struct Correlation<'a> {
    pub x: &'a [f32],
    pub c: usize,
    pub hw: usize,
    pub taps: &'a [usize],
    pub w: &'a [f32],
    pub rows: usize,
}

impl Correlation<'_> {
    /// Every row's outputs on `out`'s grid, written as `out` says.
    pub(crate) fn run(&self, out: &mut Narrowed) {
        self.run_on(isa(), out)
    }

    /// `run` on the kernels of `isa`, which the CPU must have (`Isa::available`, checked).
    ///
    /// The operands are checked first, so that the vector kernels' unchecked loads and stores
    /// stay inside them: a tile reads `x` from `ci·hw + s_tap + q0` for up to `TAIL` pixels past
    /// the grid's last vector start, reads `w` below `rows·c·taps`, and writes only the lanes of
    /// `grid`'s runs, which lie inside each row's `h·w` outputs of `y`.
    pub(crate) fn run_on(&self, isa: Isa, out: &mut Narrowed) {
        let (grid, len) = (out.grid, out.grid.len);
        let max_tap = self.taps.iter().copied().max().unwrap_or(0);
        assert!(
            Isa::available().contains(&isa),
            "{isa:?} is not on this CPU"
        );
        assert!(self.w.len() >= self.rows * self.c * self.taps.len());
        assert!(self.x.len() >= (self.c.max(1) - 1) * self.hw + max_tap + len + TAIL);
        assert!(out.y.len() >= self.rows * grid.h * grid.w);
        assert!(out.bias.is_empty() || out.bias.len() >= self.rows);
        match isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the CPU has AVX-512F (asserted above), and the operands hold every value
            // the kernel reads or writes (asserted above, the bounds in this fn's doc).
            Isa::Avx512 => unsafe { avx512::correlate(self, out) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the CPU has AVX2 and FMA (asserted above), and the operands hold every
            // value the kernel reads or writes (asserted above, the bounds in this fn's doc).
            Isa::Avx2 => unsafe { avx2::correlate(self, out) },
            _ => portable_correlate(self, out),
        }
    }
}

/// The output grid a correlation writes: wide pixel `q = oy·wp + ox` is output `(oy, ox)` of an
/// `h × w` plane for `ox < w` (the wrap-around pixels `ox ≥ w` are dropped), and `len =
/// (h − 1)·wp + w` wide pixels cover it. Built once per call, shared by its examples.
pub(crate) struct OutGrid {
    // Read-only outside this folder: the runs are computed from them once, in `new`.
    pub(super) h: usize,
    pub(super) w: usize,
    pub(super) wp: usize,
    pub(super) len: usize,
    /// For each vector of 16 wide pixels, the runs of its lanes that land in one output row:
    /// `(lanes mask, offset of lane 0 in the plane)`, the offset being the first lane's place
    /// minus its lane number; `starts[v]..starts[v + 1]` are vector `v`'s runs.
    runs: Vec<(u16, isize)>,
    starts: Vec<usize>,
}

impl OutGrid {
    /// Wide pixels covering an `h × w` output read off rows `wp` wide.
    pub(crate) fn wide_len(h: usize, w: usize, wp: usize) -> usize {
        (h - 1) * wp + w
    }

    pub(crate) fn new(h: usize, w: usize, wp: usize) -> OutGrid {
        assert!(
            h > 0 && w > 0 && w <= wp,
            "output grid {h}×{w} on rows of {wp}"
        );
        let len = Self::wide_len(h, w, wp);
        let vectors = len.div_ceil(LANES);
        let (mut runs, mut starts) = (Vec::with_capacity(vectors * 2), vec![0]);
        for v in 0..vectors {
            let mut lane = 0;
            while lane < LANES {
                let q = v * LANES + lane;
                let (oy, ox) = (q / wp, q % wp);
                let in_row = (wp - ox).min(LANES - lane);
                if oy < h && ox < w {
                    let n = (w - ox).min(in_row);
                    let mask = (((1u32 << n) - 1) << lane) as u16;
                    runs.push((mask, (oy * w + ox) as isize - lane as isize));
                }
                lane += in_row;
            }
            starts.push(runs.len());
        }
        OutGrid {
            h,
            w,
            wp,
            len,
            runs,
            starts,
        }
    }

    /// The runs of vector `v` (none past the grid).
    pub(super) fn runs_of(&self, v: usize) -> &[(u16, isize)] {
        match (self.starts.get(v), self.starts.get(v + 1)) {
            (Some(&a), Some(&b)) => &self.runs[a..b],
            _ => &[],
        }
    }
}

/// Where a correlation's outputs go: row `o`'s output `(oy, ox)` of `grid` lands at
/// `y[o·h·w + oy·w + ox]` plus `bias[o]` (none if empty), through the activation.
pub(crate) struct Narrowed<'a> {
    /// Written, never read: it may start uninitialised.
    pub y: &'a mut [MaybeUninit<f32>],
    pub grid: &'a OutGrid,
    pub bias: &'a [f32],
    pub activation: Activation,
}

impl Narrowed<'_> {
    /// The final value of an output from its sum: bias, then the activation.
    fn finish(&self, o: usize, v: f32) -> f32 {
        self.activation
            .apply(v + self.bias.get(o).copied().unwrap_or(0.0))
    }
}

/// `Narrowed` as the vector kernels write it: a raw pointer (the tiles of one call write
/// disjoint outputs) and the lane runs of each vector; each instruction set's module has its
/// own store.
#[cfg(target_arch = "x86_64")]
pub(super) struct Sink<'a> {
    pub(super) y: *mut f32,
    pub(super) plane: usize,
    pub(super) bias: &'a [f32],
    pub(super) activation: Activation,
    pub(super) grid: &'a OutGrid,
}

#[cfg(target_arch = "x86_64")]
impl<'a> Sink<'a> {
    pub(super) fn of(out: &'a mut Narrowed) -> Sink<'a> {
        Sink {
            y: out.y.as_mut_ptr().cast::<f32>(),
            plane: out.grid.h * out.grid.w,
            bias: out.bias,
            activation: out.activation,
            grid: out.grid,
        }
    }
}

/// The operands of one weight-gradient accumulation over `examples` examples in turn: example
/// `e`'s gradient is `rows × stride` from `g[e·g_step]`, zero outside the valid outputs, `len`
/// its pixels (a whole number of vectors); its input planes start at `x[e·x_step]`. On small
/// planes a row holds few vectors, and the kernels would load and store their running sums
/// about as often as they add to them; several examples per call keep the sums in registers
/// across them.
pub(crate) struct TapDots<'a> {
    pub x: &'a [f32],
    pub c: usize,
    pub hw: usize,
    pub taps: &'a [usize],
    pub g: &'a [f32],
    pub rows: usize,
    pub stride: usize,
    pub len: usize,
    pub examples: usize,
    pub x_step: usize,
    pub g_step: usize,
}

impl TapDots<'_> {
    /// `lanes[(o·(c·taps) + c·taps + t)·16 + l] += Σ_e Σ_{q < len, q ≡ l mod 16}
    /// g[e·g_step + o·stride + q] · x[e·x_step + c·hw + s_t + q]`, each lane summed example by
    /// example and within one in ascending `q` (so one call over `examples` gives the bits of
    /// that many calls over one): 16 running sums per weight, carried across a chunk's examples
    /// and reduced once by `add_lane_sums`.
    pub(crate) fn accumulate(&self, lanes: &mut [f32]) {
        self.accumulate_on(isa(), lanes)
    }

    /// `accumulate` on the kernels of `isa`, which the CPU must have (`Isa::available`,
    /// checked). The operands are checked first: the kernels read `g[e·g_step + o·stride + q]`
    /// and `x[e·x_step + offset(ct) + q]` for `q < len` (whole vectors) and `e < examples`, and
    /// read and write `lanes` below `rows·c·taps·16`, unchecked.
    pub(crate) fn accumulate_on(&self, isa: Isa, lanes: &mut [f32]) {
        let max_tap = self.taps.iter().copied().max().unwrap_or(0);
        assert!(
            Isa::available().contains(&isa),
            "{isa:?} is not on this CPU"
        );
        let last = self.examples.saturating_sub(1);
        assert!(self.len.is_multiple_of(LANES) && self.stride >= self.len);
        assert!(self.g.len() >= last * self.g_step + self.rows * self.stride);
        let x_end = last * self.x_step + (self.c.max(1) - 1) * self.hw + max_tap + self.len;
        assert!(self.x.len() >= x_end);
        assert!(lanes.len() >= self.rows * self.c * self.taps.len() * LANES);
        match isa {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the CPU has AVX-512F (asserted above), and the operands hold every value
            // the kernel reads or writes (asserted above, the bounds in this fn's doc).
            Isa::Avx512 => unsafe { avx512::tap_dots(self, lanes) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the CPU has AVX2 and FMA (asserted above), and the operands hold every
            // value the kernel reads or writes (asserted above, the bounds in this fn's doc).
            Isa::Avx2 => unsafe { avx2::tap_dots(self, lanes) },
            _ => portable_tap_dots(self, lanes),
        }
    }

    /// Where column `ct = c·taps + t` of the weight gradient reads `x`.
    pub(super) fn offset(&self, ct: usize) -> usize {
        let k2 = self.taps.len();
        ct / k2 * self.hw + self.taps[ct % k2]
    }
}

/// The instruction set the kernels run on: the best one this CPU has.
pub(crate) fn isa() -> Isa {
    Isa::best()
}

/// Whether the kernels run vectorized here. The portable path computes the same bits one
/// product at a time: it is the specification and the tests' reference, too slow to serve.
pub(crate) fn vectorized() -> bool {
    isa() != Isa::Portable
}

/// The sum of 16 lanes in a fixed tree: halves, then quarters, ... (what both paths use).
pub(crate) fn lane_sum(v: &[f32; LANES]) -> f32 {
    let mut a = *v;
    let mut n = LANES;
    while n > 1 {
        n /= 2;
        for i in 0..n {
            a[i] += a[i + n];
        }
    }
    a[0]
}

/// `Σ_i g[i]·[mask[i] > 0]` (no mask: every `g[i]`), in 16 lane sums then `lane_sum`: a
/// fixed order the compiler vectorizes (a plain `iter().sum()` is one serial chain of adds).
pub(crate) fn masked_sum(g: &[f32], mask: Option<&[f32]>) -> f32 {
    if let Some(m) = mask {
        assert!(m.len() >= g.len());
    }
    let split = g.len() / LANES * LANES;
    let mut lanes = match isa() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU has AVX-512F (`isa` detected it); the kernel reads whole vectors of
        // `g[..split]` and the same places of the mask, which is at least as long (asserted).
        Isa::Avx512 => unsafe { avx512::masked_lanes(&g[..split], mask) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU has AVX2 and FMA (`isa` detected them); the kernel reads whole
        // vectors of `g[..split]` and the same places of the mask, at least as long (asserted).
        Isa::Avx2 => unsafe { avx2::masked_lanes(&g[..split], mask) },
        _ => {
            let mut lanes = [0.0f32; LANES];
            for (c, chunk) in g[..split].chunks_exact(LANES).enumerate() {
                for (l, (a, &v)) in lanes.iter_mut().zip(chunk).enumerate() {
                    *a += mask.map_or(v, |m| relu_pass(v, m[c * LANES + l]));
                }
            }
            lanes
        }
    };
    for (l, &v) in g[split..].iter().enumerate() {
        lanes[l] += mask.map_or(v, |m| relu_pass(v, m[split + l]));
    }
    lane_sum(&lanes)
}

/// `dw[i] += lane_sum(lanes[16i..16i + 16])`: the weight gradient from `accumulate`'s lanes.
pub(crate) fn add_lane_sums(lanes: &[f32], dw: &mut [f32]) {
    for (d, l) in dw.iter_mut().zip(lanes.chunks_exact(LANES)) {
        let mut a = [0.0f32; LANES];
        a.copy_from_slice(l);
        *d += lane_sum(&a);
    }
}

/// The portable path: the same sums in the same order, one output at a time.
fn portable_correlate(c: &Correlation, out: &mut Narrowed) {
    let (k2, grid) = (c.taps.len(), out.grid);
    for o in 0..c.rows {
        let wo = &c.w[o * c.c * k2..][..c.c * k2];
        for q in 0..grid.len {
            let (oy, ox) = (q / grid.wp, q % grid.wp);
            if ox >= grid.w {
                continue;
            }
            let mut acc = 0.0f32;
            for ci in 0..c.c {
                for (t, &s) in c.taps.iter().enumerate() {
                    acc = wo[ci * k2 + t].mul_add(c.x[ci * c.hw + s + q], acc);
                }
            }
            out.y[(o * grid.h + oy) * grid.w + ox].write(out.finish(o, acc));
        }
    }
}

/// The portable weight gradient: the same 16 running sums per weight, in the same order.
fn portable_tap_dots(t: &TapDots, lanes: &mut [f32]) {
    let cols = t.c * t.taps.len();
    for o in 0..t.rows {
        for ct in 0..cols {
            let acc = &mut lanes[(o * cols + ct) * LANES..][..LANES];
            for e in 0..t.examples {
                let go = &t.g[e * t.g_step + o * t.stride..][..t.len];
                let xs = &t.x[e * t.x_step + t.offset(ct)..][..t.len];
                for (gv, xv) in go.chunks_exact(LANES).zip(xs.chunks_exact(LANES)) {
                    for l in 0..LANES {
                        acc[l] = gv[l].mul_add(xv[l], acc[l]);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "kernels_tests.rs"]
mod tests;
