//! The Lipschitz penalty of Defensive Quantization, `beta/2 · Σ_l ||W_l W_lᵀ − I||_F²` (conv
//! weights reshaped to c_out × (c_in·k·k)), and per-layer spectral norms by power iteration,
//! whose product bounds the network's Lipschitz constant (ReLU and max-pool are 1-Lipschitz).

use candle_core::{Tensor, Var};

/// `Σ_l ||W_l W_lᵀ − I||_F²` as a differentiable scalar (multiply by beta/2 at the call site).
pub fn orthogonality_penalty(weights: &[&Var]) -> candle_core::Result<Tensor> {
    let mut total: Option<Tensor> = None;
    for w in weights {
        let out = w.dims()[0];
        let m = w.as_tensor().reshape((out, ()))?;
        let gram = m.matmul(&m.t()?)?;
        let eye = Tensor::eye(out, candle_core::DType::F32, m.device())?;
        let term = (gram - eye)?.sqr()?.sum_all()?;
        total = Some(match total {
            Some(t) => (t + term)?,
            None => term,
        });
    }
    match total {
        Some(t) => Ok(t),
        None => Tensor::new(0f32, &candle_core::Device::Cpu),
    }
}

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
pub fn lipschitz_bound(weights: &[&Var]) -> candle_core::Result<(Vec<f64>, f64)> {
    let mut norms = Vec::with_capacity(weights.len());
    for w in weights {
        let data = w.as_tensor().flatten_all()?.to_vec1::<f32>()?;
        norms.push(spectral_norm(&data, w.dims()[0], 200));
    }
    let product = norms.iter().product();
    Ok((norms, product))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn var(data: &[f32], dims: &[usize]) -> Var {
        Var::from_tensor(&Tensor::from_slice(data, dims, &Device::Cpu).unwrap()).unwrap()
    }

    fn penalty(v: &[&Var]) -> f32 {
        orthogonality_penalty(v)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn penalty_is_zero_for_orthogonal_rows() {
        // A rotation by 30 degrees, and two rows of the 3x3 identity: W Wᵀ = I in both.
        let (c, s) = (30f32.to_radians().cos(), 30f32.to_radians().sin());
        let rot = var(&[c, -s, s, c], &[2, 2]);
        let rows = var(&[1., 0., 0., 0., 1., 0.], &[2, 3]);
        assert!(penalty(&[&rot, &rows]).abs() < 1e-6);
    }

    #[test]
    fn penalty_matches_a_hand_computed_value() {
        // W = [[1,1],[0,2]]: W Wᵀ = [[2,2],[2,4]], minus I = [[1,2],[2,3]], squares sum 1+4+4+9 = 18.
        // A conv weight (1,1,1,2) = [[1,1]] reshaped: W Wᵀ = [2], minus 1 = 1, squared = 1.
        let w = var(&[1., 1., 0., 2.], &[2, 2]);
        let conv = var(&[1., 1.], &[1, 1, 1, 2]);
        assert!((penalty(&[&w, &conv]) - 19.0).abs() < 1e-5);
    }

    #[test]
    fn penalty_gradient_matches_the_formula() {
        // d/dW ||W Wᵀ − I||² = 4 (W Wᵀ − I) W; for W = [[1,1]]: 4 · 1 · [1,1] = [4,4].
        let w = var(&[1., 1.], &[1, 2]);
        let g = orthogonality_penalty(&[&w]).unwrap().backward().unwrap();
        assert_eq!(
            g.get(&w).unwrap().to_vec2::<f32>().unwrap(),
            vec![vec![4., 4.]]
        );
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
        let (norms, product) = lipschitz_bound(&[&a, &b]).unwrap();
        assert!((norms[0] - 2.0).abs() < 1e-6 && (norms[1] - 3.0).abs() < 1e-6);
        assert!((product - 6.0).abs() < 1e-5);
    }
}
