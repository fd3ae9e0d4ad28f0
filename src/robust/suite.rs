//! The attack suite: clean accuracy, FGSM per eps, PGD per eps (with restarts), the transfer
//! attack from the FP32 model, optionally the gradient-free Square attack, the per-example worst case at the headline radius, and the
//! gradient-masking checks reported next to the number.

use candle_core::Tensor;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Serialize;

use super::attack::{correct, fgsm, input_grad, pgd, zero_gradients, Classifier, Pgd};
use super::square::square;
use super::RobustError;

/// Examples attacked at once; bounds memory of the input-gradient passes.
const CHUNK: usize = 250;

/// The validated `[attack]` table of an experiment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttackConfig {
    pub fgsm_eps: Vec<f32>,
    pub pgd_eps: Vec<f32>,
    pub pgd_steps: usize,
    pub step_size: f32,
    pub restarts: usize,
    pub examples: usize,
    pub transfer: bool,
    /// Square-attack queries per example at the headline eps (0 = not run).
    pub square_queries: usize,
    /// The Square attack's initial fraction of pixels per square.
    pub square_p_init: f32,
    pub seed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AttackKind {
    Fgsm,
    Pgd,
    Transfer,
    /// Gradient-free (Square attack).
    Square,
}

#[derive(Debug, Clone, Serialize)]
pub struct AttackResult {
    pub kind: AttackKind,
    pub eps: f32,
    pub accuracy: f64,
}

/// Signs that a white-box number is inflated by gradient masking.
#[derive(Debug, Clone, Serialize)]
pub struct Masking {
    /// Fraction of examples whose input gradient at the clean point is exactly zero.
    pub zero_grad_fraction: f64,
    /// FGSM or PGD accuracy rose as eps grew.
    pub eps_rise: bool,
    /// PGD (white-box) accuracy above the transfer accuracy at the same eps.
    pub above_transfer: bool,
    /// PGD (white-box) accuracy above the gradient-free Square attack's at the same eps.
    pub above_gradient_free: bool,
}

impl Masking {
    pub fn flagged(&self) -> bool {
        self.zero_grad_fraction > 0.0
            || self.eps_rise
            || self.above_transfer
            || self.above_gradient_free
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SuiteReport {
    pub examples: usize,
    pub clean: f64,
    pub attacks: Vec<AttackResult>,
    /// The radius the worst case is taken at: the largest PGD eps (the largest FGSM eps without PGD).
    pub headline_eps: f32,
    /// Fraction of examples that the clean pass and every attack at `headline_eps` (FGSM, PGD and
    /// transfer) leave correctly classified: a per-example worst case, never above any single attack.
    pub worst_case: f64,
    pub masking: Masking,
}

impl SuiteReport {
    pub fn accuracy(&self, kind: AttackKind, eps: f32) -> Option<f64> {
        self.attacks
            .iter()
            .find(|a| a.kind == kind && a.eps == eps)
            .map(|a| a.accuracy)
    }
}

/// Adversarial examples crafted once on a source (the FP32 model), one tensor per PGD eps.
pub struct TransferSet {
    pub eps: Vec<f32>,
    pub adv: Vec<Tensor>,
}

/// Crafts PGD examples on `source` for every PGD eps of the suite.
pub fn craft_transfer(
    source: &dyn Classifier,
    x: &Tensor,
    y: &Tensor,
    cfg: &AttackConfig,
) -> Result<TransferSet, RobustError> {
    let mut rng = StdRng::seed_from_u64(cfg.seed ^ 0x7472_616e);
    let mut adv = Vec::new();
    for &eps in &cfg.pgd_eps {
        let p = Pgd {
            eps,
            steps: cfg.pgd_steps,
            step_size: cfg.step_size,
        };
        let mut parts = Vec::new();
        for (xc, yc) in chunks(x, y)? {
            parts.push(pgd(source, &xc, &yc, p, &mut rng)?);
        }
        adv.push(Tensor::cat(&parts, 0)?);
    }
    Ok(TransferSet {
        eps: cfg.pgd_eps.clone(),
        adv,
    })
}

fn chunks(x: &Tensor, y: &Tensor) -> Result<Vec<(Tensor, Tensor)>, RobustError> {
    let n = x.dim(0)?;
    (0..n)
        .step_by(CHUNK)
        .map(|s| {
            let len = CHUNK.min(n - s);
            Ok((x.narrow(0, s, len)?, y.narrow(0, s, len)?))
        })
        .collect()
}

fn and_into(acc: &mut [bool], other: &[bool]) {
    acc.iter_mut().zip(other).for_each(|(a, &b)| *a &= b);
}

fn mean(v: &[bool]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.iter().filter(|&&b| b).count() as f64 / v.len() as f64
}

/// Runs the whole suite on `target` for the examples (x, y).
pub fn run_suite(
    target: &dyn Classifier,
    x: &Tensor,
    y: &Tensor,
    cfg: &AttackConfig,
    transfer: Option<&TransferSet>,
) -> Result<SuiteReport, RobustError> {
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let (mut clean, mut zero) = (Vec::new(), Vec::new());
    let mut per_attack: Vec<(AttackKind, f32, Vec<bool>)> = Vec::new();
    let mut record = |kind, eps, hits: Vec<bool>, chunk: usize| match per_attack
        .iter_mut()
        .find(|(k, e, _)| *k == kind && *e == eps)
    {
        Some((_, _, v)) if chunk > 0 => v.extend(hits),
        _ => per_attack.push((kind, eps, hits)),
    };
    for (ci, (xc, yc)) in chunks(x, y)?.into_iter().enumerate() {
        clean.extend(correct(target, &xc, &yc)?);
        zero.extend(zero_gradients(&input_grad(target, &xc, &yc)?)?);
        for &eps in &cfg.fgsm_eps {
            record(
                AttackKind::Fgsm,
                eps,
                correct(target, &fgsm(target, &xc, &yc, eps)?, &yc)?,
                ci,
            );
        }
        for &eps in &cfg.pgd_eps {
            let p = Pgd {
                eps,
                steps: cfg.pgd_steps,
                step_size: cfg.step_size,
            };
            let mut survived = vec![true; xc.dim(0)?];
            for _ in 0..cfg.restarts.max(1) {
                and_into(
                    &mut survived,
                    &correct(target, &pgd(target, &xc, &yc, p, &mut rng)?, &yc)?,
                );
            }
            record(AttackKind::Pgd, eps, survived, ci);
        }
        if cfg.square_queries > 0 {
            let eps = headline_eps(cfg);
            let adv = square(
                target,
                &xc,
                &yc,
                eps,
                cfg.square_queries,
                cfg.square_p_init,
                &mut rng,
            )?;
            record(AttackKind::Square, eps, correct(target, &adv, &yc)?, ci);
        }
        if let Some(t) = transfer {
            let start = ci * CHUNK;
            for (&eps, adv) in t.eps.iter().zip(&t.adv) {
                let xa = adv.narrow(0, start, xc.dim(0)?)?;
                record(AttackKind::Transfer, eps, correct(target, &xa, &yc)?, ci);
            }
        }
    }
    let headline_eps = headline_eps(cfg);
    let mut worst = clean.clone();
    for (_, _, hits) in per_attack.iter().filter(|(_, e, _)| *e == headline_eps) {
        and_into(&mut worst, hits);
    }
    let attacks: Vec<AttackResult> = per_attack
        .iter()
        .map(|(kind, eps, hits)| AttackResult {
            kind: *kind,
            eps: *eps,
            accuracy: mean(hits),
        })
        .collect();
    let masking = masking_checks(&attacks, mean(&zero));
    Ok(SuiteReport {
        examples: clean.len(),
        clean: mean(&clean),
        attacks,
        headline_eps,
        worst_case: mean(&worst),
        masking,
    })
}

/// The radius robust accuracy is reported at; the other radii trace the eps curve.
pub fn headline_eps(cfg: &AttackConfig) -> f32 {
    let max = |v: &[f32]| {
        v.iter()
            .copied()
            .fold(None, |m: Option<f32>, e| Some(m.map_or(e, |m| m.max(e))))
    };
    max(&cfg.pgd_eps)
        .or_else(|| max(&cfg.fgsm_eps))
        .unwrap_or(0.0)
}

fn masking_checks(attacks: &[AttackResult], zero_grad_fraction: f64) -> Masking {
    let rises = |kind: AttackKind| {
        let mut v: Vec<&AttackResult> = attacks.iter().filter(|a| a.kind == kind).collect();
        v.sort_by(|a, b| a.eps.total_cmp(&b.eps));
        v.windows(2).any(|w| w[1].accuracy > w[0].accuracy)
    };
    let pgd_above = |other: AttackKind| {
        attacks
            .iter()
            .filter(|a| a.kind == AttackKind::Pgd)
            .any(|p| {
                attacks
                    .iter()
                    .any(|t| t.kind == other && t.eps == p.eps && p.accuracy > t.accuracy)
            })
    };
    Masking {
        zero_grad_fraction,
        eps_rise: rises(AttackKind::Fgsm) || rises(AttackKind::Pgd),
        above_transfer: pgd_above(AttackKind::Transfer),
        above_gradient_free: pgd_above(AttackKind::Square),
    }
}
