//! `HardwareError`: every way a profile, a lookup table, a pricing request or a calibration
//! can fail; each validation rule has its own variant naming the file, the field and the value
//! (the numeric field rules are `crate::validate`'s, in `Field` and `TableField`).

use std::path::PathBuf;

use crate::validate::FieldError;

/// Errors from loading, validating and using device profiles.
#[derive(Debug, thiserror::Error)]
pub enum HardwareError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: does not match the profile schema: {message}", path.display())]
    Syntax { path: PathBuf, message: String },
    #[error(transparent)]
    Field(#[from] FieldError),
    #[error("{}: field `batch` must be at least 1, got {value}", path.display())]
    BatchTooSmall { path: PathBuf, value: i64 },
    #[error("{}: field `{field}` must be a bitwidth in 1..=8, got {value}", path.display())]
    PrecisionOutOfRange {
        path: PathBuf,
        field: String,
        value: i64,
    },
    #[error("{}: field `precisions` must list at least one bitwidth in 1..=8", path.display())]
    NoPrecisions { path: PathBuf },
    #[error("{}: field `precisions` lists {value} twice", path.display())]
    DuplicatePrecision { path: PathBuf, value: i64 },
    #[error("{}: field `{field}` must be {range} or 32 (full precision), got {value}", path.display())]
    ModeBitsOutOfRange {
        path: PathBuf,
        field: String,
        range: &'static str,
        value: i64,
    },
    #[error(
        "{}: field `{field}` must name a format ({}), got `{value}`",
        path.display(), crate::quant::FORMAT_NAMES
    )]
    ModeFormatUnknown {
        path: PathBuf,
        field: String,
        value: String,
    },
    #[error(
        "{}: field `{field}` must be a format a mode computes {operand} in (an integer of \
         {range} bits, fp16, bf16, fp8e4m3, fp8e5m2 or fp32; group-wise int4 runs in an int4 \
         mode), got `{value}`",
        path.display()
    )]
    ModeFormatNotComputed {
        path: PathBuf,
        field: String,
        operand: &'static str,
        range: &'static str,
        value: String,
    },
    #[error(
        "{}: field `{bits_field}` = {bits} disagrees with `{format_field}` = \"{format}\", which \
         is {width} bits wide: give one of them, or both agreeing",
        path.display()
    )]
    ModeFormatWidth {
        path: PathBuf,
        bits_field: String,
        bits: i64,
        format_field: String,
        format: String,
        width: u8,
    },
    #[error(
        "{}: field `{bits}` or `{format}` is needed (the operand's integer width, or its format)",
        path.display()
    )]
    ModeOperandMissing {
        path: PathBuf,
        bits: String,
        format: String,
    },
    #[error(
        "{}: field `compute.modes` needs a mode with w_bits = 32 and a_bits = 32 (or w_format = \
         a_format = \"fp32\"), so that full precision is priced; none found",
        path.display()
    )]
    NoFullPrecisionMode { path: PathBuf },
    #[error("{}: field `sources` must name where at least one number comes from", path.display())]
    NoSources { path: PathBuf },
    #[error("{}: field `table`: {source}", profile.display())]
    InTable {
        profile: PathBuf,
        source: Box<HardwareError>,
    },
    #[error("{}, line {line}: {message}", path.display())]
    TableSyntax {
        path: PathBuf,
        line: u64,
        message: String,
    },
    #[error("{}, line {line}: field `{field}` must be 1..=8 or 32 (full precision), got {value}", path.display())]
    TableBits {
        path: PathBuf,
        line: u64,
        field: String,
        value: i64,
    },
    #[error(
        "{}, line {line}: field `{}` {}, got {}",
        source.path.display(), source.field, source.rule, source.value
    )]
    TableField { line: u64, source: FieldError },
    #[error("{}, line {line}: layer `{layer}` at w={w} a={a} is listed twice", path.display())]
    TableDuplicate {
        path: PathBuf,
        line: u64,
        layer: String,
        w: u8,
        a: u8,
    },
    #[error(
        "{}, line {line}: layer `{layer}` has macs={}, params={} here but macs={}, params={} on \
         its first row (a layer's work is the same on all its rows)",
        path.display(), here.0, here.1, first.0, first.1
    )]
    TableWork {
        path: PathBuf,
        line: u64,
        layer: String,
        first: (u64, u64),
        here: (u64, u64),
    },
    #[error(
        "{}: layer `{layer}` was measured at macs={}, params={} but this model's `{layer}` has \
         macs={}, params={}: the table belongs to another model (recalibrate with `bitsearch \
         profiles calibrate`, or drop the layer's rows)",
        path.display(), table.0, table.1, model.0, model.1
    )]
    TableOtherLayer {
        path: PathBuf,
        layer: String,
        table: (u64, u64),
        model: (u64, u64),
    },
    #[error(
        "{}: lists layer `{layer}` but has no row for w_bits={w} a_bits={a}, which the profile \
         needs (a listed layer must have a row for every (w, a) it is priced at, and for 32/32, \
         the FP32 reference)",
        path.display()
    )]
    TableMissing {
        path: PathBuf,
        layer: String,
        w: u8,
        a: u8,
    },
    #[error(
        "profile `{profile}`: layer `{layer}` asks for {bits} but the profile supports only the \
         integer widths [{supported}] (group-wise int4 where 4 is; full precision, minifloats and \
         9..16-bit activations always)"
    )]
    UnsupportedBits {
        profile: String,
        layer: String,
        bits: String,
        supported: String,
    },
    #[error("profile `{profile}`: no compute mode holds w/a = {bits} (layer `{layer}`)")]
    NoMode {
        profile: String,
        layer: String,
        bits: String,
    },
    #[error(
        "profile `{profile}`: layer `{layer}` at w/a = {bits} is listed in the measured table {}, \
         whose rows hold integer widths 1..=8 and 32 (full precision) only, so it cannot price \
         {} there (drop the layer's rows from the table to price it from the compute model)",
        table.display(), format.name()
    )]
    TableFormat {
        profile: String,
        table: PathBuf,
        layer: String,
        bits: crate::quant::LayerBits,
        format: crate::quant::Format,
    },
    #[error(transparent)]
    Quant(#[from] crate::quant::QuantError),
    #[error("policy has {got} layers but the model has {expected}")]
    PolicyLength { expected: usize, got: usize },
    #[error("no profile named `{name}`: tried {tried}")]
    ProfileNotFound { name: String, tried: String },
    #[error("calibration: {stage}: {source}")]
    Candle {
        stage: String,
        source: candle_core::Error,
    },
    #[error("calibration: {0}")]
    Calibration(String),
    #[error(transparent)]
    Npy(#[from] crate::npy::NpyError),
    #[error("{}: a cycle table's shape {rule}, got {shape}", path.display())]
    CycleTableShape {
        path: PathBuf,
        rule: &'static str,
        shape: String,
    },
    #[error(
        "{}: cycle table entry [{}, {}, {}] (layer {}, w_bits {}, a_bits {}) must be greater \
         than zero, got {value}",
        path.display(), index[0], index[1], index[2], index[0], index[1] + 1, index[2] + 1
    )]
    CycleTableEntry {
        path: PathBuf,
        index: [usize; 3],
        value: i64,
    },
    #[error(
        "{}: the cycle table has {table} layers but the model has {model}: the table was \
         simulated on another model (pick the model it was made for, e.g. `--arch mobilenetv2 \
         --classes 1000` for HAQ's)",
        path.display()
    )]
    CycleTableLayers {
        path: PathBuf,
        table: usize,
        model: usize,
    },
    #[error(
        "{}: the cycle table holds widths 1..={widths} but profile `{profile}` asks for w/a = \
         {bits}: narrow the base profile's `precisions` to the table's",
        path.display()
    )]
    CycleTableWidths {
        path: PathBuf,
        widths: u8,
        profile: String,
        bits: String,
    },
    #[error("{}: cannot write: {message}", path.display())]
    Write { path: PathBuf, message: String },
}
