//! A convolution (plain or depthwise) followed by BatchNorm on batch statistics and the BN's
//! ReLU or ReLU6, as one candle op for FP32 training: `act(bn(conv(x, w) + b))` over
//! (x, w, [b; γ; β]).
//!
//! Why: as two ops, the convolution's output is a tensor of the graph, and candle's backward
//! gives it a gradient slot: an activation-sized zero-fill and a sum per step, for a value
//! only the BatchNorm reads. Fused, the BatchNorm's input gradient goes straight into the
//! convolution's backward. The kernels are the separate ops' own, and the BatchNorm's input
//! gradient is what the slot would have held (`backward.rs` writes `0 + dx`), so the bits
//! are those of the two ops.

use super::batch_norm::{bn_backward, bn_forward};
use super::passes::{Stats, Then};
use crate::ops::activation::Activation;
use crate::ops::conv::{Conv2d, Depthwise};
use crate::ops::storage::{contiguous_f32, with_f32};
use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use std::sync::{Arc, Mutex};

/// Which convolution runs before the BatchNorm.
#[derive(Clone, Copy, Debug)]
pub enum ConvKind {
    /// A plain convolution (groups = 1).
    Plain,
    /// A depthwise convolution (groups = channels, one filter each).
    Depthwise,
}

/// `act(bn(conv(x, w) + b))` on the batch's statistics, and those statistics (mean and biased
/// variance per channel, for the running ones). `act` is `Identity`, `Relu` or `Relu6`.
pub fn conv_bn_train(
    x: &Tensor,
    (w, b): (&Tensor, &Tensor),
    (gamma, beta): (&Tensor, &Tensor),
    kind: ConvKind,
    (stride, padding): (usize, usize),
    eps: f64,
    act: Activation,
) -> Result<(Tensor, Vec<f32>, Vec<f32>)> {
    let conv: Box<dyn CustomOp3 + Send + Sync> = match kind {
        ConvKind::Plain => Box::new(Conv2d::new(stride, padding, false, None)),
        ConvKind::Depthwise => Box::new(Depthwise::new(stride, padding)),
    };
    let saved = Arc::new(Mutex::new(None));
    let op = ConvBn {
        conv,
        eps,
        act,
        saved: saved.clone(),
    };
    let p = Tensor::cat(&[b, gamma, beta], 0)?;
    let y = x.contiguous()?.apply_op3(&w.contiguous()?, &p, op)?;
    let saved = saved.lock().unwrap_or_else(|e| e.into_inner());
    match saved.as_ref() {
        Some(s) => Ok((y, s.stats.mean.clone(), s.stats.var.clone())),
        None => bail!("conv_bn_train: the forward kept no statistics"),
    }
}

/// What the forward keeps for the backward: the convolution's output and its statistics.
struct Saved {
    conv_out: Tensor,
    stats: Stats,
}

/// `act(bn(conv(x, w) + b))` over (x, w, [b; γ; β]).
struct ConvBn {
    /// The convolution's own op (no activation, no quantizer), whose forward and backward run
    /// inside this one.
    conv: Box<dyn CustomOp3 + Send + Sync>,
    eps: f64,
    act: Activation,
    /// Kept by the forward for the backward, and shared with the caller for the running
    /// statistics.
    saved: Arc<Mutex<Option<Saved>>>,
}

impl ConvBn {
    /// `[b; γ; β]` cut into its three channel vectors.
    fn split(p: &[f32]) -> Result<(&[f32], &[f32], &[f32])> {
        if !p.len().is_multiple_of(3) {
            bail!("conv_bn_train: {} values for [b; γ; β]", p.len());
        }
        let o = p.len() / 3;
        Ok((&p[..o], &p[o..2 * o], &p[2 * o..]))
    }
}

impl CustomOp3 for ConvBn {
    fn name(&self) -> &'static str {
        "bitsearch-conv-batch-norm"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        ps: &CpuStorage,
        pl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, gamma, beta) = Self::split(contiguous_f32(ps, pl)?)?;
        let bl = Layout::contiguous(b.len());
        let (conv_out, shape) =
            self.conv
                .cpu_fwd(xs, xl, ws, wl, &CpuStorage::F32(b.to_vec()), &bl)?;
        let cl = Layout::contiguous(shape.clone());
        let then = Then {
            residual: None,
            act: self.act,
        };
        let cv = contiguous_f32(&conv_out, &cl)?;
        let (y, stats) = bn_forward((cv, &cl), gamma, beta, self.eps, then)?;
        let conv_out = match conv_out {
            CpuStorage::F32(v) => Tensor::from_vec(v, shape, &candle_core::Device::Cpu)?,
            _ => bail!("conv_bn_train: the convolution gave no f32 values"),
        };
        *self.saved.lock().unwrap_or_else(|e| e.into_inner()) = Some(Saved { conv_out, stats });
        Ok(y)
    }

    /// The BatchNorm's backward into the convolution's output gradient, then the
    /// convolution's backward (only for the arguments that track a gradient).
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        p: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let saved = self.saved.lock().unwrap_or_else(|e| e.into_inner());
        let Some(Saved { conv_out, stats }) = saved.as_ref() else {
            bail!("conv_bn_train: backward without the forward's values");
        };
        let o = p.dim(0)? / 3;
        let then = Then {
            residual: None,
            act: self.act,
        };
        let gr = with_f32(p, |pv| {
            let (_, gamma, _) = Self::split(pv)?;
            bn_backward(conv_out, gamma, then, grad, stats)
        })?;
        let dev = x.device();
        let dconv = Tensor::from_vec(gr.dx, conv_out.shape(), dev)?;
        let b = p.narrow(0, 0, o)?;
        let (dx, dw, db) = self.conv.bwd(x, w, &b, conv_out, &dconv)?;
        let db = match db {
            Some(db) => db,
            None => Tensor::zeros(o, candle_core::DType::F32, dev)?,
        };
        let dp = Tensor::cat(
            &[
                db,
                Tensor::from_vec(gr.dgamma, o, dev)?,
                Tensor::from_vec(gr.dbeta, o, dev)?,
            ],
            0,
        )?;
        Ok((dx, dw, Some(dp)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::test_util::{randn, value_bits as bits};
    use crate::ops::{batch_norm_train_then, conv2d, depthwise_conv2d, BnThen};
    use candle_core::Var;
    use rand::SeedableRng;

    /// The fused op equals the convolution followed by the BatchNorm op bit for bit: output,
    /// statistics, and the gradients of x, w, b, γ and β, for both convolutions, every
    /// activation, stride 1 and 2.
    #[test]
    fn equals_the_convolution_then_batch_norm_bit_for_bit() -> Result<()> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(21);
        let cases = [
            (ConvKind::Plain, 1, Activation::Relu),
            (ConvKind::Plain, 2, Activation::Identity),
            (ConvKind::Depthwise, 1, Activation::Relu6),
            (ConvKind::Depthwise, 2, Activation::Relu),
        ];
        for (kind, stride, act) in cases {
            let (c, o) = (
                4,
                match kind {
                    ConvKind::Plain => 6,
                    ConvKind::Depthwise => 4,
                },
            );
            let wc = match kind {
                ConvKind::Plain => c,
                ConvKind::Depthwise => 1,
            };
            let x = Var::from_tensor(&randn(&mut rng, &[3, c, 9, 9])?)?;
            let w = Var::from_tensor(&(randn(&mut rng, &[o, wc, 3, 3])? * 0.5)?)?;
            let b = Var::from_tensor(&(randn(&mut rng, &[o])? * 0.3)?)?;
            let g = Var::from_tensor(&(randn(&mut rng, &[o])? + 1.0)?)?;
            let be = Var::from_tensor(&(randn(&mut rng, &[o])? * 0.5)?)?;
            let r = randn(
                &mut rng,
                &[3, o, 9_usize.div_ceil(stride), 9_usize.div_ceil(stride)],
            )?;
            let (y1, m1, v1) = conv_bn_train(
                x.as_tensor(),
                (w.as_tensor(), b.as_tensor()),
                (g.as_tensor(), be.as_tensor()),
                kind,
                (stride, 1),
                1e-5,
                act,
            )?;
            let conv = match kind {
                ConvKind::Plain => conv2d(x.as_tensor(), &w, Some(&b), stride, 1, false)?,
                ConvKind::Depthwise => depthwise_conv2d(
                    x.as_tensor(),
                    None,
                    &w,
                    &b,
                    (stride, 1),
                    Activation::Identity,
                )?,
            };
            let then = match act {
                Activation::Identity => BnThen::Nothing,
                Activation::Relu => BnThen::Relu,
                Activation::Relu6 => BnThen::Relu6,
            };
            let (y0, m0, v0) = batch_norm_train_then(&conv, &g, &be, 1e-5, then)?;
            let what = format!("{kind:?} stride {stride} {act:?}");
            assert_eq!(bits(&y1), bits(&y0), "y {what}");
            assert_eq!((&m1, &v1), (&m0, &v0), "stats {what}");
            let g1 = (&y1 * &r)?.sum_all()?.backward()?;
            let g0 = (&y0 * &r)?.sum_all()?.backward()?;
            for (name, t) in [("x", &x), ("w", &w), ("b", &b), ("γ", &g), ("β", &be)] {
                match (g1.get(t), g0.get(t)) {
                    (Some(a), Some(e)) => assert_eq!(bits(a), bits(e), "d{name} {what}"),
                    _ => panic!("d{name} missing, {what}"),
                }
            }
        }
        Ok(())
    }
}
