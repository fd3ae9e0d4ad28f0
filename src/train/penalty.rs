//! The Lipschitz penalty of Defensive Quantization, a fine-tune loss term:
//! `beta/2 · Σ_l ||W_l W_lᵀ − I||_F²`, conv weights reshaped to c_out × (c_in·k·k). Keeping every
//! `W_l W_lᵀ` near the identity keeps each layer's spectral norm near 1, so a small input
//! perturbation is not amplified layer after layer (`robust::lipschitz_bound` measures it).

use candle_core::Tensor;

/// `Σ_l ||W_l W_lᵀ − I||_F²` as a differentiable scalar (multiply by beta/2 at the call site).
pub fn orthogonality_penalty(weights: &[Tensor]) -> candle_core::Result<Tensor> {
    let mut total: Option<Tensor> = None;
    for w in weights {
        let out = w.dims()[0];
        let term = crate::ops::orthogonality(&w.reshape((out, ()))?)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn var(data: &[f32], dims: &[usize]) -> Var {
        Var::from_tensor(&Tensor::from_slice(data, dims, &Device::Cpu).unwrap()).unwrap()
    }

    fn penalty(v: &[&Var]) -> f32 {
        let weights: Vec<Tensor> = v.iter().map(|v| v.as_tensor().clone()).collect();
        orthogonality_penalty(&weights)
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
        let g = orthogonality_penalty(&[w.as_tensor().clone()])
            .unwrap()
            .backward()
            .unwrap();
        assert_eq!(
            g.get(&w).unwrap().to_vec2::<f32>().unwrap(),
            vec![vec![4., 4.]]
        );
    }
}
