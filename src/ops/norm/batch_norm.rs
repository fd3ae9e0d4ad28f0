//! Batch normalization on batch statistics (FP32 training) as one candle custom op:
//! `y = γ·(x − mean)/√(var + ε) + β` per channel of an (N, C, H, W) tensor, with its backward.
//!
//! Why: written in candle ops, the means, the broadcasts and above all their backward (a
//! `sum_keepdim` over N, H and W for every broadcast) make a temporary and a pass per step.
//! Here each channel is two passes forward and two backward, the channels in parallel, each
//! channel's sums in a fixed order (so any thread count gives the same bits).

use crate::ops::parallel::for_each_piece;
use crate::ops::storage::{contiguous_f32, with_f32};
use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use std::sync::{Arc, Mutex};

/// `batch_norm_train(x, γ, β, ε)` and the batch's per-channel mean and biased variance (for
/// the running statistics).
pub fn batch_norm_train(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
) -> Result<(Tensor, Vec<f32>, Vec<f32>)> {
    let stats = Arc::new(Mutex::new(Stats::default()));
    let op = BatchNormOp {
        eps,
        stats: stats.clone(),
    };
    let y = x
        .contiguous()?
        .apply_op3(&gamma.contiguous()?, &beta.contiguous()?, op)?;
    let stats = stats.lock().unwrap_or_else(|e| e.into_inner());
    Ok((y, stats.mean.clone(), stats.var.clone()))
}

/// Per channel: the batch's mean, biased variance, and 1/√(var + ε).
#[derive(Default)]
struct Stats {
    mean: Vec<f32>,
    var: Vec<f32>,
    inv: Vec<f32>,
}

struct BatchNormOp {
    eps: f64,
    /// Kept by the forward for the backward, and shared with the caller for the running
    /// statistics.
    stats: Arc<Mutex<Stats>>,
}

/// Channel `ch`'s mean and biased variance over its N planes of `hw` values, summed in f64
/// plane by plane.
fn channel_stats(x: &[f32], (n, c, hw): (usize, usize, usize), ch: usize) -> (f32, f32) {
    let planes = || (0..n).map(move |i| &x[(i * c + ch) * hw..][..hw]);
    let count = (n * hw) as f64;
    let mean = planes().flatten().map(|&v| f64::from(v)).sum::<f64>() / count;
    let var = planes()
        .flatten()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / count;
    (mean as f32, var as f32)
}

impl CustomOp3 for BatchNormOp {
    fn name(&self) -> &'static str {
        "bitsearch-batch-norm"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = xl.shape().dims4()?;
        let (x, gamma, beta) = (
            contiguous_f32(xs, xl)?,
            contiguous_f32(gs, gl)?,
            contiguous_f32(bs, bl)?,
        );
        if gamma.len() != c || beta.len() != c {
            bail!(
                "batch_norm_train: γ and β need {c} values, got {} and {}",
                gamma.len(),
                beta.len()
            );
        }
        let hw = h * w;
        let mut per = vec![(0.0, 0.0); c];
        for_each_piece(
            per.iter_mut().collect(),
            || (),
            |_, ch, out| {
                *out = channel_stats(x, (n, c, hw), ch);
                Ok(())
            },
        )?;
        let inv: Vec<f32> = per
            .iter()
            .map(|&(_, var)| (1.0 / (f64::from(var) + self.eps).sqrt()) as f32)
            .collect();
        let mut y = vec![0.0f32; x.len()];
        // One piece per (example, channel) plane.
        for_each_piece(
            y.chunks_mut(hw.max(1)).collect(),
            || (),
            |_, p, out| {
                let ch = p % c;
                let (mean, inv) = (per[ch].0, inv[ch]);
                let (scale, shift) = (gamma[ch] * inv, beta[ch] - gamma[ch] * inv * mean);
                for (o, &v) in out.iter_mut().zip(&x[p * hw..][..hw]) {
                    *o = v * scale + shift;
                }
                Ok(())
            },
        )?;
        let (mean, var) = per.into_iter().unzip();
        *self.stats.lock().unwrap_or_else(|e| e.into_inner()) = Stats { mean, var, inv };
        Ok((CpuStorage::F32(y), Shape::from((n, c, h, w))))
    }

    /// With x̂ = (x − mean)·inv and m = N·H·W values per channel: dβ = Σ dy, dγ = Σ dy·x̂,
    /// dx = γ·inv·(dy − dβ/m − x̂·dγ/m).
    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n, c, h, w) = x.dims4()?;
        let hw = h * w;
        let (mean, inv) = {
            let s = self.stats.lock().unwrap_or_else(|e| e.into_inner());
            (s.mean.clone(), s.inv.clone())
        };
        if mean.len() != c {
            bail!("batch_norm_train: backward without the forward's statistics");
        }
        let m = (n * hw) as f64;
        let (dgamma, dbeta, dx) = with_f32(x, |xv| {
            with_f32(grad, |gv| {
                with_f32(gamma, |gam| {
                    let mut sums = vec![(0.0f32, 0.0f32); c];
                    for_each_piece(
                        sums.iter_mut().collect(),
                        || (),
                        |_, ch, s| {
                            let (mut db, mut dg) = (0.0f64, 0.0f64);
                            for i in 0..n {
                                let at = (i * c + ch) * hw;
                                for (&g, &v) in gv[at..][..hw].iter().zip(&xv[at..][..hw]) {
                                    db += f64::from(g);
                                    dg += f64::from(g) * f64::from((v - mean[ch]) * inv[ch]);
                                }
                            }
                            *s = (dg as f32, db as f32);
                            Ok(())
                        },
                    )?;
                    let mut dx = vec![0.0f32; xv.len()];
                    for_each_piece(
                        dx.chunks_mut(hw.max(1)).collect(),
                        || (),
                        |_, p, out| {
                            let ch = p % c;
                            let (dg, db) = sums[ch];
                            let k = gam[ch] * inv[ch];
                            let (db_m, dg_m) =
                                ((f64::from(db) / m) as f32, (f64::from(dg) / m) as f32);
                            let src = xv[p * hw..][..hw].iter().zip(&gv[p * hw..][..hw]);
                            for (o, (&v, &g)) in out.iter_mut().zip(src) {
                                let xhat = (v - mean[ch]) * inv[ch];
                                *o = k * (g - db_m - xhat * dg_m);
                            }
                            Ok(())
                        },
                    )?;
                    let (dg, db): (Vec<f32>, Vec<f32>) = sums.into_iter().unzip();
                    Ok((dg, db, dx))
                })
            })
        })?;
        let dev = x.device();
        Ok((
            Some(Tensor::from_vec(dx, (n, c, h, w), dev)?),
            Some(Tensor::from_vec(dgamma, c, dev)?),
            Some(Tensor::from_vec(dbeta, c, dev)?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::test_util::max_abs_diff;
    use candle_core::{Device, Var};

    /// candle's ops: the definition.
    fn reference(x: &Tensor, g: &Tensor, b: &Tensor) -> Result<Tensor> {
        let c = g.dim(0)?;
        let mean = x.mean_keepdim(0)?.mean_keepdim(2)?.mean_keepdim(3)?;
        let centered = x.broadcast_sub(&mean)?;
        let var = centered
            .sqr()?
            .mean_keepdim(0)?
            .mean_keepdim(2)?
            .mean_keepdim(3)?;
        centered
            .broadcast_div(&var.affine(1.0, 1e-5)?.sqrt()?)?
            .broadcast_mul(&g.reshape((1, c, 1, 1))?)?
            .broadcast_add(&b.reshape((1, c, 1, 1))?)
    }

    /// Output, statistics and all three gradients against candle's ops on a random batch.
    #[test]
    fn matches_candle_ops_and_their_gradients() -> Result<()> {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0.5f32, 2.0, (3, 4, 5, 6), &dev)?)?;
        let g = Var::from_tensor(&Tensor::new(&[1.0f32, 0.5, -2.0, 1.5], &dev)?)?;
        let b = Var::from_tensor(&Tensor::new(&[0.0f32, 0.1, -0.3, 2.0], &dev)?)?;
        let r = Tensor::randn(0f32, 1.0, (3, 4, 5, 6), &dev)?;
        let (got, mean, var) = batch_norm_train(x.as_tensor(), g.as_tensor(), b.as_tensor(), 1e-5)?;
        let want = reference(x.as_tensor(), g.as_tensor(), b.as_tensor())?;
        assert!(max_abs_diff(&got, &want)? < 1e-5, "y");
        let m = x
            .as_tensor()
            .mean_keepdim(0)?
            .mean_keepdim(2)?
            .mean_keepdim(3)?;
        let m = m.flatten_all()?.to_vec1::<f32>()?;
        assert!(
            mean.iter().zip(&m).all(|(a, b)| (a - b).abs() < 1e-5),
            "{mean:?} {m:?}"
        );
        assert!(var.iter().all(|&v| (v - 4.0).abs() < 2.0), "{var:?}");
        let gg = (&got * &r)?.sum_all()?.backward()?;
        let gw = (&want * &r)?.sum_all()?.backward()?;
        for (name, t) in [("dx", &x), ("dγ", &g), ("dβ", &b)] {
            let (a, e) = (gg.get(t).unwrap(), gw.get(t).unwrap());
            let scale = e.abs()?.max_all()?.to_scalar::<f32>()?.max(1.0);
            let d = max_abs_diff(a, e)?;
            assert!(d < 1e-4 * scale, "{name}: {d}");
        }
        Ok(())
    }
}
