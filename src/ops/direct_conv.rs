//! A stride-1 convolution's three passes on NCHW tensors through `direct`'s kernels: each
//! example is copied once into zero-bordered planes (one row copy per input row) and correlated
//! on the wide grid, the kernels storing its valid outputs straight into the NCHW result.
//!
//! - forward: `y = relu?(correlate(pad_p(x), w) + b)`;
//! - input gradient: `dx = correlate(pad_{k−1−p}(g), w')` with `w'[c, o, ki, kj] = w[o, c,
//!   k−1−ki, k−1−kj]`: the adjoint of a stride-1 correlation is the correlation with the
//!   flipped, transposed kernel over the gradient padded by `k−1−p`;
//! - weight gradient: `dw[o, c, tap] = Σ_n Σ_q g_n[o, q] · pad_p(x_n)[c, q + s_tap]`, the batch
//!   cut into fixed chunks of examples summed in a fixed order (`conv2d.rs` says why).
//!
//! Why: the column-matrix path copied every input value k² times and gemm repacked that matrix
//! on every call; for cnn6's 16–32-channel 3×3 convolutions `perf` put those copies, the
//! packing and the zero-filled buffers at 39% of the time (BENCHMARKS.md).

use super::direct::{add_lane_sums, Correlation, Narrowed, OutGrid, TapDots, LANES, TAIL};
use super::im2col::Geometry;
use super::par::{for_each_chunk, sum_in_fixed_chunks};
use super::wide::{copy_masked, fill_padded, RowMap};
use crate::quant::ActGrid;
use candle_core::Result;

/// Zero-bordered planes of one side (input, or output gradient) of a convolution.
#[derive(Clone, Copy, Debug)]
struct Planes {
    c: usize,
    h: usize,
    w: usize,
    pad: usize,
}

impl Planes {
    fn wp(&self) -> usize {
        self.w + 2 * self.pad
    }

    /// Values per padded plane.
    fn hw(&self) -> usize {
        (self.h + 2 * self.pad) * self.wp()
    }

    /// A zeroed buffer for every plane plus the kernels' `TAIL`.
    fn buffer(&self) -> Vec<f32> {
        vec![0.0; self.c * self.hw() + TAIL]
    }

    /// Copies example `src` (C, H, W), mapped by `map`, into the planes' interiors; the
    /// borders stay zero.
    fn fill(&self, src: &[f32], map: RowMap, dst: &mut [f32]) {
        fill_padded(src, (self.h, self.w), self.pad, map, dst);
    }

    /// The taps of a k×k kernel: offsets `ki·wp + kj`.
    fn taps(&self, k: usize) -> Vec<usize> {
        (0..k * k).map(|t| t / k * self.wp() + t % k).collect()
    }
}

/// The upstream gradient of a convolution, and the fused ReLU's output when there is one:
/// the gradient that reaches the convolution is `g` where `y > 0`, else 0.
#[derive(Clone, Copy)]
pub(crate) struct Upstream<'a> {
    pub g: &'a [f32],
    pub relu_out: Option<&'a [f32]>,
}

impl<'a> Upstream<'a> {
    /// The part of example `i` (`len` values each).
    fn example(&self, i: usize, len: usize) -> Upstream<'a> {
        Upstream {
            g: &self.g[i * len..][..len],
            relu_out: self.relu_out.map(|y| &y[i * len..][..len]),
        }
    }
}

/// The direct path's shapes for one convolution.
pub(crate) struct Direct {
    g: Geometry,
    o: usize,
    /// The input padded by p.
    input: Planes,
    /// The output gradient padded by k − 1 − p.
    grad: Planes,
}

impl Direct {
    /// Stride 1 with padding below the kernel size (so that `k − 1 − p` is not negative) and
    /// non-empty input and output planes (the grids of both passes need a row), on a CPU where
    /// the kernels are vectorized; elsewhere the column path serves.
    pub(crate) fn of(g: &Geometry, o: usize) -> Option<Direct> {
        if !super::direct::vectorized() {
            return None;
        }
        Self::any_cpu(g, o)
    }

    /// `of` without the CPU condition (the tests compare both paths on any CPU).
    pub(crate) fn any_cpu(g: &Geometry, o: usize) -> Option<Direct> {
        if g.stride != 1 || g.padding >= g.k || g.oh == 0 || g.ow == 0 || g.h == 0 || g.w == 0 {
            return None;
        }
        let (c, h, w, pad) = (g.c, g.h, g.w, g.padding);
        let grad = Planes {
            c: o,
            h: g.oh,
            w: g.ow,
            pad: g.k - 1 - g.padding,
        };
        Some(Direct {
            g: *g,
            o,
            input: Planes { c, h, w, pad },
            grad,
        })
    }

    /// `y = relu?(conv(act?(x), w) + b)` for `n` examples, examples in parallel; `act`
    /// quantizes the input as it is copied into the planes.
    pub(crate) fn forward(
        &self,
        x: &[f32],
        act: Option<ActGrid>,
        w: &[f32],
        b: &[f32],
        n: usize,
        relu: bool,
    ) -> Result<Vec<f32>> {
        let (g, o) = (&self.g, self.o);
        let grid = OutGrid::new(g.oh, g.ow, self.input.wp());
        let taps = self.input.taps(g.k);
        let total = n * o * g.oh * g.ow;
        // Every value is written below: no zero-filling (it was 4% of a training step).
        let mut y = Vec::with_capacity(total);
        let out = &mut y.spare_capacity_mut()[..total];
        for_each_chunk(
            out,
            o * g.oh * g.ow,
            || self.input.buffer(),
            |planes, i, yn| {
                self.input
                    .fill(&x[i * g.in_len()..][..g.in_len()], input_map(act), planes);
                let corr = Correlation {
                    x: planes,
                    c: g.c,
                    hw: self.input.hw(),
                    taps: &taps,
                    w,
                    rows: o,
                };
                let grid = &grid;
                corr.run(&mut Narrowed {
                    y: yn,
                    grid,
                    bias: b,
                    relu,
                });
                Ok(())
            },
        )?;
        // SAFETY: `Correlation::run` wrote every output of every example's O planes.
        unsafe { y.set_len(total) };
        Ok(y)
    }

    /// `dx` of `n` examples from the (ReLU-masked) output gradient `grad`, in parallel.
    pub(crate) fn input_grad(&self, w: &[f32], grad: Upstream, n: usize) -> Result<Vec<f32>> {
        let (g, o) = (&self.g, self.o);
        let (k, k2) = (g.k, g.k * g.k);
        // w' (C, O, k, k): w'[c, o, t] = w[o, c, k²−1−t] (flipping both axes reverses the taps).
        let mut wt = vec![0.0; w.len()];
        for (i, &v) in w.iter().enumerate() {
            let (oc, ci, t) = (i / (g.c * k2), i / k2 % g.c, i % k2);
            wt[(ci * o + oc) * k2 + (k2 - 1 - t)] = v;
        }
        let grid = OutGrid::new(g.h, g.w, self.grad.wp());
        let taps = self.grad.taps(k);
        let out_len = o * g.oh * g.ow;
        let total = n * g.in_len();
        let mut dx = Vec::with_capacity(total);
        let out = &mut dx.spare_capacity_mut()[..total];
        for_each_chunk(
            out,
            g.in_len(),
            || self.grad.buffer(),
            |planes, i, dxn| {
                let gi = grad.example(i, out_len);
                let map = gi.relu_out.map_or(RowMap::Copy, RowMap::Relu);
                self.grad.fill(gi.g, map, planes);
                let corr = Correlation {
                    x: planes,
                    c: o,
                    hw: self.grad.hw(),
                    taps: &taps,
                    w: &wt,
                    rows: g.c,
                };
                corr.run(&mut Narrowed {
                    y: dxn,
                    grid: &grid,
                    bias: &[],
                    relu: false,
                });
                Ok(())
            },
        )?;
        // SAFETY: `Correlation::run` wrote every value of every example's C planes.
        unsafe { dx.set_len(total) };
        Ok(dx)
    }

    /// `dw` (O, C, k, k) over `n` examples of the input `act?(x)`: chunks of `chunk` examples
    /// in parallel, each summed in example order, the chunks' sums added in chunk order.
    pub(crate) fn weight_grad(
        &self,
        x: &[f32],
        act: Option<ActGrid>,
        grad: Upstream,
        n: usize,
        chunk: usize,
    ) -> Result<Vec<f32>> {
        let (g, o, wp) = (&self.g, self.o, self.input.wp());
        let len = OutGrid::wide_len(g.oh, g.ow, wp).div_ceil(LANES) * LANES;
        let taps = self.input.taps(g.k);
        let dw_len = o * g.c * g.k * g.k;
        let out_len = o * g.oh * g.ow;
        // The gradient on the wide grid (its wrap-around columns and tail are never written),
        // and 16 running sums per weight for the chunk's examples.
        let scratch = || {
            let lanes = vec![0.0; dw_len * LANES];
            (self.input.buffer(), vec![0.0; o * len], lanes)
        };
        sum_in_fixed_chunks(
            n,
            chunk,
            dw_len,
            scratch,
            |(planes, wide, lanes), examples, acc| {
                lanes.fill(0.0);
                for i in examples {
                    let xi = &x[i * g.in_len()..][..g.in_len()];
                    self.input.fill(xi, input_map(act), planes);
                    let gi = grad.example(i, out_len);
                    for (r, line) in gi.g.chunks_exact(g.ow).enumerate() {
                        let (oc, oy) = (r / g.oh, r % g.oh);
                        let mask = gi.relu_out.map(|y| &y[r * g.ow..][..g.ow]);
                        copy_masked(&mut wide[oc * len + oy * wp..][..g.ow], line, mask);
                    }
                    let dots = TapDots {
                        x: planes,
                        c: g.c,
                        hw: self.input.hw(),
                        taps: &taps,
                        g: wide,
                        rows: o,
                        stride: len,
                        len,
                    };
                    dots.accumulate(lanes);
                }
                add_lane_sums(lanes, acc);
                Ok(())
            },
        )
    }
}

/// How an input is copied into its planes: quantized by `act`, else as it is.
fn input_map<'a>(act: Option<ActGrid>) -> RowMap<'a> {
    act.map_or(RowMap::Copy, RowMap::Quant)
}

#[cfg(test)]
mod tests {
    use super::super::columns::{self, Dims};
    use super::*;

    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect()
    }

    fn assert_near(got: &[f32], want: &[f32], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: lengths");
        for (i, (a, b)) in got.iter().zip(want).enumerate() {
            assert!(
                (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                "{what}[{i}]: {a} vs {b}"
            );
        }
    }

    /// An empty input plane padded up to the kernel size has output rows (from padding alone)
    /// but no input-gradient grid: the direct path declines it, where `OutGrid` would panic.
    #[test]
    fn empty_planes_take_the_column_path() -> Result<()> {
        let g = Geometry::new((1, 0, 4), 3, 1, 2)?;
        assert!(g.oh > 0 && Direct::any_cpu(&g, 3).is_none());
        assert!(Direct::any_cpu(&Geometry::new((1, 2, 4), 3, 1, 2)?, 3).is_some());
        Ok(())
    }

    /// The direct path against the column path (im2col + gemm) on the same inputs: forward
    /// with bias and ReLU, and both gradients of a ReLU-masked upstream gradient, for odd
    /// sizes, 1–33 channels and paddings 0 to k − 1.
    #[test]
    fn direct_path_matches_the_column_path() -> Result<()> {
        // (n, c, h, w, o, k, padding)
        for &(n, c, h, w, o, k, p) in &[
            (3, 1, 9, 9, 16, 3, 1),
            (2, 6, 12, 11, 16, 5, 0),
            (9, 16, 8, 8, 33, 3, 1),
            (2, 3, 7, 10, 5, 3, 2),
        ] {
            let g = Geometry::new((c, h, w), k, 1, p)?;
            let d = Dims { n, o, g };
            let direct = Direct::any_cpu(&g, o).expect("stride 1, padding < k");
            let what = format!("n{n} c{c} {h}x{w} o{o} k{k} p{p}");
            let (x, wt, b) = (
                values(n * g.in_len(), 1),
                values(o * c * k * k, 2),
                values(o, 3),
            );
            let y = direct.forward(&x, None, &wt, &b, n, true)?;
            assert_near(
                &y,
                &columns::forward(&x, &wt, &b, &d, true)?,
                &format!("y {what}"),
            );

            let grad = values(y.len(), 4);
            let masked: Vec<f32> = grad
                .iter()
                .zip(&y)
                .map(|(&g, &v)| if v > 0.0 { g } else { 0.0 })
                .collect();
            let up = Upstream {
                g: &grad,
                relu_out: Some(&y),
            };
            let dw = direct.weight_grad(&x, None, up, n, 8)?;
            assert_near(
                &dw,
                &columns::weight_grad(&x, &masked, &d, 8)?,
                &format!("dw {what}"),
            );
            let dx = direct.input_grad(&wt, up, n)?;
            assert_near(
                &dx,
                &columns::input_grad(&wt, &masked, &d)?,
                &format!("dx {what}"),
            );
        }
        Ok(())
    }
}
