//! Error amplification (Defensive Quantization's central effect): for clean/adversarial pairs,
//! the mean over examples of ||h_l(x) − h_l(x_adv)|| / ||h_l(x)|| at every quantizable layer's
//! output, so one can see a small input perturbation grow layer after layer.

use candle_core::Tensor;
use serde::Serialize;

use super::RobustError;
use crate::model::Model;
use crate::quant::Quantizer;

#[derive(Debug, Clone, Serialize)]
pub struct LayerDistance {
    pub layer: String,
    pub index: usize,
    pub distance: f64,
}

/// Normalized distance per layer between the model's activations on `x` and on `x_adv`.
pub fn amplification(
    model: &Model,
    q: Option<&Quantizer>,
    x: &Tensor,
    x_adv: &Tensor,
) -> Result<Vec<LayerDistance>, RobustError> {
    let clean = model.forward_trace(x, q)?;
    let adv = model.forward_trace(x_adv, q)?;
    let mut out = Vec::with_capacity(clean.outputs.len());
    for (index, ((h, ha), name)) in clean
        .outputs
        .iter()
        .zip(&adv.outputs)
        .zip(model.layer_names())
        .enumerate()
    {
        out.push(LayerDistance {
            layer: name.to_string(),
            index,
            distance: mean_relative_distance(h, ha)?,
        });
    }
    Ok(out)
}

/// Mean over the batch of ||a_i − b_i|| / ||a_i||; examples with ||a_i|| = 0 are skipped.
pub fn mean_relative_distance(a: &Tensor, b: &Tensor) -> Result<f64, RobustError> {
    let a = a.flatten_from(1)?;
    let diff = (b.flatten_from(1)? - &a)?
        .sqr()?
        .sum(1)?
        .sqrt()?
        .to_vec1::<f32>()?;
    let norm = a.sqr()?.sum(1)?.sqrt()?.to_vec1::<f32>()?;
    let ratios: Vec<f64> = diff
        .iter()
        .zip(&norm)
        .filter(|(_, &n)| n > 0.0)
        .map(|(&d, &n)| (d / n) as f64)
        .collect();
    if ratios.is_empty() {
        return Ok(0.0);
    }
    Ok(ratios.iter().sum::<f64>() / ratios.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn relative_distance_by_hand() {
        // example 0: |(3,4)| = 5, diff (0,1) → 0.2; example 1: |(1,0)| = 1, diff (1,0) → 1.0; mean 0.6
        let a = Tensor::new(&[[3f32, 4.], [1., 0.]], &Device::Cpu).unwrap();
        let b = Tensor::new(&[[3f32, 5.], [2., 0.]], &Device::Cpu).unwrap();
        assert!((mean_relative_distance(&a, &b).unwrap() - 0.6).abs() < 1e-6);
    }
}
