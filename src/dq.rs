//! The Defensive-Quantization study: for each uniform bitwidth and Lipschitz beta, fine-tune the
//! FP32 baseline, run the attack suite on test examples, and measure error amplification on the
//! same clean/adversarial pairs for every model (PGD examples crafted on the FP32 baseline); and
//! its files, dq.csv and amplification.csv. It is orchestration: it fine-tunes (`train`) and
//! attacks (`robust`), so it sits above both and, like the search, sees the whole `Experiment`.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::data::{DataError, Dataset};
use crate::experiment::Experiment;
use crate::model::Model;
use crate::quant::{Bits, Policy, QuantError};
use crate::robust::{
    amplification, craft_transfer, headline_eps, lipschitz_bound, AttackKind, LayerDistance,
    QuantizedModel, RobustError, SuiteReport,
};
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
    Quant(Box<QuantError>),
    #[error(transparent)]
    Data(Box<DataError>),
    #[error("tensor error: {0}")]
    Tensor(Box<candle_core::Error>),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

crate::errors::boxed_from!(
    DqError;
    Train: TrainError,
    Robust: RobustError,
    Score: ScoreError,
    Quant: QuantError,
    Data: DataError,
    Tensor: candle_core::Error
);

#[derive(Debug, Clone, Serialize)]
pub struct DqRow {
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
    on_row: &mut dyn FnMut(&DqRow) -> Result<(), DqError>,
) -> Result<Vec<DqRow>, DqError> {
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
        let b = Bits::new(b)?;
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
            let row = DqRow {
                bits: b.get(),
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

/// The dq.csv header for a suite configuration (see docs/run-directory.md).
pub fn dq_header(exp: &Experiment) -> Vec<String> {
    let mut h = vec!["bits".to_string(), "beta".into(), "clean_accuracy".into()];
    h.extend(exp.attack.fgsm_eps.iter().map(|e| format!("fgsm_{e}")));
    h.extend(exp.attack.pgd_eps.iter().map(|e| format!("pgd_{e}")));
    if exp.attack.transfer {
        h.extend(exp.attack.pgd_eps.iter().map(|e| format!("transfer_{e}")));
    }
    if exp.attack.square_queries > 0 {
        h.push(format!("square_{}", headline_eps(&exp.attack)));
    }
    h.extend(
        [
            "worst_case",
            "masking_zero_grad",
            "masking_eps_rise",
            "masking_above_transfer",
            "masking_above_gradient_free",
            "lipschitz_bound",
        ]
        .map(String::from),
    );
    h
}

/// One dq.csv record, in `dq_header` order.
pub fn dq_record(exp: &Experiment, row: &DqRow) -> Vec<String> {
    let s = &row.suite;
    let acc = |kind, eps: f32| {
        s.accuracy(kind, eps)
            .map(|a| format!("{a:.4}"))
            .unwrap_or_default()
    };
    let mut r = vec![
        row.bits.to_string(),
        row.beta.to_string(),
        format!("{:.4}", s.clean),
    ];
    r.extend(
        exp.attack
            .fgsm_eps
            .iter()
            .map(|&e| acc(AttackKind::Fgsm, e)),
    );
    r.extend(exp.attack.pgd_eps.iter().map(|&e| acc(AttackKind::Pgd, e)));
    if exp.attack.transfer {
        r.extend(
            exp.attack
                .pgd_eps
                .iter()
                .map(|&e| acc(AttackKind::Transfer, e)),
        );
    }
    if exp.attack.square_queries > 0 {
        r.push(acc(AttackKind::Square, headline_eps(&exp.attack)));
    }
    r.push(format!("{:.4}", s.worst_case));
    r.push(format!("{:.4}", s.masking.zero_grad_fraction));
    r.push(s.masking.eps_rise.to_string());
    r.push(s.masking.above_transfer.to_string());
    r.push(s.masking.above_gradient_free.to_string());
    r.push(format!("{:.6e}", row.lipschitz_bound));
    r
}

/// The cross-policy masking check: for each row, whether its worst-case robust accuracy is
/// above the next wider bitwidth's at the same beta by more than two standard errors of the
/// difference (binomial, `n` examples each) — robustness that *rises* as bits fall is what
/// gradient masking looks like (docs/reference-protocol.md), so the row is flagged rather than
/// believed.
pub fn rises_as_bits_fall(rows: &[DqRow], n: usize) -> Vec<bool> {
    let se = |p: f64| p * (1.0 - p) / n.max(1) as f64;
    rows.iter()
        .map(|r| {
            let wider = rows
                .iter()
                .filter(|o| o.beta == r.beta && o.bits > r.bits)
                .min_by_key(|o| o.bits);
            wider.is_some_and(|o| {
                let (a, b) = (r.suite.worst_case, o.suite.worst_case);
                a - b > 2.0 * (se(a) + se(b)).sqrt()
            })
        })
        .collect()
}

/// Writes dq.csv (with the cross-policy `masking_bits_rise` column last) and amplification.csv.
pub fn write_dq(dir: &Path, exp: &Experiment, rows: &[DqRow]) -> Result<(), DqError> {
    let csv_err = |path: &Path| {
        let path = path.to_path_buf();
        move |e: csv::Error| DqError::Io {
            path: path.clone(),
            source: std::io::Error::other(e),
        }
    };
    let path = dir.join("dq.csv");
    let mut w = csv::Writer::from_path(&path).map_err(csv_err(&path))?;
    let mut header = dq_header(exp);
    header.push("masking_bits_rise".into());
    w.write_record(header).map_err(csv_err(&path))?;
    for (row, rise) in rows
        .iter()
        .zip(rises_as_bits_fall(rows, exp.attack.examples))
    {
        let mut record = dq_record(exp, row);
        record.push(rise.to_string());
        w.write_record(record).map_err(csv_err(&path))?;
    }
    w.flush().map_err(|source| DqError::Io {
        path: path.clone(),
        source,
    })?;
    let path = dir.join("amplification.csv");
    let mut w = csv::Writer::from_path(&path).map_err(csv_err(&path))?;
    w.write_record(["bits", "beta", "layer", "index", "distance"])
        .map_err(csv_err(&path))?;
    for row in rows {
        for d in &row.amplification {
            let rec = [
                row.bits.to_string(),
                row.beta.to_string(),
                d.layer.clone(),
                d.index.to_string(),
                format!("{:.6}", d.distance),
            ];
            w.write_record(rec).map_err(csv_err(&path))?;
        }
    }
    w.flush().map_err(|source| DqError::Io { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::robust::Masking;

    fn row(bits: u8, beta: f64, worst_case: f64) -> DqRow {
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
        DqRow {
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
            rises_as_bits_fall(&rows, 500),
            vec![false, false, true, false, false]
        );
    }
}
