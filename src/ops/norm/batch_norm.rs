//! Batch normalization on batch statistics (FP32 training) as one candle custom op:
//! `y = γ·(x − mean)/√(var + ε) + β` per channel of an (N, C, H, W) tensor, with its backward;
//! optionally followed, inside the op, by a ReLU (`relu(bn(x))`), a ReLU6 (`relu6(bn(x))`) or
//! by a residual block's join (`relu(bn(x) + r)`). `passes.rs` holds the arithmetic.
//!
//! Why one op: written in candle ops, the means, the broadcasts and above all their backward (a
//! `sum_keepdim` over N, H and W for every broadcast) make a temporary and a pass per step. And
//! why the ReLU and the join inside it: as separate ops, the normalized values are a tensor of
//! their own, candle's ReLU backward makes four temporaries of that size (zeros, the mask, the
//! mask as f32, the product), and every gradient edge between the ops gets a zero-filled slot
//! and a sum. Fused, the backward writes the masked gradient once and the residual receives it
//! as its gradient, with the same bits as the separate ops (`passes.rs` says why).

use super::backward::{self, Grads};
use super::passes::{self, Dims, Stats, Then};
use crate::ops::activation::Activation;
use crate::ops::storage::{contiguous_f32, with_f32};
use candle_core::{bail, CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use std::sync::{Arc, Mutex};

/// What follows the normalization inside the op.
#[derive(Clone, Copy, Debug)]
pub enum BnThen<'a> {
    /// `bn(x)`.
    Nothing,
    /// `relu(bn(x))`.
    Relu,
    /// `relu6(bn(x))`, `relu6` being candle's `clamp(0, 6)` (`ops::relu6`).
    Relu6,
    /// `relu(bn(x) + r)`: a residual block's join, `r` shaped like `x`.
    AddRelu(&'a Tensor),
}

/// `batch_norm_train(x, γ, β, ε)` and the batch's per-channel mean and biased variance (for
/// the running statistics).
pub fn batch_norm_train(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
) -> Result<(Tensor, Vec<f32>, Vec<f32>)> {
    batch_norm_train_then(x, gamma, beta, eps, BnThen::Nothing)
}

/// `batch_norm_train`, then `then` inside the same op.
pub fn batch_norm_train_then(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    then: BnThen,
) -> Result<(Tensor, Vec<f32>, Vec<f32>)> {
    let stats = Arc::new(Mutex::new(Stats::default()));
    let x = x.contiguous()?;
    let y = match then {
        BnThen::Nothing | BnThen::Relu | BnThen::Relu6 => {
            let op = BatchNormOp {
                eps,
                act: match then {
                    BnThen::Relu => Activation::Relu,
                    BnThen::Relu6 => Activation::Relu6,
                    _ => Activation::Identity,
                },
                stats: stats.clone(),
            };
            x.apply_op3(&gamma.contiguous()?, &beta.contiguous()?, op)?
        }
        BnThen::AddRelu(r) => {
            if r.dims() != x.dims() {
                bail!(
                    "batch_norm_train: the residual's shape {:?} is not the input's {:?}",
                    r.dims(),
                    x.dims()
                );
            }
            // γ and β as one argument, so the op has three: x, [γ; β], r.
            let gb = Tensor::cat(&[gamma, beta], 0)?;
            let op = BatchNormAddRelu {
                eps,
                stats: stats.clone(),
            };
            x.apply_op3(&gb, &r.contiguous()?, op)?
        }
    };
    let stats = stats.lock().unwrap_or_else(|e| e.into_inner());
    Ok((y, stats.mean.clone(), stats.var.clone()))
}

/// `act(bn(x))` over (x, γ, β).
struct BatchNormOp {
    eps: f64,
    act: Activation,
    /// Kept by the forward for the backward, and shared with the caller for the running
    /// statistics.
    stats: Arc<Mutex<Stats>>,
}

/// `relu(bn(x) + r)` over (x, [γ; β], r).
struct BatchNormAddRelu {
    eps: f64,
    /// As `BatchNormOp::stats`.
    stats: Arc<Mutex<Stats>>,
}

/// The forward of both ops: statistics into `stats`, then the normalized (and joined) values.
fn forward(
    x: (&[f32], &Layout),
    gamma: &[f32],
    beta: &[f32],
    eps: f64,
    then: Then,
    stats: &Mutex<Stats>,
) -> Result<(CpuStorage, Shape)> {
    let (y, s) = bn_forward(x, gamma, beta, eps, then)?;
    *stats.lock().unwrap_or_else(|e| e.into_inner()) = s;
    Ok(y)
}

/// The batch's statistics, then the normalized (and joined) values: the forward of every op
/// that normalizes on batch statistics (these and `conv_bn`).
pub(super) fn bn_forward(
    (xv, xl): (&[f32], &Layout),
    gamma: &[f32],
    beta: &[f32],
    eps: f64,
    then: Then,
) -> Result<((CpuStorage, Shape), Stats)> {
    let (n, c, h, w) = xl.shape().dims4()?;
    if gamma.len() != c || beta.len() != c {
        bail!(
            "batch_norm_train: γ and β need {c} values, got {} and {}",
            gamma.len(),
            beta.len()
        );
    }
    if then.residual.is_some_and(|r| r.len() != xv.len()) {
        bail!("batch_norm_train: a residual of another size than the input");
    }
    let d = Dims { n, c, hw: h * w };
    let s = passes::stats(xv, d, gamma, beta, eps)?;
    let y = passes::normalize(xv, d, &s, then)?;
    Ok(((CpuStorage::F32(y), Shape::from((n, c, h, w))), s))
}

/// The backward of every op that normalizes on batch statistics (these and `conv_bn`), from
/// the forward's input `x` and statistics.
pub(super) fn bn_backward(
    x: &Tensor,
    gamma: &[f32],
    then: Then,
    grad: &Tensor,
    s: &Stats,
) -> Result<Grads> {
    let (n, c, h, w) = x.dims4()?;
    if s.mean.len() != c || gamma.len() != c {
        bail!("batch_norm_train: backward without the forward's statistics");
    }
    with_f32(x, |xv| {
        with_f32(grad, |gv| {
            if gv.len() != xv.len() {
                bail!(
                    "batch_norm_train: a gradient of {} values for {}",
                    gv.len(),
                    xv.len()
                );
            }
            backward::grads(xv, gv, Dims { n, c, hw: h * w }, s, gamma, then)
        })
    })
}

/// The statistics the forward kept.
fn kept(stats: &Mutex<Stats>) -> std::sync::MutexGuard<'_, Stats> {
    stats.lock().unwrap_or_else(|e| e.into_inner())
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
        let (gamma, beta) = (contiguous_f32(gs, gl)?, contiguous_f32(bs, bl)?);
        let then = Then {
            residual: None,
            act: self.act,
        };
        let x = (contiguous_f32(xs, xl)?, xl);
        forward(x, gamma, beta, self.eps, then, &self.stats)
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (c, dev) = (gamma.dim(0)?, x.device());
        let gr = with_f32(gamma, |gam| {
            let then = Then {
                residual: None,
                act: self.act,
            };
            bn_backward(x, gam, then, grad, &kept(&self.stats))
        })?;
        Ok((
            Some(Tensor::from_vec(gr.dx, x.shape(), dev)?),
            Some(Tensor::from_vec(gr.dgamma, c, dev)?),
            Some(Tensor::from_vec(gr.dbeta, c, dev)?),
        ))
    }
}

impl CustomOp3 for BatchNormAddRelu {
    fn name(&self) -> &'static str {
        "bitsearch-batch-norm-add-relu"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ps: &CpuStorage,
        pl: &Layout,
        rs: &CpuStorage,
        rl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let gb = contiguous_f32(ps, pl)?;
        let (gamma, beta) = gb.split_at(gb.len() / 2);
        let then = Then {
            residual: Some(contiguous_f32(rs, rl)?),
            act: Activation::Relu,
        };
        let x = (contiguous_f32(xs, xl)?, xl);
        forward(x, gamma, beta, self.eps, then, &self.stats)
    }

    fn bwd(
        &self,
        x: &Tensor,
        gb: &Tensor,
        r: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dev = x.device();
        let gr = with_f32(gb, |gb| {
            with_f32(r, |rv| {
                let gamma = &gb[..gb.len() / 2];
                let then = Then {
                    residual: Some(rv),
                    act: Activation::Relu,
                };
                bn_backward(x, gamma, then, grad, &kept(&self.stats))
            })
        })?;
        let dgb = [gr.dgamma, gr.dbeta].concat();
        let dr = match (r.track_op(), gr.dz) {
            (true, Some(dz)) => Some(Tensor::from_vec(dz, x.shape(), dev)?),
            _ => None,
        };
        Ok((
            Some(Tensor::from_vec(gr.dx, x.shape(), dev)?),
            Some(Tensor::from_vec(dgb, gb.dims1()?, dev)?),
            dr,
        ))
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
