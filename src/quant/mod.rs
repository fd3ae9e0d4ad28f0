//! Quantization: bitwidths and policies, fake-quantizers with a straight-through estimator
//! (integer grids, and minifloat formats such as fp8), and activation clips from observed values.

mod bits;
mod calib;
mod fake;
mod minifloat;
mod quantizer;
mod signed;

pub use bits::{Bits, LayerBits, Policy, PolicyFile, PolicyFileLayer};
pub use calib::{calibrate_layer, ClipMethod, LayerClips};
pub use fake::{
    fake_quant_act, fake_quant_weight, quantize_act_values, quantize_weight_values, weight_codes,
    ActGrid,
};
pub use minifloat::{
    fake_quant_minifloat, fake_quant_minifloat_scaled, quantize_minifloat_scaled, Minifloat,
    MinifloatError, Specials,
};
pub use quantizer::{Clips, LayerQuant, Quantizer};
pub use signed::{
    calibrate_layer_signed, fake_quant_act_signed, quantize_act_signed_values, signed_levels,
};
use std::path::PathBuf;

/// Errors from parsing bitwidths and policies.
#[derive(Debug, thiserror::Error)]
pub enum QuantError {
    #[error("bitwidth must be 1..=8 or 32 (full precision), got {value}")]
    BitsOutOfRange { value: i64 },
    #[error("bitwidth must be a whole number, got \"{text}\"")]
    BitsNotANumber { text: String },
    #[error("policy layer {index}: expected W/A (e.g. 4/8), got \"{text}\"")]
    MalformedLayer { index: usize, text: String },
    #[error("policy layer {index}: \"{text}\" has no {operand} bitwidth ({field}): expected W/A, e.g. 4/8")]
    MissingBits {
        index: usize,
        text: String,
        operand: &'static str,
        field: &'static str,
    },
    #[error("policy layer {index}: {source}")]
    InLayer {
        index: usize,
        source: Box<QuantError>,
    },
    #[error("policy has {got} layers but model {model} has {expected} quantizable layers")]
    LengthMismatch {
        model: String,
        expected: usize,
        got: usize,
    },
    #[error("policy is for model \"{got}\", expected \"{expected}\"")]
    ModelMismatch { expected: String, got: String },
    #[error("policy layers [{got}] do not match the model's layers [{expected}]")]
    NamesMismatch { expected: String, got: String },
    #[error(
        "policy layer {index} is named \"{got}\", the model's layer {index} is \"{expected}\""
    )]
    NameMismatch {
        index: usize,
        expected: String,
        got: String,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a valid policy file: {source}", path.display())]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
}
