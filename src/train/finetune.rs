//! Quantization-aware fine-tune of a policy with the Lipschitz penalty: from a copy of the FP32
//! baseline, AdamW on `CE(f_q(x), y) + beta/2 · Σ_l ||W_l W_lᵀ − I||_F²` for a fixed number of
//! seeded steps, through the straight-through fake-quantizers.

use candle_core::Device;
use candle_nn::{Optimizer, ParamsAdamW};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;

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
