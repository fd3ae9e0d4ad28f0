//! The AVX2 version of 2 × 2 max-pooling with indices, for CPUs without AVX-512: 8 windows per
//! step, with `pool_plane_2`'s comparisons in its order (so the same maxima and indices, ties
//! and NaN included).

use std::arch::x86_64::*;

/// One plane of `w` columns: `yp`/`ip` rows of `ow = w / 2` windows, as `pool_plane_2`.
///
/// # Safety
/// The CPU must have AVX2, `ow` must be at most `w / 2`, and `xp` must hold the `2 · rows`
/// input rows of `w` values that `yp`'s `rows = yp.len() / ow` output rows pool (`ip` as long
/// as `yp`): every load and store below stays inside those rows.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn pool_plane_2(w: usize, ow: usize, xp: &[f32], yp: &mut [f32], ip: &mut [u32]) {
    let even = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    let (one, down) = (_mm256_set1_epi32(1), _mm256_set1_epi32(w as i32));
    let rows = yp.chunks_exact_mut(ow).zip(ip.chunks_exact_mut(ow));
    for (i, (yr, ir)) in rows.enumerate() {
        let top = 2 * i * w;
        let mut j0 = 0;
        while j0 < ow {
            let n = (ow - j0).min(8);
            let first = top + 2 * j0;
            // The 2n inputs of each row as a pair of vectors (masked-off lanes read nothing),
            // split into even and odd columns: the windows' left and right values. `at` is
            // the first input of the step in a row holding all 2n of them, so `p` lies in
            // `xp`; the second vector is loaded only when it has lanes (n > 4), when `p + 8`
            // lies in the row too: a pointer past the allocation is never formed.
            let (lo, hi) = (lanes(2 * n), lanes((2 * n).saturating_sub(8)));
            let pair = |at: usize| {
                let p = xp.as_ptr().add(at);
                let a = _mm256_maskload_ps(p, lo);
                let b = match n > 4 {
                    true => _mm256_maskload_ps(p.add(8), hi),
                    false => _mm256_setzero_ps(),
                };
                let order = |v: __m256| {
                    _mm256_castpd_ps(_mm256_permute4x64_pd::<0xd8>(_mm256_castps_pd(v)))
                };
                (
                    order(_mm256_shuffle_ps::<0x88>(a, b)),
                    order(_mm256_shuffle_ps::<0xdd>(a, b)),
                )
            };
            let (a0, a1) = pair(first);
            let (b0, b1) = pair(first + w);
            let at = _mm256_add_epi32(_mm256_set1_epi32(first as i32), even);
            let (mut best, mut idx) = (a0, _mm256_castsi256_ps(at));
            for (v, place) in [
                (a1, _mm256_add_epi32(at, one)),
                (b0, _mm256_add_epi32(at, down)),
                (b1, _mm256_add_epi32(_mm256_add_epi32(at, down), one)),
            ] {
                // `best < v`, false for NaN on either side: the scalar loop's rule.
                let m = _mm256_cmp_ps::<_CMP_LT_OQ>(best, v);
                best = _mm256_blendv_ps(best, v, m);
                idx = _mm256_blendv_ps(idx, _mm256_castsi256_ps(place), m);
            }
            // A whole vector is stored; a partial one through a buffer (AVX2's masked store is
            // microcoded on AMD CPUs).
            let (y, ix) = (yr.as_mut_ptr().add(j0), ir.as_mut_ptr().add(j0));
            if n == 8 {
                _mm256_storeu_ps(y, best);
                _mm256_storeu_ps(ix.cast(), idx);
            } else {
                let (mut bv, mut iv) = ([0.0f32; 8], [0u32; 8]);
                _mm256_storeu_ps(bv.as_mut_ptr(), best);
                _mm256_storeu_ps(iv.as_mut_ptr().cast(), idx);
                std::ptr::copy_nonoverlapping(bv.as_ptr(), y, n);
                std::ptr::copy_nonoverlapping(iv.as_ptr(), ix, n);
            }
            j0 += n;
        }
    }
}

/// A load mask of the first `n` of 8 lanes.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn lanes(n: usize) -> __m256i {
    let n = n.min(8) as i32;
    _mm256_cmpgt_epi32(
        _mm256_set1_epi32(n),
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
    )
}
