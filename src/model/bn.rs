//! Batch normalization after a conv: its parameters and running statistics, the batch-statistic
//! pass of FP32 training, and the fold into the conv that every other pass uses.
//!
//! Folded (Jacob et al. 2018, "fold with frozen statistics"): with `s = γ / √(var + ε)` per
//! output channel, `conv(x, W)·s + (b − mean)·s + β = conv(x, W·s) + (b − mean)·s + β`, so the
//! device runs one conv and the policy quantizes `W·s`, the weight it really holds. The fold is
//! written in candle ops, so a fine-tune's gradients reach `W`, `b`, `γ` and `β`.

use std::sync::Mutex;

use candle_core::{Device, Result, Tensor, Var};

/// PyTorch's defaults, so imported and exported models agree.
pub(crate) const EPS: f64 = 1e-5;
const MOMENTUM: f32 = 0.1;

#[derive(Debug)]
pub(crate) struct BatchNorm {
    pub gamma: Var,
    pub beta: Var,
    /// Running mean and (unbiased) variance, updated by every training pass.
    pub stats: Mutex<(Vec<f32>, Vec<f32>)>,
}

impl BatchNorm {
    /// γ = 1, β = 0, mean 0, variance 1: the identity until trained.
    pub fn new(channels: usize) -> Result<BatchNorm> {
        Ok(BatchNorm {
            gamma: Var::ones(channels, candle_core::DType::F32, &Device::Cpu)?,
            beta: Var::zeros(channels, candle_core::DType::F32, &Device::Cpu)?,
            stats: Mutex::new((vec![0.0; channels], vec![1.0; channels])),
        })
    }

    pub fn stats(&self) -> (Vec<f32>, Vec<f32>) {
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_stats(&self, mean: Vec<f32>, var: Vec<f32>) {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner()) = (mean, var);
    }

    /// An independent copy.
    pub fn deep_clone(&self) -> Result<BatchNorm> {
        let (mean, var) = self.stats();
        Ok(BatchNorm {
            gamma: Var::from_tensor(&self.gamma.as_tensor().copy()?)?,
            beta: Var::from_tensor(&self.beta.as_tensor().copy()?)?,
            stats: Mutex::new((mean, var)),
        })
    }

    fn params(&self, frozen: bool) -> (Tensor, Tensor) {
        let (g, b) = (self.gamma.as_tensor(), self.beta.as_tensor());
        match frozen {
            true => (g.detach(), b.detach()),
            false => (g.clone(), b.clone()),
        }
    }

    /// The conv's weight (O, C/g, k, k) and bias (O) with this BN folded in (running stats).
    pub fn fold(&self, w: &Tensor, b: &Tensor, frozen: bool) -> Result<(Tensor, Tensor)> {
        let (gamma, beta) = self.params(frozen);
        let (mean, var) = self.stats();
        let o = mean.len();
        let std = Tensor::from_vec(var, o, &Device::Cpu)?
            .affine(1.0, EPS)?
            .sqrt()?;
        let scale = gamma.div(&std)?;
        let mean = Tensor::from_vec(mean, o, &Device::Cpu)?;
        let w = w.broadcast_mul(&scale.reshape((o, 1, 1, 1))?)?;
        let b = (b.sub(&mean)?.mul(&scale)? + beta)?;
        Ok((w, b))
    }

    /// `y` normalized by the running statistics: what `fold` computes, unfolded.
    pub fn eval(&self, y: &Tensor, frozen: bool) -> Result<Tensor> {
        let (gamma, beta) = self.params(frozen);
        let (mean, var) = self.stats();
        let c = mean.len();
        let per = |v: Vec<f32>| Tensor::from_vec(v, (1, c, 1, 1), &Device::Cpu);
        y.broadcast_sub(&per(mean)?)?
            .broadcast_div(&per(var)?.affine(1.0, EPS)?.sqrt()?)?
            .broadcast_mul(&gamma.reshape((1, c, 1, 1))?)?
            .broadcast_add(&beta.reshape((1, c, 1, 1))?)
    }

    /// Training: normalize `y` (N, C, H, W) by its own batch statistics, and move the running
    /// ones toward them (PyTorch's rule: biased variance to normalize, unbiased to keep).
    /// `then` (a ReLU, or a residual join) runs in the same op.
    pub fn train_then(&self, y: &Tensor, then: crate::ops::BnThen) -> Result<Tensor> {
        let (gamma, beta) = self.params(false);
        let (out, bm, bv) = crate::ops::batch_norm_train_then(y, &gamma, &beta, EPS, then)?;
        self.update_running(y.dims4()?, &bm, &bv);
        Ok(out)
    }

    /// `train_then` on the output of a convolution of `x` (`ops::conv_bn_train`: one op, the
    /// same numbers), with an activation (none, a ReLU or a ReLU6) after it.
    pub fn train_conv(
        &self,
        x: &Tensor,
        conv: ConvBefore,
        act: crate::ops::Activation,
    ) -> Result<Tensor> {
        let (gamma, beta) = self.params(false);
        let (out, bm, bv) = crate::ops::conv_bn_train(
            x,
            conv.wb,
            (&gamma, &beta),
            conv.kind,
            conv.stride_pad,
            EPS,
            act,
        )?;
        self.update_running(out.dims4()?, &bm, &bv);
        Ok(out)
    }

    /// Moves the running statistics toward a batch's (mean and biased variance over the
    /// `(n, c, h, w)` values normalized), PyTorch's rule.
    fn update_running(&self, (n, c, h, w): (usize, usize, usize, usize), bm: &[f32], bv: &[f32]) {
        let count = (n * h * w) as f32;
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        let unbias = if count > 1.0 {
            count / (count - 1.0)
        } else {
            1.0
        };
        for ch in 0..c {
            stats.0[ch] = (1.0 - MOMENTUM) * stats.0[ch] + MOMENTUM * bm[ch];
            stats.1[ch] = (1.0 - MOMENTUM) * stats.1[ch] + MOMENTUM * bv[ch] * unbias;
        }
    }
}

/// The convolution that `BatchNorm::train_conv` runs first: its weight and bias, kind, stride
/// and padding.
pub(crate) struct ConvBefore<'a> {
    pub wb: (&'a Tensor, &'a Tensor),
    pub kind: crate::ops::ConvKind,
    pub stride_pad: (usize, usize),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::test_util::max_abs_diff;
    use candle_nn::ModuleT;

    /// The folded conv equals the conv followed by BN with its running statistics.
    #[test]
    fn folding_matches_conv_then_batchnorm() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (2, 3, 7, 7), &dev)?;
        let w = Tensor::randn(0f32, 0.5, (4, 3, 3, 3), &dev)?;
        let b = Tensor::randn(0f32, 0.5, 4, &dev)?;
        let bn = BatchNorm::new(4)?;
        bn.gamma
            .set(&Tensor::new(&[0.5f32, 2.0, -1.0, 1.5], &dev)?)?;
        bn.beta
            .set(&Tensor::new(&[0.1f32, -0.2, 0.3, 0.0], &dev)?)?;
        bn.set_stats(vec![0.3, -0.1, 0.2, 1.0], vec![0.5, 2.0, 1.0, 0.1]);
        let conv = x
            .conv2d(&w, 1, 1, 1, 1)?
            .broadcast_add(&b.reshape((1, 4, 1, 1))?)?;
        let reference = candle_nn::BatchNorm::new(
            4,
            Tensor::new(&[0.3f32, -0.1, 0.2, 1.0], &dev)?,
            Tensor::new(&[0.5f32, 2.0, 1.0, 0.1], &dev)?,
            bn.gamma.as_tensor().clone(),
            bn.beta.as_tensor().clone(),
            EPS,
        )?;
        let want = reference.forward_t(&conv, false)?;
        let (wf, bf) = bn.fold(&w, &b, false)?;
        let got = x
            .conv2d(&wf, 1, 1, 1, 1)?
            .broadcast_add(&bf.reshape((1, 4, 1, 1))?)?;
        let scale = want.abs()?.max_all()?.to_scalar::<f32>()?.max(1.0);
        let diff = max_abs_diff(&got, &want)?;
        assert!(diff < 1e-5 * scale, "{diff} against outputs up to {scale}");
        Ok(())
    }

    /// Training normalizes each channel to mean β, std |γ|, and moves the running stats a
    /// tenth of the way to the batch's (the unbiased variance, as PyTorch keeps it).
    #[test]
    fn training_uses_batch_statistics() -> Result<()> {
        let dev = Device::Cpu;
        let y = Tensor::randn(0f32, 1.0, (8, 2, 5, 5), &dev)?.affine(3.0, 2.0)?;
        let bn = BatchNorm::new(2)?;
        let out = bn.train_then(&y, crate::ops::BnThen::Nothing)?;
        let m = out.mean_all()?.to_scalar::<f32>()?;
        let v = out.sqr()?.mean_all()?.to_scalar::<f32>()?;
        assert!(
            m.abs() < 1e-4 && (v - 1.0).abs() < 1e-3,
            "mean {m}, var {v}"
        );
        let per_channel = |t: &Tensor| -> Result<Vec<f32>> {
            t.mean_keepdim(0)?
                .mean_keepdim(2)?
                .mean_keepdim(3)?
                .flatten_all()?
                .to_vec1::<f32>()
        };
        let batch_mean = per_channel(&y)?;
        let centered =
            y.broadcast_sub(&Tensor::from_vec(batch_mean.clone(), (1, 2, 1, 1), &dev)?)?;
        let batch_var = per_channel(&centered.sqr()?)?;
        let (mean, var) = bn.stats();
        for ch in 0..2 {
            assert!((mean[ch] - 0.1 * batch_mean[ch]).abs() < 1e-5, "{mean:?}");
            let unbiased = batch_var[ch] * 200.0 / 199.0;
            assert!((var[ch] - (0.9 + 0.1 * unbiased)).abs() < 1e-4, "{var:?}");
        }
        Ok(())
    }
}
