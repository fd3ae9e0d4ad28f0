//! 2-D convolution as a candle custom op: `y = relu?(conv(x, w) + b)`, x (N,C,H,W), w (O,C,k,k).
//!
//! Two paths compute it, chosen per call: the direct path (`direct/`: stride 1, padding below
//! the kernel size, a CPU with AVX-512 or AVX2 + FMA), and the column path (`im2col_gemm.rs`:
//! im2col + gemm) for every other case. Backward, with `g` the upstream gradient masked by `y > 0` when ReLU
//! is fused:
//! - `db = sum_{n,pixel} g`,
//! - `dw = sum_n` of each example's weight gradient,
//! - `dx_n` = the input gradient of each example,
//!
//! each computed only when that argument tracks a gradient (`Tensor::track_op`): a data batch that
//! is not a `Var` and does not depend on one gets no input gradient, which saves that pass for
//! the first layer during training, while an attack that makes the image a `Var` gets it.
//!
//! A quantized layer's activation quantizer can ride along (`conv2d_quantized`): the input is
//! quantized as it is copied into the convolution's planes, and its straight-through gradient
//! is the input gradient itself, so the layer needs no quantized copy of its input, no pass
//! over it, and no gradient buffer for it in candle's backward.
//!
//! Every sum runs in a fixed order (`WEIGHT_GRAD_CHUNK` says why), so on one machine the result
//! does not depend on the thread count.

use super::direct::kernels::masked_sum;
use super::direct::{Direct, Upstream};
use super::geometry::Geometry;
use super::im2col_gemm::{self, Dims};
use crate::ops::activation::relu_pass;
use crate::ops::parallel::for_each_chunk;
use crate::ops::storage::{contiguous_f32, with_f32};
use crate::quant::ActGrid;
use candle_core::{bail, CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};
use std::borrow::Cow;

/// `relu?(conv2d(x, w) + b)` with square kernels, equal stride and padding on both axes.
///
/// x: (N, C, H, W), w: (O, C, k, k), b: (O), all f32 on the CPU. Output (N, O, OH, OW) with
/// `OH = (H + 2*padding - k) / stride + 1` (floor), as `Tensor::conv2d` computes it.
pub fn conv2d(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    stride: usize,
    padding: usize,
    relu: bool,
) -> Result<Tensor> {
    conv2d_quantized(x, None, w, b, stride, padding, relu)
}

/// `relu?(conv2d(act(x), w) + b)`: `conv2d` with the input fake-quantized on `act`'s grid on the
/// way in (when `act` is given). The gradient reaching `x` is the one reaching `act(x)`, the
/// straight-through estimator of `quant::fake_quant_act`, whose values `act` reproduces.
pub fn conv2d_quantized(
    x: &Tensor,
    act: Option<ActGrid>,
    w: &Tensor,
    b: Option<&Tensor>,
    stride: usize,
    padding: usize,
    relu: bool,
) -> Result<Tensor> {
    for (name, t) in [("x", Some(x)), ("w", Some(w)), ("b", b)] {
        if let Some(t) = t {
            if t.dtype() != DType::F32 || !t.device().is_cpu() {
                bail!("conv2d: {name} must be f32 on the CPU, got {:?}", t.dtype());
            }
        }
    }
    let out_ch = w.dims4()?.0;
    // A missing bias is a constant zero: it tracks no gradient, so bwd returns none for it.
    let b = match b {
        Some(b) => b.contiguous()?,
        None => Tensor::zeros(out_ch, DType::F32, x.device())?,
    };
    let op = Conv2d::new(stride, padding, relu, act);
    x.contiguous()?.apply_op3(&w.contiguous()?, &b, op)
}

/// The op's parameters; shapes come from the tensors.
pub(crate) struct Conv2d {
    stride: usize,
    padding: usize,
    relu: bool,
    act: Option<ActGrid>,
}

impl Conv2d {
    pub(crate) fn new(stride: usize, padding: usize, relu: bool, act: Option<ActGrid>) -> Self {
        Conv2d {
            stride,
            padding,
            relu,
            act,
        }
    }

    pub(crate) fn act(&self) -> Option<ActGrid> {
        self.act
    }

    pub(crate) fn dims(&self, x: &Shape, w: &Shape, b: &Shape) -> Result<Dims> {
        let (n, c, h, wd) = x.dims4()?;
        let (o, wc, kh, kw) = w.dims4()?;
        if wc != c || kh != kw || b.dims1()? != o {
            bail!("conv2d: x {x:?}, w {w:?}, b {b:?} do not fit (w must be (O,C,k,k), b (O))");
        }
        let g = Geometry::new((c, h, wd), kh, self.stride, self.padding)?;
        Ok(Dims { n, o, g })
    }

    /// The column path's input: `x`, or its quantized copy.
    fn column_input<'a>(&self, x: &'a [f32]) -> Cow<'a, [f32]> {
        match self.act {
            None => Cow::Borrowed(x),
            Some(q) => {
                let mut xq = x.to_vec();
                q.quantize_in_place(&mut xq);
                Cow::Owned(xq)
            }
        }
    }
}

impl CustomOp3 for Conv2d {
    fn name(&self) -> &'static str {
        "bitsearch-conv2d"
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
        let y = match Direct::of(&d.g, d.o) {
            Some(direct) => direct.forward(x, self.act, w, b, d.n, self.relu)?,
            None => im2col_gemm::forward(&self.column_input(x), w, b, &d, self.relu)?,
        };
        Ok((CpuStorage::F32(y), Shape::from((d.n, d.o, d.g.oh, d.g.ow))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        with_f32(grad, |gr| {
            with_f32(y, |yv| {
                let up = Upstream {
                    g: gr,
                    relu_out: self.relu.then_some(yv),
                };
                self.backward(x, w, b, up)
            })
        })
    }
}

impl Conv2d {
    /// The gradients of the arguments that track one, from the upstream gradient `up` of the
    /// output (with the fused ReLU's output, or already masked by the caller: `conv_relu_pool`).
    pub(crate) fn backward(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        up: Upstream,
    ) -> Result<Grads3> {
        let d = self.dims(x.shape(), w.shape(), b.shape())?;
        let (dev, direct) = (x.device(), Direct::of(&d.g, d.o));
        // The direct path masks as it copies; the column path wants one masked buffer.
        let masked = match (&direct, up.relu_out) {
            (None, Some(yv)) => Cow::Owned(relu_mask(up.g, yv)),
            _ => Cow::Borrowed(up.g),
        };
        let (want_dx, want_dw, want_db) = (x.track_op(), w.track_op(), b.track_op());
        // The direct path's gradient passes also take each example's bias sums while its
        // gradient is in cache (`sums`, example by channel); elsewhere `bias_grad` reads it.
        let mut sums = (want_db && want_dw && direct.is_some()).then(|| vec![0.0; d.n * d.o]);
        let (dx, dw) = match &direct {
            // One copy of the gradient's planes for both passes when both run and can share.
            Some(dc) if want_dx && want_dw && dc.shares_grad_planes() => {
                let (dx, dw) = with_f32(x, |xv| {
                    with_f32(w, |wv| {
                        let batch = (d.n, WEIGHT_GRAD_CHUNK);
                        dc.both_grads(xv, self.act, wv, up, batch, sums.as_deref_mut())
                    })
                })?;
                (Some(dx), Some(dw))
            }
            Some(dc) => {
                let dw = want_dw
                    .then(|| {
                        with_f32(x, |xv| {
                            let batch = (d.n, WEIGHT_GRAD_CHUNK);
                            dc.weight_grad(xv, self.act, up, batch, sums.as_deref_mut())
                        })
                    })
                    .transpose()?;
                let dx = want_dx
                    .then(|| with_f32(w, |wv| dc.input_grad(wv, up, d.n)))
                    .transpose()?;
                (dx, dw)
            }
            None => {
                let dw = want_dw
                    .then(|| {
                        with_f32(x, |xv| {
                            let xq = self.column_input(xv);
                            im2col_gemm::weight_grad(&xq, &masked, &d, WEIGHT_GRAD_CHUNK)
                        })
                    })
                    .transpose()?;
                let dx = want_dx
                    .then(|| with_f32(w, |wv| im2col_gemm::input_grad(wv, &masked, &d)))
                    .transpose()?;
                (dx, dw)
            }
        };
        let db = match (want_db, sums) {
            (true, Some(sums)) => Some(add_example_sums(&sums, d.o)),
            (true, None) => Some(bias_grad(up, &d)?),
            (false, _) => None,
        };
        let db = db.map(|v| Tensor::from_vec(v, d.o, dev)).transpose()?;
        let dw = dw
            .map(|v| Tensor::from_vec(v, w.shape(), dev))
            .transpose()?;
        let dx = dx
            .map(|v| Tensor::from_vec(v, x.shape(), dev))
            .transpose()?;
        Ok((dx, dw, db))
    }
}

/// The gradients of a three-argument op (`None` for an argument that tracks none).
pub(crate) type Grads3 = (Option<Tensor>, Option<Tensor>, Option<Tensor>);

/// The upstream gradient where the fused ReLU let the value through (`y > 0`), else 0.
fn relu_mask(grad: &[f32], y: &[f32]) -> Vec<f32> {
    grad.iter().zip(y).map(|(&g, &v)| relu_pass(g, v)).collect()
}

/// `db[o] = sum over examples and pixels of the (ReLU-masked) g[n, o, :]`, each plane in
/// `masked_sum`'s fixed order, planes in example order. Channels in parallel: each sum keeps
/// that order at any thread count.
fn bias_grad(up: Upstream, d: &Dims) -> Result<Vec<f32>> {
    let mut db = vec![0.0; d.o];
    let plane = d.g.col_cols();
    for_each_chunk(
        &mut db,
        1,
        || (),
        |_, o, dbo| {
            for n in 0..d.n {
                let at = (n * d.o + o) * plane;
                let mask = up.relu_out.map(|y| &y[at..][..plane]);
                dbo[0] += masked_sum(&up.g[at..][..plane], mask);
            }
            Ok(())
        },
    )?;
    Ok(db)
}

/// `db[o] = Σ_n sums[n, o]` in example order: the same additions as `bias_grad`'s.
fn add_example_sums(sums: &[f32], o: usize) -> Vec<f32> {
    let mut db = vec![0.0; o];
    for example in sums.chunks_exact(o.max(1)) {
        db.iter_mut().zip(example).for_each(|(a, &v)| *a += v);
    }
    db
}

/// Examples per partial sum of the weight gradient. Fixed, not one part per thread, so the
/// order of every floating-point addition (and so the result, bit for bit) is the same at any
/// thread count: "same seed, same episodes" holds on any machine.
const WEIGHT_GRAD_CHUNK: usize = 8;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::test_util::{assert_close, assert_same_op, randn};
    use candle_core::{Device, Var};
    use rand::{rngs::StdRng, SeedableRng};

    /// candle's reference: conv2d + broadcast_add + relu.
    fn reference(
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        s: usize,
        p: usize,
        relu: bool,
    ) -> Result<Tensor> {
        let mut y = x.conv2d(w, p, s, 1, 1)?;
        if let Some(b) = b {
            y = y.broadcast_add(&b.reshape((1, b.dim(0)?, 1, 1))?)?;
        }
        if relu {
            y = y.relu()?;
        }
        Ok(y)
    }

    /// The bias gradient taken inside the direct path's gradient passes gives `bias_grad`'s
    /// separate pass bit for bit: with both gradients (shared planes) and with the weight
    /// gradient alone (an input that tracks none), over more examples than one chunk.
    #[test]
    fn bias_sums_in_the_gradient_passes_equal_the_separate_pass() -> Result<()> {
        let mut rng = StdRng::seed_from_u64(11);
        let (n, c, h, o) = (19, 3, 9, 5);
        let x = Var::from_tensor(&randn(&mut rng, &[n, c, h, h])?)?;
        let w = Var::from_tensor(&randn(&mut rng, &[o, c, 3, 3])?)?;
        let b = Var::from_tensor(&randn(&mut rng, &[o])?)?;
        for x_tracks in [true, false] {
            let xin = match x_tracks {
                true => x.as_tensor().clone(),
                false => x.as_tensor().detach(),
            };
            let y = conv2d(&xin, &w, Some(&b), 1, 1, true)?;
            let r = randn(&mut rng, y.dims())?;
            let grads = (&y * &r)?.sum_all()?.backward()?;
            let Some(db) = grads.get(&b) else {
                panic!("no bias gradient");
            };
            let d = Conv2d::new(1, 1, true, None).dims(xin.shape(), w.shape(), b.shape())?;
            let want = with_f32(&r, |g| {
                with_f32(&y, |yv| {
                    let relu_out = Some(yv);
                    bias_grad(Upstream { g, relu_out }, &d)
                })
            })?;
            let bits = |v: Vec<f32>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(db.to_vec1()?), bits(want), "input tracks: {x_tracks}");
        }
        Ok(())
    }

    #[test]
    fn conv2d_values_and_gradients_match_candle() -> Result<()> {
        let mut rng = StdRng::seed_from_u64(7);
        // (N, C, H, W, O, k, stride, padding, bias, relu)
        let cases = [
            (2, 1, 8, 8, 3, 3, 1, 0, true, true),
            (3, 2, 9, 7, 4, 3, 2, 1, false, true),
            (2, 3, 10, 10, 5, 5, 1, 1, true, false),
            (4, 6, 12, 12, 16, 5, 1, 0, true, true),
            (2, 3, 11, 11, 4, 3, 2, 0, false, false),
            (3, 1, 28, 28, 6, 5, 1, 0, true, true),
            // The direct path's tiles: 3, 32 and 40 output channels (whole and partial row
            // tiles), 16 and 33 input channels, padding 2 of a 3x3 kernel.
            (2, 16, 14, 14, 32, 3, 1, 1, true, true),
            (2, 33, 7, 9, 3, 3, 1, 2, true, false),
            (3, 4, 10, 10, 40, 3, 1, 1, false, true),
            // Padding as large as the kernel: the column-matrix path.
            (2, 2, 6, 6, 3, 2, 1, 2, true, true),
        ];
        for (n, c, h, wd, o, k, s, p, bias, relu) in cases {
            let what = format!("N{n} C{c} {h}x{wd} O{o} k{k} s{s} p{p} bias {bias} relu {relu}");
            let x = Var::from_tensor(&randn(&mut rng, &[n, c, h, wd])?)?;
            let w = Var::from_tensor(&randn(&mut rng, &[o, c, k, k])?)?;
            let b = Var::from_tensor(&randn(&mut rng, &[o])?)?;
            let b_opt = bias.then_some(b.as_tensor());
            let want = reference(&x, &w, b_opt, s, p, relu)?;
            let got = conv2d(&x, &w, b_opt, s, p, relu)?;
            assert_same_op(&mut rng, &got, &want, [&x, &w, &b], bias, &what)?;
        }
        Ok(())
    }

    /// The fused input quantizer gives exactly what `fake_quant_act` followed by the plain op
    /// gives: output and all three gradients, bit for bit, on the direct path (stride 1) and the
    /// column path (stride 2), including a clip of zero (every input quantizes to 0).
    #[test]
    fn fused_input_quantizer_is_fake_quant_act_then_conv() -> Result<()> {
        use crate::quant::{fake_quant_act, Format};
        let mut rng = StdRng::seed_from_u64(5);
        let exact = |a: &Tensor, b: &Tensor, what: &str| -> Result<()> {
            let (a, b) = (a.flatten_all()?.to_vec1::<f32>()?, b.flatten_all()?);
            assert_eq!(a, b.to_vec1::<f32>()?, "{what}");
            Ok(())
        };
        for (bits, clip, stride) in [(2, 1.5, 1), (4, 0.8, 1), (3, 1.0, 2), (2, 0.0, 1)] {
            let what = format!("{bits} bits, clip {clip}, stride {stride}");
            let x = Var::from_tensor(&randn(&mut rng, &[3, 4, 9, 9])?)?;
            let w = Var::from_tensor(&randn(&mut rng, &[5, 4, 3, 3])?)?;
            let b = Var::from_tensor(&randn(&mut rng, &[5])?)?;
            let grid = ActGrid { bits, clip };
            let got = conv2d_quantized(&x, Some(grid), &w, Some(&b), stride, 1, true)?;
            let xq = fake_quant_act(&x, Format::new(bits).expect("1..=8"), clip)?;
            let want = conv2d(&xq, &w, Some(&b), stride, 1, true)?;
            exact(&got, &want, &format!("{what}: y"))?;
            let r = randn(&mut rng, want.dims())?;
            let gg = (&got * &r)?.sum_all()?.backward()?;
            let gw = (&want * &r)?.sum_all()?.backward()?;
            for (name, t) in [("dx", &x), ("dw", &w), ("db", &b)] {
                let (a, e) = (gg.get(t).expect("ours"), gw.get(t).expect("reference"));
                exact(a, e, &format!("{what}: {name}"))?;
            }
        }
        Ok(())
    }

    /// No output channels: an empty output, an input gradient of zeros, and empty weight and
    /// bias gradients (the weight gradient's length is 0), for a "same" convolution (where
    /// both gradients would share planes on the direct path) and a stride-2 one.
    #[test]
    fn no_output_channels_give_zero_input_gradients() -> Result<()> {
        let mut rng = StdRng::seed_from_u64(13);
        for (s, p) in [(1, 1), (2, 0)] {
            let x = Var::from_tensor(&randn(&mut rng, &[3, 2, 6, 6])?)?;
            let w = Var::from_tensor(&Tensor::zeros((0, 2, 3, 3), DType::F32, &Device::Cpu)?)?;
            let b = Var::from_tensor(&Tensor::zeros(0, DType::F32, &Device::Cpu)?)?;
            let y = conv2d(&x, &w, Some(&b), s, p, true)?;
            assert_eq!(y.dims()[..2], [3, 0], "stride {s}");
            let grads = y.sum_all()?.backward()?;
            let (Some(dx), Some(dw), Some(db)) = (grads.get(&x), grads.get(&w), grads.get(&b))
            else {
                panic!("stride {s}: a gradient is missing");
            };
            assert_eq!((dw.dims(), db.dims()), (&[0, 2, 3, 3][..], &[0][..]));
            assert_eq!(dx.dims(), [3, 2, 6, 6]);
            let dx = dx.flatten_all()?.to_vec1::<f32>()?;
            assert!(dx.iter().all(|&v| v == 0.0), "stride {s}: dx {dx:?}");
        }
        Ok(())
    }

    #[test]
    fn input_gradient_only_when_input_tracks_one() -> Result<()> {
        let mut rng = StdRng::seed_from_u64(3);
        let data = randn(&mut rng, &[2, 2, 7, 7])?;
        let w = Var::from_tensor(&randn(&mut rng, &[3, 2, 3, 3])?)?;
        // A plain tensor, and one computed from it by ops on non-variables: no gradient for
        // either, but the weight still gets one.
        let scaled = (&data * 2.0)?;
        for x in [&data, &scaled] {
            let grads = conv2d(x, &w, None, 1, 1, true)?.sum_all()?.backward()?;
            assert!(
                grads.get(x).is_none(),
                "a non-variable input got a gradient"
            );
            assert!(grads.get(&w).is_some());
        }
        // The same data as a Var (what an attack does) gets its gradient.
        let xv = Var::from_tensor(&data)?;
        let grads = conv2d(&xv, &w, None, 1, 1, true)?.sum_all()?.backward()?;
        assert!(grads.get(&xv).is_some());
        // A frozen weight (plain tensor) gets none while the input does.
        let wt = w.as_tensor().detach();
        let grads = conv2d(&xv, &wt, None, 1, 1, false)?.sum_all()?.backward()?;
        assert!(grads.get(&wt).is_none() && grads.get(&xv).is_some());
        Ok(())
    }

    /// Guards the `as_slice` pitfall: a narrowed tensor shares its parent's buffer at an offset.
    #[test]
    fn conv2d_reads_views_at_an_offset_and_strided() -> Result<()> {
        let mut rng = StdRng::seed_from_u64(11);
        let big = randn(&mut rng, &[4, 2, 6, 6])?;
        let w = randn(&mut rng, &[3, 2, 3, 3])?;
        let b = randn(&mut rng, &[3])?;
        for x in [big.narrow(0, 1, 2)?, big.transpose(2, 3)?] {
            let want = reference(&x, &w, Some(&b), 1, 0, false)?;
            assert_close(&conv2d(&x, &w, Some(&b), 1, 0, false)?, &want, 1e-5, "view")?;
        }
        Ok(())
    }

    #[test]
    fn conv2d_rejects_mismatched_shapes() -> Result<()> {
        let x = Tensor::zeros((1, 2, 5, 5), DType::F32, &Device::Cpu)?;
        let w = Tensor::zeros((3, 1, 3, 3), DType::F32, &Device::Cpu)?;
        assert!(conv2d(&x, &w, None, 1, 0, false).is_err());
        let w = Tensor::zeros((3, 2, 7, 7), DType::F32, &Device::Cpu)?;
        assert!(conv2d(&x, &w, None, 1, 0, false).is_err());
        Ok(())
    }
}
