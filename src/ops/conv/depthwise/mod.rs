//! Depthwise convolution (one k×k filter per channel, groups = channels) as one candle custom
//! op with bias, the output's activation (ReLU, ReLU6) and the input's activation quantizer
//! fused, and its backward. With `x̃` the quantized input zero-padded by `p` and `g` the output
//! gradient passed back through the activation:
//!
//! - `y[n,c,o] = act(Σ_tap w[c,tap]·x̃[n,c, s·o + tap] + b[c])`;
//! - `dx[n,c]` = the transposed convolution of `g[n,c]`: its values spread `s` apart, correlated
//!   with the flipped filter (the straight-through estimator passes the quantizer);
//! - `dw[c,tap] = Σ_n Σ_o g[n,c,o]·x̃[n,c, s·o + tap]`, `db[c] = Σ_n Σ_o g[n,c,o]`.
//!
//! Why: as `groups` ordinary convolutions of one channel each, a MobileNet block pays a whole
//! conv's setup, copies and dispatch per channel. Here every plane is laid out so that each tap
//! is a constant offset on one flat grid (`layout.rs`), and runs through the direct
//! convolution's vector kernels as a one-row, one-channel correlation (`direct::kernels`,
//! AVX-512, AVX2 or the portable loop, which give the same bits). Planes run in parallel;
//! every sum has a fixed order: taps in order per output; per weight 16 lane sums over the
//! wide grid, carried across the examples in order and reduced once; the bias per example
//! (`masked_sum`), added in example order. So the thread count changes no bit.

mod backward;
mod layout;
#[cfg(test)]
mod tests;

use super::direct::kernels::{isa, Correlation, Isa, Narrowed, OutGrid};
use super::geometry::Geometry;
use crate::ops::activation::Activation;
use crate::ops::parallel::filled_chunks;
use crate::ops::storage::{contiguous_f32, with_f32};
use crate::quant::ActGrid;
use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use layout::Phases;
use std::mem::MaybeUninit;

/// `activation(depthwise_conv(act?(x), w) + b)`: x (N, C, H, W), w (C, 1, k, k), b (C).
pub fn depthwise_conv2d(
    x: &Tensor,
    act: Option<ActGrid>,
    w: &Tensor,
    b: &Tensor,
    (stride, padding): (usize, usize),
    activation: Activation,
) -> Result<Tensor> {
    let op = Depthwise {
        stride,
        padding,
        activation,
        act,
        isa: isa(),
    };
    x.contiguous()?
        .apply_op3(&w.contiguous()?, &b.contiguous()?, op)
}

pub(crate) struct Depthwise {
    stride: usize,
    padding: usize,
    activation: Activation,
    act: Option<ActGrid>,
    /// The kernels' instruction set: the CPU's best (the tests run every one it has).
    isa: Isa,
}

impl Depthwise {
    /// The op without an activation after it or a quantizer before it.
    pub(crate) fn new(stride: usize, padding: usize) -> Self {
        Depthwise {
            stride,
            padding,
            activation: Activation::Identity,
            act: None,
            isa: isa(),
        }
    }
}

/// One call's shapes and layouts.
struct Plan {
    n: usize,
    g: Geometry,
    phases: Phases,
    /// Phases' taps, and the output's grid on them.
    taps: Vec<usize>,
    grid: OutGrid,
}

impl Plan {
    fn k2(&self) -> usize {
        self.g.k * self.g.k
    }

    fn plane_in(&self) -> usize {
        self.g.h * self.g.w
    }

    fn plane_out(&self) -> usize {
        self.g.oh * self.g.ow
    }
}

impl Depthwise {
    fn plan(&self, x: &Shape, w: &Shape, b: &Shape) -> Result<Plan> {
        let (n, c, h, wd) = x.dims4()?;
        let (wc, one, k, k2) = w.dims4()?;
        if wc != c || one != 1 || k != k2 || b.dims() != [c] {
            bail!("depthwise_conv2d: x {x:?}, w {w:?}, b {b:?} do not fit (w: (C, 1, k, k))");
        }
        let g = Geometry::new((c, h, wd), k, self.stride, self.padding)?;
        let phases = Phases::new(g);
        Ok(Plan {
            n,
            g,
            taps: phases.taps(),
            grid: phases.grid(),
            phases,
        })
    }
}

impl CustomOp3 for Depthwise {
    fn name(&self) -> &'static str {
        "bitsearch-depthwise-conv2d"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = self.plan(xl.shape(), wl.shape(), bl.shape())?;
        let (x, w, b) = (
            contiguous_f32(xs, xl)?,
            contiguous_f32(ws, wl)?,
            contiguous_f32(bs, bl)?,
        );
        let y = self.forward(&d, x, w, b)?;
        let g = &d.g;
        Ok((CpuStorage::F32(y), Shape::from((d.n, g.c, g.oh, g.ow))))
    }

    /// The activation's mask from the output; then, only for the arguments that track a
    /// gradient, per channel dW and db and per plane dx. An attack's frozen weights thus cost
    /// no weight gradient.
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let d = self.plan(x.shape(), w.shape(), b.shape())?;
        let (want_dx, want_params) = (x.track_op(), w.track_op() || b.track_op());
        let (dx, dwb) = with_f32(grad, |gv| {
            with_f32(y, |yv| {
                with_f32(x, |xv| {
                    with_f32(w, |wv| {
                        self.backward(&d, (xv, wv), (gv, yv), (want_dx, want_params))
                    })
                })
            })
        })?;
        let dev = x.device();
        let dx = dx
            .map(|v| Tensor::from_vec(v, x.shape(), dev))
            .transpose()?;
        let (dw, db) = match dwb {
            Some((dw, db)) => (
                w.track_op()
                    .then(|| Tensor::from_vec(dw, w.shape(), dev))
                    .transpose()?,
                b.track_op()
                    .then(|| Tensor::from_vec(db, b.shape(), dev))
                    .transpose()?,
            ),
            None => (None, None),
        };
        Ok((dx, dw, db))
    }
}

impl Depthwise {
    /// Every output plane, planes in parallel.
    fn forward(&self, d: &Plan, x: &[f32], w: &[f32], b: &[f32]) -> Result<Vec<f32>> {
        let (c, k2) = (d.g.c, d.k2());
        let (plane_in, plane_out) = (d.plane_in(), d.plane_out());
        let total = d.n * c * plane_out;
        let fill = |scratch: &mut Vec<f32>, p, out: &mut [MaybeUninit<f32>]| {
            let ch = p % c;
            let planes = d
                .phases
                .fill(&x[p * plane_in..][..plane_in], self.act, scratch);
            let corr = Correlation {
                x: planes,
                c: 1,
                hw: d.phases.len(),
                taps: &d.taps,
                w: &w[ch * k2..][..k2],
                rows: 1,
            };
            corr.run_on(
                self.isa,
                &mut Narrowed {
                    y: out,
                    grid: &d.grid,
                    bias: &b[ch..][..1],
                    activation: self.activation,
                },
            );
            Ok(())
        };
        // SAFETY: the correlation stores every output of its grid (`Correlation::run_on`), the
        // whole plane.
        unsafe { filled_chunks(total, plane_out, || d.phases.buffer(), fill) }
    }
}
