//! `||W Wᵀ − I||_F²` of a matrix W (O × I) as a candle custom op: the kernel of the Lipschitz
//! penalty (`train::orthogonality_penalty`), with the gradient `4 (W Wᵀ − I) W` in one gemm.
//!
//! candle's composition (matmul, eye, sub, sqr, sum) made five temporaries forward and three
//! gemms with as many temporaries backward, every fine-tune step, for every layer. Here the
//! forward keeps `G = W Wᵀ − I` for the backward: two gemms in all.

use std::sync::Mutex;

use super::matmul::{matmul, Mat, Parallelism};
use crate::ops::storage::{contiguous_f32, with_f32};
use candle_core::{bail, CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};

/// `||W Wᵀ − I||_F²` as a scalar tensor, for a 2-D f32 CPU tensor W.
pub fn orthogonality(w: &Tensor) -> Result<Tensor> {
    if w.dtype() != DType::F32 || !w.device().is_cpu() || w.rank() != 2 {
        bail!(
            "orthogonality: W must be a 2-D f32 CPU tensor, got {:?} {:?}",
            w.dtype(),
            w.dims()
        );
    }
    w.contiguous()?.apply_op1(Gram {
        g: Mutex::new(Vec::new()),
    })
}

struct Gram {
    /// `W Wᵀ − I` from the forward pass, for the backward.
    g: Mutex<Vec<f32>>,
}

/// `W Wᵀ − I` of the row-major `o × i` matrix `w`.
fn gram_minus_eye(w: &[f32], o: usize, i: usize) -> Result<Vec<f32>> {
    let mut g = vec![0.0; o * o];
    let m = Mat::row_major(w, o, i);
    matmul(&mut g, m, m.t(), false, Parallelism::None)?;
    for d in 0..o {
        g[d * o + d] -= 1.0;
    }
    Ok(g)
}

impl CustomOp1 for Gram {
    fn name(&self) -> &'static str {
        "bitsearch-orthogonality"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (o, i) = l.shape().dims2()?;
        let g = gram_minus_eye(contiguous_f32(s, l)?, o, i)?;
        // Summed in f64: a sum of up to O² squares, in one fixed order.
        let v = g.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>() as f32;
        *self
            .g
            .lock()
            .map_err(|_| candle_core::Error::Msg("poisoned".into()))? = g;
        Ok((CpuStorage::F32(vec![v]), Shape::from(())))
    }

    fn bwd(&self, w: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (o, i) = w.dims2()?;
        let scale = 4.0 * grad.to_scalar::<f32>()?;
        let kept = self
            .g
            .lock()
            .map_err(|_| candle_core::Error::Msg("poisoned".into()))?;
        let dw = with_f32(w, |wv| {
            let recomputed;
            let g: &[f32] = match kept.len() == o * o {
                true => &kept,
                false => {
                    recomputed = gram_minus_eye(wv, o, i)?;
                    &recomputed
                }
            };
            let mut dw = vec![0.0; o * i];
            matmul(
                &mut dw,
                Mat::row_major(g, o, o),
                Mat::row_major(wv, o, i),
                false,
                Parallelism::None,
            )?;
            dw.iter_mut().for_each(|v| *v *= scale);
            Ok(dw)
        })?;
        Ok(Some(Tensor::from_vec(dw, (o, i), w.device())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::test_util::max_abs_diff;
    use candle_core::{Device, Var};
    use rand::{rngs::StdRng, Rng, SeedableRng};

    #[test]
    fn value_and_gradient_match_candles_composition() -> Result<()> {
        let mut rng = StdRng::seed_from_u64(2);
        for (o, i) in [(1, 1), (6, 25), (16, 150), (120, 256), (10, 84)] {
            let v: Vec<f32> = (0..o * i).map(|_| rng.random_range(-0.3..0.3)).collect();
            let w = Var::from_vec(v, (o, i), &Device::Cpu)?;
            let eye = Tensor::eye(o, DType::F32, &Device::Cpu)?;
            let want = (w.matmul(&w.t()?)? - eye)?.sqr()?.sum_all()?;
            let got = orthogonality(&w)?;
            let (a, b) = (got.to_scalar::<f32>()?, want.to_scalar::<f32>()?);
            assert!(
                (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                "{o}x{i}: {a} vs {b}"
            );
            // Through a scale, so the upstream gradient is not 1.
            let gg = (got * 3.0)?.backward()?;
            let gw = (want * 3.0)?.backward()?;
            let (a, b) = (gg.get(&w).unwrap(), gw.get(&w).unwrap());
            let diff = max_abs_diff(a, b)?;
            let scale = b.abs()?.max_all()?.to_scalar::<f32>()?.max(1e-6);
            assert!(
                diff <= 1e-4 * scale,
                "{o}x{i}: gradient off by {diff} (scale {scale})"
            );
        }
        Ok(())
    }
}
