//! Test helpers shared by the ops' tests: random tensors, a closeness check relative to the
//! expected tensor's scale, and the largest elementwise difference.

use candle_core::{Device, Result, Tensor, Var};
use rand::{rngs::StdRng, Rng};

/// A tensor of standard-normal values drawn from `rng`.
pub(crate) fn randn(rng: &mut StdRng, dims: &[usize]) -> Result<Tensor> {
    let n = dims.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| rng.sample(rand_distr::StandardNormal))
        .collect();
    Tensor::from_vec(v, dims, &Device::Cpu)
}

/// Asserts |a - b| <= tol * max|b| elementwise (tolerance relative to the tensor's scale).
pub(crate) fn assert_close(a: &Tensor, b: &Tensor, tol: f32, what: &str) -> Result<()> {
    assert_eq!(a.dims(), b.dims(), "{what}: shapes");
    let (a, b) = (
        a.flatten_all()?.to_vec1::<f32>()?,
        b.flatten_all()?.to_vec1::<f32>()?,
    );
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(
            (x - y).abs() <= tol * scale,
            "{what}[{i}]: {x} vs {y} (scale {scale})"
        );
    }
    Ok(())
}

/// Asserts that an op's output `got` matches candle's `want` (1e-5 of the scale) and that the
/// gradients of a random projection of each agree (1e-4) for the arguments x, w, b; `b` may have
/// none on both sides when the op ran without a bias.
pub(crate) fn assert_same_op(
    rng: &mut StdRng,
    got: &Tensor,
    want: &Tensor,
    [x, w, b]: [&Var; 3],
    bias: bool,
    what: &str,
) -> Result<()> {
    assert_close(got, want, 1e-5, &format!("{what} y"))?;
    // A random projection makes every output element's gradient different.
    let r = randn(rng, want.dims())?;
    let gw = (want * &r)?.sum_all()?.backward()?;
    let gg = (got * &r)?.sum_all()?.backward()?;
    for (name, t) in [("dx", x), ("dw", w), ("db", b)] {
        match (gg.get(t), gw.get(t)) {
            (Some(a), Some(e)) => assert_close(a, e, 1e-4, &format!("{what} {name}"))?,
            (None, None) => assert!(name == "db" && !bias, "{what}: {name} missing"),
            (a, e) => panic!(
                "{what} {name}: ours {} vs candle {}",
                a.is_some(),
                e.is_some()
            ),
        }
    }
    Ok(())
}

/// The largest elementwise |a - b| (for tests that bound the error against a scale of their own).
pub(crate) fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    (a - b)?.abs()?.max_all()?.to_scalar::<f32>()
}

/// Format of a tensor's values, so signed zeros and NaN payloads count as different.
pub(crate) fn value_bits(t: &Tensor) -> Vec<u32> {
    let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    v.iter().map(|x| x.to_bits()).collect()
}
