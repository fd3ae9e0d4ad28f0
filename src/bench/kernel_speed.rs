//! How close the direct convolution's kernels come to one core's fused multiply-add peak, on
//! cnn6's and ResNet-20's shapes with hot caches: `cargo test --release --lib kernel_speed --
//! --ignored --nocapture`. A measuring harness, not a test: it asserts nothing and is ignored by default
//! (the figures belong in BENCHMARKS.md).
#![cfg(target_arch = "x86_64")]

use crate::ops::conv::direct::kernels::{
    isa, vectorized, Correlation, Isa, Narrowed, OutGrid, TapDots, LANES, TAIL,
};
use std::arch::x86_64::*;
use std::mem::MaybeUninit;
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

/// One core's fused multiply-add peak in GFLOP/s: 12 independent chains in registers, enough
/// to keep both FMA units busy through their 4-cycle latency, on the widest vectors here.
fn fma_peak(n: usize) -> f64 {
    // SAFETY: each loop runs only where `isa()` detected its instruction set.
    let (s, lanes) = match isa() {
        Isa::Avx512 => (
            best_of(5, || assert!(unsafe { chains_512(n) }.is_finite())),
            16,
        ),
        _ => (
            best_of(5, || assert!(unsafe { chains_256(n) }.is_finite())),
            8,
        ),
    };
    (12 * n * 2 * lanes) as f64 / s / 1e9
}

macro_rules! fma_chains {
    ($name:ident, $feature:literal, $set1:ident, $fmadd:ident, $add:ident, $store:ident, $w:expr) => {
        #[target_feature(enable = $feature)]
        unsafe fn $name(n: usize) -> f32 {
            let m = $set1(std::hint::black_box(0.999_999));
            let a = $set1(std::hint::black_box(1e-7));
            let mut v = [a; 12];
            for _ in 0..std::hint::black_box(n) {
                v[0] = $fmadd(v[0], m, a);
                v[1] = $fmadd(v[1], m, a);
                v[2] = $fmadd(v[2], m, a);
                v[3] = $fmadd(v[3], m, a);
                v[4] = $fmadd(v[4], m, a);
                v[5] = $fmadd(v[5], m, a);
                v[6] = $fmadd(v[6], m, a);
                v[7] = $fmadd(v[7], m, a);
                v[8] = $fmadd(v[8], m, a);
                v[9] = $fmadd(v[9], m, a);
                v[10] = $fmadd(v[10], m, a);
                v[11] = $fmadd(v[11], m, a);
            }
            let mut out = [0.0f32; $w];
            $store(out.as_mut_ptr(), v.iter().fold(a, |s, &x| $add(s, x)));
            out[0]
        }
    };
}

fma_chains!(
    chains_512,
    "avx512f",
    _mm512_set1_ps,
    _mm512_fmadd_ps,
    _mm512_add_ps,
    _mm512_storeu_ps,
    16
);
fma_chains!(
    chains_256,
    "avx2,fma",
    _mm256_set1_ps,
    _mm256_fmadd_ps,
    _mm256_add_ps,
    _mm256_storeu_ps,
    8
);

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
            activation: crate::ops::Activation::Identity,
        })
    });
    let useful = 2.0 * (rows * c * 9 * h * h) as f64 / s / 1e9;
    println!(
        "correlate c={c:2} rows={rows:2} {h}×{h}: {:6.2} µs, {useful:5.1} GFLOP/s",
        s * 1e6
    );
}

/// The weight-gradient kernel over `examples` examples per call, their gradient rows `off`
/// values past a 64-byte boundary (in `Direct::both_grads` they start at `pad·wp + pad`,
/// rarely aligned); the time is per example.
fn tap_dots(c: usize, rows: usize, h: usize, off: usize, examples: usize) {
    let (x1, taps, _, wp) = operands(c, rows, h);
    let x = x1.repeat(examples);
    let len = (h * wp).div_ceil(LANES) * LANES;
    let g_step = rows * len;
    let gbuf: Vec<f32> = (0..examples * g_step + 64)
        .map(|i| (i % 5) as f32 * 0.1)
        .collect();
    let skip = gbuf.as_ptr().align_offset(64) + off;
    let g = &gbuf[skip..][..examples * g_step];
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
        examples,
        x_step: x1.len(),
        g_step,
    };
    let s = best_of(200, || dots.accumulate(&mut lanes)) / examples as f64;
    let useful = 2.0 * (rows * c * 9 * h * h) as f64 / s / 1e9;
    let at = format!("g at +{off}, {examples} per call");
    println!(
        "tap_dots  c={c:2} rows={rows:2} {h}×{h}, {at}: {:6.2} µs, {useful:5.1} GFLOP/s",
        s * 1e6
    );
}

#[test]
#[ignore]
fn kernel_speed() {
    if !vectorized() {
        return println!("no AVX2 or AVX-512 here: the portable kernels are not worth timing");
    }
    println!(
        "{:?}: one core's FMA peak {:.1} GFLOP/s",
        isa(),
        fma_peak(1_000_000)
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
    // ResNet-20's stride-1 convolutions on 3×32×32 images: its three stages' planes.
    for (c, rows, h) in [(16, 16, 32), (32, 32, 16), (64, 64, 8)] {
        correlate(c, rows, h);
        for examples in [1, 2, 4] {
            tap_dots(c, rows, h, 1, examples);
        }
    }
    for (c, rows, h) in [(1, 16, 28), (16, 16, 28), (16, 32, 14), (32, 32, 14)] {
        tap_dots(c, rows, h, 0, 1);
        tap_dots(c, rows, h, 1, 1);
        tap_dots(c, rows, h, 1, 4);
    }
}
