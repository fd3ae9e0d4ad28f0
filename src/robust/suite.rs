//! The attack suite: clean accuracy, FGSM per eps, PGD per eps (with restarts), the transfer
//! attack from the FP32 model, the gradient-free Square attack at each PGD radius (on every
//! example, or only on those every gradient attack left standing: the worst case is the same and
//! costs a fraction), the per-example worst case at each radius, and the gradient-masking checks
//! reported next to the numbers.

use candle_core::Tensor;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Serialize;

use super::attack::{
    correct, fgsm_step, input_grad, pgd, pgd_from, pgd_start_noise, zero_gradients, Classifier,
    Pgd, QuantizedModel,
};
use super::breakdown::Breakdown;
use super::masking::{masking_checks, Masking};
use super::square::square;
use super::stage_cost::{Counted, Stage, SuiteCost};
use super::RobustError;
use crate::model::Model;

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
    /// Square-attack queries per example at each PGD eps (0 = not run).
    pub square_queries: usize,
    /// Which examples the Square attack is run on.
    pub square_scope: SquareScope,
    /// The Square attack's initial fraction of pixels per square.
    pub square_p_init: f32,
    pub seed: u64,
}

/// The examples the Square attack runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SquareScope {
    /// Only the examples every gradient attack at the radius left correctly classified: the
    /// worst case is the same as with `All`, at a fraction of the queries (the search's choice).
    Survivors,
    /// Every example, so Square's own accuracy is reported next to PGD's (the DQ study).
    All,
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

/// One Square pass at one radius.
#[derive(Debug, Clone, Serialize)]
pub struct SquareRun {
    pub eps: f32,
    pub queries: usize,
    pub scope: SquareScope,
    /// Examples attacked.
    pub attacked: usize,
    /// Examples every gradient attack at `eps` left correctly classified.
    pub survivors: usize,
    /// Of those survivors, how many the Square attack broke.
    pub broken: usize,
}

/// Which examples the PGD attack runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Coverage {
    /// Every example: each attack's accuracy is its own (eval, the DQ study).
    Full,
    /// Only the examples the clean pass and FGSM at the same radius left standing: the others
    /// are broken already, so the per-example worst case is exactly the same (each example's
    /// random start is drawn as if all were attacked), at a fraction of the gradient passes.
    /// PGD's own accuracy then reads "FGSM, then PGD on what FGSM missed" (the search).
    WorstCase,
}

/// The per-example worst case over every attack at one radius.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EpsWorst {
    pub eps: f32,
    pub worst_case: f64,
    /// Which stage broke each example first (`held` is the worst case as a count).
    pub broken_by: Breakdown,
}

#[derive(Debug, Clone, Serialize)]
pub struct SuiteReport {
    pub examples: usize,
    pub clean: f64,
    pub attacks: Vec<AttackResult>,
    /// The radius the worst case is taken at: the largest PGD eps (the largest FGSM eps without PGD).
    pub headline_eps: f32,
    /// Fraction of examples that the clean pass and every attack at `headline_eps` (FGSM, PGD,
    /// transfer and Square) leave correctly classified: a per-example worst case, never above any
    /// single attack.
    pub worst_case: f64,
    /// The worst case at every radius of `robust_radii`, ascending.
    pub by_eps: Vec<EpsWorst>,
    pub square: Vec<SquareRun>,
    pub masking: Masking,
    /// Seconds and model passes per stage (not part of any file).
    #[serde(skip)]
    pub cost: SuiteCost,
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

/// The suite's transfer examples, crafted on the full-precision `base` (None when `cfg` has no
/// transfer attack): what the search, `eval` and the benchmark attack a quantized model with.
pub fn fp32_transfer(
    base: &Model,
    x: &Tensor,
    y: &Tensor,
    cfg: &AttackConfig,
) -> Result<Option<TransferSet>, RobustError> {
    let fp32 = QuantizedModel {
        model: base,
        q: None,
    };
    Ok(match cfg.transfer {
        true => Some(craft_transfer(&fp32, x, y, cfg)?),
        false => None,
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

/// Per-example hits of every attack run so far, over all examples.
#[derive(Default)]
struct Hits {
    clean: Vec<bool>,
    zero_grad: Vec<bool>,
    per_attack: Vec<(AttackKind, f32, Vec<bool>)>,
}

impl Hits {
    /// Appends one chunk's hits of an attack (the first chunk opens its row).
    fn record(&mut self, kind: AttackKind, eps: f32, hits: Vec<bool>) {
        match (self.per_attack.iter_mut()).find(|(k, e, _)| *k == kind && *e == eps) {
            Some((_, _, v)) => v.extend(hits),
            None => self.per_attack.push((kind, eps, hits)),
        }
    }

    /// Of the chunk whose first example is number `from`, the examples the clean pass and FGSM
    /// at `eps` (when FGSM runs at it) left correctly classified.
    fn standing(&self, eps: f32, from: usize) -> Vec<bool> {
        let mut s = self.clean[from..].to_vec();
        let fgsm = self.per_attack.iter();
        for (_, _, h) in fgsm.filter(|(k, e, _)| *k == AttackKind::Fgsm && *e == eps) {
            and_into(&mut s, &h[from..]);
        }
        s
    }

    /// Examples classified correctly clean and under every attack at `eps`.
    fn survivors(&self, eps: f32) -> Vec<bool> {
        let mut worst = self.clean.clone();
        for (_, _, hits) in self.per_attack.iter().filter(|(_, e, _)| *e == eps) {
            and_into(&mut worst, hits);
        }
        worst
    }
}

/// Runs the whole suite on `target` for the examples (x, y): the gradient attacks (PGD on the
/// examples `coverage` says), then the Square attack at each PGD radius (on every example, or only
/// on those the gradient attacks left standing, as `cfg.square_scope` says).
pub fn run_suite(
    target: &dyn Classifier,
    x: &Tensor,
    y: &Tensor,
    cfg: &AttackConfig,
    transfer: Option<&TransferSet>,
    coverage: Coverage,
) -> Result<SuiteReport, RobustError> {
    let target = Counted::new(target);
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let mut hits = Hits::default();
    let mut cost = SuiteCost::default();
    for (ci, (xc, yc)) in chunks(x, y)?.into_iter().enumerate() {
        cost.time(Stage::CleanGradientFgsm, &target, || {
            clean_and_fgsm(&target, &xc, &yc, cfg, &mut hits)
        })?;
        let n_before = hits.clean.len() - xc.dim(0)?;
        for &eps in &cfg.pgd_eps {
            let standing = match coverage {
                Coverage::Full => vec![true; xc.dim(0)?],
                Coverage::WorstCase => hits.standing(eps, n_before),
            };
            let survived = cost.time(Stage::Pgd, &target, || {
                pgd_restarts(&target, &xc, &yc, cfg, eps, standing, &mut rng)
            })?;
            hits.record(AttackKind::Pgd, eps, survived);
        }
        if let Some(t) = transfer {
            cost.time(Stage::Transfer, &target, || {
                let start = ci * CHUNK;
                for (&eps, adv) in t.eps.iter().zip(&t.adv) {
                    let xa = adv.narrow(0, start, xc.dim(0)?)?;
                    hits.record(AttackKind::Transfer, eps, correct(&target, &xa, &yc)?);
                }
                Ok(())
            })?;
        }
    }
    let mut square_runs = Vec::new();
    let mut square_hits = Vec::new();
    if cfg.square_queries > 0 {
        for eps in robust_radii(cfg) {
            let survivors = hits.survivors(eps);
            let (run, held) = cost.time(Stage::Square, &target, || {
                square_pass(&target, x, y, cfg, eps, &survivors, &mut rng)
            })?;
            if cfg.square_scope == SquareScope::All {
                hits.per_attack
                    .push((AttackKind::Square, eps, held.clone()));
            }
            square_runs.push(run);
            square_hits.push((eps, held));
        }
    }
    let mut report = report(cfg, &hits, square_runs, &square_hits)?;
    report.cost = cost;
    Ok(report)
}

/// The clean pass, then one input gradient at the clean point that serves both the
/// zero-gradient check and FGSM at every radius.
fn clean_and_fgsm(
    target: &dyn Classifier,
    xc: &Tensor,
    yc: &Tensor,
    cfg: &AttackConfig,
    hits: &mut Hits,
) -> Result<(), RobustError> {
    hits.clean.extend(correct(target, xc, yc)?);
    let g = input_grad(target, xc, yc)?;
    hits.zero_grad.extend(zero_gradients(&g)?);
    for &eps in &cfg.fgsm_eps {
        let adv = fgsm_step(xc, &g, eps)?;
        hits.record(AttackKind::Fgsm, eps, correct(target, &adv, yc)?);
    }
    Ok(())
}

/// PGD with restarts at `eps` on the `standing` examples of the chunk: which examples survived
/// every restart (false for those not attacked). Each restart draws its random start for the
/// whole chunk and attacks only the examples every earlier restart left standing, so an
/// example's result does not depend on which others are attacked.
fn pgd_restarts(
    target: &dyn Classifier,
    xc: &Tensor,
    yc: &Tensor,
    cfg: &AttackConfig,
    eps: f32,
    mut standing: Vec<bool>,
    rng: &mut StdRng,
) -> Result<Vec<bool>, RobustError> {
    let p = Pgd {
        eps,
        steps: cfg.pgd_steps,
        step_size: cfg.step_size,
    };
    for _ in 0..cfg.restarts.max(1) {
        let noise = pgd_start_noise(xc, eps, rng)?;
        let picked: Vec<u32> = (0..standing.len() as u32)
            .filter(|&i| standing[i as usize])
            .collect();
        if picked.is_empty() {
            continue;
        }
        let held = if picked.len() == standing.len() {
            correct(target, &pgd_from(target, xc, yc, p, &noise)?, yc)?
        } else {
            let idx = Tensor::new(picked.as_slice(), xc.device())?;
            let (xs, ys) = (xc.index_select(&idx, 0)?, yc.index_select(&idx, 0)?);
            let adv = pgd_from(target, &xs, &ys, p, &noise.index_select(&idx, 0)?)?;
            correct(target, &adv, &ys)?
        };
        for (&i, h) in picked.iter().zip(held) {
            standing[i as usize] = h;
        }
    }
    Ok(standing)
}

/// The Square attack at `eps` on the examples its scope covers. Returns the run's counts and,
/// per example, whether it held (examples not attacked count as held: the gradient attacks
/// already broke them, which the worst case records).
fn square_pass(
    target: &dyn Classifier,
    x: &Tensor,
    y: &Tensor,
    cfg: &AttackConfig,
    eps: f32,
    survivors: &[bool],
    rng: &mut StdRng,
) -> Result<(SquareRun, Vec<bool>), RobustError> {
    let picked: Vec<u32> = (0..survivors.len() as u32)
        .filter(|&i| cfg.square_scope == SquareScope::All || survivors[i as usize])
        .collect();
    let mut held = vec![true; survivors.len()];
    if !picked.is_empty() {
        let idx = Tensor::new(picked.as_slice(), x.device())?;
        let (xs, ys) = (x.index_select(&idx, 0)?, y.index_select(&idx, 0)?);
        let mut ok = Vec::with_capacity(picked.len());
        for (xc, yc) in chunks(&xs, &ys)? {
            let adv = square(
                target,
                &xc,
                &yc,
                eps,
                cfg.square_queries,
                cfg.square_p_init,
                rng,
            )?;
            ok.extend(correct(target, &adv, &yc)?);
        }
        for (&i, h) in picked.iter().zip(ok) {
            held[i as usize] = h;
        }
    }
    let broken = (survivors.iter().zip(&held))
        .filter(|&(&s, &h)| s && !h)
        .count();
    let run = SquareRun {
        eps,
        queries: cfg.square_queries,
        scope: cfg.square_scope,
        attacked: picked.len(),
        survivors: survivors.iter().filter(|&&s| s).count(),
        broken,
    };
    Ok((run, held))
}

/// The report from every attack's hits: per-attack accuracies, the worst case per radius, the
/// masking checks.
fn report(
    cfg: &AttackConfig,
    hits: &Hits,
    square: Vec<SquareRun>,
    square_hits: &[(f32, Vec<bool>)],
) -> Result<SuiteReport, RobustError> {
    let by_eps: Vec<EpsWorst> = robust_radii(cfg)
        .into_iter()
        .map(|eps| {
            // The gradient attacks in the order they ran, then Square (also in `per_attack`
            // when its scope is `All`: taken once, from `square_hits`).
            let mut stages: Vec<(AttackKind, &[bool])> = Vec::new();
            for (k, e, h) in &hits.per_attack {
                if *e == eps && *k != AttackKind::Square {
                    stages.push((*k, h));
                }
            }
            for (_, h) in square_hits.iter().filter(|(e, _)| *e == eps) {
                stages.push((AttackKind::Square, h));
            }
            let broken_by = Breakdown::attribute(eps, &hits.clean, &stages);
            EpsWorst {
                eps,
                worst_case: f64::from(broken_by.held) / hits.clean.len().max(1) as f64,
                broken_by,
            }
        })
        .collect();
    let attacks: Vec<AttackResult> = (hits.per_attack.iter())
        .map(|(kind, eps, h)| AttackResult {
            kind: *kind,
            eps: *eps,
            accuracy: mean(h),
        })
        .collect();
    let examples = hits.clean.len();
    let masking = masking_checks(&attacks, mean(&hits.zero_grad), &square, examples);
    let headline_eps = headline_eps(cfg);
    let worst_case = (by_eps.iter())
        .find(|w| w.eps == headline_eps)
        .map_or(0.0, |w| w.worst_case);
    Ok(SuiteReport {
        examples,
        clean: mean(&hits.clean),
        attacks,
        headline_eps,
        worst_case,
        by_eps,
        square,
        masking,
        cost: SuiteCost::default(),
    })
}

/// The radii a worst case is taken at: every PGD eps (every FGSM eps without PGD), ascending.
pub fn robust_radii(cfg: &AttackConfig) -> Vec<f32> {
    let mut v = if cfg.pgd_eps.is_empty() {
        cfg.fgsm_eps.clone()
    } else {
        cfg.pgd_eps.clone()
    };
    v.sort_by(f32::total_cmp);
    v.dedup();
    v
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
