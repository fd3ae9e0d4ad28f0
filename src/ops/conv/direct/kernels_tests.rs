//! Tests of the direct convolution's kernels (`kernels.rs`): every path against plain sums
//! and, bit for bit, against the portable one.

use super::*;

/// Plain sums in f64, the definition the kernels must meet.
fn reference_correlate(c: &Correlation, len: usize) -> Vec<f64> {
    let mut out = vec![0.0; c.rows * len];
    for o in 0..c.rows {
        for q in 0..len {
            for ci in 0..c.c {
                for (t, &s) in c.taps.iter().enumerate() {
                    let w = c.w[(o * c.c + ci) * c.taps.len() + t] as f64;
                    out[o * len + q] += w * c.x[ci * c.hw + s + q] as f64;
                }
            }
        }
    }
    out
}

fn values(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) as f32
                / (1u32 << 24) as f32
                - 0.5
        })
        .collect()
}

/// Every tile shape (rows 1–9, pixel counts that leave every remainder) against f64 sums,
/// and every instruction set this CPU has bit for bit against the portable path.
#[test]
fn kernels_match_plain_sums_and_the_portable_path_bit_for_bit() {
    // (rows, channels, output height, width, wide width, kernel): wide widths under 16 put
    // up to three output rows in one vector; kernels of 1 and 2 leave the weight-gradient
    // tiles' column remainders.
    for &(rows, c, h, ow, wp, k) in &[
        (1, 1, 1, 5, 12, 3),
        (4, 3, 8, 10, 12, 3),
        (5, 2, 11, 10, 12, 3),
        (9, 4, 19, 10, 12, 3),
        (16, 16, 28, 28, 30, 3),
        (3, 7, 2, 5, 7, 3),
        (3, 5, 4, 6, 8, 2),
        (5, 1, 3, 5, 7, 2),
        (1, 5, 3, 4, 6, 1),
        (3, 1, 2, 3, 5, 1),
    ] {
        let len = (h - 1) * wp + ow;
        let taps: Vec<usize> = (0..k * k).map(|t| t / k * wp + t % k).collect();
        let hw = len + 2 * wp + 2;
        let x = values(c * hw + TAIL, 1);
        let w = values(rows * c * k * k, 2);
        let bias = values(rows, 5);
        let corr = Correlation {
            x: &x,
            c,
            hw,
            taps: &taps,
            w: &w,
            rows,
        };
        let want = reference_correlate(&corr, len);
        // Biases of up to ±8 put some outputs past ReLU6's cap.
        let wide: Vec<f32> = bias.iter().map(|b| b * 16.0).collect();
        let cases = [
            (&[][..], Activation::Identity),
            (&bias[..], Activation::Relu),
            (&wide[..], Activation::Relu6),
        ];
        for (bias, activation) in cases {
            let run = |on: Option<Isa>| {
                let mut y = vec![MaybeUninit::new(f32::NAN); rows * h * ow];
                let grid = OutGrid::new(h, ow, wp);
                let out = &mut Narrowed {
                    y: &mut y,
                    grid: &grid,
                    bias,
                    activation,
                };
                match on {
                    Some(isa) => corr.run_on(isa, out),
                    None => portable_correlate(&corr, out),
                }
                // SAFETY: initialised above (NaN where nothing was written).
                y.iter()
                    .map(|v| unsafe { v.assume_init() })
                    .collect::<Vec<f32>>()
            };
            let portable = run(None);
            for &isa in Isa::available() {
                let got = run(Some(isa));
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&portable), "{isa:?} rows {rows} c {c}");
            }
            for (i, g) in portable.iter().enumerate() {
                let (o, oy, ox) = (i / (h * ow), i / ow % h, i % ow);
                let v = want[o * len + oy * wp + ox] + bias.get(o).map_or(0.0, |&b| b as f64);
                let v = match activation {
                    Activation::Identity => v,
                    Activation::Relu => v.max(0.0),
                    Activation::Relu6 => v.clamp(0.0, 6.0),
                };
                assert!((*g as f64 - v).abs() < 1e-4, "output {i}: {g} vs {v}");
            }
        }

        let vlen = len.div_ceil(LANES) * LANES;
        let mut g = values(rows * vlen, 3);
        g.iter_mut()
            .enumerate()
            .filter(|(i, _)| i % vlen >= len)
            .for_each(|(_, v)| *v = 0.0);
        let dots = TapDots {
            x: &x,
            c,
            hw,
            taps: &taps,
            g: &g,
            rows,
            stride: vlen,
            len: vlen,
            examples: 1,
            x_step: 0,
            g_step: 0,
        };
        let cols = c * k * k;
        let start = values(rows * cols * LANES, 4);
        let mut portable = start.clone();
        portable_tap_dots(&dots, &mut portable);
        for &isa in Isa::available() {
            let mut got = start.clone();
            dots.accumulate_on(isa, &mut got);
            for (i, (a, b)) in got.iter().zip(&portable).enumerate() {
                assert_eq!(
                    a.to_bits(),
                    b.to_bits(),
                    "{isa:?} lane {i} rows {rows} c {c}"
                );
            }
        }
        let got = portable;
        let mut dw = vec![0.0; rows * cols];
        add_lane_sums(&got, &mut dw);
        for (i, d) in dw.iter().enumerate() {
            let (o, ct) = (i / cols, i % cols);
            let before: f64 = start[i * LANES..][..LANES].iter().map(|&v| v as f64).sum();
            let sum: f64 = (0..len)
                .map(|q| g[o * vlen + q] as f64 * x[dots.offset(ct) + q] as f64)
                .sum();
            assert!((*d as f64 - before - sum).abs() < 1e-4, "dw {i}");
        }
    }
}

/// One `TapDots` call over several examples gives the bits of one call per example in turn,
/// on every path this CPU has: the weight gradient does not depend on how many examples a
/// call takes.
#[test]
fn tap_dots_over_several_examples_match_one_call_each() {
    // (rows, channels, wide length in vectors): every tile remainder, a 64×64 8×8 layer.
    for &(rows, c, vectors) in &[(1, 1, 1), (3, 2, 2), (5, 3, 5), (9, 4, 3), (64, 64, 5)] {
        let (wp, k, examples) = (10, 3, 3);
        let len = vectors * LANES;
        let taps: Vec<usize> = (0..k * k).map(|t| t / k * wp + t % k).collect();
        let hw = len + 2 * wp + 2;
        // Steps a little past each example's need, so a kernel that ignored them would read
        // the wrong values.
        let (x_step, g_step) = (c * hw + TAIL + 3, rows * len + 5);
        let x = values(examples * x_step, 7);
        let g = values(examples * g_step, 8);
        let dots = |e: usize, n: usize| TapDots {
            x: &x[e * x_step..],
            c,
            hw,
            taps: &taps,
            g: &g[e * g_step..],
            rows,
            stride: len,
            len,
            examples: n,
            x_step,
            g_step,
        };
        let start = values(rows * c * k * k * LANES, 9);
        for &isa in Isa::available() {
            let mut one_by_one = start.clone();
            (0..examples).for_each(|e| dots(e, 1).accumulate_on(isa, &mut one_by_one));
            let mut together = start.clone();
            dots(0, examples).accumulate_on(isa, &mut together);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&together),
                bits(&one_by_one),
                "{isa:?} rows {rows} c {c}"
            );
            assert_ne!(bits(&together), bits(&start), "{isa:?}: nothing summed");
        }
    }
}
