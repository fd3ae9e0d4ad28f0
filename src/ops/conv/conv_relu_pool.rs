//! Convolution, ReLU and max-pooling as one candle custom op:
//! `y = max_pool_k(relu(conv2d(act?(x), w) + b))`.
//!
//! Why: the two ops in turn write the convolution's whole output, read it back to pool it, and
//! in the backward build a full-size gradient three times (max-pool's scatter, candle's
//! zero-filled accumulator for the convolution's output, then its sum). Fused, each example's
//! convolution output stays in a per-worker buffer and is pooled while in cache, and the
//! backward scatters the pooled gradient once, straight into the convolution's upstream
//! gradient. The ReLU's mask needs no stored output: at a window's maximum, `relu(z) > 0` is
//! "the pooled value > 0". Only the direct path (`direct/`) is fused; elsewhere the two ops
//! run in turn, with the same values.

use super::conv2d::{conv2d_quantized, Conv2d, Grads3};
use super::direct::{Direct, Upstream};
use super::geometry::Geometry;
use crate::ops::parallel::{for_each_chunk, for_each_piece};
use crate::ops::pool::{max_pool2d, pool_example, unpool};
use crate::ops::storage::{contiguous_f32, with_f32};
use crate::quant::ActGrid;
use candle_core::{bail, CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};
use std::sync::Mutex;

/// `max_pool2d(conv2d_quantized(x, act, w, Some(b), stride, padding, true), k)`, fused where
/// the direct path serves (see the module doc); the same values and gradients either way.
pub fn conv2d_relu_pool(
    x: &Tensor,
    act: Option<ActGrid>,
    w: &Tensor,
    b: &Tensor,
    (stride, padding): (usize, usize),
    k: usize,
) -> Result<Tensor> {
    let unfused = || {
        max_pool2d(
            &conv2d_quantized(x, act, w, Some(b), stride, padding, true)?,
            k,
        )
    };
    let f32_cpu = [x, w, b]
        .iter()
        .all(|t| t.dtype() == DType::F32 && t.device().is_cpu());
    let (Ok((_, c, h, wd)), Ok((o, _, kh, _))) = (x.dims4(), w.dims4()) else {
        return unfused();
    };
    let direct = Geometry::new((c, h, wd), kh, stride, padding)
        .ok()
        .filter(|g| k > 0 && g.oh >= k && g.ow >= k && Direct::of(g, o).is_some());
    if !f32_cpu || direct.is_none() {
        return unfused();
    }
    let op = ConvPool {
        conv: Conv2d::new(stride, padding, true, act),
        k,
        keep_argmax: x.track_op() || w.track_op() || b.track_op(),
        argmax: Mutex::new(Vec::new()),
    };
    x.contiguous()?
        .apply_op3(&w.contiguous()?, &b.contiguous()?, op)
}

struct ConvPool {
    conv: Conv2d,
    k: usize,
    keep_argmax: bool,
    /// Per pooled value, the index of its maximum in its convolution-output plane; filled by
    /// the forward when a gradient may follow.
    argmax: Mutex<Vec<u32>>,
}

impl CustomOp3 for ConvPool {
    fn name(&self) -> &'static str {
        "bitsearch-conv2d-relu-pool"
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
        let d = self.conv.dims(xl.shape(), wl.shape(), bl.shape())?;
        let Some(direct) = Direct::of(&d.g, d.o) else {
            bail!("conv2d_relu_pool: the fused op needs the direct path");
        };
        let (x, w, b) = (
            contiguous_f32(xs, xl)?,
            contiguous_f32(ws, wl)?,
            contiguous_f32(bs, bl)?,
        );
        let (ph, pw) = (d.g.oh / self.k, d.g.ow / self.k);
        let per = d.o * ph * pw;
        let (mut y, mut idx) = (vec![0.0; d.n * per], vec![0u32; d.n * per]);
        let pass = direct.forward_pass(self.conv.act(), w, b, true);
        let pieces = y.chunks_mut(per).zip(idx.chunks_mut(per)).collect();
        for_each_piece(
            pieces,
            || (direct.input_buffer(), vec![0.0; pass.out_len()]),
            |(planes, conv), i, (ye, ie)| {
                pass.example_init(planes, x, i, conv);
                pool_example(self.k, (d.o, d.g.oh, d.g.ow), conv, ye, ie);
                Ok(())
            },
        )?;
        if self.keep_argmax {
            *self.argmax.lock().unwrap_or_else(|e| e.into_inner()) = idx;
        }
        Ok((CpuStorage::F32(y), Shape::from((d.n, d.o, ph, pw))))
    }

    /// The pooled gradient scattered to each window's maximum where the pooled value is
    /// positive (the ReLU's mask), then the convolution's backward from that.
    fn bwd(&self, x: &Tensor, w: &Tensor, b: &Tensor, y: &Tensor, grad: &Tensor) -> Result<Grads3> {
        let d = self.conv.dims(x.shape(), w.shape(), b.shape())?;
        let idx = self.argmax.lock().unwrap_or_else(|e| e.into_inner());
        let plane = d.g.oh * d.g.ow;
        let per = y.elem_count() / d.n.max(1);
        if idx.len() != y.elem_count() {
            bail!("conv2d_relu_pool: backward without the forward's maxima");
        }
        let total = d.n * d.o * plane;
        let mut dy = Vec::with_capacity(total);
        with_f32(grad, |gv| {
            with_f32(y, |yv| {
                for_each_chunk(
                    &mut dy.spare_capacity_mut()[..total],
                    d.o * plane,
                    || (),
                    |_, e, dye| {
                        let at = e * per;
                        let keep = Some(&yv[at..][..per]);
                        unpool(plane, &idx[at..][..per], &gv[at..][..per], keep, dye);
                        Ok(())
                    },
                )
            })
        })?;
        // SAFETY: `for_each_chunk` handed every example's `o·plane` values to `unpool`, which
        // zero-fills each plane before its scatter (an error would have returned above).
        unsafe { dy.set_len(total) };
        let up = Upstream {
            g: &dy,
            relu_out: None,
        };
        self.conv.backward(x, w, b, up)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::test_util::randn;
    use candle_core::Var;
    use rand::{rngs::StdRng, SeedableRng};

    fn exact(a: &Tensor, b: &Tensor, what: &str) -> Result<()> {
        assert_eq!(a.dims(), b.dims(), "{what}: shapes");
        let (a, b) = (a.flatten_all()?.to_vec1::<f32>()?, b.flatten_all()?);
        assert_eq!(a, b.to_vec1::<f32>()?, "{what}");
        Ok(())
    }

    /// The fused op against the two ops in turn: the same output and the same gradients, bit
    /// for bit, for odd sizes (dropped edges), windows of 2 and 3, paddings 0 to 2, with and
    /// without the input quantizer, when all arguments track a gradient and when only the
    /// input does (an attack's frozen weights); stride 2 takes the unfused path.
    #[test]
    fn fused_equals_conv_then_pool() -> Result<()> {
        let mut rng = StdRng::seed_from_u64(9);
        // (n, c, h, w, o, kernel, stride, padding, pool, quantizer)
        let cases = [
            (3, 1, 12, 12, 16, 3, 1, 1, 2, None),
            (2, 4, 9, 11, 6, 3, 1, 1, 2, Some((4, 1.0))),
            (2, 3, 13, 10, 5, 5, 1, 0, 2, Some((2, 0.7))),
            (2, 2, 11, 11, 7, 3, 1, 2, 3, None),
            (2, 3, 10, 10, 4, 3, 2, 1, 2, Some((3, 1.2))),
        ];
        for (n, c, h, wd, o, kk, s, p, k, q) in cases {
            let act = q.map(|(bits, clip)| ActGrid { bits, clip });
            let what = format!("n{n} c{c} {h}x{wd} o{o} k{kk} s{s} p{p} pool{k} {act:?}");
            let x = Var::from_tensor(&randn(&mut rng, &[n, c, h, wd])?)?;
            let w = Var::from_tensor(&randn(&mut rng, &[o, c, kk, kk])?)?;
            let b = Var::from_tensor(&randn(&mut rng, &[o])?)?;
            for frozen in [false, true] {
                let (wt, bt) = match frozen {
                    true => (w.as_tensor().detach(), b.as_tensor().detach()),
                    false => (w.as_tensor().clone(), b.as_tensor().clone()),
                };
                let got = conv2d_relu_pool(&x, act, &wt, &bt, (s, p), k)?;
                let want = max_pool2d(&conv2d_quantized(&x, act, &wt, Some(&bt), s, p, true)?, k)?;
                exact(&got, &want, &format!("{what}: y"))?;
                let r = randn(&mut rng, want.dims())?;
                let gg = (&got * &r)?.sum_all()?.backward()?;
                let gw = (&want * &r)?.sum_all()?.backward()?;
                for (name, t) in [("dx", x.as_tensor()), ("dw", &wt), ("db", &bt)] {
                    match (gg.get(t), gw.get(t)) {
                        (Some(a), Some(e)) => exact(a, e, &format!("{what} {name}"))?,
                        (None, None) => assert!(frozen && name != "dx", "{what}: no {name}"),
                        _ => panic!("{what} {name}: one side has a gradient, the other none"),
                    }
                }
            }
        }
        Ok(())
    }

    /// No output channels: an empty pooled output and an input gradient of zeros, without a
    /// panic (the fused op's per-example pieces would be empty).
    #[test]
    fn no_output_channels_pool_to_an_empty_output() -> Result<()> {
        let mut rng = StdRng::seed_from_u64(14);
        let x = Var::from_tensor(&randn(&mut rng, &[2, 3, 8, 8])?)?;
        let w = Tensor::zeros((0, 3, 3, 3), DType::F32, x.device())?;
        let b = Tensor::zeros(0, DType::F32, x.device())?;
        let y = conv2d_relu_pool(&x, None, &w, &b, (1, 1), 2)?;
        assert_eq!(y.dims(), [2, 0, 4, 4]);
        let grads = y.sum_all()?.backward()?;
        let Some(dx) = grads.get(&x) else {
            panic!("no input gradient");
        };
        let dx = dx.flatten_all()?.to_vec1::<f32>()?;
        assert!(dx.len() == 2 * 3 * 64 && dx.iter().all(|&v| v == 0.0));
        Ok(())
    }
}
