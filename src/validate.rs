//! What every checked file (experiments, hardware profiles, agent files) shares: reading a TOML
//! file into its raw type (`FileError` names the file), one `Rule` per numeric constraint and one
//! `FieldError` that names the file, the field, the rule and the value, so all readers word a
//! broken rule the same way.

use std::fmt::Display;
use std::path::{Path, PathBuf};

/// Why a checked file could not be read into its raw type.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
}

/// The text of `path`.
pub fn read_text(path: &Path) -> Result<String, FileError> {
    std::fs::read_to_string(path).map_err(|source| FileError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// `text` (the contents of `path`) deserialized as TOML; serde's rules (unknown fields, types)
/// apply, TOML's error keeps its line and caret.
pub fn parse_toml<T: serde::de::DeserializeOwned>(text: &str, path: &Path) -> Result<T, FileError> {
    toml::from_str(text).map_err(|e| parse_error(path, e))
}

/// A TOML deserialization error of `path`.
pub fn parse_error(path: &Path, e: toml::de::Error) -> FileError {
    FileError::Parse {
        path: path.to_path_buf(),
        source: Box::new(e),
    }
}

/// A constraint a numeric field can break.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum Rule {
    #[error("must be a finite number")]
    Finite,
    #[error("must be greater than zero")]
    Positive,
    #[error("must not be negative")]
    NonNegative,
    #[error("must be in [0, 1]")]
    Fraction,
    #[error("must not list a value twice")]
    Distinct,
    #[error(
        "becomes part of a directory name, so must be 1 to {NAME_MAX} letters, digits, `.`, `_` \
         or `-`, not starting with `.`"
    )]
    PathName,
    #[error(
        "quantizes a transformer's attention matmuls, so needs a model with attention (the zoo's \
         vit or an imported ViT)"
    )]
    NeedsAttention,
}

/// The longest name that may become part of a path (a run directory is `AGENT-NAME`).
pub const NAME_MAX: usize = 64;

/// A field of a file that breaks a rule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}: field `{field}` {rule}, got {value}", path.display())]
pub struct FieldError {
    pub path: PathBuf,
    pub field: String,
    pub rule: Rule,
    pub value: String,
}

impl FieldError {
    pub fn new(path: &Path, field: &str, rule: Rule, value: impl Display) -> Self {
        FieldError {
            path: path.to_path_buf(),
            field: field.to_string(),
            rule,
            value: value.to_string(),
        }
    }
}

/// A float field (f32 or f64); the error shows the value as the file's type prints it.
pub trait Float: Copy + Display + Into<f64> {}
impl<T: Copy + Display + Into<f64>> Float for T {}

fn check<T: Display>(
    path: &Path,
    field: &str,
    value: T,
    rule: Rule,
    ok: bool,
) -> Result<T, FieldError> {
    if ok {
        Ok(value)
    } else {
        Err(FieldError::new(path, field, rule, value))
    }
}

/// `value` is finite (not NaN or ±inf).
pub fn finite<T: Float>(path: &Path, field: &str, value: T) -> Result<T, FieldError> {
    check(path, field, value, Rule::Finite, value.into().is_finite())
}

/// `value` is finite and > 0.
pub fn positive<T: Float>(path: &Path, field: &str, value: T) -> Result<T, FieldError> {
    finite(path, field, value)?;
    check(path, field, value, Rule::Positive, value.into() > 0.0)
}

/// A count that must be at least one.
pub fn positive_count(path: &Path, field: &str, value: usize) -> Result<usize, FieldError> {
    check(path, field, value, Rule::Positive, value > 0)
}

/// `value` is finite and >= 0.
pub fn non_negative<T: Float>(path: &Path, field: &str, value: T) -> Result<T, FieldError> {
    finite(path, field, value)?;
    check(path, field, value, Rule::NonNegative, value.into() >= 0.0)
}

/// `value` is in [0, 1] (NaN is not).
pub fn fraction<T: Float>(path: &Path, field: &str, value: T) -> Result<T, FieldError> {
    let ok = (0.0..=1.0).contains(&value.into());
    check(path, field, value, Rule::Fraction, ok)
}

/// No value of `values` appears twice (per-radius results are keyed by value).
pub fn distinct<T: Float>(path: &Path, field: &str, values: &[T]) -> Result<(), FieldError> {
    for (i, &v) in values.iter().enumerate() {
        let seen = values[..i].iter().any(|&u| u.into() == v.into());
        check(path, field, v, Rule::Distinct, !seen)?;
    }
    Ok(())
}

/// A name from a file that becomes part of a path (a profile's or experiment's `name`): ASCII
/// letters, digits, `.`, `_` and `-`, 1 to `NAME_MAX` of them, not starting with `.`. So it
/// is one path component (no `/`), never `.` or `..`, never hidden, and holds no character a
/// shell, a Slurm script or a CSV cell would treat specially. The error shows the value quoted
/// and escaped, so a newline or a slash in it is visible.
pub fn path_name<'a>(path: &Path, field: &str, value: &'a str) -> Result<&'a str, FieldError> {
    let ok = (1..=NAME_MAX).contains(&value.len())
        && !value.starts_with('.')
        && (value.bytes()).all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    match ok {
        true => Ok(value),
        false => Err(FieldError::new(
            path,
            field,
            Rule::PathName,
            format!("{value:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule<T>(r: Result<T, FieldError>) -> Option<Rule> {
        r.err().map(|e| e.rule)
    }

    const P: &str = "x.toml";

    #[test]
    fn distinct_names_the_repeated_value() {
        let p = Path::new(P);
        assert!(distinct(p, "f", &[0.1f32, 0.2]).is_ok());
        let e = distinct(p, "f", &[0.1f32, 0.2, 0.1]).unwrap_err();
        assert_eq!(e.rule, Rule::Distinct);
        assert_eq!(
            e.to_string(),
            "x.toml: field `f` must not list a value twice, got 0.1"
        );
    }

    #[test]
    fn finite_rejects_nan_and_infinity() {
        let p = Path::new(P);
        assert_eq!(rule(finite(p, "f", f64::NAN)), Some(Rule::Finite));
        assert_eq!(rule(finite(p, "f", f64::INFINITY)), Some(Rule::Finite));
        assert_eq!(finite(p, "f", -3.0).ok(), Some(-3.0));
    }

    #[test]
    fn positive_rejects_zero_and_below() {
        let p = Path::new(P);
        assert_eq!(rule(positive(p, "f", 0.0)), Some(Rule::Positive));
        assert_eq!(rule(positive(p, "f", f64::INFINITY)), Some(Rule::Finite));
        assert_eq!(rule(positive_count(p, "f", 0)), Some(Rule::Positive));
        assert_eq!(positive(p, "f", 2.5).ok(), Some(2.5));
        assert_eq!(positive_count(p, "f", 1).ok(), Some(1));
    }

    #[test]
    fn non_negative_rejects_below_zero() {
        let p = Path::new(P);
        assert_eq!(rule(non_negative(p, "f", -1e-9)), Some(Rule::NonNegative));
        assert_eq!(rule(non_negative(p, "f", f64::NAN)), Some(Rule::Finite));
        assert_eq!(non_negative(p, "f", 0.0).ok(), Some(0.0));
    }

    #[test]
    fn fraction_rejects_values_outside_0_to_1() {
        let p = Path::new(P);
        assert_eq!(rule(fraction(p, "f", 1.5)), Some(Rule::Fraction));
        assert_eq!(rule(fraction(p, "f", f64::NAN)), Some(Rule::Fraction));
        assert_eq!(fraction(p, "f", 1.0).ok(), Some(1.0));
        assert_eq!(fraction(p, "f", 0.0).ok(), Some(0.0));
    }

    #[test]
    fn path_name_allows_one_plain_path_component_only() {
        let p = Path::new(P);
        for good in [
            "bitfusion",
            "cortex-m7",
            "lenet5_mnist.v2",
            "a",
            &"x".repeat(NAME_MAX),
        ] {
            assert_eq!(path_name(p, "name", good).ok(), Some(good));
        }
        let long = "x".repeat(NAME_MAX + 1);
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "x/../../escaped-run",
            "a/b",
            "a b",
            "a\nb",
            "é",
            "$(id)",
            &long,
        ] {
            assert_eq!(
                rule(path_name(p, "name", bad)),
                Some(Rule::PathName),
                "{bad}"
            );
        }
        let e = path_name(p, "name", "x/../y").unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "x.toml: field `name` becomes part of a directory name, so must be 1 to \
                 {NAME_MAX} letters, digits, `.`, `_` or `-`, not starting with `.`, got \"x/../y\""
            )
        );
    }

    #[test]
    fn the_message_names_file_field_rule_and_value() {
        let e = positive(Path::new("agents/ddpg.toml"), "actor_lr", -0.5).unwrap_err();
        assert_eq!(
            e.to_string(),
            "agents/ddpg.toml: field `actor_lr` must be greater than zero, got -0.5"
        );
        // An f32 field prints as written, not widened to f64 (0.1f32 as f64 is 0.10000000149…).
        let e = fraction(Path::new("e.toml"), "p", 1.1f32).unwrap_err();
        assert!(e.to_string().ends_with("got 1.1"), "{e}");
    }
}
