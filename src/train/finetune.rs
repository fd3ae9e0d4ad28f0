//! Quantization-aware fine-tune of a policy with the Lipschitz penalty: from a copy of the FP32
//! baseline, AdamW on `CE(f_q(x), y) + beta/2 · Σ_l ||W_l W_lᵀ − I||_F²` for a fixed number of
//! seeded steps, through the straight-through fake-quantizers.

use candle_core::Device;
use candle_nn::{Optimizer, ParamsAdamW};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use super::adamw::FusedAdamW;
use super::fp32::progress_bar;
use super::penalty::orthogonality_penalty;
use super::TrainError;
use crate::data::Split;
use crate::model::Model;
use crate::quant::Quantizer;

/// The validated `[finetune]` table of an experiment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FinetuneConfig {
    pub steps: usize,
    pub batch: usize,
    pub lr: f64,
    pub weight_decay: f64,
    /// Weight of the Lipschitz penalty (0 = plain quantization-aware training).
    pub beta: f64,
    pub seed: u64,
    /// How the learning rate moves over the steps. Left out of the serialized form when
    /// constant, so the score cache's keys of experiments without a schedule stay as they were.
    #[serde(skip_serializing_if = "LrSchedule::is_constant")]
    pub schedule: LrSchedule,
}

/// The fine-tune's learning rate over its steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// `lr` at every step.
    #[default]
    Constant,
    /// `lr · (1 + cos(π t / steps)) / 2` at step t: large steps first, for the narrow widths
    /// whose quantization moved the model far, then small ones, so a wide policy's converged
    /// weights end near where they started instead of a random walk of `lr`-sized Adam steps
    /// away.
    Cosine,
}

impl LrSchedule {
    pub fn is_constant(&self) -> bool {
        *self == LrSchedule::Constant
    }

    /// The rate at step `t` of `steps`.
    pub fn at(self, lr: f64, t: usize, steps: usize) -> f64 {
        match self {
            LrSchedule::Constant => lr,
            LrSchedule::Cosine => {
                let x = t as f64 / steps.max(1) as f64;
                lr * 0.5 * (1.0 + (std::f64::consts::PI * x).cos())
            }
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct FinetuneReport {
    pub steps: usize,
    /// Mean cross-entropy over the last 10% of steps.
    pub final_loss: f32,
    /// Σ_l ||W_l W_lᵀ − I||_F² before and after.
    pub penalty_before: f32,
    pub penalty_after: f32,
    pub seconds: f64,
}

/// Fine-tunes a copy of `base` under the quantizer `q`; `base` is left untouched.
/// A non-finite loss stops with `TrainError::FinetuneDiverged`; the caller decides what to do.
pub fn finetune(
    base: &Model,
    train: &Split,
    q: &Quantizer,
    cfg: &FinetuneConfig,
    show: bool,
) -> Result<(Model, FinetuneReport), TrainError> {
    let start = std::time::Instant::now();
    let model = base.deep_clone()?;
    let penalty = |m: &Model| -> Result<f32, TrainError> {
        Ok(orthogonality_penalty(&m.weights()?)?.to_scalar::<f32>()?)
    };
    let penalty_before = penalty(&model)?;
    let params = ParamsAdamW {
        lr: cfg.lr,
        weight_decay: cfg.weight_decay,
        ..ParamsAdamW::default()
    };
    let mut opt = FusedAdamW::new(model.vars(), params)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.seed);
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut cursor = order.len();
    let tail = (cfg.steps / 10).max(1);
    let mut tail_loss = Vec::with_capacity(tail);
    let bar = progress_bar(
        cfg.steps as u64,
        show,
        "finetune {bar:30} {pos}/{len} steps  [{elapsed} < {eta}]",
    );
    for step in 0..cfg.steps {
        opt.set_learning_rate(cfg.schedule.at(cfg.lr, step, cfg.steps));
        if cursor + cfg.batch > order.len() {
            order.shuffle(&mut rng);
            cursor = 0;
        }
        let idx = &order[cursor..(cursor + cfg.batch).min(order.len())];
        cursor += cfg.batch;
        let (x, y) = train.batch(idx, &Device::Cpu)?;
        let ce = candle_nn::loss::cross_entropy(&model.forward(&x, Some(q))?, &y)?;
        let loss = if cfg.beta > 0.0 {
            (&ce + (orthogonality_penalty(&model.weights()?)? * (cfg.beta / 2.0))?)?
        } else {
            ce.clone()
        };
        let value = loss.to_scalar::<f32>()?;
        if !value.is_finite() {
            return Err(TrainError::FinetuneDiverged { step, loss: value });
        }
        opt.backward_step(&loss)?;
        if step + tail >= cfg.steps {
            tail_loss.push(ce.to_scalar::<f32>()?);
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let final_loss = tail_loss.iter().sum::<f32>() / tail_loss.len().max(1) as f32;
    let report = FinetuneReport {
        steps: cfg.steps,
        final_loss,
        penalty_before,
        penalty_after: penalty(&model)?,
        seconds: start.elapsed().as_secs_f64(),
    };
    Ok((model, report))
}

#[cfg(test)]
mod tests {
    use super::LrSchedule;

    /// Cosine starts at the rate, halves it midway, falls every step and never reaches zero
    /// inside the run; constant is the rate throughout.
    #[test]
    fn cosine_falls_from_the_rate_to_near_zero() {
        let at = |t| LrSchedule::Cosine.at(1e-3, t, 200);
        assert_eq!(at(0), 1e-3);
        assert!((at(100) - 5e-4).abs() < 1e-12);
        assert!((1..200).all(|t| at(t) < at(t - 1)));
        assert!(at(199) > 0.0 && at(199) < 1e-6);
        assert!((0..200).all(|t| LrSchedule::Constant.at(1e-3, t, 200) == 1e-3));
    }
}
