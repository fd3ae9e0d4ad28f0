//! Activation-clip calibration of a model: run the FP32 model on a calibration batch of training
//! examples and choose every quantized layer's input clip per bitwidth (`quant::calibrate_layer`),
//! and an attention matmul's second operand's too. It sits above `model`, `data` and `quant`,
//! which it joins; none of them depends on it.

use candle_core::{Device, Tensor};
use serde::Serialize;

use crate::data::{DataError, Split};
use crate::model::{Attention, Model, ModelError};
use crate::quant::{calibrate_layer, calibrate_layer_signed, ClipMethod, Clips};

/// The validated `[quant]` table of an experiment: how activation clips are calibrated, and
/// whether a transformer's attention matmuls are quantized layers (`model::Attention`).
#[derive(Debug, Clone, Serialize)]
pub struct QuantConfig {
    pub act_clip: ClipMethod,
    /// Training examples in the calibration batch.
    pub calibration: usize,
    /// Absent from the JSON when float, so the score caches of every other experiment keep
    /// their keys (`search::cache`).
    #[serde(skip_serializing_if = "Attention::is_float")]
    pub attention: Attention,
}

#[derive(Debug, thiserror::Error)]
pub enum CalibError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// Calibrates every layer's clips on the first `cfg.calibration` examples of `train`.
pub fn calibrate(cfg: &QuantConfig, train: &Split, model: &Model) -> Result<Clips, CalibError> {
    let (x, _) = train.first(cfg.calibration, &Device::Cpu)?;
    Ok(calibrate_model(model, &x, cfg.act_clip)?)
}

/// Runs the FP32 model on the calibration batch `x` and calibrates every layer's input clip
/// (on the signed grid for a layer with signed inputs), and a matmul's second operand's (K or
/// V: always the signed grid). Each layer is calibrated as the pass reaches it, so only one
/// layer's activations are copied out at a time.
pub fn calibrate_model(model: &Model, x: &Tensor, method: ClipMethod) -> Result<Clips, ModelError> {
    let signed = model.signed_inputs();
    let values = |t: &Tensor| t.flatten_all()?.to_vec1::<f32>();
    let (mut input, mut operand) = (Vec::new(), Vec::new());
    model.forward_layers(x, None, &mut |li, inputs, _| {
        if let Some(t) = inputs.first() {
            let v = values(t)?;
            input.push(match signed.get(li).copied().unwrap_or(false) {
                true => calibrate_layer_signed(&v, method),
                false => calibrate_layer(&v, method),
            });
        }
        operand.push(match inputs.get(1) {
            Some(t) => Some(calibrate_layer_signed(&values(t)?, method)),
            None => None,
        });
        Ok(())
    })?;
    Ok(Clips { input, operand })
}
