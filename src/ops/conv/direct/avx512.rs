//! The AVX-512 versions of the direct convolution's kernels (`kernels.rs`): the same sums in the
//! same order as the portable ones, with the accumulators in named registers (tiles left to the
//! compiler's vectorizer keep them on the stack).

use super::kernels::{Correlation, Narrowed, Sink, TapDots, LANES};
use crate::ops::activation::{Activation, RELU6_CAP};
use std::arch::x86_64::*;

/// The 16 lane sums of `g` (whole vectors), each value kept only where `mask` is positive.
///
/// # Safety
/// The CPU must have AVX-512F; `g.len()` must be a multiple of 16 and `mask`, if any, at least
/// as long as `g`.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn masked_lanes(g: &[f32], mask: Option<&[f32]>) -> [f32; LANES] {
    let mut acc = _mm512_setzero_ps();
    for i in (0..g.len()).step_by(LANES) {
        let mut v = _mm512_loadu_ps(g.as_ptr().add(i));
        if let Some(m) = mask {
            let y = _mm512_loadu_ps(m.as_ptr().add(i));
            v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(y, _mm512_setzero_ps()), v);
        }
        acc = _mm512_add_ps(acc, v);
    }
    let mut lanes = [0.0f32; LANES];
    _mm512_storeu_ps(lanes.as_mut_ptr(), acc);
    lanes
}

/// Rows in tiles of 4 × 6 vectors, remainders in smaller tiles.
///
/// # Safety
/// The CPU must have AVX-512F, and the operands must pass `Correlation::run_on`'s checks (the
/// tiles below read and write unchecked within those bounds).
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn correlate(c: &Correlation, out: &mut Narrowed) {
    let vectors = out.grid.len.div_ceil(LANES);
    let sink = Sink::of(out);
    let out = &sink;
    let mut o0 = 0;
    while o0 < c.rows {
        let rows = (c.rows - o0).min(4);
        let mut v0 = 0;
        while v0 < vectors {
            let p = (vectors - v0).min(6);
            let q0 = v0 * LANES;
            match (rows, p) {
                (4, 6) => tile::<4, 6>(c, o0, q0, out),
                (4, p) => tail::<4>(c, o0, q0, p, out),
                (2 | 3, 6) => tile::<2, 6>(c, o0, q0, out),
                (2 | 3, p) => tail::<2>(c, o0, q0, p, out),
                (_, 6) => tile::<1, 6>(c, o0, q0, out),
                (_, p) => tail::<1>(c, o0, q0, p, out),
            }
            v0 += p;
        }
        o0 += if rows == 3 { 2 } else { rows };
    }
}

/// A tile of fewer than 6 vectors.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn tail<const R: usize>(c: &Correlation, o0: usize, q0: usize, p: usize, out: &Sink) {
    match p {
        5 => tile::<R, 5>(c, o0, q0, out),
        4 => tile::<R, 4>(c, o0, q0, out),
        3 => tile::<R, 3>(c, o0, q0, out),
        2 => tile::<R, 2>(c, o0, q0, out),
        _ => tile::<R, 1>(c, o0, q0, out),
    }
}

/// Rows `o0..o0+R`, pixels `q0..q0+16P`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn tile<const R: usize, const P: usize>(c: &Correlation, o0: usize, q0: usize, out: &Sink) {
    let k2 = c.taps.len();
    let cols = c.c * k2;
    let mut acc = [[_mm512_setzero_ps(); P]; R];
    let w = c.w.as_ptr().add(o0 * cols);
    for ci in 0..c.c {
        let xc = c.x.as_ptr().add(ci * c.hw + q0);
        for (t, &s) in c.taps.iter().enumerate() {
            let mut xv = [_mm512_setzero_ps(); P];
            for (j, v) in xv.iter_mut().enumerate() {
                *v = _mm512_loadu_ps(xc.add(s + j * LANES));
            }
            for (r, a) in acc.iter_mut().enumerate() {
                let wb = _mm512_set1_ps(*w.add(r * cols + ci * k2 + t));
                for (av, &v) in a.iter_mut().zip(&xv) {
                    *av = _mm512_fmadd_ps(wb, v, *av);
                }
            }
        }
    }
    for (r, a) in acc.iter().enumerate() {
        for (j, &av) in a.iter().enumerate() {
            out.store(o0 + r, q0 / LANES + j, av);
        }
    }
}

impl Sink<'_> {
    /// Row `o`'s wide vector `v`: bias, activation, and a masked store per output row it meets
    /// (masked-off lanes are neither written nor touched, so a base before the plane is
    /// never dereferenced).
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn store(&self, o: usize, v: usize, acc: __m512) {
        let mut val = acc;
        if let Some(&b) = self.bias.get(o) {
            val = _mm512_add_ps(val, _mm512_set1_ps(b));
        }
        match self.activation {
            Activation::Identity => {}
            Activation::Relu => val = _mm512_max_ps(val, _mm512_setzero_ps()),
            Activation::Relu6 => {
                val = _mm512_max_ps(val, _mm512_setzero_ps());
                val = _mm512_min_ps(val, _mm512_set1_ps(RELU6_CAP));
            }
        }
        let plane = self.y.add(o * self.plane);
        for &(mask, offset) in self.grid.runs_of(v) {
            _mm512_mask_storeu_ps(plane.wrapping_offset(offset), mask, val);
        }
    }
}

/// Rows in tiles of 4 × 5 columns `(c, tap)`, remainders in smaller tiles: 20 accumulators,
/// 5 loaded input vectors and a gradient vector, 26 of the 32 registers, so none spills.
///
/// # Safety
/// The CPU must have AVX-512F, and the operands must pass `TapDots::accumulate_on`'s checks
/// (the tiles below read and write unchecked within those bounds).
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn tap_dots(t: &TapDots, lanes: &mut [f32]) {
    let cols = t.c * t.taps.len();
    let mut o0 = 0;
    while o0 < t.rows {
        let rows = (t.rows - o0).min(4);
        let rows = if rows == 3 { 2 } else { rows };
        let mut c0 = 0;
        while c0 < cols {
            let n = (cols - c0).min(5);
            match rows {
                4 => dots_n::<4>(t, o0, c0, n, lanes),
                2 => dots_n::<2>(t, o0, c0, n, lanes),
                _ => dots_n::<1>(t, o0, c0, n, lanes),
            }
            c0 += n;
        }
        o0 += rows;
    }
}

/// `dots` with `n` (1 to 5) columns.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn dots_n<const R: usize>(t: &TapDots, o0: usize, c0: usize, n: usize, lanes: &mut [f32]) {
    match n {
        5 => dots::<R, 5>(t, o0, c0, lanes),
        4 => dots::<R, 4>(t, o0, c0, lanes),
        3 => dots::<R, 3>(t, o0, c0, lanes),
        2 => dots::<R, 2>(t, o0, c0, lanes),
        _ => dots::<R, 1>(t, o0, c0, lanes),
    }
}

/// `lanes[o0+r, c0+j] += g_e[o0+r, q] · x_e[offset(c0+j) + q]` lane by lane over every
/// example `e` and within it every `q`, the running sums held in registers meanwhile. The 16
/// lanes are reduced once per chunk of examples (`add_lane_sums`), not here per example.
// Index loops: with iterators the compiler keeps the accumulators on the stack instead of in
// registers.
#[allow(clippy::needless_range_loop)]
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn dots<const R: usize, const N: usize>(
    t: &TapDots,
    o0: usize,
    c0: usize,
    lanes: &mut [f32],
) {
    let cols = t.c * t.taps.len();
    let l = lanes.as_mut_ptr();
    let at = |r: usize, j: usize| ((o0 + r) * cols + c0 + j) * LANES;
    let mut acc = [[_mm512_setzero_ps(); N]; R];
    for r in 0..R {
        for j in 0..N {
            acc[r][j] = _mm512_loadu_ps(l.add(at(r, j)));
        }
    }
    let mut xs = [t.x.as_ptr(); N];
    for (j, x) in xs.iter_mut().enumerate() {
        *x = x.add(t.offset(c0 + j));
    }
    let g0 = t.g.as_ptr().add(o0 * t.stride);
    for e in 0..t.examples {
        let (g, xe) = (g0.add(e * t.g_step), e * t.x_step);
        let mut q = 0;
        while q < t.len {
            let mut xv = [_mm512_setzero_ps(); N];
            for j in 0..N {
                xv[j] = _mm512_loadu_ps(xs[j].add(xe + q));
            }
            for r in 0..R {
                let gv = _mm512_loadu_ps(g.add(r * t.stride + q));
                for j in 0..N {
                    acc[r][j] = _mm512_fmadd_ps(gv, xv[j], acc[r][j]);
                }
            }
            q += LANES;
        }
    }
    for r in 0..R {
        for j in 0..N {
            _mm512_storeu_ps(l.add(at(r, j)), acc[r][j]);
        }
    }
}
