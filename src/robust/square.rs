//! The Square attack (Andriushchenko et al., ECCV 2020), L∞: a gradient-free, score-based random
//! search. It needs no gradient, so it cannot be fooled by quantizers that hide or distort
//! gradients; accuracy under it below the white-box PGD accuracy is a sign of gradient masking.
//!
//! Start from vertical stripes of ±eps; at each query, every example not yet misclassified
//! gets a random square (side from a halving schedule) re-filled with ±eps per channel, kept
//! only if it lowers the margin `logit_y − max_{j≠y} logit_j`.

use candle_core::Tensor;
use rand::rngs::StdRng;
use rand::Rng;

use super::attack::Classifier;
use super::RobustError;

/// Fraction of pixels per square at query `i` of `n`: `p_init` halved at the reference
/// implementation's checkpoints (10, 50, 200, 500, 1k, 2k, 4k, 6k, 8k of 10k queries).
fn p_schedule(p_init: f32, i: usize, n: usize) -> f32 {
    let it = (i as f64 / n.max(1) as f64 * 10_000.0) as usize;
    let halvings = [10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000]
        .iter()
        .filter(|&&c| it > c)
        .count();
    p_init / (1u32 << halvings) as f32
}

/// Margins `logit_y − max_{j≠y} logit_j` of the rows of `x` (N, C·H·W flattened into `shape`).
fn margins(
    clf: &dyn Classifier,
    x: &[f32],
    shape: (usize, usize, usize),
    y: &[u32],
) -> Result<Vec<f32>, RobustError> {
    let (c, h, w) = shape;
    let n = y.len();
    let t = Tensor::from_slice(x, (n, c, h, w), &candle_core::Device::Cpu)?;
    let logits = clf.logits(&t)?.to_vec2::<f32>()?;
    Ok(logits
        .iter()
        .zip(y)
        .map(|(row, &label)| {
            let other = row
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != label as usize)
                .map(|(_, &v)| v)
                .fold(f32::MIN, f32::max);
            row[label as usize] - other
        })
        .collect())
}

/// Square attack with `queries` queries per example; returns the adversarial batch.
pub fn square(
    clf: &dyn Classifier,
    x: &Tensor,
    y: &Tensor,
    eps: f32,
    queries: usize,
    p_init: f32,
    rng: &mut StdRng,
) -> Result<Tensor, RobustError> {
    let (n, c, h, w) = x.dims4()?;
    let d = c * h * w;
    let clean = x.flatten_all()?.to_vec1::<f32>()?;
    let labels = y.to_vec1::<u32>()?;
    // Stripes: one random sign per (example, channel, column).
    let mut adv = clean.clone();
    for e in 0..n {
        for ch in 0..c {
            for col in 0..w {
                let s = if rng.random::<bool>() { eps } else { -eps };
                for row in 0..h {
                    let i = e * d + ch * h * w + row * w + col;
                    adv[i] = (clean[i] + s).clamp(0.0, 1.0);
                }
            }
        }
    }
    let mut best = margins(clf, &adv, (c, h, w), &labels)?;
    for q in 0..queries {
        let active: Vec<usize> = (0..n).filter(|&e| best[e] > 0.0).collect();
        if active.is_empty() {
            break;
        }
        let p = p_schedule(p_init, q, queries);
        // At most side-1 so a square never covers the whole image (a 1-pixel side then covers
        // one pixel, as on a 1xW input).
        let side = ((p * (h * w) as f32).sqrt().round() as usize).clamp(1, h.min(w).max(2) - 1);
        let mut cand = Vec::with_capacity(active.len() * d);
        for &e in &active {
            let mut x_new = adv[e * d..(e + 1) * d].to_vec();
            let (r0, c0) = (
                rng.random_range(0..=h - side),
                rng.random_range(0..=w - side),
            );
            for ch in 0..c {
                let s = if rng.random::<bool>() { eps } else { -eps };
                for r in r0..r0 + side {
                    for col in c0..c0 + side {
                        let i = ch * h * w + r * w + col;
                        x_new[i] = (clean[e * d + i] + s).clamp(0.0, 1.0);
                    }
                }
            }
            cand.extend(x_new);
        }
        let ys: Vec<u32> = active.iter().map(|&e| labels[e]).collect();
        let m = margins(clf, &cand, (c, h, w), &ys)?;
        for (k, &e) in active.iter().enumerate() {
            if m[k] < best[e] {
                best[e] = m[k];
                adv[e * d..(e + 1) * d].copy_from_slice(&cand[k * d..(k + 1) * d]);
            }
        }
    }
    Ok(Tensor::from_vec(adv, (n, c, h, w), x.device())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use rand::SeedableRng;

    /// logits = [sum(x), 0.5 · 16]: class 0 while the mean pixel exceeds 0.5.
    struct Mean;
    impl Classifier for Mean {
        fn logits(&self, x: &Tensor) -> Result<Tensor, RobustError> {
            let s = x.flatten_from(1)?.sum_keepdim(1)?;
            let half = (s.ones_like()? * 8.0)?;
            Ok(Tensor::cat(&[&s, &half], 1)?)
        }
    }

    #[test]
    fn schedule_halves_at_the_reference_checkpoints() {
        assert_eq!(p_schedule(0.8, 0, 1000), 0.8);
        assert_eq!(p_schedule(0.8, 2, 1000), 0.4); // it = 20 > 10
        assert_eq!(p_schedule(0.8, 999, 1000), 0.8 / 512.0);
    }

    /// Guards `clamp(1, min(h, w) - 1)`, which panicked (min > max) on an input of height or
    /// width 1.
    #[test]
    fn a_one_pixel_high_or_wide_input_is_attacked_without_panic() {
        for shape in [(2, 1, 1, 16), (2, 1, 16, 1), (2, 1, 1, 1)] {
            let x = Tensor::full(0.55f32, shape, &Device::Cpu).unwrap();
            let y = Tensor::new(&[0u32, 0], &Device::Cpu).unwrap();
            let adv = square(&Mean, &x, &y, 0.1, 50, 0.5, &mut StdRng::seed_from_u64(0)).unwrap();
            assert_eq!(adv.dims4().unwrap(), shape);
            let d = (adv - &x).unwrap().abs().unwrap().max_all().unwrap();
            assert!(d.to_scalar::<f32>().unwrap() <= 0.1 + 1e-6);
        }
    }

    #[test]
    fn stays_in_the_ball_and_fools_a_model_without_gradients() {
        // 4x4 images of 0.55: mean 0.55 > 0.5, class 0; eps 0.1 can push the mean to 0.45.
        let x = Tensor::full(0.55f32, (3, 1, 4, 4), &Device::Cpu).unwrap();
        let y = Tensor::new(&[0u32, 0, 0], &Device::Cpu).unwrap();
        let adv = square(&Mean, &x, &y, 0.1, 300, 0.5, &mut StdRng::seed_from_u64(0)).unwrap();
        let d = (adv.clone() - &x)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d <= 0.1 + 1e-6, "{d}");
        let m = margins(
            &Mean,
            &adv.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            (1, 4, 4),
            &[0, 0, 0],
        )
        .unwrap();
        assert!(
            m.iter().all(|&v| v < 0.0),
            "every example misclassified: {m:?}"
        );
    }
}
