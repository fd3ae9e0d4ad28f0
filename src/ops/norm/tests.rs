//! BatchNorm on batch statistics against candle's ops, and the fused ReLU, ReLU6 and residual
//! join against the separate ops bit for bit.

use super::*;
use crate::ops::residual::add_relu;
use crate::ops::test_util::{max_abs_diff, randn, value_bits as bits};
use candle_core::{Device, Var};
use rand::SeedableRng;

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

/// Output, statistics and all three gradients against candle's ops on a random batch (seeded:
/// the variance bound holds for this draw, not for every one).
#[test]
fn matches_candle_ops_and_their_gradients() -> Result<()> {
    let dev = Device::Cpu;
    let mut rng = rand::rngs::StdRng::seed_from_u64(10);
    let x = Var::from_tensor(&randn(&mut rng, &[3, 4, 5, 6])?.affine(2.0, 0.5)?)?;
    let g = Var::from_tensor(&Tensor::new(&[1.0f32, 0.5, -2.0, 1.5], &dev)?)?;
    let b = Var::from_tensor(&Tensor::new(&[0.0f32, 0.1, -0.3, 2.0], &dev)?)?;
    let r = randn(&mut rng, &[3, 4, 5, 6])?;
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

/// `relu(bn(x))` and `relu(bn(x) + r)` as one op equal BatchNorm followed by candle's ReLU or
/// by `add_relu` bit for bit: outputs, running statistics and the gradients of x, γ, β and r,
/// on odd plane sizes and batches of one and more, with residuals that make sums of exactly 0
/// (where the gradient passes), ±0 and a NaN, and an upstream gradient with signed zeros.
#[test]
fn fused_relu_and_join_equal_the_separate_ops_bit_for_bit() -> Result<()> {
    let dev = &Device::Cpu;
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    for dims in [[3, 5, 7, 9], [1, 2, 1, 1], [2, 16, 4, 4]] {
        let x = Var::from_tensor(&(randn(&mut rng, &dims)? * 1.5)?.affine(1.0, 0.25)?)?;
        let c = dims[1];
        let gv: Vec<f32> = (0..c).map(|i| 1.0 - 0.3 * i as f32).collect();
        let bv: Vec<f32> = (0..c).map(|i| 0.1 * i as f32 - 0.2).collect();
        let g = Var::from_vec(gv, c, dev)?;
        let b = Var::from_vec(bv, c, dev)?;
        let (plain, m0, v0) = batch_norm_train(x.as_tensor(), g.as_tensor(), b.as_tensor(), 1e-5)?;
        let mut rv = randn(&mut rng, &dims)?.flatten_all()?.to_vec1::<f32>()?;
        let yv = plain.flatten_all()?.to_vec1::<f32>()?;
        let len = rv.len();
        rv[0] = -yv[0];
        if len > 3 {
            rv[1] = -0.0;
            rv[2] = f32::NAN;
            rv[len - 1] = -yv[len - 1];
        }
        let r = Var::from_vec(rv, &dims, dev)?;
        let mut up = randn(&mut rng, &dims)?.flatten_all()?.to_vec1::<f32>()?;
        up[len / 2] = -0.0;
        let up = Tensor::from_vec(up, &dims, dev)?;
        let what = format!("{dims:?}");

        // relu(bn(x)) against BatchNorm then candle's ReLU.
        let want = batch_norm_train(x.as_tensor(), g.as_tensor(), b.as_tensor(), 1e-5)?
            .0
            .relu()?;
        let (got, m1, v1) = batch_norm_train_then(
            x.as_tensor(),
            g.as_tensor(),
            b.as_tensor(),
            1e-5,
            BnThen::Relu,
        )?;
        assert_eq!(bits(&got), bits(&want), "relu y {what}");
        assert_eq!((&m1, &v1), (&m0, &v0), "relu stats {what}");
        let gw = (&want * &up)?.sum_all()?.backward()?;
        let gg = (&got * &up)?.sum_all()?.backward()?;
        for (name, v) in [("dx", &x), ("dγ", &g), ("dβ", &b)] {
            let (a, e) = (gg.get(v).unwrap(), gw.get(v).unwrap());
            assert_eq!(bits(a), bits(e), "relu {name} {what}");
        }

        // relu(bn(x) + r) against BatchNorm then add_relu.
        let bn = batch_norm_train(x.as_tensor(), g.as_tensor(), b.as_tensor(), 1e-5)?.0;
        let want = add_relu(&bn, r.as_tensor())?;
        let then = BnThen::AddRelu(r.as_tensor());
        let (got, m2, v2) =
            batch_norm_train_then(x.as_tensor(), g.as_tensor(), b.as_tensor(), 1e-5, then)?;
        assert_eq!(bits(&got), bits(&want), "join y {what}");
        assert_eq!((&m2, &v2), (&m0, &v0), "join stats {what}");
        let gw = (&want * &up)?.sum_all()?.backward()?;
        let gg = (&got * &up)?.sum_all()?.backward()?;
        for (name, v) in [("dx", &x), ("dγ", &g), ("dβ", &b), ("dr", &r)] {
            let (a, e) = (gg.get(v).unwrap(), gw.get(v).unwrap());
            assert_eq!(bits(a), bits(e), "join {name} {what}");
        }
    }
    Ok(())
}

/// `relu6(bn(x))` as one op equals BatchNorm followed by candle's `clamp(0, 6)` bit for bit:
/// output, statistics and the gradients of x, γ and β, with channels pinned at the bounds
/// (γ = 0 and β = 6 or 0, where candle halves the gradient) and one past 6.
#[test]
fn fused_relu6_equals_batch_norm_then_candles_clamp_bit_for_bit() -> Result<()> {
    let dev = &Device::Cpu;
    let mut rng = rand::rngs::StdRng::seed_from_u64(12);
    let dims = [3, 4, 5, 5];
    let x = Var::from_tensor(&(randn(&mut rng, &dims)? * 3.0)?)?;
    let g = Var::from_vec(vec![1.3f32, 0.0, 0.0, 2.5], 4, dev)?;
    let b = Var::from_vec(vec![0.5f32, 6.0, 0.0, 3.0], 4, dev)?;
    let mut up = randn(&mut rng, &dims)?.flatten_all()?.to_vec1::<f32>()?;
    up[7] = -0.0;
    let up = Tensor::from_vec(up, &dims, dev)?;
    let (bn, m0, v0) = batch_norm_train(x.as_tensor(), g.as_tensor(), b.as_tensor(), 1e-5)?;
    let want = bn.clamp(0f32, 6f32)?;
    let (got, m1, v1) = batch_norm_train_then(
        x.as_tensor(),
        g.as_tensor(),
        b.as_tensor(),
        1e-5,
        BnThen::Relu6,
    )?;
    let yv = got.flatten_all()?.to_vec1::<f32>()?;
    assert!(yv.contains(&6.0) && yv.contains(&0.0) && yv.iter().any(|&v| v > 0.0 && v < 6.0));
    assert_eq!(bits(&got), bits(&want), "y");
    assert_eq!((&m1, &v1), (&m0, &v0), "stats");
    let gw = (&want * &up)?.sum_all()?.backward()?;
    let gg = (&got * &up)?.sum_all()?.backward()?;
    for (name, v) in [("dx", &x), ("dγ", &g), ("dβ", &b)] {
        let (a, e) = (gg.get(v).unwrap(), gw.get(v).unwrap());
        assert_eq!(bits(a), bits(e), "{name}");
    }
    Ok(())
}

/// A residual of another shape is refused, naming both shapes.
#[test]
fn a_residual_of_another_shape_is_refused() -> Result<()> {
    let dev = &Device::Cpu;
    let x = Tensor::zeros((2, 3, 4, 4), candle_core::DType::F32, dev)?;
    let (g, b) = (
        Tensor::ones(3, candle_core::DType::F32, dev)?,
        x.zeros_like()?,
    );
    let r = Tensor::zeros((2, 3, 4, 5), candle_core::DType::F32, dev)?;
    let b = b.narrow(0, 0, 1)?.flatten_all()?.narrow(0, 0, 3)?;
    let err = batch_norm_train_then(&x, &g, &b, 1e-5, BnThen::AddRelu(&r)).unwrap_err();
    assert!(err.to_string().contains("residual"), "{err}");
    Ok(())
}
