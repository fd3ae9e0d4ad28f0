//! `[bits] formats`, `w_formats` and `a_formats`: the number formats a search space offers each
//! operand (`formats = ["int4", "int8", "fp8e4m3", "fp16"]`), checked against what each operand
//! may take.
//!
//! `formats` is both operands' list; `w_formats` / `a_formats` replace it for one operand. From
//! the shared list an operand keeps the formats it may take (weights drop int9..int16,
//! activations group-wise int4); from its own list every entry must be one it takes.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::ExperimentError;
use crate::quant::{Format, Operand};

/// One entry as written: a number (`8`, `32`) or a name (`"fp8e4m3"`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum RawFormat {
    Number(i64),
    Name(String),
}

/// The formats each operand may take, each list ascending (`Format`'s order) and non-empty.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FormatSpace {
    pub weight: Vec<Format>,
    pub activation: Vec<Format>,
}

/// The three lists as written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawFormats {
    pub formats: Option<Vec<RawFormat>>,
    pub w_formats: Option<Vec<RawFormat>>,
    pub a_formats: Option<Vec<RawFormat>>,
}

impl RawFormats {
    pub fn given(&self) -> bool {
        self.formats.is_some() || self.w_formats.is_some() || self.a_formats.is_some()
    }

    /// Rules: every entry reads as a format, none twice in a list; an operand's own list
    /// holds only formats it takes; each operand ends with at least one; with `tie`, both
    /// operands' lists are the same.
    pub fn check(&self, path: &Path, tie: bool) -> Result<FormatSpace, ExperimentError> {
        let shared = match &self.formats {
            Some(list) => Some(read_list(path, "bits.formats", list, None)?),
            None => None,
        };
        let operand = |own: &Option<Vec<RawFormat>>, field, op| -> Result<_, ExperimentError> {
            let list = match (own, &shared) {
                (Some(list), _) => read_list(path, field, list, Some(op))?,
                (None, Some(all)) => all.iter().copied().filter(|f| f.allowed_for(op)).collect(),
                (None, None) => Vec::new(),
            };
            match list.is_empty() {
                true => Err(ExperimentError::NoFormats {
                    path: path.to_path_buf(),
                    field,
                }),
                false => Ok(list),
            }
        };
        let weight = operand(&self.w_formats, "bits.w_formats", Operand::Weight)?;
        let activation = operand(&self.a_formats, "bits.a_formats", Operand::Activation)?;
        if tie && weight != activation {
            return Err(ExperimentError::TiedFormats {
                path: path.to_path_buf(),
            });
        }
        Ok(FormatSpace { weight, activation })
    }
}

/// One list, read and sorted; `operand`, when the list is that operand's own, must take each.
fn read_list(
    path: &Path,
    field: &'static str,
    list: &[RawFormat],
    operand: Option<Operand>,
) -> Result<Vec<Format>, ExperimentError> {
    let mut out = Vec::with_capacity(list.len());
    for raw in list {
        let text = match raw {
            RawFormat::Number(v) => v.to_string(),
            RawFormat::Name(n) => n.clone(),
        };
        let bad = |rule: String| ExperimentError::BadFormat {
            path: path.to_path_buf(),
            field,
            value: text.clone(),
            rule,
        };
        let format: Format = text.parse().map_err(|e| bad(format!("{e}")))?;
        if let Some(op) = operand.filter(|&op| !format.allowed_for(op)) {
            let which = if op == Operand::Weight {
                "a weight"
            } else {
                "an activation"
            };
            return Err(bad(format!("{} is not {which} format", format.name())));
        }
        if out.contains(&format) {
            return Err(bad("each format once".into()));
        }
        out.push(format);
    }
    out.sort_unstable();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Option<Vec<RawFormat>> {
        Some(
            list.iter()
                .map(|n| RawFormat::Name(n.to_string()))
                .collect(),
        )
    }

    fn check(raw: RawFormats, tie: bool) -> Result<FormatSpace, String> {
        raw.check(Path::new("e.toml"), tie)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_shared_list_gives_each_operand_what_it_takes() {
        let raw = RawFormats {
            formats: names(&["fp16", "int4g32", "8", "int16", "fp8e4m3"]),
            ..RawFormats::default()
        };
        let s = check(raw, false).unwrap();
        let show = |v: &[Format]| v.iter().map(|f| f.to_string()).collect::<Vec<_>>();
        assert_eq!(show(&s.weight), ["int4g32", "8", "fp8e4m3", "fp16"]);
        assert_eq!(show(&s.activation), ["8", "fp8e4m3", "16", "fp16"]);
    }

    #[test]
    fn an_operands_own_list_must_suit_it() {
        let raw = RawFormats {
            formats: names(&["8"]),
            a_formats: names(&["8", "int4g32"]),
            ..RawFormats::default()
        };
        let e = check(raw, false).unwrap_err();
        assert!(
            e.contains("e.toml") && e.contains("bits.a_formats") && e.contains("int4g32"),
            "{e}"
        );
        let raw = RawFormats {
            w_formats: names(&["fp8", "8"]),
            a_formats: names(&["8"]),
            ..RawFormats::default()
        };
        let e = check(raw, false).unwrap_err();
        assert!(e.contains("bits.w_formats") && e.contains("\"fp8\""), "{e}");
    }

    #[test]
    fn empty_duplicate_and_untied_lists_are_refused() {
        let only_groups = RawFormats {
            formats: names(&["int4g32"]),
            ..RawFormats::default()
        };
        let e = check(only_groups, false).unwrap_err();
        assert!(e.contains("bits.a_formats"), "{e}");
        let twice = RawFormats {
            formats: Some(vec![RawFormat::Number(8), RawFormat::Name("int8".into())]),
            ..RawFormats::default()
        };
        assert!(check(twice, false)
            .unwrap_err()
            .contains("each format once"));
        let untied = RawFormats {
            formats: names(&["8", "int4g32"]),
            ..RawFormats::default()
        };
        let e = check(untied, true).unwrap_err();
        assert!(e.contains("tie"), "{e}");
    }

    #[test]
    fn an_experiment_declares_formats_and_records_them() {
        let good = "name = \"t\"\n[data]\nsource = \"embedded:mnist-10k\"\nvalidation = 1000\n[model]\narch = \"lenet5\"\n[train]\nepochs = 8\nbatch = 64\nlr = 1e-3\n";
        let exp = |bits: &str| {
            let text = format!("{good}[bits]\n{bits}\n");
            crate::experiment::Experiment::from_toml(&text, Path::new("exp.toml"))
        };
        let e = exp("formats = [\"fp16\", 8, \"int4\", \"fp8e4m3\"]").unwrap();
        let [w, a] = e.bits.declared_formats();
        assert_eq!(w, a);
        assert_eq!(
            w.iter().map(|f| f.to_string()).collect::<Vec<_>>(),
            ["4", "8", "fp8e4m3", "fp16"]
        );
        assert_eq!((e.bits.min, e.bits.max), (4, 16));
        let json = serde_json::to_value(&e.bits).unwrap();
        assert_eq!(
            json["formats"]["weight"],
            serde_json::json!([4, 8, "fp8e4m3", "fp16"])
        );
        let plain = serde_json::to_value(&exp("").unwrap().bits).unwrap();
        assert!(
            plain.get("formats").is_none(),
            "a width space records what it did: {plain}"
        );
        let e = exp("formats = [8]\nchoices = [2, 8]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("exp.toml") && e.contains("not both"), "{e}");
        let e = exp("w_formats = [\"fp4\"]\na_formats = [8]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("bits.w_formats") && e.contains("fp4"), "{e}");
    }
}
