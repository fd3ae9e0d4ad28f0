//! `Format`: the number format of one quantized operand — an integer width (`int1`..`int16`), a
//! minifloat (`fp16`, `bf16`, `fp8e4m3`, `fp8e5m2`), group-wise int4 for weights (`int4g32`,
//! `int4g128`) or full precision — with its string form and its file forms.
//!
//! Integer formats are written as plain numbers (`8`, `32` = full precision) in every string
//! and file, so files written before formats existed read unchanged; the others by name.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Minifloat, QuantError};

/// A checked format, stored as one byte: 1..=16 are the integer widths, 32 is full precision,
/// and the named formats take codes above 32. Ordered by width, then integers before group-wise
/// integers before minifloats (then by code), full precision last: integers keep the order of
/// their widths, and a search space's formats run from narrowest to widest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "FormatRepr", into = "FormatRepr")]
pub struct Format(u8);

impl Format {
    /// The sort key: (width, class, code), full precision above every width.
    fn rank(self) -> (u8, u8, u8) {
        let class = match self.kind() {
            Kind::Int(_) => 0,
            Kind::GroupInt { .. } => 1,
            Kind::Float(_) => 2,
            Kind::Full => 3,
        };
        let width = if self.is_full() {
            u8::MAX
        } else {
            self.width()
        };
        (width, class, self.0)
    }
}

impl Ord for Format {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.rank().cmp(&other.rank())
    }
}

impl PartialOrd for Format {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// What a format computes with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// Not quantized.
    Full,
    /// A uniform integer grid of this many bits (per output channel for weights, over the
    /// calibrated clip for activations).
    Int(u8),
    /// A minifloat, scaled so the tensor's (or channel's) largest magnitude meets its largest
    /// finite value.
    Float(Minifloat),
    /// Symmetric integers of `bits` with one scale per `group` consecutive inputs of an output
    /// channel (weights only).
    GroupInt { bits: u8, group: usize },
}

/// One of a layer's two quantized operands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operand {
    Weight,
    Activation,
}

impl Operand {
    /// Step `t` of a layer's walk: even steps are weights.
    pub fn of_step(t: usize) -> Operand {
        if t.is_multiple_of(2) {
            Operand::Weight
        } else {
            Operand::Activation
        }
    }

    /// 0 for the weight, 1 for the activation: the position in per-operand pairs.
    pub fn index(self) -> usize {
        self as usize
    }
}

const FP16: u8 = 64;
const BF16: u8 = 65;
const FP8_E4M3: u8 = 66;
const FP8_E5M2: u8 = 67;
const INT4_G32: u8 = 68;
const INT4_G128: u8 = 69;

/// The named formats and their codes, in the order error messages list them.
const NAMED: [(&str, u8); 6] = [
    ("fp16", FP16),
    ("bf16", BF16),
    ("fp8e4m3", FP8_E4M3),
    ("fp8e5m2", FP8_E5M2),
    ("int4g32", INT4_G32),
    ("int4g128", INT4_G128),
];

impl Format {
    /// The value that stands for "not quantized" in every file and string form.
    pub const FULL_VALUE: u8 = 32;
    pub const FULL: Format = Format(Self::FULL_VALUE);
    pub const FP16: Format = Format(FP16);
    pub const BF16: Format = Format(BF16);
    pub const FP8_E4M3: Format = Format(FP8_E4M3);
    pub const FP8_E5M2: Format = Format(FP8_E5M2);
    pub const INT4_G32: Format = Format(INT4_G32);
    pub const INT4_G128: Format = Format(INT4_G128);
    /// The narrowest and widest integer widths the default search space and the profiles'
    /// per-width tables span (and the widest integer a weight takes).
    pub const MIN: u8 = 1;
    pub const MAX: u8 = 8;
    /// The widest integer format (activations only).
    pub const MAX_INT: u8 = 16;

    /// The integer format of `value` bits (1..=16), or full precision (32).
    pub fn new(value: u8) -> Result<Self, QuantError> {
        if (Self::MIN..=Self::MAX_INT).contains(&value) || value == Self::FULL_VALUE {
            Ok(Format(value))
        } else {
            Err(QuantError::BitsOutOfRange {
                value: value as i64,
            })
        }
    }

    pub fn is_full(self) -> bool {
        self.0 == Self::FULL_VALUE
    }

    /// The integer width, for an integer format (not full precision, not a named format).
    pub fn int_bits(self) -> Option<u8> {
        (self.0 <= Self::MAX_INT).then_some(self.0)
    }

    /// An integer format or full precision: what every file held before named formats.
    pub fn is_plain(self) -> bool {
        self.0 <= Self::MAX_INT || self.is_full()
    }

    /// The bits one value occupies in memory: the width of an integer, 16 or 8 for a
    /// minifloat, 4 for group-wise int4 (its scales aside), 32 at full precision.
    pub fn width(self) -> u8 {
        match self.kind() {
            Kind::Full => Self::FULL_VALUE,
            Kind::Int(b) | Kind::GroupInt { bits: b, .. } => b,
            Kind::Float(m) => m.bits() as u8,
        }
    }

    pub fn kind(self) -> Kind {
        match self.0 {
            b if b <= Self::MAX_INT => Kind::Int(b),
            FP16 => Kind::Float(Minifloat::FP16),
            BF16 => Kind::Float(Minifloat::BF16),
            FP8_E4M3 => Kind::Float(Minifloat::FP8_E4M3FN),
            FP8_E5M2 => Kind::Float(Minifloat::FP8_E5M2),
            INT4_G32 => Kind::GroupInt { bits: 4, group: 32 },
            INT4_G128 => Kind::GroupInt {
                bits: 4,
                group: 128,
            },
            _ => Kind::Full,
        }
    }

    /// Whether `operand` may take this format: group-wise int4 is for weights only, and
    /// weights take integers up to 8 bits.
    pub fn allowed_for(self, operand: Operand) -> bool {
        match (self.kind(), operand) {
            (Kind::GroupInt { .. }, Operand::Activation) => false,
            (Kind::Int(b), Operand::Weight) => b <= Self::MAX,
            _ => true,
        }
    }

    /// The stored byte: the width of an integer format, 32 for full precision, a code above
    /// 32 for a named one. Stable across versions: hashes of policies (their fine-tune seeds)
    /// are built from it.
    pub fn code(self) -> u8 {
        self.0
    }

    /// Whether this format represents every value `other` can, so that running `other` as
    /// this one loses nothing: full precision holds every format, a wider integer a narrower
    /// one, fp16 and bf16 either fp8 (their exponent and mantissa fields are at least as wide),
    /// and every format itself. Formats of different kinds otherwise hold neither way.
    pub fn holds(self, other: Format) -> bool {
        match (self.kind(), other.kind()) {
            _ if self == other => true,
            (Kind::Full, _) => true,
            (Kind::Int(a), Kind::Int(b)) => a >= b,
            (Kind::Float(a), Kind::Float(b)) => a.holds(b),
            _ => false,
        }
    }

    /// The name: `int8`, `fp8e4m3`, `fp32` for full precision.
    pub fn name(self) -> String {
        match NAMED.iter().find(|(_, c)| *c == self.0) {
            Some((n, _)) => n.to_string(),
            None if self.is_full() => "fp32".into(),
            None => format!("int{}", self.0),
        }
    }
}

/// Integers and full precision as their number (`8`, `32`), the others by name.
impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.is_plain() {
            true => write!(f, "{}", self.0),
            false => f.write_str(&self.name()),
        }
    }
}

/// A number (`8`, `32`), `intN`, `fp32`, or a named format; case-insensitive.
impl std::str::FromStr for Format {
    type Err = QuantError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim().to_ascii_lowercase();
        if let Some((_, code)) = NAMED.iter().find(|(n, _)| *n == text) {
            return Ok(Format(*code));
        }
        if text == "fp32" {
            return Ok(Format::FULL);
        }
        let digits = text.strip_prefix("int").unwrap_or(&text);
        let v: i64 = digits.parse().map_err(|_| QuantError::BitsNotANumber {
            text: s.to_string(),
        })?;
        match u8::try_from(v) {
            Ok(32) if text.starts_with("int") => Err(QuantError::BitsOutOfRange { value: v }),
            Ok(b) => Format::new(b),
            Err(_) => Err(QuantError::BitsOutOfRange { value: v }),
        }
    }
}

/// The serde form: a number for an integer format or full precision, a name for the others.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum FormatRepr {
    Number(i64),
    Name(String),
}

impl TryFrom<FormatRepr> for Format {
    type Error = QuantError;
    fn try_from(repr: FormatRepr) -> Result<Self, Self::Error> {
        match repr {
            FormatRepr::Number(v) => u8::try_from(v)
                .map_err(|_| QuantError::BitsOutOfRange { value: v })
                .and_then(Format::new),
            FormatRepr::Name(n) => n.parse(),
        }
    }
}

impl From<Format> for FormatRepr {
    fn from(f: Format) -> FormatRepr {
        match f.is_plain() {
            true => FormatRepr::Number(f.0 as i64),
            false => FormatRepr::Name(f.name()),
        }
    }
}

/// Every format name `FromStr` accepts, for error messages and help.
pub const FORMAT_NAMES: &str =
    "1..16 or int1..int16 (integers), 32 or fp32 (unquantized), fp16, bf16, fp8e4m3, fp8e5m2, int4g32, int4g128";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_prints_and_parses_back() {
        let mut all: Vec<Format> = (1..=16).map(|b| Format::new(b).unwrap()).collect();
        all.extend(NAMED.iter().map(|&(_, c)| Format(c)));
        all.push(Format::FULL);
        for f in all {
            assert_eq!(f.to_string().parse::<Format>().unwrap(), f, "{f}");
            assert_eq!(f.name().parse::<Format>().unwrap(), f, "{f}");
            let json = serde_json::to_string(&f).unwrap();
            assert_eq!(serde_json::from_str::<Format>(&json).unwrap(), f, "{json}");
        }
        assert_eq!(
            Format::new(8).unwrap().to_string(),
            "8",
            "integers stay numbers"
        );
        assert_eq!(serde_json::to_string(&Format::FULL).unwrap(), "32");
        assert_eq!(
            serde_json::to_string(&Format::FP8_E4M3).unwrap(),
            "\"fp8e4m3\""
        );
        assert_eq!(" INT8 ".parse::<Format>().unwrap(), Format::new(8).unwrap());
    }

    #[test]
    fn widths_and_kinds() {
        let w = |t: &str| t.parse::<Format>().unwrap().width();
        assert_eq!(
            [
                w("4"),
                w("int16"),
                w("fp16"),
                w("bf16"),
                w("fp8e5m2"),
                w("int4g128"),
                w("32")
            ],
            [4, 16, 16, 16, 8, 4, 32]
        );
        assert_eq!(Format::new(8).unwrap().int_bits(), Some(8));
        assert_eq!(Format::FP8_E4M3.int_bits(), None);
        assert_eq!(Format::FULL.int_bits(), None);
        assert_eq!(
            Format::INT4_G32.kind(),
            Kind::GroupInt { bits: 4, group: 32 }
        );
    }

    #[test]
    fn formats_order_by_width_and_hold_narrower_ones_of_their_kind() {
        let f = |t: &str| t.parse::<Format>().unwrap();
        let mut v = [
            f("fp16"),
            f("32"),
            f("fp8e4m3"),
            f("8"),
            f("int4g32"),
            f("4"),
            f("16"),
        ];
        v.sort();
        let names: Vec<String> = v.iter().map(|x| x.name()).collect();
        assert_eq!(
            names,
            ["int4", "int4g32", "int8", "fp8e4m3", "int16", "fp16", "fp32"]
        );
        assert!(
            f("2") < f("8") && f("8") < f("32"),
            "integers keep their order"
        );
        assert!(f("fp16").holds(f("fp8e4m3")) && f("bf16").holds(f("fp8e5m2")));
        assert!(!f("fp16").holds(f("bf16")) && !f("bf16").holds(f("fp16")));
        assert!(!f("fp8e4m3").holds(f("fp8e5m2")) && !f("fp8e5m2").holds(f("fp8e4m3")));
        assert!(f("8").holds(f("4")) && !f("fp16").holds(f("8")) && f("32").holds(f("int4g32")));
    }

    #[test]
    fn operands_take_their_own_formats() {
        let f = |t: &str| t.parse::<Format>().unwrap();
        assert!(f("int4g32").allowed_for(Operand::Weight));
        assert!(!f("int4g32").allowed_for(Operand::Activation));
        assert!(f("int16").allowed_for(Operand::Activation));
        assert!(!f("int16").allowed_for(Operand::Weight));
        assert!(f("fp8e4m3").allowed_for(Operand::Weight) && f("32").allowed_for(Operand::Weight));
    }

    #[test]
    fn bad_formats_are_refused_by_value() {
        for bad in ["0", "17", "int32", "-1", "300", "fp8", "int", "e4m3"] {
            assert!(bad.parse::<Format>().is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<Format>("9000").is_err());
        assert!(serde_json::from_str::<Format>("\"fp4\"").is_err());
    }
}
