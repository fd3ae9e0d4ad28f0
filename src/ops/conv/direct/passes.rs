//! A stride-1 convolution's three passes on NCHW tensors through `kernels.rs`: each
//! example is copied once into zero-bordered planes (one row copy per input row) and correlated
//! on the wide grid, the kernels storing its valid outputs straight into the NCHW result.
//!
//! - forward: `y = relu?(correlate(pad_p(x), w) + b)`;
//! - input gradient: `dx = correlate(pad_{k−1−p}(g), w')` with `w'[c, o, ki, kj] = w[o, c,
//!   k−1−ki, k−1−kj]`: the adjoint of a stride-1 correlation is the correlation with the
//!   flipped, transposed kernel over the gradient padded by `k−1−p`;
//! - weight gradient: `dw[o, c, tap] = Σ_n Σ_q g_n[o, q] · pad_p(x_n)[c, q + s_tap]`
//!   (`weight_grad.rs`).
//!
//! Why: the column path copies every input value k² times into its matrix and gemm repacks that
//! matrix on every call; here each input value is copied once, and no buffer is zero-filled
//! per call.

use super::kernels::{vectorized, Correlation, Narrowed, OutGrid};
use crate::ops::activation::Activation;
use crate::ops::conv::geometry::Geometry;
use crate::ops::conv::planes::{Planes, RowMap};
use crate::ops::parallel::filled_chunks;
use crate::quant::ActGrid;
use candle_core::Result;
use std::mem::MaybeUninit;

/// The upstream gradient of a convolution, and the fused ReLU's output when there is one:
/// the gradient that reaches the convolution is `g` where `y > 0`, else 0.
#[derive(Clone, Copy)]
pub(crate) struct Upstream<'a> {
    pub g: &'a [f32],
    pub relu_out: Option<&'a [f32]>,
}

impl<'a> Upstream<'a> {
    /// The part of example `i` (`len` values each).
    pub(super) fn example(&self, i: usize, len: usize) -> Upstream<'a> {
        Upstream {
            g: &self.g[i * len..][..len],
            relu_out: self.relu_out.map(|y| &y[i * len..][..len]),
        }
    }
}

/// The direct path's shapes for one convolution.
pub(crate) struct Direct {
    pub(super) g: Geometry,
    pub(super) o: usize,
    /// The input padded by p.
    pub(super) input: Planes,
    /// The output gradient padded by k − 1 − p.
    pub(super) grad: Planes,
}

impl Direct {
    /// Stride 1 with padding below the kernel size (so that `k − 1 − p` is not negative),
    /// non-empty input and output planes (the grids of both passes need a row) and channels on
    /// both sides (each pass's planes are the other's correlation rows), on a CPU where the
    /// kernels are vectorized; elsewhere the column path serves.
    pub(crate) fn of(g: &Geometry, o: usize) -> Option<Direct> {
        if !vectorized() {
            return None;
        }
        Self::any_cpu(g, o)
    }

    /// `of` without the CPU condition (the tests compare both paths on any CPU).
    pub(crate) fn any_cpu(g: &Geometry, o: usize) -> Option<Direct> {
        let empty = g.oh == 0 || g.ow == 0 || g.h == 0 || g.w == 0 || g.c == 0 || o == 0;
        if g.stride != 1 || g.padding >= g.k || empty {
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
        let pass = self.forward_pass(act, w, b, relu);
        let total = n * pass.out_len();
        let fill = |scratch: &mut Vec<f32>, i, yn: &mut [MaybeUninit<f32>]| {
            pass.example(scratch, x, i, yn);
            Ok(())
        };
        // SAFETY: `ForwardPass::example` writes every output of its example
        // (`Correlation::run` stores each output of its grid).
        unsafe { filled_chunks(total, pass.out_len(), || self.input.buffer(), fill) }
    }

    /// The forward's per-call state, for callers that consume each example's output in turn
    /// (`conv_relu_pool`).
    pub(crate) fn forward_pass<'a>(
        &'a self,
        act: Option<ActGrid>,
        w: &'a [f32],
        b: &'a [f32],
        relu: bool,
    ) -> ForwardPass<'a> {
        let g = &self.g;
        ForwardPass {
            d: self,
            grid: OutGrid::new(g.oh, g.ow, self.input.wp()),
            taps: self.input.taps(g.k),
            act,
            w,
            b,
            relu,
        }
    }

    /// A scratch buffer for one example's input planes (`ForwardPass::example`).
    pub(crate) fn input_buffer(&self) -> Vec<f32> {
        self.input.buffer()
    }

    /// `dx` of `n` examples from the (ReLU-masked) output gradient `grad`, in parallel.
    pub(crate) fn input_grad(&self, w: &[f32], grad: Upstream, n: usize) -> Result<Vec<f32>> {
        let pass = self.input_pass(w, grad);
        let in_len = self.g.in_len();
        let total = n * in_len;
        let fill = |scratch: &mut Vec<f32>, i, dxn: &mut [MaybeUninit<f32>]| {
            pass.example(pass.grad_planes(i, scratch), dxn);
            Ok(())
        };
        // SAFETY: `InputPass::example` writes all of its example's values (the C planes of its
        // grid).
        unsafe { filled_chunks(total, in_len, || self.grad.buffer(), fill) }
    }

    /// The input gradient's per-call state.
    pub(super) fn input_pass<'a>(&'a self, w: &[f32], grad: Upstream<'a>) -> InputPass<'a> {
        let (g, o) = (&self.g, self.o);
        let k2 = g.k * g.k;
        // w' (C, O, k, k): w'[c, o, t] = w[o, c, k²−1−t] (flipping both axes reverses the taps).
        let mut wt = vec![0.0; w.len()];
        for (i, &v) in w.iter().enumerate() {
            let (oc, ci, t) = (i / (g.c * k2), i / k2 % g.c, i % k2);
            wt[(ci * o + oc) * k2 + (k2 - 1 - t)] = v;
        }
        InputPass {
            d: self,
            wt,
            grid: OutGrid::new(g.h, g.w, self.grad.wp()),
            taps: self.grad.taps(g.k),
            grad,
        }
    }
}

/// The input gradient's flipped, transposed kernel, output grid and taps (`Direct::input_pass`).
pub(super) struct InputPass<'a> {
    d: &'a Direct,
    wt: Vec<f32>,
    grid: OutGrid,
    taps: Vec<usize>,
    grad: Upstream<'a>,
}

impl InputPass<'_> {
    /// Example `i`'s (ReLU-masked) gradient in the zero-bordered planes of `scratch`.
    pub(super) fn grad_planes<'s>(&self, i: usize, scratch: &'s mut [f32]) -> &'s [f32] {
        let out_len = self.d.o * self.d.g.oh * self.d.g.ow;
        let gi = self.grad.example(i, out_len);
        let map = gi.relu_out.map_or(RowMap::Copy, RowMap::Relu);
        self.d.grad.fill(gi.g, map, scratch)
    }

    /// One example's input gradient from its gradient planes, into all of `dx` (C, H, W).
    pub(super) fn example(&self, planes: &[f32], dx: &mut [MaybeUninit<f32>]) {
        let corr = Correlation {
            x: planes,
            c: self.d.o,
            hw: self.d.grad.hw(),
            taps: &self.taps,
            w: &self.wt,
            rows: self.d.g.c,
        };
        corr.run(&mut Narrowed {
            y: dx,
            grid: &self.grid,
            bias: &[],
            activation: Activation::Identity,
        });
    }
}

/// One forward call's grid, taps and operands (`Direct::forward_pass`).
pub(crate) struct ForwardPass<'a> {
    d: &'a Direct,
    grid: OutGrid,
    taps: Vec<usize>,
    act: Option<ActGrid>,
    w: &'a [f32],
    b: &'a [f32],
    relu: bool,
}

impl ForwardPass<'_> {
    /// Outputs per example: (O, OH, OW).
    pub(crate) fn out_len(&self) -> usize {
        self.d.o * self.d.g.oh * self.d.g.ow
    }

    /// `example` into an initialised buffer (`conv_relu_pool`'s scratch, reused per example).
    pub(crate) fn example_init(&self, scratch: &mut [f32], x: &[f32], i: usize, y: &mut [f32]) {
        // SAFETY: `[f32]` and `[MaybeUninit<f32>]` have the same layout, and `example` writes
        // only initialised f32 values through the view (the kernels store whole floats); the
        // view lives for this call alone, so nothing can leave `y` uninitialised through it.
        let view = unsafe { &mut *(y as *mut [f32] as *mut [MaybeUninit<f32>]) };
        self.example(scratch, x, i, view);
    }

    /// Example `i` of the batch `x`: its planes copied into `scratch` (an `input_buffer`),
    /// correlated, and written to all of `y` (`out_len` values).
    pub(crate) fn example(
        &self,
        scratch: &mut [f32],
        x: &[f32],
        i: usize,
        y: &mut [MaybeUninit<f32>],
    ) {
        let (d, len) = (self.d, self.d.g.in_len());
        let planes = d
            .input
            .fill(&x[i * len..][..len], input_map(self.act), scratch);
        let corr = Correlation {
            x: planes,
            c: d.g.c,
            hw: d.input.hw(),
            taps: &self.taps,
            w: self.w,
            rows: d.o,
        };
        corr.run(&mut Narrowed {
            y,
            grid: &self.grid,
            bias: self.b,
            activation: match self.relu {
                true => Activation::Relu,
                false => Activation::Identity,
            },
        });
    }
}

/// How an input is copied into its planes: quantized by `act`, else as it is.
pub(super) fn input_map<'a>(act: Option<ActGrid>) -> RowMap<'a> {
    act.map_or(RowMap::Copy, RowMap::Quant)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::conv::im2col_gemm::{self, Dims};

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
    /// So it does for no input or no output channels (no planes to correlate on one side).
    #[test]
    fn empty_planes_take_the_column_path() -> Result<()> {
        let g = Geometry::new((1, 0, 4), 3, 1, 2)?;
        assert!(g.oh > 0 && Direct::any_cpu(&g, 3).is_none());
        assert!(Direct::any_cpu(&Geometry::new((1, 2, 4), 3, 1, 2)?, 3).is_some());
        let same = Geometry::new((2, 5, 5), 3, 1, 1)?;
        assert!(Direct::any_cpu(&same, 0).is_none(), "no output channels");
        let none_in = Geometry::new((0, 5, 5), 3, 1, 1)?;
        assert!(Direct::any_cpu(&none_in, 4).is_none(), "no input channels");
        Ok(())
    }

    /// The direct path against the column path (im2col + gemm) on the same inputs: forward
    /// with bias and ReLU, and both gradients of a ReLU-masked upstream gradient, for odd
    /// sizes, 1–33 channels and paddings 0 to k − 1.
    #[test]
    fn direct_path_matches_the_column_path() -> Result<()> {
        // (n, c, h, w, o, k, padding, whether the gradient planes can be shared)
        for &(n, c, h, w, o, k, p, shares) in &[
            (3, 1, 9, 9, 16, 3, 1, true),
            (2, 6, 12, 11, 16, 5, 0, false),
            (9, 16, 8, 8, 33, 3, 1, true),
            (2, 3, 7, 10, 5, 3, 2, false),
            (2, 4, 6, 13, 7, 5, 2, true),
            // "Same" padding of a 1x1 kernel: no border to cover the grid's rounding up.
            (2, 3, 5, 5, 4, 1, 0, false),
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
                &im2col_gemm::forward(&x, &wt, &b, &d, true)?,
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
            let dw = direct.weight_grad(&x, None, up, (n, 8), None)?;
            assert_near(
                &dw,
                &im2col_gemm::weight_grad(&x, &masked, &d, 8)?,
                &format!("dw {what}"),
            );
            let dx = direct.input_grad(&wt, up, n)?;
            assert_near(
                &dx,
                &im2col_gemm::input_grad(&wt, &masked, &d)?,
                &format!("dx {what}"),
            );
            // Both gradients in one pass, on the shared planes, give the same bits.
            assert_eq!(direct.shares_grad_planes(), shares, "{what}");
            if shares {
                let both = direct.both_grads(&x, None, &wt, up, (n, 8), None)?;
                assert_eq!(both, (dx, dw), "both gradients in one pass {what}");
            }
        }
        Ok(())
    }
}
