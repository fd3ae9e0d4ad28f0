//! Depthwise convolution (one k×k filter per channel, groups = channels) as one candle custom
//! op with bias, ReLU and the input's activation quantizer fused, and its backward.
//!
//! Why: as `groups` ordinary convolutions of one channel each, a MobileNet block pays a whole
//! conv's setup, copies and dispatch per channel. A depthwise conv does k² products per output, so it is bound by memory,
//! not arithmetic: plain loops over one plane at a time, planes in parallel, each sum in a
//! fixed order (the weight gradient is summed over examples in example order). Plain `a += w·x`
//! rather than `mul_add`: without FMA in the build's target, `mul_add` is a libm call.

use crate::ops::parallel::for_each_chunk;
use crate::ops::storage::{contiguous_f32, with_f32};
use crate::quant::ActGrid;
use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

/// `relu?(depthwise_conv(act?(x), w) + b)`: x (N, C, H, W), w (C, 1, k, k), b (C).
pub fn depthwise_conv2d(
    x: &Tensor,
    act: Option<ActGrid>,
    w: &Tensor,
    b: &Tensor,
    (stride, padding): (usize, usize),
    relu: bool,
) -> Result<Tensor> {
    let op = Depthwise {
        stride,
        padding,
        relu,
        act,
    };
    x.contiguous()?
        .apply_op3(&w.contiguous()?, &b.contiguous()?, op)
}

struct Depthwise {
    stride: usize,
    padding: usize,
    relu: bool,
    act: Option<ActGrid>,
}

/// Sizes of one call.
#[derive(Clone, Copy)]
struct Dims {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    k: usize,
    oh: usize,
    ow: usize,
}

impl Depthwise {
    fn dims(&self, x: &Shape, w: &Shape, b: &Shape) -> Result<Dims> {
        let (n, c, h, wd) = x.dims4()?;
        let (wc, one, k, k2) = w.dims4()?;
        if wc != c || one != 1 || k != k2 || b.dims() != [c] {
            bail!("depthwise_conv2d: x {x:?}, w {w:?}, b {b:?} do not fit (w: (C, 1, k, k))");
        }
        let (hp, wp) = (h + 2 * self.padding, wd + 2 * self.padding);
        if hp < k || wp < k || self.stride == 0 {
            bail!("depthwise_conv2d: a {h}x{wd} input is too small for kernel {k}");
        }
        let out = |p: usize| (p - k) / self.stride + 1;
        Ok(Dims {
            n,
            c,
            h,
            w: wd,
            k,
            oh: out(hp),
            ow: out(wp),
        })
    }

    /// The input value at padded position (iy, ix) of a plane, 0 in the padding.
    fn at(&self, plane: &[f32], d: Dims, iy: isize, ix: isize) -> f32 {
        let (y, x) = (iy - self.padding as isize, ix - self.padding as isize);
        if y < 0 || x < 0 || y >= d.h as isize || x >= d.w as isize {
            return 0.0;
        }
        plane[y as usize * d.w + x as usize]
    }

    /// A plane as the conv sees it: quantized by the fused activation quantizer if any.
    fn input_plane(&self, x: &[f32]) -> Vec<f32> {
        let mut p = x.to_vec();
        if let Some(q) = self.act {
            q.quantize_in_place(&mut p);
        }
        p
    }

    /// The pre-ReLU output plane of one (example, channel).
    fn plane(&self, xp: &[f32], wk: &[f32], bias: f32, d: Dims, out: &mut [f32]) {
        for oy in 0..d.oh {
            for ox in 0..d.ow {
                let mut s = 0.0f32;
                for ky in 0..d.k {
                    for kx in 0..d.k {
                        let (iy, ix) = (oy * self.stride + ky, ox * self.stride + kx);
                        s += wk[ky * d.k + kx] * self.at(xp, d, iy as isize, ix as isize);
                    }
                }
                out[oy * d.ow + ox] = s + bias;
            }
        }
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
        let d = self.dims(xl.shape(), wl.shape(), bl.shape())?;
        let (x, w, b) = (
            contiguous_f32(xs, xl)?,
            contiguous_f32(ws, wl)?,
            contiguous_f32(bs, bl)?,
        );
        let (plane_in, plane_out, k2) = (d.h * d.w, d.oh * d.ow, d.k * d.k);
        let mut y = vec![0.0f32; d.n * d.c * plane_out];
        for_each_chunk(
            &mut y,
            plane_out.max(1),
            || (),
            |_, p, out| {
                let ch = p % d.c;
                let xp = self.input_plane(&x[p * plane_in..][..plane_in]);
                self.plane(&xp, &w[ch * k2..][..k2], b[ch], d, out);
                if self.relu {
                    out.iter_mut().for_each(|v| *v = v.max(0.0));
                }
                Ok(())
            },
        )?;
        Ok((CpuStorage::F32(y), Shape::from((d.n, d.c, d.oh, d.ow))))
    }

    /// The ReLU's mask from the output; then, only for the arguments that track a gradient,
    /// per channel dW and db summed over examples in order, and per plane dx (the
    /// straight-through estimator passes the quantizer). An attack's frozen weights thus cost
    /// no weight gradient.
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let d = self.dims(x.shape(), w.shape(), b.shape())?;
        let g = with_f32(grad, |gv| match self.relu {
            true => with_f32(y, |yv| {
                Ok(gv
                    .iter()
                    .zip(yv)
                    .map(|(&g, &y)| if y > 0.0 { g } else { 0.0 })
                    .collect())
            }),
            false => Ok(gv.to_vec()),
        })?;
        let dev = x.device();
        let dx = match x.track_op() {
            true => {
                let dx = with_f32(w, |wv| self.input_grads(wv, &g, d))?;
                Some(Tensor::from_vec(dx, x.shape(), dev)?)
            }
            false => None,
        };
        let (dw, db) = match w.track_op() || b.track_op() {
            true => {
                let (dw, db) = with_f32(x, |xv| self.param_grads(xv, &g, d))?;
                let dw = w.track_op().then(|| Tensor::from_vec(dw, w.shape(), dev));
                let db = b.track_op().then(|| Tensor::from_vec(db, b.shape(), dev));
                (dw.transpose()?, db.transpose()?)
            }
            false => (None, None),
        };
        Ok((dx, dw, db))
    }
}

impl Depthwise {
    /// dW (C, k²) and db (C) from the masked output gradient `g`: each channel summed over
    /// examples in example order, channels in parallel.
    fn param_grads(&self, x: &[f32], g: &[f32], d: Dims) -> Result<(Vec<f32>, Vec<f32>)> {
        let (plane_in, plane_out, k2) = (d.h * d.w, d.oh * d.ow, d.k * d.k);
        let mut dwb = vec![0.0f32; d.c * (k2 + 1)];
        for_each_chunk(
            &mut dwb,
            k2 + 1,
            || (),
            |_, ch, acc| {
                for i in 0..d.n {
                    let p = i * d.c + ch;
                    let xp = self.input_plane(&x[p * plane_in..][..plane_in]);
                    self.weight_sums(&xp, &g[p * plane_out..][..plane_out], d, acc);
                }
                Ok(())
            },
        )?;
        let dw = dwb
            .chunks_exact(k2 + 1)
            .flat_map(|acc| &acc[..k2])
            .copied()
            .collect();
        let db = dwb.chunks_exact(k2 + 1).map(|acc| acc[k2]).collect();
        Ok((dw, db))
    }

    /// dx (N, C, H, W) from `g`, plane by plane in parallel.
    fn input_grads(&self, w: &[f32], g: &[f32], d: Dims) -> Result<Vec<f32>> {
        let (plane_in, plane_out, k2) = (d.h * d.w, d.oh * d.ow, d.k * d.k);
        let mut dx = vec![0.0f32; d.n * d.c * plane_in];
        for_each_chunk(
            &mut dx,
            plane_in.max(1),
            || (),
            |_, p, out| {
                let ch = p % d.c;
                self.input_grad(
                    &g[p * plane_out..][..plane_out],
                    &w[ch * k2..][..k2],
                    d,
                    out,
                );
                Ok(())
            },
        )?;
        Ok(dx)
    }

    /// Adds one plane's weight sums (`acc[tap]`) and bias sum (`acc[k²]`).
    fn weight_sums(&self, xp: &[f32], g: &[f32], d: Dims, acc: &mut [f32]) {
        let k2 = d.k * d.k;
        for oy in 0..d.oh {
            for ox in 0..d.ow {
                let gv = g[oy * d.ow + ox];
                if gv == 0.0 {
                    continue;
                }
                for ky in 0..d.k {
                    for kx in 0..d.k {
                        let (iy, ix) = (oy * self.stride + ky, ox * self.stride + kx);
                        let xv = self.at(xp, d, iy as isize, ix as isize);
                        acc[ky * d.k + kx] += gv * xv;
                    }
                }
                acc[k2] += gv;
            }
        }
    }

    /// One plane's input gradient: every output's gradient spread back over its window.
    fn input_grad(&self, g: &[f32], wk: &[f32], d: Dims, dx: &mut [f32]) {
        for oy in 0..d.oh {
            for ox in 0..d.ow {
                let gv = g[oy * d.ow + ox];
                for ky in 0..d.k {
                    for kx in 0..d.k {
                        let y = (oy * self.stride + ky) as isize - self.padding as isize;
                        let x = (ox * self.stride + kx) as isize - self.padding as isize;
                        if y >= 0 && x >= 0 && (y as usize) < d.h && (x as usize) < d.w {
                            let at = y as usize * d.w + x as usize;
                            dx[at] += wk[ky * d.k + kx] * gv;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::test_util::max_abs_diff;
    use candle_core::{Device, Var};

    /// Output and all three gradients against candle's grouped convolution (+ bias, ReLU), at
    /// strides 1 and 2 and paddings 0 and 1.
    #[test]
    fn matches_candle_grouped_conv() -> Result<()> {
        let dev = Device::Cpu;
        for (stride, padding, relu) in [(1, 1, true), (2, 1, false), (1, 0, true), (2, 0, true)] {
            // Square: candle's own grouped backward pads both sides by the height's rounding.
            let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (2, 3, 7, 7), &dev)?)?;
            let w = Var::from_tensor(&Tensor::randn(0f32, 1.0, (3, 1, 3, 3), &dev)?)?;
            let b = Var::from_tensor(&Tensor::randn(0f32, 1.0, 3, &dev)?)?;
            let got = depthwise_conv2d(
                x.as_tensor(),
                None,
                w.as_tensor(),
                b.as_tensor(),
                (stride, padding),
                relu,
            )?;
            let mut want = x
                .as_tensor()
                .conv2d(w.as_tensor(), padding, stride, 1, 3)?
                .broadcast_add(&b.as_tensor().reshape((1, 3, 1, 1))?)?;
            if relu {
                want = want.relu()?;
            }
            assert!(
                max_abs_diff(&got, &want)? < 1e-5,
                "y at stride {stride}, padding {padding}"
            );
            let r = Tensor::randn(0f32, 1.0, want.dims(), &dev)?;
            let gg = (&got * &r)?.sum_all()?.backward()?;
            let gw = (&want * &r)?.sum_all()?.backward()?;
            for (name, t) in [("dx", &x), ("dw", &w), ("db", &b)] {
                let d = max_abs_diff(gg.get(t).unwrap(), gw.get(t).unwrap())?;
                assert!(
                    d < 1e-4,
                    "{name} at stride {stride}, padding {padding}: {d}"
                );
            }
            // Frozen weights (an attack's): the same dx, and no dW or db.
            let (wf, bf) = (w.as_tensor().detach(), b.as_tensor().detach());
            let frozen = depthwise_conv2d(x.as_tensor(), None, &wf, &bf, (stride, padding), relu)?;
            let gf = (&frozen * &r)?.sum_all()?.backward()?;
            assert_eq!(max_abs_diff(gf.get(&x).unwrap(), gg.get(&x).unwrap())?, 0.0);
            assert!(gf.get(&wf).is_none() && gf.get(&bf).is_none());
        }
        Ok(())
    }
}
