//! A Gaussian-process surrogate of one objective (accuracy or robust accuracy) over policies
//! encoded as points of [0,1]^d (one coordinate per operand, log2 of its bits scaled to the
//! space's range). The kernel mixes an additive part (per-operand effects, which dominate
//! quantization damage) with a joint one (interactions):
//!
//!   k(x, x') = s² · [ α · (1/d) Σ_i exp(−(x_i − x'_i)² / 2ℓ²) + (1 − α) · exp(−‖x − x'‖² / 2dℓ²) ]
//!
//! plus noise variance η·s² on the diagonal (fine-tunes are noisy). Targets are standardized;
//! s² has a closed-form maximum-likelihood value for given (ℓ, α, η), which are chosen by
//! marginal likelihood over a small fixed grid, so the fit is deterministic and takes no
//! optimizer. Sums run in a fixed order: the same data give the same model bit for bit.

const LENGTHSCALES: [f64; 4] = [0.25, 0.5, 1.0, 2.0];
const ADDITIVE: [f64; 3] = [0.0, 0.5, 1.0];
const NOISE: [f64; 3] = [0.01, 0.05, 0.2];

/// Kernel hyper-parameters (signal variance kept apart, in standardized units).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Hyper {
    pub lengthscale: f64,
    pub additive: f64,
    pub noise: f64,
}

/// A fitted GP: predicts a mean and a standard deviation of the noise-free objective.
pub struct Gp {
    x: Vec<Vec<f64>>,
    hyper: Hyper,
    /// Lower Cholesky factor of C + ηI (unit signal variance).
    chol: Vec<Vec<f64>>,
    /// (C + ηI)⁻¹ y, y standardized.
    alpha: Vec<f64>,
    mean: f64,
    scale: f64,
    signal: f64,
}

fn correlation(a: &[f64], b: &[f64], h: &Hyper) -> f64 {
    let d = a.len().max(1) as f64;
    let two_l2 = 2.0 * h.lengthscale * h.lengthscale;
    let (mut add, mut sq) = (0.0, 0.0);
    for (u, v) in a.iter().zip(b) {
        let r = (u - v) * (u - v);
        add += (-r / two_l2).exp();
        sq += r;
    }
    h.additive * add / d + (1.0 - h.additive) * (-sq / (two_l2 * d)).exp()
}

/// Lower Cholesky factor of a symmetric positive-definite matrix; None if it is not.
fn cholesky(m: &[Vec<f64>]) -> Option<Vec<Vec<f64>>> {
    let n = m.len();
    let mut l = vec![vec![0.0; n]; n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i][k] * l[j][k]).sum();
            if i == j {
                let d = m[i][i] - s;
                if d <= 0.0 || !d.is_finite() {
                    return None;
                }
                l[i][i] = d.sqrt();
            } else {
                l[i][j] = (m[i][j] - s) / l[j][j];
            }
        }
    }
    Some(l)
}

/// Solves L z = b (L lower triangular).
fn forward(l: &[Vec<f64>], b: &[f64]) -> Vec<f64> {
    let mut z = vec![0.0; b.len()];
    for i in 0..b.len() {
        let s: f64 = (0..i).map(|k| l[i][k] * z[k]).sum();
        z[i] = (b[i] - s) / l[i][i];
    }
    z
}

/// Solves Lᵀ z = b.
fn backward(l: &[Vec<f64>], b: &[f64]) -> Vec<f64> {
    let n = b.len();
    let mut z = vec![0.0; n];
    for i in (0..n).rev() {
        let s: f64 = (i + 1..n).map(|k| l[k][i] * z[k]).sum();
        z[i] = (b[i] - s) / l[i][i];
    }
    z
}

impl Gp {
    /// Fits the GP to (x, y) by marginal likelihood over the grid; None without data.
    pub fn fit(x: &[Vec<f64>], y: &[f64]) -> Option<Gp> {
        if x.is_empty() || x.len() != y.len() {
            return None;
        }
        let n = y.len() as f64;
        let mean = y.iter().sum::<f64>() / n;
        let var = y.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        let scale = if var > 1e-12 { var.sqrt() } else { 1.0 };
        let ys: Vec<f64> = y.iter().map(|v| (v - mean) / scale).collect();
        let mut best: Option<(f64, Gp)> = None;
        for &lengthscale in &LENGTHSCALES {
            for &additive in &ADDITIVE {
                for &noise in &NOISE {
                    let hyper = Hyper {
                        lengthscale,
                        additive,
                        noise,
                    };
                    let Some((ll, gp)) = Self::fit_one(x, &ys, hyper, mean, scale) else {
                        continue;
                    };
                    if best.as_ref().is_none_or(|(b, _)| ll > *b) {
                        best = Some((ll, gp));
                    }
                }
            }
        }
        best.map(|(_, gp)| gp)
    }

    /// The GP for fixed hyper-parameters and its profile log marginal likelihood (s² at its
    /// maximum-likelihood value yᵀ(C + ηI)⁻¹y / n).
    fn fit_one(
        x: &[Vec<f64>],
        ys: &[f64],
        hyper: Hyper,
        mean: f64,
        scale: f64,
    ) -> Option<(f64, Gp)> {
        let n = x.len();
        let mut k = vec![vec![0.0; n]; n];
        for i in 0..n {
            for j in 0..=i {
                let c = correlation(&x[i], &x[j], &hyper);
                k[i][j] = c;
                k[j][i] = c;
            }
            k[i][i] += hyper.noise;
        }
        let chol = cholesky(&k)?;
        let alpha = backward(&chol, &forward(&chol, ys));
        let quad: f64 = ys.iter().zip(&alpha).map(|(a, b)| a * b).sum();
        let signal = (quad / n as f64).max(1e-9);
        let log_det: f64 = (0..n).map(|i| chol[i][i].ln()).sum::<f64>() * 2.0;
        let ll = -0.5 * n as f64 * signal.ln() - 0.5 * log_det;
        let gp = Gp {
            x: x.to_vec(),
            hyper,
            chol,
            alpha,
            mean,
            scale,
            signal,
        };
        Some((ll, gp))
    }

    /// Posterior mean and standard deviation of the noise-free objective at `x`.
    pub fn predict(&self, x: &[f64]) -> (f64, f64) {
        let k: Vec<f64> = self
            .x
            .iter()
            .map(|xi| correlation(xi, x, &self.hyper))
            .collect();
        let mu: f64 = k.iter().zip(&self.alpha).map(|(a, b)| a * b).sum();
        let v = forward(&self.chol, &k);
        let var = (1.0 - v.iter().map(|a| a * a).sum::<f64>()).max(0.0) * self.signal;
        (self.mean + self.scale * mu, self.scale * var.sqrt())
    }

    /// Posterior covariance of the noise-free objective at `a` and `b`.
    pub fn covariance(&self, a: &[f64], b: &[f64]) -> f64 {
        let k = |p: &[f64]| -> Vec<f64> {
            let kp: Vec<f64> = self
                .x
                .iter()
                .map(|xi| correlation(xi, p, &self.hyper))
                .collect();
            forward(&self.chol, &kp)
        };
        let (va, vb) = (k(a), k(b));
        let explained: f64 = va.iter().zip(&vb).map(|(u, v)| u * v).sum();
        (correlation(a, b, &self.hyper) - explained) * self.signal * self.scale * self.scale
    }

    /// The fraction of the posterior variance at `target` that one noisy observation at `at`
    /// would remove: cov(target, at)² / (var(target) · (var(at) + noise)), in [0, 1]. With
    /// `at` a cheaper fidelity of the same policy, how much a cheap score tells of the full one.
    pub fn variance_reduction(&self, target: &[f64], at: &[f64]) -> f64 {
        let noise = self.hyper.noise * self.signal * self.scale * self.scale;
        let (vt, va) = (
            self.covariance(target, target),
            self.covariance(at, at) + noise,
        );
        let c = self.covariance(target, at);
        if vt <= 0.0 || va <= 0.0 {
            return 0.0;
        }
        (c * c / (vt * va)).clamp(0.0, 1.0)
    }

    pub fn hyper(&self) -> Hyper {
        self.hyper
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates_an_additive_function_and_is_unsure_far_from_data() {
        // y = x0 + 2 x1 on a 5 x 5 grid minus its centre.
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..5 {
            for j in 0..5 {
                if (i, j) != (2, 2) {
                    let p = vec![i as f64 / 4.0, j as f64 / 4.0];
                    y.push(p[0] + 2.0 * p[1]);
                    x.push(p);
                }
            }
        }
        let gp = Gp::fit(&x, &y).unwrap();
        let (mu, sd) = gp.predict(&[0.5, 0.5]);
        assert!((mu - 1.5).abs() < 0.05, "held-out centre: {mu}");
        let (_, sd_far) = gp.predict(&[3.0, -2.0]);
        assert!(sd_far > 3.0 * sd, "sd near data {sd}, far {sd_far}");
    }

    /// A second input standing for the fidelity: y = x0 + 0.3·z (the low fidelity, z = 0, reads
    /// 0.3 below the full one). Observing the low fidelity of an unseen x0 removes most of the
    /// full fidelity's variance there; observing a far-away x0 removes little.
    #[test]
    fn a_cheap_fidelity_of_the_same_point_tells_most_of_the_full_one() {
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..6 {
            for z in [0.0, 1.0] {
                let p = vec![i as f64 / 10.0, z];
                y.push(p[0] + 0.3 * z);
                x.push(p);
            }
        }
        let gp = Gp::fit(&x, &y).unwrap();
        let (target, same, far) = ([0.9, 1.0], [0.9, 0.0], [0.0, 0.0]);
        let near = gp.variance_reduction(&target, &same);
        assert!(near > 0.5, "same point, low fidelity: {near}");
        assert!(gp.variance_reduction(&target, &far) < near / 2.0);
        let v = gp.covariance(&target, &target);
        let sd = gp.predict(&target).1;
        assert!(
            (v - sd * sd).abs() < 1e-9,
            "covariance agrees with predict: {v} vs {sd}"
        );
    }

    #[test]
    fn constant_data_and_no_data() {
        assert!(Gp::fit(&[], &[]).is_none());
        let gp = Gp::fit(&[vec![0.0], vec![1.0]], &[0.7, 0.7]).unwrap();
        assert!((gp.predict(&[0.5]).0 - 0.7).abs() < 1e-9);
    }
}
