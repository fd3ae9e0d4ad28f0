//! Layered experiments: an `extends = "parent.toml"` chain deep-merged under the extending file,
//! then the command line's `--budget` and `--set` overrides, all applied to the TOML value before
//! the raw struct is deserialized, so every rule of `check()` still holds for the result.
//!
//! Merge rule: tables merge key by key, recursively; any other value (arrays included) of the
//! extending file replaces the parent's. `extends` is relative to the file that names it, and so
//! is a parent's `data.source` directory (re-anchored when the parent lives elsewhere).

use std::path::{Path, PathBuf};

use toml::{Table, Value};

use super::error::{ExperimentError, LayerError};
use super::raw::RawExperiment;
use super::validated::Experiment;
use crate::data::DataSource;
use crate::validate::{parse_error, parse_toml, FileError};

/// Command-line overrides, applied in this order: the `--budget` flags together replace the
/// whole `[budget]` table (so a fraction and an absolute limit for one resource cannot meet
/// silently), then each `--set` in turn.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `KEY=VALUE`, KEY one of `[budget]`'s keys (`latency`, `latency_s`, `energy`, ...).
    pub budget: Vec<String>,
    /// `SECTION.KEY=VALUE`; VALUE is read as a TOML value, else taken as a string.
    pub set: Vec<String>,
}

impl Overrides {
    /// The overrides an experiment recorded (`Experiment::overrides`: `--budget K=V` and
    /// `--set S.K=V` flags, budget flags first, as `load` applies them), to load it again the
    /// same way (`bitsearch export` rebuilds a run's experiment from its config.json).
    pub fn from_recorded(flags: &[String]) -> Overrides {
        let mut o = Overrides::default();
        for flag in flags {
            if let Some(v) = flag.strip_prefix("--budget ") {
                o.budget.push(v.to_string());
            } else if let Some(v) = flag.strip_prefix("--set ") {
                o.set.push(v.to_string());
            }
        }
        o
    }
}

/// Reads `path` with its `extends` chain, applies `overrides`, and checks the result. An error
/// that only the overrides cause names the flag that caused it.
pub fn load(path: &Path, overrides: &Overrides) -> Result<Experiment, ExperimentError> {
    let file = read_chain(path)?;
    let steps = parse_steps(overrides)?;
    if steps.is_empty() {
        return file.check(path);
    }
    let mut tables = vec![file.table.clone()];
    for step in &steps {
        let mut next = tables[tables.len() - 1].clone();
        step.apply(&mut next)?;
        tables.push(next);
    }
    let last = &tables[tables.len() - 1];
    match check_table(last, path) {
        Ok(mut exp) => {
            exp.overrides = steps.into_iter().map(|s| s.flag).collect();
            Ok(exp)
        }
        Err(e) => Err(blame(e, &tables, &steps, &file, path)),
    }
}

/// Attributes a failure: the file's own error when the file alone already fails that way, else
/// the first override after which the error appears (a later flag may need an earlier one, so
/// each prefix of the overrides is checked, not each flag alone).
fn blame(
    error: ExperimentError,
    tables: &[Table],
    steps: &[Step],
    file: &Resolved,
    path: &Path,
) -> ExperimentError {
    let message = error.to_string();
    let first = tables.iter().position(|t| match check_table(t, path) {
        Err(e) => e.to_string() == message,
        Ok(_) => false,
    });
    match first {
        Some(0) => file.check(path).err().unwrap_or(error),
        Some(k) => LayerError::Rejected {
            flag: steps[k - 1].flag.clone(),
            source: Box::new(error),
        }
        .into(),
        None => error,
    }
}

/// The merged table of a file and its parents; `text` is the file's own text when it extends
/// nothing, so its errors keep TOML's line numbers.
struct Resolved {
    table: Table,
    text: Option<String>,
}

impl Resolved {
    fn check(&self, path: &Path) -> Result<Experiment, ExperimentError> {
        match &self.text {
            Some(text) => from_text(text, path),
            None => check_table(&self.table, path),
        }
    }
}

/// Parses and checks one file's own text (TOML's errors keep their line numbers).
pub(super) fn from_text(text: &str, path: &Path) -> Result<Experiment, ExperimentError> {
    let raw: RawExperiment = parse_toml(text, path)?;
    raw.check(path)
}

fn check_table(table: &Table, path: &Path) -> Result<Experiment, ExperimentError> {
    let raw: RawExperiment = Value::Table(table.clone())
        .try_into()
        .map_err(|e| parse_error(path, e))?;
    raw.check(path)
}

/// Reads `path` and every file its `extends` chain names, child first, and merges them.
fn read_chain(path: &Path) -> Result<Resolved, ExperimentError> {
    let mut file = path.to_path_buf();
    // The current file's directory relative to the first file's, to re-anchor its paths.
    let mut dir = PathBuf::new();
    let mut seen: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut layers: Vec<Table> = Vec::new();
    let mut own_text = None;
    let mut named_by: Option<(PathBuf, String)> = None;
    loop {
        let text = std::fs::read_to_string(&file).map_err(|source| match &named_by {
            Some((child, parent)) => ExperimentError::from(LayerError::MissingParent {
                child: child.clone(),
                parent: parent.clone(),
                resolved: file.clone(),
                source,
            }),
            None => ExperimentError::from(FileError::Io {
                path: file.clone(),
                source,
            }),
        })?;
        let mut table: Table = parse_toml(&text, &file)?;
        let canonical = std::fs::canonicalize(&file).unwrap_or_else(|_| file.clone());
        if seen.iter().any(|(c, _)| *c == canonical) {
            let mut chain: Vec<String> =
                seen.iter().map(|(_, f)| f.display().to_string()).collect();
            chain.push(file.display().to_string());
            let last = named_by.map_or(file.clone(), |(child, _)| child);
            return Err(LayerError::Cycle {
                file: last,
                chain: chain.join(" -> "),
            }
            .into());
        }
        seen.push((canonical, file.clone()));
        let parent = table.remove("extends");
        anchor_data_source(&mut table, &dir);
        anchor_model_file(&mut table, &dir);
        if layers.is_empty() && parent.is_none() {
            own_text = Some(text);
        }
        layers.push(table);
        let Some(parent) = parent else { break };
        let Value::String(name) = parent else {
            return Err(LayerError::ExtendsNotAString {
                file,
                value: parent.to_string(),
            }
            .into());
        };
        dir = dir.join(Path::new(&name).parent().unwrap_or(Path::new("")));
        let next = file.parent().unwrap_or(Path::new("")).join(&name);
        named_by = Some((file, name));
        file = next;
    }
    let mut merged = Table::new();
    for layer in layers.into_iter().rev() {
        replace_model_source(&mut merged, &layer);
        merge(&mut merged, layer);
    }
    Ok(Resolved {
        table: merged,
        text: own_text,
    })
}

/// Deep-merges `over` into `base`: tables key by key, anything else replaced.
fn merge(base: &mut Table, over: Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(Value::Table(b)), Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// `model.arch` and `model.onnx` name one network: a layer giving one replaces a parent's
/// other (an experiment extending a zoo one can swap in an ONNX file).
fn replace_model_source(base: &mut Table, layer: &Table) {
    let (Some(Value::Table(model)), Some(Value::Table(over))) =
        (base.get_mut("model"), layer.get("model"))
    else {
        return;
    };
    for (given, other) in [("arch", "onnx"), ("onnx", "arch")] {
        if over.contains_key(given) && !over.contains_key(other) {
            model.remove(other);
        }
    }
}

/// A parent's `model.onnx` is relative to the parent; rewrite it relative to the extending file.
fn anchor_model_file(table: &mut Table, dir: &Path) {
    if dir.as_os_str().is_empty() {
        return;
    }
    let Some(Value::Table(model)) = table.get_mut("model") else {
        return;
    };
    if let Some(Value::String(file)) = model.get_mut("onnx") {
        *file = dir.join(file.as_str()).display().to_string();
    }
}

/// A parent's `data.source = "idx:DIR"` is relative to the parent; rewrite DIR relative to the
/// extending file, which `check()` anchors paths to. `dir` is empty for the first file.
fn anchor_data_source(table: &mut Table, dir: &Path) {
    if dir.as_os_str().is_empty() {
        return;
    }
    let Some(Value::Table(data)) = table.get_mut("data") else {
        return;
    };
    let Some(Value::String(source)) = data.get_mut("source") else {
        return;
    };
    // Parsing with `dir` as the base joins DIR to it; sources without a path print unchanged.
    if let Some(parsed) = DataSource::parse(source, dir) {
        *source = parsed.to_string();
    }
}

/// One override as recorded in config.json (`--set train.epochs=2`) and what it changes.
struct Step {
    flag: String,
    edit: Edit,
}

enum Edit {
    /// The first `--budget` starts a new `[budget]` table; later ones add to it.
    Budget {
        key: String,
        value: Value,
        first: bool,
    },
    Set {
        keys: Vec<String>,
        value: Value,
    },
}

fn parse_steps(o: &Overrides) -> Result<Vec<Step>, LayerError> {
    let mut steps = Vec::new();
    for (i, text) in o.budget.iter().enumerate() {
        let flag = format!("--budget {text}");
        let (key, value) = split_assignment(text).ok_or_else(|| LayerError::BadFlag {
            flag: flag.clone(),
            expected: "KEY=VALUE, e.g. latency=0.5 or energy_j=2e-6",
        })?;
        steps.push(Step {
            flag,
            edit: Edit::Budget {
                key: key.to_string(),
                value: parse_value(value),
                first: i == 0,
            },
        });
    }
    for text in &o.set {
        let flag = format!("--set {text}");
        let bad = || LayerError::BadFlag {
            flag: flag.clone(),
            expected: "SECTION.KEY=VALUE, e.g. train.epochs=4",
        };
        let (key, value) = split_assignment(text).ok_or_else(bad)?;
        let keys: Vec<String> = key.split('.').map(|k| k.trim().to_string()).collect();
        if keys.iter().any(String::is_empty) {
            return Err(bad());
        }
        steps.push(Step {
            flag,
            edit: Edit::Set {
                keys,
                value: parse_value(value),
            },
        });
    }
    Ok(steps)
}

/// `KEY=VALUE` with a non-empty key.
fn split_assignment(text: &str) -> Option<(&str, &str)> {
    let (key, value) = text.split_once('=')?;
    let key = key.trim();
    (!key.is_empty()).then_some((key, value.trim()))
}

/// VALUE as a TOML value (`4`, `1e-3`, `true`, `[0.1, 0.2]`, `"text"`), else as a string, so
/// `--set data.source=idx:data/mnist` needs no quotes.
fn parse_value(text: &str) -> Value {
    toml::from_str::<Table>(&format!("v = {text}"))
        .ok()
        .filter(|t| t.len() == 1)
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| Value::String(text.to_string()))
}

impl Step {
    fn apply(&self, table: &mut Table) -> Result<(), LayerError> {
        match &self.edit {
            Edit::Budget { key, value, first } => {
                if *first || !matches!(table.get("budget"), Some(Value::Table(_))) {
                    table.insert("budget".into(), Value::Table(Table::new()));
                }
                if let Some(Value::Table(budget)) = table.get_mut("budget") {
                    budget.insert(key.clone(), value.clone());
                }
                Ok(())
            }
            Edit::Set { keys, value } => self.set(table, keys, value.clone()),
        }
    }

    /// Sets `keys` (a dotted path) to `value`, creating missing tables on the way.
    fn set(&self, table: &mut Table, keys: &[String], value: Value) -> Result<(), LayerError> {
        let (last, parents) = keys.split_last().ok_or_else(|| LayerError::BadFlag {
            flag: self.flag.clone(),
            expected: "SECTION.KEY=VALUE",
        })?;
        let mut here = table;
        for (i, key) in parents.iter().enumerate() {
            let entry = here
                .entry(key.clone())
                .or_insert_with(|| Value::Table(Table::new()));
            here = match entry {
                Value::Table(t) => t,
                _ => {
                    return Err(LayerError::NotATable {
                        flag: self.flag.clone(),
                        key: keys[..=i].join("."),
                        field: keys[i + 1].clone(),
                    })
                }
            };
        }
        here.insert(last.clone(), value);
        Ok(())
    }
}

#[cfg(test)]
#[path = "layered_tests.rs"]
mod tests;
