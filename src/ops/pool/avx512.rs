//! The AVX-512 version of 2 × 2 max-pooling with indices: 16 windows per step, with
//! `pool_plane_2`'s comparisons in its order (so the same maxima and indices, ties and NaN
//! included).

use std::arch::x86_64::*;

/// One plane of `w` columns: `yp`/`ip` rows of `ow = w / 2` windows, as `pool_plane_2`.
///
/// # Safety
/// The CPU must have AVX-512F, `ow` must be at most `w / 2`, and `xp` must hold the `2 · rows`
/// input rows of `w` values that `yp`'s `rows = yp.len() / ow` output rows pool (`ip` as long
/// as `yp`): every load and store below stays inside those rows.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn pool_plane_2(w: usize, ow: usize, xp: &[f32], yp: &mut [f32], ip: &mut [u32]) {
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    let (one, down) = (_mm512_set1_epi32(1), _mm512_set1_epi32(w as i32));
    let rows = yp.chunks_exact_mut(ow).zip(ip.chunks_exact_mut(ow));
    for (i, (yr, ir)) in rows.enumerate() {
        let top = 2 * i * w;
        let mut j0 = 0;
        while j0 < ow {
            let n = (ow - j0).min(16);
            let first = top + 2 * j0;
            // The 2n inputs of each row as a pair of vectors (masked-off lanes read nothing),
            // split into even and odd columns: the windows' left and right values. `at` is
            // the first input of the step in a row holding all 2n of them, so `p` lies in
            // `xp`; the second vector is loaded only when it has lanes (n > 8), when `p + 16`
            // lies in the row too: a pointer past the allocation is never formed.
            let (lo, hi) = (lanes(2 * n), lanes((2 * n).saturating_sub(16)));
            let pair = |at: usize| {
                let p = xp.as_ptr().add(at);
                let a = _mm512_maskz_loadu_ps(lo, p);
                let b = match n > 8 {
                    true => _mm512_maskz_loadu_ps(hi, p.add(16)),
                    false => _mm512_setzero_ps(),
                };
                (
                    _mm512_permutex2var_ps(a, even, b),
                    _mm512_permutex2var_ps(a, odd, b),
                )
            };
            let (a0, a1) = pair(first);
            let (b0, b1) = pair(first + w);
            let at = _mm512_add_epi32(_mm512_set1_epi32(first as i32), even);
            let (mut best, mut idx) = (a0, at);
            for (v, place) in [
                (a1, _mm512_add_epi32(at, one)),
                (b0, _mm512_add_epi32(at, down)),
                (b1, _mm512_add_epi32(_mm512_add_epi32(at, down), one)),
            ] {
                // `best < v`, false for NaN on either side: the scalar loop's rule.
                let m = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(best, v);
                best = _mm512_mask_mov_ps(best, m, v);
                idx = _mm512_mask_mov_epi32(idx, m, place);
            }
            let out = lanes(n);
            _mm512_mask_storeu_ps(yr.as_mut_ptr().add(j0), out, best);
            _mm512_mask_storeu_epi32(ir.as_mut_ptr().add(j0).cast(), out, idx);
            j0 += n;
        }
    }
}

/// A mask of the first `n` of 16 lanes.
#[inline]
fn lanes(n: usize) -> __mmask16 {
    ((1u32 << n.min(16)) - 1) as __mmask16
}
