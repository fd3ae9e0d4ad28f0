//! FP32 training (AdamW on cross-entropy, seeded shuffles, per-epoch validation accuracy) and
//! top-1 accuracy of a model, optionally quantized, on a split.

use candle_core::{Device, Tensor};
use candle_nn::{Optimizer, ParamsAdamW};
use indicatif::{ProgressBar, ProgressStyle};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use super::adamw::FusedAdamW;
use super::finetune::LrSchedule;
use super::TrainError;
use crate::data::{Augment, Dataset, Split};
use crate::model::Model;
use crate::quant::Quantizer;

/// Evaluation batch size: large batches amortize per-op overhead. The pass records no gradient
/// (`Model::forward_frozen`), so it holds only the activations still to be read.
const EVAL_BATCH: usize = 500;

/// Mixed into `[train] seed` for the augmentation's generator.
const AUGMENT_STREAM: u64 = 0x0061_7567_6d65_6e74; // "augment"

/// The validated `[train]` table of an experiment: the FP32 baseline's training.
#[derive(Debug, Clone, Serialize)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch: usize,
    pub lr: f64,
    pub weight_decay: f64,
    /// Seed of the per-epoch shuffles.
    pub seed: u64,
    /// How the learning rate moves over all the epochs' steps. Left out of the serialized
    /// form when constant, so the baseline cache's keys of experiments without one stay as
    /// they were.
    #[serde(skip_serializing_if = "LrSchedule::is_constant")]
    pub schedule: LrSchedule,
    /// The training images' random moves; left out of the serialized form when none, as the
    /// schedule is.
    #[serde(default, skip_serializing_if = "Augment::is_none")]
    pub augment: Augment,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochReport {
    pub epoch: usize,
    pub train_loss: f32,
    pub val_accuracy: f64,
    pub seconds: f64,
}

/// A progress bar on stderr, hidden when `show` is false.
pub fn progress_bar(len: u64, show: bool, template: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

/// Trains `model` in place; returns one report per epoch.
pub fn train_fp32(
    model: &Model,
    data: &Dataset,
    cfg: &TrainConfig,
    show: bool,
) -> Result<Vec<EpochReport>, TrainError> {
    let params = ParamsAdamW {
        lr: cfg.lr,
        weight_decay: cfg.weight_decay,
        ..ParamsAdamW::default()
    };
    let mut opt = FusedAdamW::new(model.vars(), params)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.seed);
    // Its own stream, so the shuffles stay the same with augmentation on or off.
    let mut moves = rand::rngs::StdRng::seed_from_u64(cfg.seed ^ AUGMENT_STREAM);
    let mut order: Vec<usize> = (0..data.train.len()).collect();
    let steps_per_epoch = order.len().div_ceil(cfg.batch);
    let total_steps = steps_per_epoch * cfg.epochs;
    let bar = progress_bar(
        (steps_per_epoch * cfg.epochs) as u64,
        show,
        "train {bar:30} {pos}/{len} steps  {msg}  [{elapsed} < {eta}]",
    );
    let mut reports = Vec::with_capacity(cfg.epochs);
    for epoch in 1..=cfg.epochs {
        let start = std::time::Instant::now();
        order.shuffle(&mut rng);
        let mut loss_sum = 0f32;
        for (step, idx) in order.chunks(cfg.batch).enumerate() {
            if !cfg.schedule.is_constant() {
                let t = (epoch - 1) * steps_per_epoch + step;
                opt.set_learning_rate(cfg.schedule.at(cfg.lr, t, total_steps));
            }
            let (x, y) =
                (data.train).augmented_batch(idx, &cfg.augment, &mut moves, &Device::Cpu)?;
            let loss = candle_nn::loss::cross_entropy(&model.forward_train(&x)?, &y)?;
            let value = loss.to_scalar::<f32>()?;
            if !value.is_finite() {
                return Err(TrainError::Diverged {
                    epoch,
                    step,
                    loss: value,
                });
            }
            opt.backward_step(&loss)?;
            loss_sum += value;
            bar.inc(1);
        }
        let val_accuracy = accuracy(model, &data.val, None)?;
        let train_loss = loss_sum / steps_per_epoch as f32;
        bar.set_message(format!(
            "epoch {epoch}: loss {train_loss:.4}, val acc {:.2}%",
            100.0 * val_accuracy
        ));
        // Printed even when the bar is hidden (no terminal), so logs keep the learning curve.
        bar.suspend(|| {
            eprintln!(
                "epoch {epoch:>2}: loss {train_loss:.4}  val accuracy {:.2}%",
                100.0 * val_accuracy
            )
        });
        reports.push(EpochReport {
            epoch,
            train_loss,
            val_accuracy,
            seconds: start.elapsed().as_secs_f64(),
        });
    }
    bar.finish_and_clear();
    Ok(reports)
}

/// Top-1 accuracy in [0, 1] of the model (quantized by `q` if given) on `split`.
pub fn accuracy(model: &Model, split: &Split, q: Option<&Quantizer>) -> Result<f64, TrainError> {
    if split.is_empty() {
        return Ok(0.0);
    }
    let mut correct = 0usize;
    for idx in split.chunks(EVAL_BATCH) {
        let (x, y) = split.batch(&idx, &Device::Cpu)?;
        correct += count_correct(&model.forward_frozen(&x, q)?, &y)?;
    }
    Ok(correct as f64 / split.len() as f64)
}

/// Mean cross-entropy of the model (quantized by `q` if given) on `split`.
pub fn loss(model: &Model, split: &Split, q: Option<&Quantizer>) -> Result<f64, TrainError> {
    let mut total = 0f64;
    for idx in split.chunks(EVAL_BATCH) {
        let (x, y) = split.batch(&idx, &Device::Cpu)?;
        let logits = model.forward_frozen(&x, q)?;
        let l = candle_nn::loss::cross_entropy(&logits, &y)?.to_scalar::<f32>()?;
        total += l as f64 * idx.len() as f64;
    }
    Ok(total / split.len().max(1) as f64)
}

/// How many rows of `logits` have their argmax at the label.
pub(crate) fn count_correct(logits: &Tensor, labels: &Tensor) -> Result<usize, TrainError> {
    let pred = logits.argmax(1)?;
    Ok(pred
        .eq(labels)?
        .to_dtype(candle_core::DType::U32)?
        .sum_all()?
        .to_scalar::<u32>()? as usize)
}
