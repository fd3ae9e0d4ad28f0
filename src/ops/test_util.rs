//! Test helpers shared by the ops' tests: random tensors and a closeness check relative to the
//! expected tensor's scale.

use candle_core::{Device, Result, Tensor};
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
