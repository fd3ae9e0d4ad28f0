//! The AVX2 + FMA versions of the direct convolution's kernels (`kernels.rs`), for x86 CPUs
//! without AVX-512: each of the 16 lanes as the AVX-512 kernels have them, held as two 8-lane
//! halves, so every lane's sum runs in the same order and the three paths give the same bits.
//! Without them these CPUs would take the column path (im2col + gemm). The tiles are smaller
//! than the AVX-512 ones: AVX2 has 16 registers, not 32.

use super::kernels::{Correlation, Narrowed, Sink, TapDots, LANES};
use crate::ops::activation::{Activation, RELU6_CAP};
use std::arch::x86_64::*;

/// Values per AVX2 register.
const HALF: usize = LANES / 2;

/// One 16-lane vector as two halves.
type Vec16 = [__m256; 2];

/// The 16 lane sums of `g` (whole vectors), each value kept only where `mask` is positive.
///
/// # Safety
/// The CPU must have AVX2 and FMA; `g.len()` must be a multiple of 16 and `mask`, if any, at least
/// as long as `g`.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn masked_lanes(g: &[f32], mask: Option<&[f32]>) -> [f32; LANES] {
    let mut acc = [_mm256_setzero_ps(); 2];
    for i in (0..g.len()).step_by(LANES) {
        for (h, a) in acc.iter_mut().enumerate() {
            let mut v = _mm256_loadu_ps(g.as_ptr().add(i + h * HALF));
            if let Some(m) = mask {
                let y = _mm256_loadu_ps(m.as_ptr().add(i + h * HALF));
                v = _mm256_and_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(y, _mm256_setzero_ps()), v);
            }
            *a = _mm256_add_ps(*a, v);
        }
    }
    let mut lanes = [0.0f32; LANES];
    _mm256_storeu_ps(lanes.as_mut_ptr(), acc[0]);
    _mm256_storeu_ps(lanes.as_mut_ptr().add(HALF), acc[1]);
    lanes
}

/// Rows in tiles of 6 × one 16-lane vector (12 accumulators of the 16 registers), remainders
/// in tiles of 4, 2 and 1.
///
/// # Safety
/// The CPU must have AVX2 and FMA, and the operands must pass `Correlation::run_on`'s checks (the
/// tiles below read and write unchecked within those bounds).
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn correlate(c: &Correlation, out: &mut Narrowed) {
    let vectors = out.grid.len.div_ceil(LANES);
    let sink = Sink::of(out);
    let mut o0 = 0;
    while o0 < c.rows {
        let rows = match c.rows - o0 {
            6.. => 6,
            4 | 5 => 4,
            2 | 3 => 2,
            _ => 1,
        };
        for v in 0..vectors {
            match rows {
                6 => tile::<6>(c, o0, v * LANES, &sink),
                4 => tile::<4>(c, o0, v * LANES, &sink),
                2 => tile::<2>(c, o0, v * LANES, &sink),
                _ => tile::<1>(c, o0, v * LANES, &sink),
            }
        }
        o0 += rows;
    }
}

/// Rows `o0..o0+R`, pixels `q0..q0+16`.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile<const R: usize>(c: &Correlation, o0: usize, q0: usize, out: &Sink) {
    let k2 = c.taps.len();
    let cols = c.c * k2;
    let mut acc = [[_mm256_setzero_ps(); 2]; R];
    let w = c.w.as_ptr().add(o0 * cols);
    for ci in 0..c.c {
        let xc = c.x.as_ptr().add(ci * c.hw + q0);
        for (t, &s) in c.taps.iter().enumerate() {
            let x0 = _mm256_loadu_ps(xc.add(s));
            let x1 = _mm256_loadu_ps(xc.add(s + HALF));
            for (r, a) in acc.iter_mut().enumerate() {
                let wb = _mm256_broadcast_ss(&*w.add(r * cols + ci * k2 + t));
                a[0] = _mm256_fmadd_ps(wb, x0, a[0]);
                a[1] = _mm256_fmadd_ps(wb, x1, a[1]);
            }
        }
    }
    for (r, a) in acc.iter().enumerate() {
        out.store_halves(o0 + r, q0 / LANES, *a);
    }
}

impl Sink<'_> {
    /// Row `o`'s wide vector `v`: bias, activation, then per output row it meets, a plain store of
    /// each half inside the run and lane by lane for a half the run covers in part (AVX2's
    /// masked store is microcoded on AMD CPUs). Lanes outside the runs are never touched.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn store_halves(&self, o: usize, v: usize, acc: Vec16) {
        let mut val = acc;
        for h in &mut val {
            if let Some(&b) = self.bias.get(o) {
                *h = _mm256_add_ps(*h, _mm256_set1_ps(b));
            }
            match self.activation {
                Activation::Identity => {}
                Activation::Relu => *h = _mm256_max_ps(*h, _mm256_setzero_ps()),
                Activation::Relu6 => {
                    *h = _mm256_max_ps(*h, _mm256_setzero_ps());
                    *h = _mm256_min_ps(*h, _mm256_set1_ps(RELU6_CAP));
                }
            }
        }
        let plane = self.y.add(o * self.plane);
        for &(mask, offset) in self.grid.runs_of(v) {
            for (h, &hv) in val.iter().enumerate() {
                let bits = (mask >> (h * HALF)) & 0xff;
                let base = plane.wrapping_offset(offset).wrapping_add(h * HALF);
                if bits == 0xff {
                    _mm256_storeu_ps(base, hv);
                } else if bits != 0 {
                    let mut lanes = [0.0f32; HALF];
                    _mm256_storeu_ps(lanes.as_mut_ptr(), hv);
                    for (l, &x) in lanes.iter().enumerate() {
                        if bits >> l & 1 == 1 {
                            *base.wrapping_add(l) = x;
                        }
                    }
                }
            }
        }
    }
}

/// Rows in pairs, each pair over 3 columns `(c, tap)` at a time (2 × 3 × 2 halves = 12
/// accumulators); an odd last row over 6 columns.
///
/// # Safety
/// The CPU must have AVX2 and FMA, and the operands must pass `TapDots::accumulate_on`'s checks
/// (the tiles below read and write unchecked within those bounds).
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn tap_dots(t: &TapDots, lanes: &mut [f32]) {
    let cols = t.c * t.taps.len();
    let mut o0 = 0;
    while o0 < t.rows {
        let rows = (t.rows - o0).min(2);
        let width = if rows == 2 { 3 } else { 6 };
        let mut c0 = 0;
        while c0 < cols {
            let n = (cols - c0).min(width);
            match (rows, n) {
                (2, 3) => dots::<2, 3>(t, o0, c0, lanes),
                (2, 2) => dots::<2, 2>(t, o0, c0, lanes),
                (2, _) => dots::<2, 1>(t, o0, c0, lanes),
                (_, 6) => dots::<1, 6>(t, o0, c0, lanes),
                (_, 5) => dots::<1, 5>(t, o0, c0, lanes),
                (_, 4) => dots::<1, 4>(t, o0, c0, lanes),
                (_, 3) => dots::<1, 3>(t, o0, c0, lanes),
                (_, 2) => dots::<1, 2>(t, o0, c0, lanes),
                _ => dots::<1, 1>(t, o0, c0, lanes),
            }
            c0 += n;
        }
        o0 += rows;
    }
}

/// `lanes[o0+r, c0+j] += g_e[o0+r, q] · x_e[offset(c0+j) + q]` lane by lane over every
/// example `e` and within it every `q`, half by half, the running sums held in registers
/// meanwhile.
// Index loops, as in `avx512::dots`: with iterators the compiler keeps the accumulators on the
// stack instead of in registers.
#[allow(clippy::needless_range_loop)]
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn dots<const R: usize, const N: usize>(
    t: &TapDots,
    o0: usize,
    c0: usize,
    lanes: &mut [f32],
) {
    let cols = t.c * t.taps.len();
    let l = lanes.as_mut_ptr();
    let at = |r: usize, j: usize, h: usize| ((o0 + r) * cols + c0 + j) * LANES + h * HALF;
    let mut acc = [[[_mm256_setzero_ps(); 2]; N]; R];
    for r in 0..R {
        for j in 0..N {
            for h in 0..2 {
                acc[r][j][h] = _mm256_loadu_ps(l.add(at(r, j, h)));
            }
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
            for h in 0..2 {
                let at = q + h * HALF;
                let mut xv = [_mm256_setzero_ps(); N];
                for j in 0..N {
                    xv[j] = _mm256_loadu_ps(xs[j].add(xe + at));
                }
                for r in 0..R {
                    let gv = _mm256_loadu_ps(g.add(r * t.stride + at));
                    for j in 0..N {
                        acc[r][j][h] = _mm256_fmadd_ps(gv, xv[j], acc[r][j][h]);
                    }
                }
            }
            q += LANES;
        }
    }
    for r in 0..R {
        for j in 0..N {
            for h in 0..2 {
                _mm256_storeu_ps(l.add(at(r, j, h)), acc[r][j][h]);
            }
        }
    }
}
