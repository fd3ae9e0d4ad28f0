//! Activation-clip calibration of a model: run the FP32 model on a calibration batch of training
//! examples and choose every quantized layer's input clip per bitwidth (`quant::calibrate_layer`).
//! It sits above `model`, `data` and `quant`, which it joins; none of them depends on it.

use candle_core::{Device, Tensor};
use serde::Serialize;

use crate::data::{DataError, Split};
use crate::model::{Model, ModelError};
use crate::quant::{calibrate_layer, calibrate_layer_signed, ClipMethod, LayerClips};

/// The validated `[quant]` table of an experiment: how activation clips are calibrated.
#[derive(Debug, Clone, Serialize)]
pub struct QuantConfig {
    pub act_clip: ClipMethod,
    /// Training examples in the calibration batch.
    pub calibration: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum CalibError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// Calibrates every layer's clips on the first `cfg.calibration` examples of `train`.
pub fn calibrate(
    cfg: &QuantConfig,
    train: &Split,
    model: &Model,
) -> Result<Vec<LayerClips>, CalibError> {
    let (x, _) = train.first(cfg.calibration, &Device::Cpu)?;
    Ok(calibrate_model(model, &x, cfg.act_clip)?)
}

/// Runs the FP32 model on the calibration batch `x` and calibrates every layer's input clip
/// (on the signed grid for a layer with signed inputs).
pub fn calibrate_model(
    model: &Model,
    x: &Tensor,
    method: ClipMethod,
) -> Result<Vec<LayerClips>, ModelError> {
    let trace = model.forward_trace(x, None)?;
    let signed = model.signed_inputs();
    (trace.inputs.iter().enumerate())
        .map(|(li, t)| {
            let values = t.flatten_all()?.to_vec1::<f32>()?;
            Ok(match signed.get(li).copied().unwrap_or(false) {
                true => calibrate_layer_signed(&values, method),
                false => calibrate_layer(&values, method),
            })
        })
        .collect()
}
