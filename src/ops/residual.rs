//! A residual block's join as one candle custom op: `y = relu(a + b)` elementwise, with its
//! backward `da = db = 0 + dy · [a + b ≥ 0]`.
//!
//! Why: as candle's `add` then `relu`, a pass that records gradients keeps the sum `a + b`
//! alive until the backward reaches the ReLU (an activation-sized tensor per block, for the
//! whole pass), and the ReLU's backward makes four temporaries of that size (zeros, the mask,
//! the mask as f32, the product). Here the backward recomputes the sum from `a` and `b`, which
//! the graph keeps anyway, and writes one tensor.
//!
//! The numbers are candle's, bit for bit: the forward is `(a + b).max(0)`, as candle's ReLU;
//! the backward's mask is candle's (`a + b ≥ 0`: the gradient passes at 0) and its value is
//! `0 + dy·1` or `0 + dy·0`, what candle's zero-filled gradient slot holds after its ReLU
//! backward, so signed zeros and NaN come out the same.

use candle_core::{bail, CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

use super::parallel::map3;
use super::storage::{contiguous_f32, with_f32};

/// `relu(a + b)` for two tensors of one shape.
pub fn add_relu(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if a.dims() != b.dims() {
        bail!(
            "add_relu: the operands' shapes differ, {:?} and {:?}",
            a.dims(),
            b.dims()
        );
    }
    a.contiguous()?.apply_op2(&b.contiguous()?, AddRelu)
}

struct AddRelu;

impl CustomOp2 for AddRelu {
    fn name(&self) -> &'static str {
        "bitsearch-add-relu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (a, b) = (contiguous_f32(s1, l1)?, contiguous_f32(s2, l2)?);
        if a.len() != b.len() {
            bail!("add_relu: {} and {} values", a.len(), b.len());
        }
        // `b` twice: `map3` takes three inputs, the forward needs two.
        let y = map3(a.len(), a, b, b, |a, b, _| (a + b).max(0.0))?;
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (to_a, to_b) = (a.track_op(), b.track_op());
        if !to_a && !to_b {
            return Ok((None, None));
        }
        let dsum = with_f32(a, |av| {
            with_f32(b, |bv| {
                with_f32(grad, |g| {
                    if av.len() != g.len() || bv.len() != g.len() {
                        bail!(
                            "add_relu: a gradient of {} values for {}",
                            g.len(),
                            av.len()
                        );
                    }
                    map3(g.len(), av, bv, g, |a, b, g| {
                        let pass = if a + b >= 0.0 { 1.0 } else { 0.0 };
                        0.0 + g * pass
                    })
                })
            })
        })?;
        let dsum = Tensor::from_vec(dsum, a.shape(), a.device())?;
        Ok((to_a.then(|| dsum.clone()), to_b.then_some(dsum)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::test_util::{randn, value_bits as bits};
    use candle_core::{Device, Var};
    use rand::SeedableRng;

    /// The join and its gradients equal candle's `(a + b).relu()` bit for bit, on values that
    /// include sums of exactly 0 (where the gradient passes), ±0 and a NaN.
    #[test]
    fn add_relu_equals_candles_add_then_relu_bit_for_bit() -> Result<()> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let dims = [3, 4, 9, 9];
        let mut av = randn(&mut rng, &dims)?.flatten_all()?.to_vec1::<f32>()?;
        let mut bv = randn(&mut rng, &dims)?.flatten_all()?.to_vec1::<f32>()?;
        bv[0] = -av[0];
        (av[1], bv[1]) = (-0.0, -0.0);
        (av[2], bv[2]) = (0.0, -0.0);
        av[3] = f32::NAN;
        let dev = &Device::Cpu;
        let a = Var::from_vec(av, &dims, dev)?;
        let b = Var::from_vec(bv, &dims, dev)?;
        let mut r = randn(&mut rng, &dims)?.flatten_all()?.to_vec1::<f32>()?;
        r[4] = -0.0;
        let r = Tensor::from_vec(r, &dims, dev)?;
        let want = (a.as_tensor() + b.as_tensor())?.relu()?;
        let got = add_relu(a.as_tensor(), b.as_tensor())?;
        assert_eq!(bits(&got), bits(&want));
        let gw = (&want * &r)?.sum_all()?.backward()?;
        let gg = (&got * &r)?.sum_all()?.backward()?;
        for v in [&a, &b] {
            let (g, w) = (gg.get(v).unwrap(), gw.get(v).unwrap());
            assert_eq!(bits(g), bits(w));
        }
        Ok(())
    }

    #[test]
    fn operands_of_different_shapes_are_refused() {
        let dev = &Device::Cpu;
        let a = Tensor::zeros((2, 3), candle_core::DType::F32, dev).unwrap();
        let b = Tensor::zeros((3, 2), candle_core::DType::F32, dev).unwrap();
        let err = add_relu(&a, &b).unwrap_err().to_string();
        assert!(err.contains("shapes differ"), "{err}");
    }
}
