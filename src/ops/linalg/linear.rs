//! A fully connected layer as a candle custom op: `y = relu?(x @ wᵀ + b)`, x (N, I), w (O, I),
//! b (O).
//!
//! Backward, with `g` the upstream gradient masked by `y > 0` when ReLU is fused: `db = Σ_n g_n`,
//! `dw = gᵀ @ x`, `dx = g @ w`, each computed only when that argument tracks a gradient: candle's
//! own matmul backward computes both operands' gradients always, so an attack (frozen weights)
//! paid for a weight gradient it threw away.
//!
//! Threads: rows of the output are cut into one piece per pool thread; every output element is
//! one dot product computed by one thread, so results do not depend on the thread count.

use super::matmul::{matmul, Mat, Parallelism};
use crate::ops::parallel::{for_each_chunk, threads};
use crate::ops::storage::{contiguous_f32, with_f32};
use candle_core::{bail, CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};

/// `relu?(x @ wᵀ + b)` for x (N, I), w (O, I), b (O), all f32 on the CPU.
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>, relu: bool) -> Result<Tensor> {
    for (name, t) in [("x", Some(x)), ("w", Some(w)), ("b", b)] {
        if let Some(t) = t {
            if t.dtype() != DType::F32 || !t.device().is_cpu() {
                bail!("linear: {name} must be f32 on the CPU, got {:?}", t.dtype());
            }
        }
    }
    let b = match b {
        Some(b) => b.contiguous()?,
        None => Tensor::zeros(w.dim(0)?, DType::F32, x.device())?,
    };
    x.contiguous()?
        .apply_op3(&w.contiguous()?, &b, Linear { relu })
}

struct Linear {
    relu: bool,
}

/// (N, I, O) of one call, checked against each other.
fn dims(x: &Shape, w: &Shape, b: &Shape) -> Result<(usize, usize, usize)> {
    let (n, i) = x.dims2()?;
    let (o, wi) = w.dims2()?;
    if wi != i || b.dims1()? != o {
        bail!("linear: x {x:?}, w {w:?}, b {b:?} do not fit (w must be (O, I), b (O))");
    }
    Ok((n, i, o))
}

/// Rows per piece when `rows` rows are shared among the pool's threads.
fn rows_per_piece(rows: usize) -> usize {
    rows.div_ceil(threads()).max(1)
}

impl CustomOp3 for Linear {
    fn name(&self) -> &'static str {
        "bitsearch-linear"
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
        let (n, i, o) = dims(xl.shape(), wl.shape(), bl.shape())?;
        let (x, w, b) = (
            contiguous_f32(xs, xl)?,
            contiguous_f32(ws, wl)?,
            contiguous_f32(bs, bl)?,
        );
        let mut y = vec![0.0; n * o];
        let rows = rows_per_piece(n);
        let wt = Mat::row_major(w, o, i).t();
        for_each_chunk(
            &mut y,
            rows * o,
            || (),
            |_, p, yp| {
                let xp = Mat::row_major(x, n, i).rows(p * rows, yp.len() / o);
                matmul(yp, xp, wt, false, Parallelism::None)?;
                for yr in yp.chunks_exact_mut(o) {
                    match self.relu {
                        true => (yr.iter_mut().zip(b)).for_each(|(v, &c)| *v = (*v + c).max(0.0)),
                        false => (yr.iter_mut().zip(b)).for_each(|(v, &c)| *v += c),
                    }
                }
                Ok(())
            },
        )?;
        Ok((CpuStorage::F32(y), Shape::from((n, o))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n, i, o) = dims(x.shape(), w.shape(), b.shape())?;
        let g = match self.relu {
            true => with_f32(grad, |gr| {
                with_f32(y, |yv| {
                    Ok((gr.iter().zip(yv))
                        .map(|(&g, &v)| if v > 0.0 { g } else { 0.0 })
                        .collect::<Vec<f32>>())
                })
            })?,
            false => with_f32(grad, |gr| Ok(gr.to_vec()))?,
        };
        let dev = x.device();
        let db = match b.track_op() {
            true => {
                // Row by row in example order: a fixed order of additions.
                let mut db = vec![0.0; o];
                for gr in g.chunks_exact(o.max(1)) {
                    db.iter_mut().zip(gr).for_each(|(a, &v)| *a += v);
                }
                Some(Tensor::from_vec(db, o, dev)?)
            }
            false => None,
        };
        let dw = match w.track_op() {
            true => Some(with_f32(x, |xv| {
                let mut dw = vec![0.0; o * i];
                let rows = rows_per_piece(o);
                let gt = Mat::row_major(&g, n, o).t();
                for_each_chunk(
                    &mut dw,
                    rows * i,
                    || (),
                    |_, p, dwp| {
                        let gp = gt.rows(p * rows, dwp.len() / i.max(1));
                        matmul(dwp, gp, Mat::row_major(xv, n, i), false, Parallelism::None)
                    },
                )?;
                Tensor::from_vec(dw, (o, i), dev)
            })?),
            false => None,
        };
        let dx = match x.track_op() {
            true => Some(with_f32(w, |wv| {
                let mut dx = vec![0.0; n * i];
                let rows = rows_per_piece(n);
                for_each_chunk(
                    &mut dx,
                    rows * i,
                    || (),
                    |_, p, dxp| {
                        let gp = Mat::row_major(&g, n, o).rows(p * rows, dxp.len() / i.max(1));
                        matmul(dxp, gp, Mat::row_major(wv, o, i), false, Parallelism::None)
                    },
                )?;
                Tensor::from_vec(dx, (n, i), dev)
            })?),
            false => None,
        };
        Ok((dx, dw, db))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::test_util::{assert_same_op, randn};
    use candle_core::{Device, Var};
    use rand::{rngs::StdRng, SeedableRng};

    #[test]
    fn linear_values_and_gradients_match_candle() -> Result<()> {
        let mut rng = StdRng::seed_from_u64(5);
        // (N, I, O, bias, relu); N = 1 and odd sizes leave uneven pieces.
        for (n, i, o, bias, relu) in [
            (1, 3, 2, true, true),
            (7, 5, 3, false, true),
            (64, 256, 120, true, true),
            (33, 84, 10, true, false),
        ] {
            let what = format!("N{n} I{i} O{o} bias {bias} relu {relu}");
            let x = Var::from_tensor(&randn(&mut rng, &[n, i])?)?;
            let w = Var::from_tensor(&randn(&mut rng, &[o, i])?)?;
            let b = Var::from_tensor(&randn(&mut rng, &[o])?)?;
            let b_opt = bias.then_some(b.as_tensor());
            let mut want = x.matmul(&w.t()?)?;
            if let Some(b) = b_opt {
                want = want.broadcast_add(b)?;
            }
            if relu {
                want = want.relu()?;
            }
            let got = linear(&x, &w, b_opt, relu)?;
            assert_same_op(&mut rng, &got, &want, [&x, &w, &b], bias, &what)?;
        }
        Ok(())
    }

    #[test]
    fn frozen_weights_get_no_gradient_and_the_input_does() -> Result<()> {
        let mut rng = StdRng::seed_from_u64(9);
        let x = Var::from_tensor(&randn(&mut rng, &[4, 6])?)?;
        let w = randn(&mut rng, &[3, 6])?;
        let b = randn(&mut rng, &[3])?;
        let grads = linear(&x, &w, Some(&b), true)?.sum_all()?.backward()?;
        assert!(grads.get(&w).is_none() && grads.get(&b).is_none());
        assert!(grads.get(&x).is_some());
        Ok(())
    }

    #[test]
    fn linear_rejects_mismatched_shapes() -> Result<()> {
        let x = Tensor::zeros((2, 3), DType::F32, &Device::Cpu)?;
        let w = Tensor::zeros((4, 5), DType::F32, &Device::Cpu)?;
        assert!(linear(&x, &w, None, false).is_err());
        Ok(())
    }
}
