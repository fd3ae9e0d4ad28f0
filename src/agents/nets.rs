//! Small MLPs for DDPG's actor and critic (`relu(x W1ᵀ + b1)`, `relu(· W2ᵀ + b2)`, `· W3ᵀ + b3`),
//! seeded initialization, and the soft target update `θ' ← τ θ + (1 − τ) θ'`.

use candle_core::{Device, Tensor, Var};
use rand::rngs::StdRng;
use rand::Rng;

pub struct Mlp {
    layers: Vec<(Var, Var)>,
}

impl Mlp {
    /// PyTorch's default init, U(±1/sqrt(fan_in)); the last layer U(±3e-3) as in DDPG's paper,
    /// so initial actions sit near the middle of the range.
    pub fn new(sizes: &[usize], rng: &mut StdRng) -> candle_core::Result<Self> {
        let mut layers = Vec::new();
        for (i, win) in sizes.windows(2).enumerate() {
            let (fan_in, out) = (win[0], win[1]);
            let bound = if i + 2 == sizes.len() {
                3e-3
            } else {
                1.0 / (fan_in as f32).sqrt()
            };
            let mut draw = |n: usize| -> Vec<f32> {
                (0..n).map(|_| rng.random_range(-bound..bound)).collect()
            };
            let w = Tensor::from_vec(draw(out * fan_in), (out, fan_in), &Device::Cpu)?;
            let b = Tensor::from_vec(draw(out), out, &Device::Cpu)?;
            layers.push((Var::from_tensor(&w)?, Var::from_tensor(&b)?));
        }
        Ok(Mlp { layers })
    }

    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut h = x.clone();
        for (i, (w, b)) in self.layers.iter().enumerate() {
            h = h
                .matmul(&w.as_tensor().t()?)?
                .broadcast_add(b.as_tensor())?;
            if i + 1 < self.layers.len() {
                h = h.relu()?;
            }
        }
        Ok(h)
    }

    pub fn vars(&self) -> Vec<Var> {
        self.layers
            .iter()
            .flat_map(|(w, b)| [w.clone(), b.clone()])
            .collect()
    }

    /// An independent copy (the target network).
    pub fn copy(&self) -> candle_core::Result<Self> {
        let layers = self
            .layers
            .iter()
            .map(|(w, b)| {
                Ok((
                    Var::from_tensor(&w.as_tensor().copy()?)?,
                    Var::from_tensor(&b.as_tensor().copy()?)?,
                ))
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(Mlp { layers })
    }

    /// `self ← tau · online + (1 − tau) · self`.
    pub fn soft_update(&self, online: &Mlp, tau: f64) -> candle_core::Result<()> {
        for (t, o) in self.vars().iter().zip(online.vars()) {
            let mixed = ((o.as_tensor() * tau)? + (t.as_tensor() * (1.0 - tau))?)?;
            t.set(&mixed)?;
        }
        Ok(())
    }

    /// All parameters, flattened, in order.
    #[cfg(test)]
    pub fn flat(&self) -> candle_core::Result<Vec<f32>> {
        let mut out = Vec::new();
        for v in self.vars() {
            out.extend(v.as_tensor().flatten_all()?.to_vec1::<f32>()?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn soft_update_mixes_by_tau() {
        let mut rng = StdRng::seed_from_u64(0);
        let online = Mlp::new(&[3, 4, 1], &mut rng).unwrap();
        let target = Mlp::new(&[3, 4, 1], &mut rng).unwrap();
        let (o, t) = (online.flat().unwrap(), target.flat().unwrap());
        target.soft_update(&online, 0.01).unwrap();
        let after = target.flat().unwrap();
        for i in 0..o.len() {
            let want = 0.01 * o[i] + 0.99 * t[i];
            assert!(
                (after[i] - want).abs() < 1e-7,
                "{i}: {} vs {want}",
                after[i]
            );
        }
        // tau = 1 copies the online network exactly
        target.soft_update(&online, 1.0).unwrap();
        assert_eq!(target.flat().unwrap(), o);
    }

    #[test]
    fn shapes_and_copy_independence() {
        let mut rng = StdRng::seed_from_u64(1);
        let m = Mlp::new(&[5, 7, 7, 2], &mut rng).unwrap();
        let y = m
            .forward(&Tensor::zeros((3, 5), candle_core::DType::F32, &Device::Cpu).unwrap())
            .unwrap();
        assert_eq!(y.dims(), &[3, 2]);
        let c = m.copy().unwrap();
        c.soft_update(&Mlp::new(&[5, 7, 7, 2], &mut rng).unwrap(), 0.5)
            .unwrap();
        assert_ne!(c.flat().unwrap(), m.flat().unwrap());
    }
}
