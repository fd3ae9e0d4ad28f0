//! config.json: everything a search resolved before its first episode, written first by the
//! search and read back by its resume and by the report.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::files::read_json;
use super::RunDirError;
use crate::hardware::Price;
use crate::model::LayerShape;
use crate::pareto::Objective;

/// The device profile searched for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileInfo {
    pub name: String,
    /// The compute model's kind (`bit-fusion`, `bit-serial`, ...).
    pub compute: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// SHA-256 of the numbers that price a layer (profile fields and table rows), so a resume
    /// refuses an edited profile or table instead of mixing two price models in one log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// The agent and its validated configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentInfo {
    pub name: String,
    /// The agent file's content (tagged by `agent`), as validated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Value>,
}

/// config.json's record of the absolute budgets; `None` = no budget on that cost.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct BudgetRecord {
    pub latency_s: Option<f64>,
    pub energy_j: Option<f64>,
    pub size_bytes: Option<f64>,
}

/// config.json's record of the searched bitwidth range (the experiment's validated one is
/// `experiment::BitsRange`) and of the widths each layer's operands could take.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BitsRecord {
    pub min: u8,
    pub max: u8,
    /// Whether widths the device prices like a wider one were dropped; absent in files written
    /// before they could be (nothing was).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune_dominated: Option<bool>,
    /// Per layer, in model order, the widths its weights and activations could take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept: Option<Vec<KeptWidths>>,
}

/// One layer's formats in `BitsRecord::kept`: integer widths as numbers, as they always were,
/// and named formats by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeptWidths {
    pub layer: String,
    pub w: Vec<crate::quant::Format>,
    pub a: Vec<crate::quant::Format>,
}

/// config.json. The search writes every field; readers accept files without the optional ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// The run directory's name.
    pub run: String,
    /// The validated experiment (its `name` among the fields), `null` if absent.
    #[serde(default)]
    pub experiment: serde_json::Value,
    pub model: String,
    pub layers: Vec<LayerShape>,
    pub profile: ProfileInfo,
    pub agent: AgentInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub episodes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Resolved from the experiment's fractions of uniform 8/8.
    pub budget: BudgetRecord,
    /// The costs of uniform 8/8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uniform8: Option<Price>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bits: Option<BitsRecord>,
    /// What the agent ranked scored policies by (accuracy, robust accuracy if it counted, the
    /// costs), resolved from the experiment. Absent in files written before the objectives
    /// came from the experiment: such a run resumes as it was started (`search::resume`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objectives: Option<Vec<Objective>>,
    /// The worker threads of the last start or resume. Results do not depend on it (every
    /// reduction has a fixed order); it is recorded to say how the timings were taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
    /// The search's batch size (`--workers`): policies proposed, scored at once and learned in
    /// order. Episodes depend on it, so a resume reuses it; absent (files written before
    /// batches) means 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
}

impl RunConfig {
    pub const FILE: &'static str = "config.json";

    /// Reads config.json.
    pub fn read(path: &Path) -> Result<RunConfig, RunDirError> {
        read_json(path, "written first by `bitsearch search`")
    }

    /// The document as written: through a JSON value, so its keys are sorted at every level
    /// (the order config.json has always had).
    pub fn to_json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::to_value(self)
    }

    /// The experiment file and command-line overrides the search resolved its experiment from
    /// (`experiment.path`, as given to it, and `experiment.overrides`); None if not recorded.
    pub fn experiment_source(&self) -> Option<(PathBuf, Vec<String>)> {
        let e = &self.experiment;
        let path = e.get("path")?.as_str()?;
        let overrides = (e.get("overrides").and_then(|o| o.as_array()))
            .map(|o| (o.iter().filter_map(|v| v.as_str().map(String::from))).collect())
            .unwrap_or_default();
        Some((PathBuf::from(path), overrides))
    }

    /// The experiment's name, if the experiment is recorded.
    pub fn experiment_name(&self) -> Option<&str> {
        self.experiment.get("name").and_then(|n| n.as_str())
    }

    /// Each layer's share of the model's MACs, in [0, 1] (all zero if the model has no MACs).
    pub fn mac_shares(&self) -> Vec<f64> {
        let total: u64 = self.layers.iter().map(|l| l.macs).sum();
        self.layers
            .iter()
            .map(|l| match total {
                0 => 0.0,
                t => l.macs as f64 / t as f64,
            })
            .collect()
    }
}

/// The first leaf where two JSON values differ: (dotted path, old value, new value), so a
/// refused resume (or export) names the exact setting that changed.
pub fn first_difference(
    path: &str,
    old: Option<&serde_json::Value>,
    new: Option<&serde_json::Value>,
) -> Option<(String, String, String)> {
    use serde_json::Value;
    let show = |v: Option<&Value>| {
        v.map_or("(absent)".to_string(), |v| {
            v.to_string().chars().take(120).collect()
        })
    };
    match (old, new) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            keys.into_iter()
                .find_map(|k| first_difference(&format!("{path}.{k}"), a.get(k), b.get(k)))
        }
        (a, b) if a == b => None,
        (a, b) => Some((path.to_string(), show(a), show(b))),
    }
}

#[cfg(test)]
mod tests {
    use super::Price;

    /// config.json's `uniform8` is the hardware `Price`: its JSON keeps the file's field names and
    /// order, and reads back to the same value.
    #[test]
    fn uniform8_keeps_the_config_json_format() {
        let p = Price {
            latency_s: 0.5,
            energy_j: 2.0,
            size_bytes: 1024.0,
        };
        let text = serde_json::to_string(&p).unwrap();
        assert_eq!(
            text,
            r#"{"latency_s":0.5,"energy_j":2.0,"size_bytes":1024.0}"#
        );
        assert_eq!(serde_json::from_str::<Price>(&text).unwrap(), p);
    }
}
