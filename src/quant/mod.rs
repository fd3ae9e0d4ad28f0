//! Quantization: bitwidths and policies, fake-quantizers with a straight-through estimator
//! (integer grids, and minifloat formats such as fp8), and activation clips from observed values.

mod bits;
mod calib;
mod fake;
mod format;
mod minifloat;
mod quantizer;
mod signed;

pub use bits::{LayerBits, Policy, PolicyFile, PolicyFileLayer};
pub use calib::{calibrate_layer, ClipMethod, LayerClips};
pub use fake::{
    fake_quant_act, fake_quant_act_float, fake_quant_weight, quantize_act_float_values,
    quantize_act_values, quantize_weight_format, quantize_weight_groups, quantize_weight_values,
    scaled as minifloat_scaled, weight_codes, ActGrid,
};
pub use format::{Format, Kind, Operand, FORMAT_NAMES};
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
    #[error("bitwidth must be 1..=16 or 32 (full precision), got {value}")]
    BitsOutOfRange { value: i64 },
    #[error("unknown format \"{text}\": expected {}", FORMAT_NAMES)]
    BitsNotANumber { text: String },
    #[error("{format} is not a{}", match operand {
        Operand::Weight => " weight format (weights take int1..int8, fp16, bf16, fp8e4m3, fp8e5m2, int4g32, int4g128 or 32)",
        Operand::Activation => "n activation format (activations take int1..int16, fp16, bf16, fp8e4m3, fp8e5m2 or 32)",
    })]
    WrongOperand { format: String, operand: Operand },
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
    #[error("layer {layer}: {field} is {bits}, but its format {format} is {width} bits wide")]
    WidthMismatch {
        layer: String,
        field: &'static str,
        bits: u8,
        format: String,
        width: u8,
    },
    #[error("{}: {source}", path.display())]
    InFile {
        path: PathBuf,
        source: Box<QuantError>,
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
