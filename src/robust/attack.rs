//! White-box L∞ attacks through the (fake-quantized) model: FGSM and PGD with a random start.
//! The input gradient flows through the quantizers by the straight-through estimator (BPDA).
//!
//! FGSM: `x' = clip(x + eps · sign(∇x L), 0, 1)`. PGD: from `x + U(-eps, eps)`, repeat
//! `x' ← Π_{B(x,eps) ∩ [0,1]}(x' + step · sign(∇x L))`.

use candle_core::{DType, Tensor, Var};
use rand::rngs::StdRng;
use rand::Rng;

use super::RobustError;
use crate::model::Model;
use crate::quant::Quantizer;

/// Anything that maps a batch of images to logits.
pub trait Classifier {
    fn logits(&self, x: &Tensor) -> Result<Tensor, RobustError>;
}

/// A model from the zoo, fake-quantized by `q` (full precision when None). Its parameters are
/// frozen (`Model::forward_frozen`): an attack's backward pass computes the input gradient only.
pub struct QuantizedModel<'a> {
    pub model: &'a Model,
    pub q: Option<&'a Quantizer>,
}

impl Classifier for QuantizedModel<'_> {
    fn logits(&self, x: &Tensor) -> Result<Tensor, RobustError> {
        Ok(self.model.forward_frozen(x, self.q)?)
    }
}

/// The gradient of the mean cross-entropy with respect to the input batch.
pub fn input_grad(clf: &dyn Classifier, x: &Tensor, y: &Tensor) -> Result<Tensor, RobustError> {
    let xv = Var::from_tensor(x)?;
    let loss = candle_nn::loss::cross_entropy(&clf.logits(xv.as_tensor())?, y)?;
    let grads = loss.backward()?;
    match grads.get(&xv) {
        Some(g) => Ok(g.clone()),
        // No path from the input to the loss: the gradient is zero everywhere.
        None => Ok(x.zeros_like()?),
    }
}

/// Whether each example is classified correctly.
pub fn correct(clf: &dyn Classifier, x: &Tensor, y: &Tensor) -> Result<Vec<bool>, RobustError> {
    let pred = clf.logits(x)?.argmax(1)?;
    let hit = pred.eq(y)?.to_dtype(DType::U8)?.to_vec1::<u8>()?;
    Ok(hit.into_iter().map(|h| h == 1).collect())
}

/// For each example, whether its input gradient is exactly zero everywhere.
pub fn zero_gradients(grad: &Tensor) -> Result<Vec<bool>, RobustError> {
    let per = grad.abs()?.flatten_from(1)?.max(1)?.to_vec1::<f32>()?;
    Ok(per.into_iter().map(|m| m == 0.0).collect())
}

/// One FGSM step of size `eps`, clipped to the image range.
pub fn fgsm(clf: &dyn Classifier, x: &Tensor, y: &Tensor, eps: f32) -> Result<Tensor, RobustError> {
    fgsm_step(x, &input_grad(clf, x, y)?, eps)
}

/// The FGSM example of `x` for an input gradient `g` already computed at `x`: every FGSM radius
/// (and the zero-gradient check) shares one gradient pass.
pub fn fgsm_step(x: &Tensor, g: &Tensor, eps: f32) -> Result<Tensor, RobustError> {
    Ok((x + (g.sign()? * eps as f64)?)?.clamp(0f32, 1f32)?)
}

/// L∞ PGD settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pgd {
    pub eps: f32,
    pub steps: usize,
    pub step_size: f32,
}

/// PGD from a uniform random start in the eps ball (drawn from `rng`, so runs repeat).
pub fn pgd(
    clf: &dyn Classifier,
    x: &Tensor,
    y: &Tensor,
    p: Pgd,
    rng: &mut StdRng,
) -> Result<Tensor, RobustError> {
    pgd_from(clf, x, y, p, &pgd_start_noise(x, p.eps, rng)?)
}

/// PGD's random start for every example of `x`: U(-eps, eps) per element, drawn in order from
/// `rng`. Drawing it for the whole batch, even when only some examples are attacked, keeps each
/// example's start (and so its result) independent of which others are attacked.
pub fn pgd_start_noise(x: &Tensor, eps: f32, rng: &mut StdRng) -> Result<Tensor, RobustError> {
    let noise: Vec<f32> = (0..x.elem_count())
        .map(|_| rng.random_range(-eps..=eps))
        .collect();
    Ok(Tensor::from_vec(noise, x.shape(), x.device())?)
}

/// PGD from `x + noise`: `steps` signed-gradient steps, each projected onto the eps ball and the
/// image range.
pub fn pgd_from(
    clf: &dyn Classifier,
    x: &Tensor,
    y: &Tensor,
    p: Pgd,
    noise: &Tensor,
) -> Result<Tensor, RobustError> {
    let lo = (x - p.eps as f64)?.clamp(0f32, 1f32)?;
    let hi = (x + p.eps as f64)?.clamp(0f32, 1f32)?;
    let mut adv = (x + noise)?.clamp(0f32, 1f32)?;
    for _ in 0..p.steps {
        let g = input_grad(clf, &adv, y)?;
        adv = (adv + (g.sign()? * p.step_size as f64)?)?;
        adv = adv.maximum(&lo)?.minimum(&hi)?;
    }
    Ok(adv)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use rand::SeedableRng;

    /// logits = x W (x of 2 features, 2 classes).
    struct Linear(Tensor);
    impl Classifier for Linear {
        fn logits(&self, x: &Tensor) -> Result<Tensor, RobustError> {
            Ok(x.flatten_from(1)?.matmul(&self.0)?)
        }
    }

    fn tiny() -> (Linear, Tensor, Tensor) {
        let dev = Device::Cpu;
        // class 0 scores 2·x0 − x1, class 1 scores −x0 + x1
        let w = Tensor::new(&[[2f32, -1.], [-1., 1.]], &dev).unwrap();
        let x = Tensor::new(&[[0.5f32, 0.5]], &dev).unwrap();
        let y = Tensor::new(&[0u32], &dev).unwrap();
        (Linear(w), x, y)
    }

    #[test]
    fn fgsm_on_a_tiny_linear_model_matches_the_hand_computed_step() {
        // dL/dx = W (softmax − onehot) = W·[p0 − 1, p1]; p0 > 1/2 here, and
        // row 0: 2(p0−1) − p1 = −3 p1 < 0, row 1: −(p0−1) + p1 = 2 p1 > 0, so sign = [−1, +1]:
        // x' = [0.5 − 0.1, 0.5 + 0.1].
        let (m, x, y) = tiny();
        let adv = fgsm(&m, &x, &y, 0.1).unwrap().to_vec2::<f32>().unwrap();
        assert!(
            (adv[0][0] - 0.4).abs() < 1e-6 && (adv[0][1] - 0.6).abs() < 1e-6,
            "{adv:?}"
        );
    }

    #[test]
    fn fgsm_clips_to_the_image_range() {
        let (m, _, y) = tiny();
        let x = Tensor::new(&[[0.05f32, 0.97]], &Device::Cpu).unwrap();
        let adv = fgsm(&m, &x, &y, 0.1).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(adv[0], vec![0.0, 1.0]);
    }

    #[test]
    fn pgd_stays_in_the_eps_ball_and_image_range() {
        let (m, _, _) = tiny();
        let dev = Device::Cpu;
        let x = Tensor::new(&[[0.02f32, 0.5], [0.99, 0.3], [0.5, 0.5]], &dev).unwrap();
        let y = Tensor::new(&[0u32, 1, 0], &dev).unwrap();
        let mut rng = StdRng::seed_from_u64(3);
        let p = Pgd {
            eps: 0.1,
            steps: 7,
            step_size: 0.04,
        };
        let adv = pgd(&m, &x, &y, p, &mut rng).unwrap();
        let d = (adv.clone() - &x)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d <= 0.1 + 1e-6, "left the eps ball: {d}");
        let v = adv.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(v.iter().all(|&a| (0.0..=1.0).contains(&a)), "{v:?}");
    }

    #[test]
    fn zero_gradient_is_detected_per_example() {
        let g = Tensor::new(&[[0f32, 0.], [0., 1e-9]], &Device::Cpu).unwrap();
        assert_eq!(zero_gradients(&g).unwrap(), vec![true, false]);
    }
}
