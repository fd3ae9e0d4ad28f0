//! Per-layer spectral norms by power iteration, whose product bounds the network's Lipschitz
//! constant (ReLU and max-pool are 1-Lipschitz). The penalty that keeps them near 1 during the
//! fine-tune is a loss term: `train::orthogonality_penalty`.

use candle_core::Tensor;

/// The largest singular value of `w` viewed as rows × (len / rows), by power iteration.
pub fn spectral_norm(w: &[f32], rows: usize, iterations: usize) -> f64 {
    if rows == 0 || w.is_empty() {
        return 0.0;
    }
    let cols = w.len() / rows;
    // A fixed, non-degenerate start vector keeps the result deterministic.
    let mut v: Vec<f64> = (0..cols).map(|i| 1.0 + (i % 7) as f64 * 0.1).collect();
    normalize(&mut v);
    let mut sigma = 0.0;
    for _ in 0..iterations.max(1) {
        let mut u: Vec<f64> = (0..rows)
            .map(|r| (0..cols).map(|c| w[r * cols + c] as f64 * v[c]).sum())
            .collect();
        sigma = normalize(&mut u);
        v = (0..cols)
            .map(|c| (0..rows).map(|r| w[r * cols + c] as f64 * u[r]).sum())
            .collect();
        if normalize(&mut v) == 0.0 {
            return 0.0;
        }
    }
    sigma
}

fn normalize(x: &mut [f64]) -> f64 {
    let n = x.iter().map(|a| a * a).sum::<f64>().sqrt();
    if n > 0.0 {
        x.iter_mut().for_each(|a| *a /= n);
    }
    n
}

/// Spectral norm of every layer's weight and their product (the network's Lipschitz bound).
pub fn lipschitz_bound(weights: &[Tensor]) -> candle_core::Result<(Vec<f64>, f64)> {
    let mut norms = Vec::with_capacity(weights.len());
    for w in weights {
        let data = w.flatten_all()?.to_vec1::<f32>()?;
        norms.push(spectral_norm(&data, w.dims()[0], 200));
    }
    let product = norms.iter().product();
    Ok((norms, product))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn var(data: &[f32], dims: &[usize]) -> Tensor {
        Tensor::from_slice(data, dims, &Device::Cpu).unwrap()
    }

    #[test]
    fn power_iteration_matches_known_spectral_norms() {
        // diag(3, 1): 3. [[1,2],[3,4]]: sqrt((30 + sqrt(896)) / 2) = 5.4649857 (from WᵀW's eigenvalues).
        assert!((spectral_norm(&[3., 0., 0., 1.], 2, 100) - 3.0).abs() < 1e-6);
        assert!((spectral_norm(&[1., 2., 3., 4.], 2, 100) - 5.4649857).abs() < 1e-5);
        // rank one: u vᵀ with |u| = 5 (3,4), |v| = 1: norm 5.
        assert!((spectral_norm(&[3., 0., 4., 0.], 2, 50) - 5.0).abs() < 1e-6);
        assert_eq!(spectral_norm(&[0.; 4], 2, 10), 0.0);
    }

    #[test]
    fn bound_is_the_product_of_norms() {
        let a = var(&[2., 0., 0., 1.], &[2, 2]);
        let b = var(&[0.5, 0., 0., 3.], &[2, 2]);
        let (norms, product) = lipschitz_bound(&[a, b]).unwrap();
        assert!((norms[0] - 2.0).abs() < 1e-6 && (norms[1] - 3.0).abs() < 1e-6);
        assert!((product - 6.0).abs() < 1e-5);
    }
}
