//! ReLU6, `y = min(max(x, 0), 6)`, as one candle custom op with its backward.
//!
//! Why: candle's `clamp(0, 6)` is a `maximum` and a `minimum` against broadcast scalars. Each
//! makes an output, and in the backward each makes two masks, converts them, multiplies,
//! divides, and adds into zero-filled slots, for the tensor and for the broadcast scalar too: a
//! dozen activation-sized temporaries per ReLU6 in a training step (MobileNet has eleven).
//! Here the forward writes one tensor and the backward one, recomputing the clamp from the
//! input.
//!
//! The numbers are candle's `clamp`, bit for bit (`activation::relu6_candle` and
//! `relu6_candle_pass`), ties at 0 and 6 included: the search's results do not change.

use candle_core::{bail, CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

use super::activation::{relu6_candle, relu6_candle_pass};
use super::parallel::map3;
use super::storage::{contiguous_f32, with_f32};

/// `min(max(x, 0), 6)` elementwise.
pub fn relu6(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Relu6)
}

struct Relu6;

impl CustomOp1 for Relu6 {
    fn name(&self) -> &'static str {
        "bitsearch-relu6"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s, l)?;
        // `x` thrice: `map3` takes three inputs, the clamp needs one.
        let y = map3(x.len(), x, x, x, |v, _, _| relu6_candle(v))?;
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        if !x.track_op() {
            return Ok(None);
        }
        let dx = with_f32(x, |xv| {
            with_f32(grad, |g| {
                if xv.len() != g.len() {
                    bail!("relu6: a gradient of {} values for {}", g.len(), xv.len());
                }
                map3(g.len(), xv, g, g, |v, g, _| relu6_candle_pass(g, v))
            })
        })?;
        Ok(Some(Tensor::from_vec(dx, x.shape(), x.device())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::test_util::{randn, value_bits as bits};
    use candle_core::{Device, Var};
    use rand::SeedableRng;

    /// The op and its gradient equal candle's `clamp(0, 6)` bit for bit, on values that include
    /// the bounds themselves (where candle halves the gradient), ±0, values past 6, a NaN, and
    /// upstream gradients of ±0 and infinity.
    #[test]
    fn relu6_equals_candles_clamp_bit_for_bit() -> Result<()> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let dims = [2, 3, 7, 5];
        let mut xv: Vec<f32> = (randn(&mut rng, &dims)? * 4.0)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let special = [0.0, -0.0, 6.0, 6.5, -6.0, f32::NAN, 5.999_999_5, 1e-45];
        xv[..special.len()].copy_from_slice(&special);
        let mut gv = randn(&mut rng, &dims)?.flatten_all()?.to_vec1::<f32>()?;
        gv[1] = -0.0;
        gv[3] = f32::INFINITY;
        gv[9] = -0.0;
        let dev = &Device::Cpu;
        let x = Var::from_vec(xv, &dims, dev)?;
        let r = Tensor::from_vec(gv, &dims, dev)?;
        let want = x.as_tensor().clamp(0f32, 6f32)?;
        let got = relu6(x.as_tensor())?;
        assert_eq!(bits(&got), bits(&want));
        let gw = (&want * &r)?.sum_all()?.backward()?;
        let gg = (&got * &r)?.sum_all()?.backward()?;
        assert_eq!(bits(gg.get(&x).unwrap()), bits(gw.get(&x).unwrap()));
        Ok(())
    }
}
