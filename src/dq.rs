//! The Defensive-Quantization study: for each uniform bitwidth and Lipschitz beta, fine-tune the
//! FP32 baseline, run the attack suite on test examples, and measure error amplification on the
//! same clean/adversarial pairs for every model (PGD examples crafted on the FP32 baseline); and
//! its files, dq.csv and amplification.csv. It is orchestration: it fine-tunes (`train`) and
//! attacks (`robust`), so it sits above both and, like the search, sees the whole `Experiment`.

use std::path::Path;

use serde::Serialize;

use crate::data::{DataError, Dataset};
use crate::experiment::Experiment;
use crate::model::Model;
use crate::quant::{Format, Policy, QuantError};
use crate::robust::{
    amplification, craft_transfer, headline_eps, lipschitz_bound, AttackKind, LayerDistance,
    QuantizedModel, RobustError, SuiteReport,
};
use crate::rundir::{AmplificationRow, DqDir, DqRow, RunDirError};
use crate::score::{Evaluator, ScoreError, Tuned};
use crate::train::{progress_bar, FinetuneConfig, FinetuneReport, TrainError};

#[derive(Debug, thiserror::Error)]
pub enum DqError {
    #[error(transparent)]
    Train(Box<TrainError>),
    #[error(transparent)]
    Robust(Box<RobustError>),
    #[error(transparent)]
    Score(Box<ScoreError>),
    #[error(transparent)]
    RunDir(Box<RunDirError>),
    #[error(transparent)]
    Quant(Box<QuantError>),
    #[error(transparent)]
    Data(Box<DataError>),
    #[error("tensor error: {0}")]
    Tensor(Box<candle_core::Error>),
}

crate::errors::boxed_from!(
    DqError;
    Train: TrainError,
    Robust: RobustError,
    Score: ScoreError,
    RunDir: RunDirError,
    Quant: QuantError,
    Data: DataError,
    Tensor: candle_core::Error
);

#[derive(Debug, Clone, Serialize)]
pub struct DqPoint {
    pub bits: u8,
    pub beta: f64,
    pub suite: SuiteReport,
    /// Product of the fine-tuned weights' spectral norms (full-precision weights).
    pub lipschitz_bound: f64,
    pub finetune: FinetuneReport,
    pub amplification: Vec<LayerDistance>,
}

/// Runs every (bits, beta) of the study; `on_row` sees each row as soon as it is measured.
pub fn run_dq(
    exp: &Experiment,
    data: &Dataset,
    baseline: &Model,
    bits: &[u8],
    betas: &[f64],
    show: bool,
    on_row: &mut dyn FnMut(&DqPoint) -> Result<(), DqError>,
) -> Result<Vec<DqPoint>, DqError> {
    let eval = Evaluator::new(exp, data, baseline)?;
    let suite = eval.test_suite(&exp.attack)?;
    let (x, y) = suite.examples();
    // Amplification is measured on the FP32 model's PGD examples at the first radius, crafted
    // here when the suite has no transfer attack of its own.
    let crafted;
    let transfer = match suite.transfer() {
        Some(t) => t,
        None => {
            let fp32 = QuantizedModel {
                model: baseline,
                q: None,
            };
            crafted = craft_transfer(&fp32, x, y, &exp.attack)?;
            &crafted
        }
    };
    let n_amp = exp.dq.amplification_examples.min(x.dim(0)?);
    let (x_amp, adv_amp) = (x.narrow(0, 0, n_amp)?, transfer.adv[0].narrow(0, 0, n_amp)?);
    let bar = progress_bar(
        (bits.len() * betas.len()) as u64,
        show,
        "dq {bar:30} {pos}/{len}  {msg}  [{elapsed} < {eta}]",
    );
    let mut rows = Vec::new();
    for &b in bits {
        let b = Format::new(b)?;
        let policy = Policy::uniform(baseline.shapes().len(), b);
        for &beta in betas {
            bar.set_message(format!("bits {b}, beta {beta}"));
            let cfg = FinetuneConfig {
                beta,
                steps: exp.dq.steps,
                ..exp.finetune.clone()
            };
            let Tuned {
                model,
                q,
                report: finetune,
            } = eval.finetune_with(&policy, &cfg, false)?;
            let suite = suite.run(&model, Some(&q))?;
            let (_, lipschitz_bound) =
                lipschitz_bound(&model.weights().map_err(TrainError::from)?)?;
            let amplification = amplification(&model, Some(&q), &x_amp, &adv_amp)?;
            let row = DqPoint {
                bits: b.width(),
                beta,
                suite,
                lipschitz_bound,
                finetune,
                amplification,
            };
            on_row(&row)?;
            rows.push(row);
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    Ok(rows)
}

/// dq.csv's attack columns for a suite configuration, in file order, with the attack and
/// radius each reads (see docs/run-directory.md).
pub fn attack_columns(exp: &Experiment) -> Vec<(String, AttackKind, f32)> {
    let a = &exp.attack;
    let mut c: Vec<(String, AttackKind, f32)> = Vec::new();
    c.extend(
        a.fgsm_eps
            .iter()
            .map(|&e| (format!("fgsm_{e}"), AttackKind::Fgsm, e)),
    );
    c.extend(
        a.pgd_eps
            .iter()
            .map(|&e| (format!("pgd_{e}"), AttackKind::Pgd, e)),
    );
    if a.transfer {
        c.extend((a.pgd_eps.iter()).map(|&e| (format!("transfer_{e}"), AttackKind::Transfer, e)));
    }
    if a.square_queries > 0 {
        let e = headline_eps(a);
        c.push((format!("square_{e}"), AttackKind::Square, e));
    }
    c
}

/// A measured point as dq.csv's row; `bits_rise` is the cross-policy check, known only once
/// every point of the study is measured (`rises_as_bits_fall`).
pub fn file_row(exp: &Experiment, p: &DqPoint, bits_rise: bool) -> DqRow {
    let s = &p.suite;
    DqRow {
        bits: p.bits,
        beta: p.beta,
        clean_accuracy: s.clean,
        attacks: (attack_columns(exp).into_iter())
            .map(|(name, kind, eps)| (name, s.accuracy(kind, eps)))
            .collect(),
        worst_case: s.worst_case,
        masking_zero_grad: s.masking.zero_grad_fraction,
        masking_eps_rise: s.masking.eps_rise,
        masking_above_transfer: s.masking.above_transfer,
        masking_bits_rise: bits_rise,
        masking_above_gradient_free: s.masking.above_gradient_free,
        lipschitz_bound: p.lipschitz_bound,
    }
}

/// The cross-policy masking check: for each row, whether its worst-case robust accuracy is
/// above the next wider bitwidth's at the same beta by more than two standard errors of the
/// difference (binomial, over the examples each suite attacked) — robustness that *rises* as bits fall is what
/// gradient masking looks like (docs/reference-protocol.md), so the row is flagged rather than
/// believed.
pub fn rises_as_bits_fall(rows: &[DqPoint]) -> Vec<bool> {
    let se = |p: f64, n: usize| p * (1.0 - p) / n.max(1) as f64;
    rows.iter()
        .map(|r| {
            let wider = rows
                .iter()
                .filter(|o| o.beta == r.beta && o.bits > r.bits)
                .min_by_key(|o| o.bits);
            wider.is_some_and(|o| {
                let (a, b) = (r.suite.worst_case, o.suite.worst_case);
                let n = (r.suite.examples, o.suite.examples);
                a - b > 2.0 * (se(a, n.0) + se(b, n.1)).sqrt()
            })
        })
        .collect()
}

/// Writes dq.csv (with the cross-policy `masking_bits_rise` column) and amplification.csv of
/// the study's `points` into `dir`, through the run-directory format.
pub fn write_dq(dir: &Path, exp: &Experiment, points: &[DqPoint]) -> Result<(), DqError> {
    let rises = rises_as_bits_fall(points);
    let rows: Vec<DqRow> = (points.iter().zip(rises))
        .map(|(p, rise)| file_row(exp, p, rise))
        .collect();
    let amplification: Vec<AmplificationRow> = (points.iter())
        .flat_map(|p| {
            p.amplification.iter().map(|d| AmplificationRow {
                bits: p.bits,
                beta: p.beta,
                layer: d.layer.clone(),
                index: d.index,
                distance: d.distance,
            })
        })
        .collect();
    Ok(DqDir::write(dir, &rows, &amplification)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::robust::Masking;

    fn row(bits: u8, beta: f64, worst_case: f64) -> DqPoint {
        let masking = Masking {
            zero_grad_fraction: 0.0,
            eps_rise: false,
            above_transfer: false,
            gradient_free_gain: 0.0,
            above_gradient_free: false,
        };
        let suite = SuiteReport {
            examples: 500,
            clean: 0.95,
            attacks: Vec::new(),
            headline_eps: 0.1,
            worst_case,
            by_eps: Vec::new(),
            square: Vec::new(),
            masking,
            cost: Default::default(),
        };
        let finetune = FinetuneReport {
            steps: 1,
            final_loss: 0.0,
            penalty_before: 0.0,
            penalty_after: 0.0,
            seconds: 0.0,
        };
        DqPoint {
            bits,
            beta,
            suite,
            lipschitz_bound: 1.0,
            finetune,
            amplification: Vec::new(),
        }
    }

    #[test]
    fn robustness_rising_as_bits_fall_is_flagged_beyond_noise_only() {
        // n = 500: 2-bit 0.75 vs 3-bit 0.36 differs by 0.39, far beyond 2 SE (~0.058): flagged.
        // 3-bit 0.36 vs 4-bit 0.346: 0.014 < 2 SE (~0.061): noise, not flagged. The widest
        // bitwidth of a beta has nothing to compare with; another beta is never compared.
        let rows = [
            row(4, 0.0, 0.346),
            row(3, 0.0, 0.36),
            row(2, 0.0, 0.75),
            row(2, 0.01, 0.1),
            row(8, 0.0, 0.5),
        ];
        assert_eq!(
            rises_as_bits_fall(&rows),
            vec![false, false, true, false, false]
        );
    }
}
