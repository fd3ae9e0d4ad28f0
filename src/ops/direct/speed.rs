//! How close the kernels come to the core's peak, on cnn6's shapes with hot caches: `cargo test
//! --release --lib kernel_speed -- --ignored --nocapture`. A measuring harness, not a test: it
//! asserts nothing and is ignored by default (speed targets live in benchmarks).

use super::*;
use std::arch::x86_64::*;
use std::time::Instant;

/// The fastest of `reps` timings of 20 calls of `f`, per call, in seconds.
fn best_of(reps: usize, mut f: impl FnMut()) -> f64 {
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            (0..20).for_each(|_| f());
            t.elapsed().as_secs_f64() / 20.0
        })
        .fold(f64::MAX, f64::min)
}

/// One core's fused multiply-add peak: 12 independent chains in registers, enough to keep
/// both FMA units busy through their 4-cycle latency.
#[target_feature(enable = "avx512f")]
unsafe fn fma_chains(n: usize) -> f32 {
    let m = _mm512_set1_ps(std::hint::black_box(0.999_999));
    let a = _mm512_set1_ps(std::hint::black_box(1e-7));
    let [mut v0, mut v1, mut v2, mut v3, mut v4, mut v5] = [a; 6];
    let [mut v6, mut v7, mut v8, mut v9, mut v10, mut v11] = [m; 6];
    for _ in 0..std::hint::black_box(n) {
        v0 = _mm512_fmadd_ps(v0, m, a);
        v1 = _mm512_fmadd_ps(v1, m, a);
        v2 = _mm512_fmadd_ps(v2, m, a);
        v3 = _mm512_fmadd_ps(v3, m, a);
        v4 = _mm512_fmadd_ps(v4, m, a);
        v5 = _mm512_fmadd_ps(v5, m, a);
        v6 = _mm512_fmadd_ps(v6, m, a);
        v7 = _mm512_fmadd_ps(v7, m, a);
        v8 = _mm512_fmadd_ps(v8, m, a);
        v9 = _mm512_fmadd_ps(v9, m, a);
        v10 = _mm512_fmadd_ps(v10, m, a);
        v11 = _mm512_fmadd_ps(v11, m, a);
    }
    let all = [v0, v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11];
    let mut out = [0.0f32; LANES];
    _mm512_storeu_ps(
        out.as_mut_ptr(),
        all.iter().fold(a, |s, &v| _mm512_add_ps(s, v)),
    );
    out[0]
}

/// A "same" 3×3 convolution's operands: `c` padded `h × h` planes and `rows` kernel rows.
fn operands(c: usize, rows: usize, h: usize) -> (Vec<f32>, Vec<usize>, Vec<f32>, usize) {
    let wp = h + 2;
    let x = (0..c * wp * wp + TAIL + 2 * wp + 2)
        .map(|i| (i % 7) as f32 * 0.1)
        .collect();
    let taps = (0..9).map(|t| (t / 3) * wp + t % 3).collect();
    let w = (0..rows * c * 9).map(|i| (i % 5) as f32 * 0.1).collect();
    (x, taps, w, wp)
}

fn correlate(c: usize, rows: usize, h: usize) {
    let (x, taps, w, wp) = operands(c, rows, h);
    let grid = OutGrid::new(h, h, wp);
    let mut y = vec![MaybeUninit::new(0.0f32); rows * h * h];
    let hw = wp * wp;
    let corr = Correlation {
        x: &x,
        c,
        hw,
        taps: &taps,
        w: &w,
        rows,
    };
    let s = best_of(200, || {
        let bias = &[];
        corr.run(&mut Narrowed {
            y: &mut y,
            grid: &grid,
            bias,
            relu: false,
        })
    });
    let useful = 2.0 * (rows * c * 9 * h * h) as f64 / s / 1e9;
    println!(
        "correlate c={c:2} rows={rows:2} {h}×{h}: {:6.2} µs, {useful:5.1} GFLOP/s",
        s * 1e6
    );
}

/// The weight-gradient kernel with its gradient rows `off` values past a 64-byte boundary (in
/// `Direct::both_grads` they start at `pad·wp + pad`: 17 or 31, rarely aligned).
fn tap_dots(c: usize, rows: usize, h: usize, off: usize) {
    let (x, taps, _, wp) = operands(c, rows, h);
    let len = (h * wp).div_ceil(LANES) * LANES;
    let gbuf: Vec<f32> = (0..rows * len + 64).map(|i| (i % 5) as f32 * 0.1).collect();
    let skip = gbuf.as_ptr().align_offset(64) + off;
    let g = &gbuf[skip..][..rows * len];
    let mut lanes = vec![0.0f32; rows * c * 9 * LANES];
    let hw = wp * wp;
    let dots = TapDots {
        x: &x,
        c,
        hw,
        taps: &taps,
        g,
        rows,
        stride: len,
        len,
    };
    let s = best_of(200, || dots.accumulate(&mut lanes));
    let useful = 2.0 * (rows * c * 9 * h * h) as f64 / s / 1e9;
    let at = format!("g at +{off}");
    println!(
        "tap_dots  c={c:2} rows={rows:2} {h}×{h}, {at}: {:6.2} µs, {useful:5.1} GFLOP/s",
        s * 1e6
    );
}

#[test]
#[ignore]
fn kernel_speed() {
    if !vectorized() {
        return println!("no AVX-512 here: the portable kernels are not worth timing");
    }
    let n = 1_000_000;
    // SAFETY: AVX-512F is present (checked above).
    let s = best_of(5, || assert!(unsafe { fma_chains(n) }.is_finite()));
    println!(
        "one core's FMA peak: {:.1} GFLOP/s",
        (12 * n * 2 * LANES) as f64 / s / 1e9
    );
    // cnn6's convolutions (conv1 has one input plane): the forward and the input gradient
    // are correlations, the weight gradient is tap dots.
    for (c, rows, h) in [
        (1, 16, 28),
        (16, 16, 28),
        (16, 32, 14),
        (32, 32, 14),
        (32, 16, 14),
    ] {
        correlate(c, rows, h);
    }
    for (c, rows, h) in [(1, 16, 28), (16, 16, 28), (16, 32, 14), (32, 32, 14)] {
        tap_dots(c, rows, h, 0);
        tap_dots(c, rows, h, 1);
    }
}
