//! AdamW in one pass per parameter: candle's `AdamW` (candle-nn 0.11) with the same
//! floating-point operations in the same order, so it gives the same bits, without its dozen
//! tensor ops per parameter per step (each a new buffer and a pass; two of its elementwise
//! kernels run on one core).

use candle_core::{Result, Tensor, Var};
use candle_nn::{Optimizer, ParamsAdamW};

/// One parameter with its first and second moments.
struct Slot {
    var: Var,
    m: Vec<f32>,
    v: Vec<f32>,
}

pub struct FusedAdamW {
    slots: Vec<Slot>,
    params: ParamsAdamW,
    step_t: i32,
}

impl Optimizer for FusedAdamW {
    type Config = ParamsAdamW;

    fn new(vars: Vec<Var>, params: ParamsAdamW) -> Result<Self> {
        let slots = (vars.into_iter())
            .filter(|v| v.dtype().is_float())
            .map(|var| {
                let n = var.elem_count();
                Slot {
                    var,
                    m: vec![0.0; n],
                    v: vec![0.0; n],
                }
            })
            .collect();
        Ok(FusedAdamW {
            slots,
            params,
            step_t: 0,
        })
    }

    fn learning_rate(&self) -> f64 {
        self.params.lr
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.params.lr = lr
    }

    fn step(&mut self, grads: &candle_core::backprop::GradStore) -> Result<()> {
        self.step_t += 1;
        let p = &self.params;
        let c = Coefficients {
            beta1: p.beta1 as f32,
            one_minus_beta1: (1.0 - p.beta1) as f32,
            beta2: p.beta2 as f32,
            one_minus_beta2: (1.0 - p.beta2) as f32,
            scale_m: (1.0 / (1.0 - p.beta1.powi(self.step_t))) as f32,
            scale_v: (1.0 / (1.0 - p.beta2.powi(self.step_t))) as f32,
            decay: (1.0 - p.lr * p.weight_decay) as f32,
            eps: p.eps as f32,
            lr: p.lr as f32,
        };
        for slot in &mut self.slots {
            let Some(g) = grads.get(&slot.var) else {
                continue;
            };
            let g = g.flatten_all()?.to_vec1::<f32>()?;
            let mut theta = slot.var.as_tensor().flatten_all()?.to_vec1::<f32>()?;
            for (((t, m), v), &g) in theta.iter_mut().zip(&mut slot.m).zip(&mut slot.v).zip(&g) {
                c.update(t, m, v, g);
            }
            let next = Tensor::from_vec(theta, slot.var.shape(), slot.var.device())?;
            slot.var.set(&next)?;
        }
        Ok(())
    }
}

/// A step's constants, each rounded to f32 as candle's scalar ops round them.
struct Coefficients {
    beta1: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    scale_m: f32,
    scale_v: f32,
    decay: f32,
    eps: f32,
    lr: f32,
}

impl Coefficients {
    /// candle's step for one value: its `tensor * s` is `x * s + 0.0` and `tensor + s` is
    /// `x * 1.0 + s` (its affine op), kept literally so that signed zeros round alike.
    #[inline]
    #[allow(clippy::identity_op)]
    fn update(&self, theta: &mut f32, m: &mut f32, v: &mut f32, g: f32) {
        let affine = |x: f32, mul: f32, add: f32| x * mul + add;
        let next_m = affine(*m, self.beta1, 0.0) + affine(g, self.one_minus_beta1, 0.0);
        let next_v = affine(*v, self.beta2, 0.0) + affine(g * g, self.one_minus_beta2, 0.0);
        let m_hat = affine(next_m, self.scale_m, 0.0);
        let v_hat = affine(next_v, self.scale_v, 0.0);
        let decayed = affine(*theta, self.decay, 0.0);
        let adjusted = m_hat / affine(v_hat.sqrt(), 1.0, self.eps);
        *theta = decayed - affine(adjusted, self.lr, 0.0);
        (*m, *v) = (next_m, next_v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::AdamW;

    /// Ten steps of both optimizers on the same parameters and gradients (with zeros, signed
    /// zeros and a parameter without a gradient) leave the same bits.
    #[test]
    fn same_bits_as_candles_adamw() -> Result<()> {
        let dev = Device::Cpu;
        let a = Tensor::randn(0f32, 1.0, (7, 5), &dev)?;
        let b = Tensor::new(&[0.0f32, -0.0, 1e-30, -3.0], &dev)?;
        let ours_vars = vec![
            Var::from_tensor(&a)?,
            Var::from_tensor(&b)?,
            Var::zeros(3, DType::F32, &dev)?,
        ];
        let theirs_vars: Vec<Var> = (ours_vars.iter())
            .map(|v| Var::from_tensor(&v.as_tensor().copy()?))
            .collect::<Result<_>>()?;
        let params = ParamsAdamW {
            lr: 3e-3,
            weight_decay: 1e-2,
            ..ParamsAdamW::default()
        };
        let mut ours = FusedAdamW::new(ours_vars.clone(), params.clone())?;
        let mut theirs = AdamW::new(theirs_vars.clone(), params)?;
        let bits = |vs: &[Var]| -> Result<Vec<u32>> {
            let mut out = Vec::new();
            for v in vs {
                out.extend(
                    v.flatten_all()?
                        .to_vec1::<f32>()?
                        .iter()
                        .map(|x| x.to_bits()),
                );
            }
            Ok(out)
        };
        for step in 0..10 {
            // The same loss on both copies: gradients differ per step through the parameters;
            // the third parameter takes no part, so it has no gradient.
            let loss = |vs: &[Var]| -> Result<Tensor> {
                let a = (vs[0].as_tensor().sqr()? * (step as f64 + 1.0))?.sum_all()?;
                let b = (vs[1].as_tensor() * 2.0)?.sin()?.sum_all()?;
                a + b
            };
            ours.backward_step(&loss(&ours_vars)?)?;
            theirs.backward_step(&loss(&theirs_vars)?)?;
            assert_eq!(bits(&ours_vars)?, bits(&theirs_vars)?, "after step {step}");
        }
        Ok(())
    }
}
