//! episodes.csv, references.csv and pareto.csv: one row type (`Episode`), the header, the line
//! writer and the one reader (by column name), and pareto.csv's rule.

use std::path::{Path, PathBuf};

use super::csv_file::{csv_line, CsvFile, Record};
use super::RunDirError;
use crate::fidelity::Fidelity;
use crate::pareto::{non_dominated, Objective, ParetoError, Sense};
use crate::quant::{Format, LayerBits, Operand, Policy};
use crate::robust::{Breakdown, Checks, BREAKDOWN_FORMAT, CHECKS_FORMAT};

/// One scored policy: a line of episodes.csv, references.csv or pareto.csv.
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    pub episode: usize,
    pub agent: String,
    pub profile: String,
    pub policy: String,
    /// One per quantizable layer, from the `w_<layer>`/`a_<layer>` columns.
    pub bits: Vec<LayerBits>,
    /// `None` when the fine-tune failed.
    pub accuracy: Option<f64>,
    pub robust_accuracy: Option<f64>,
    pub latency_s: f64,
    pub energy_j: f64,
    pub size_bytes: f64,
    /// `None` when the fine-tune failed.
    pub reward: Option<f64>,
    pub feasible: bool,
    pub failed: bool,
    /// The masking checks that fired; `None` when the fine-tune failed, or in a run written
    /// before the column existed.
    pub masking: Option<Checks>,
    /// Of the examples the search attacked, how many each stage broke first, at the radius of
    /// `robust_accuracy`; `None` when the fine-tune failed, or in a run written before the
    /// column existed.
    pub broken_by: Option<Breakdown>,
    /// The recipe the scores come from; `Full` in a run written before the column existed.
    /// Only full rows make fronts, best policies and hypervolumes.
    pub fidelity: Fidelity,
    pub seconds: f64,
}

impl Episode {
    /// The value of an objective; `None` for the accuracies of a failed fine-tune.
    pub fn objective(&self, objective: Objective) -> Option<f64> {
        match objective {
            Objective::Accuracy => self.accuracy,
            Objective::RobustAccuracy => self.credited_robust(),
            Objective::Latency => Some(self.latency_s),
            Objective::Energy => Some(self.energy_j),
            Objective::Size => Some(self.size_bytes),
        }
    }

    /// Whether the row may stand in a front, a best policy or a hypervolume: scored (not
    /// failed) at full fidelity. A low-fidelity score is the agent's data, not a result.
    pub fn counts(&self) -> bool {
        !self.failed && self.fidelity.is_full()
    }

    /// Whether a masking check fired.
    pub fn masking_flagged(&self) -> bool {
        self.masking.is_some_and(|c| !c.is_empty())
    }

    /// The robust accuracy the search credits: none (0) when a masking check fired, because
    /// the number may measure failed attacks rather than a robust model; the logged
    /// `robust_accuracy` keeps the measured value.
    pub fn credited_robust(&self) -> Option<f64> {
        match self.masking_flagged() {
            true => self.robust_accuracy.map(|_| 0.0),
            false => self.robust_accuracy,
        }
    }

    /// The logged policy (the `w_<layer>`/`a_<layer>` columns; `policy` is its text).
    pub fn policy(&self) -> Policy {
        Policy::new(self.bits.clone())
    }

    /// The fields of its CSV line, in header order.
    fn fields(&self) -> Vec<String> {
        // Floats are written in Rust's shortest round-trip form, so a resumed run reads back
        // exactly the rewards it logged.
        let opt = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
        let mut f = vec![
            self.episode.to_string(),
            self.agent.clone(),
            self.profile.clone(),
            self.policy.clone(),
        ];
        for b in &self.bits {
            f.push(b.w.to_string());
            f.push(b.a.to_string());
        }
        f.extend([
            opt(self.accuracy),
            opt(self.robust_accuracy),
            self.latency_s.to_string(),
            self.energy_j.to_string(),
            self.size_bytes.to_string(),
            opt(self.reward),
            self.feasible.to_string(),
            self.failed.to_string(),
            self.masking
                .map(|c| (!c.is_empty()).to_string())
                .unwrap_or_default(),
            self.masking.map(|c| c.to_string()).unwrap_or_default(),
            self.broken_by.map(|b| b.to_string()).unwrap_or_default(),
            self.fidelity.to_string(),
            format!("{:.3}", self.seconds),
        ]);
        f
    }

    /// Its CSV line in `path`.
    pub(super) fn line(&self, path: &Path) -> Result<Vec<u8>, RunDirError> {
        csv_line(path, &self.fields())
    }
}

/// The columns before the layer columns, and after them.
const LEADING: [&str; 4] = ["episode", "agent", "profile", "policy"];
const TRAILING: [&str; 9] = [
    "accuracy",
    "robust_accuracy",
    "latency_s",
    "energy_j",
    "size_bytes",
    "reward",
    "feasible",
    "failed",
    "seconds",
];
/// The masking columns and the attack breakdown, written before `seconds`; optional on read
/// (runs written before them).
const MASKING: [&str; 2] = ["masking_flagged", "masking"];
const BROKEN_BY: &str = "broken_by";
/// The fidelity column, written before `seconds`; optional on read (runs written before it).
const FIDELITY: &str = "fidelity";

/// The header of a model with these quantizable layers.
pub fn header(layers: &[String]) -> Vec<String> {
    let mut h: Vec<String> = LEADING.map(String::from).to_vec();
    for l in layers {
        h.push(format!("w_{l}"));
        h.push(format!("a_{l}"));
    }
    let [scores @ .., seconds] = TRAILING;
    h.extend(scores.map(String::from));
    h.extend(MASKING.map(String::from));
    h.push(BROKEN_BY.to_string());
    h.push(FIDELITY.to_string());
    h.push(seconds.to_string());
    h
}

/// A CSV file with the episodes.csv columns.
#[derive(Debug, Clone)]
pub struct Episodes {
    pub path: PathBuf,
    /// Layer names, from the `w_<layer>` columns, in model order.
    pub layers: Vec<String>,
    pub rows: Vec<Episode>,
}

/// Column indices of an episodes.csv header.
struct Columns {
    leading: [usize; 4],
    trailing: [usize; 9],
    /// The `masking` and `broken_by` columns, when the file has them.
    masking: Option<usize>,
    broken_by: Option<usize>,
    fidelity: Option<usize>,
    layers: Vec<(usize, usize)>,
}

impl Episodes {
    /// Reads a CSV file with the episodes.csv columns; `hint` says what writes it.
    pub fn read(path: &Path, hint: &'static str) -> Result<Episodes, RunDirError> {
        Self::from_file(&CsvFile::open(path, hint)?)
    }

    pub(super) fn from_file(file: &CsvFile) -> Result<Episodes, RunDirError> {
        let (columns, layers) = columns(file)?;
        let rows = (file.records())
            .map(|r| parse(&r, &columns))
            .collect::<Result<_, _>>()?;
        Ok(Episodes {
            path: file.path.clone(),
            layers,
            rows,
        })
    }
}

/// Finds the fixed columns by name and the `w_<layer>`,`a_<layer>` pairs between `policy` and
/// `accuracy`.
fn columns(file: &CsvFile) -> Result<(Columns, Vec<String>), RunDirError> {
    let leading = file.columns(LEADING)?;
    let trailing = file.columns(TRAILING)?;
    let (policy, accuracy) = (leading[3], trailing[0]);
    let bad = |detail: String| RunDirError::Layers {
        path: file.path.clone(),
        detail,
    };
    let between = file.headers.get(policy + 1..accuracy).unwrap_or(&[]);
    if between.is_empty() || between.len() % 2 != 0 {
        return Err(bad(format!(
            "expected `w_<layer>`,`a_<layer>` column pairs between `policy` and `accuracy`, got {between:?}"
        )));
    }
    let mut names = Vec::new();
    let mut pairs = Vec::new();
    for (k, pair) in between.chunks(2).enumerate() {
        let (w, a) = (&pair[0], &pair[1]);
        let name = w.strip_prefix("w_").unwrap_or("");
        if name.is_empty() || a.strip_prefix("a_") != Some(name) {
            return Err(bad(format!(
                "columns `{w}`,`{a}` are not a `w_<layer>`,`a_<layer>` pair"
            )));
        }
        names.push(name.to_string());
        pairs.push((policy + 1 + 2 * k, policy + 2 + 2 * k));
    }
    let columns = Columns {
        leading,
        trailing,
        masking: file.column(MASKING[1]).ok(),
        broken_by: file.column(BROKEN_BY).ok(),
        fidelity: file.column(FIDELITY).ok(),
        layers: pairs,
    };
    Ok((columns, names))
}

const WEIGHT_RULE: &str =
    "a weight format: a bitwidth 1..=8, 32, or fp16, bf16, fp8e4m3, fp8e5m2, int4g32, int4g128";
const ACTIVATION_RULE: &str =
    "an activation format: a bitwidth 1..=16, 32, or fp16, bf16, fp8e4m3, fp8e5m2";

fn parse(r: &Record, c: &Columns) -> Result<Episode, RunDirError> {
    let bits = |col, operand, rule| {
        let f = r.get::<Format>(col, rule)?;
        match f.allowed_for(operand) {
            true => Ok(f),
            false => Err(r.bad(col, rule)),
        }
    };
    let layers = (c.layers.iter())
        .map(|&(w, a)| {
            let w = bits(w, Operand::Weight, WEIGHT_RULE)?;
            Ok(LayerBits::new(
                w,
                bits(a, Operand::Activation, ACTIVATION_RULE)?,
            ))
        })
        .collect::<Result<_, RunDirError>>()?;
    let [episode, agent, profile, policy] = c.leading;
    let [acc, rob, latency, energy, size, reward, feasible, failed, seconds] = c.trailing;
    let e = Episode {
        episode: r.get(episode, "a whole number")?,
        agent: r.text(agent).to_string(),
        profile: r.text(profile).to_string(),
        policy: r.text(policy).to_string(),
        bits: layers,
        accuracy: r.optional_number(acc)?,
        robust_accuracy: r.optional_number(rob)?,
        latency_s: r.number(latency)?,
        energy_j: r.number(energy)?,
        size_bytes: r.number(size)?,
        reward: r.optional_number(reward)?,
        feasible: r.flag(feasible)?,
        failed: r.flag(failed)?,
        masking: r.optional(c.masking, Checks::parse, CHECKS_FORMAT)?,
        broken_by: r.optional(c.broken_by, |t| t.parse().ok(), BREAKDOWN_FORMAT)?,
        fidelity: (r.optional(c.fidelity, |t| t.parse().ok(), "`full` or `low`")?)
            .unwrap_or_default(),
        seconds: r.number(seconds)?,
    };
    // A scored (not failed) row must carry its accuracies.
    if !e.failed {
        for (col, value) in [(acc, e.accuracy), (rob, e.robust_accuracy)] {
            if value.is_none() {
                return Err(r.bad(col, "a number (the row is not `failed`)"));
            }
        }
    }
    Ok(e)
}

/// pareto.csv's rows: the non-dominated scored full-fidelity rows over accuracy↑, robust
/// accuracy↑, latency↓, energy↓, in log order.
pub fn pareto_rows(rows: &[Episode]) -> Result<Vec<Episode>, ParetoError> {
    let scored: Vec<&Episode> = rows.iter().filter(|r| r.counts()).collect();
    let points: Vec<[f64; 4]> = (scored.iter())
        .map(|r| {
            [
                r.accuracy.unwrap_or(0.0),
                r.credited_robust().unwrap_or(0.0),
                r.latency_s,
                r.energy_j,
            ]
        })
        .collect();
    let senses = [
        Sense::Maximize,
        Sense::Maximize,
        Sense::Minimize,
        Sense::Minimize,
    ];
    Ok(non_dominated(&points, &senses)?
        .into_iter()
        .map(|i| scored[i].clone())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fidelity::Fidelity;

    /// A low-fidelity row that would dominate every full one is no member of pareto.csv.
    #[test]
    fn pareto_rows_hold_full_fidelity_rows_only() {
        let row = |episode, accuracy, fidelity| Episode {
            episode,
            agent: "mbrl".into(),
            profile: "bitfusion".into(),
            policy: "8/8".into(),
            bits: vec![LayerBits::uniform(Format::new(8).unwrap())],
            accuracy: Some(accuracy),
            robust_accuracy: Some(0.5),
            latency_s: 1.0,
            energy_j: 1.0,
            size_bytes: 1.0,
            reward: Some(0.0),
            feasible: true,
            failed: false,
            masking: None,
            broken_by: None,
            fidelity,
            seconds: 0.0,
        };
        let rows = [row(0, 0.99, Fidelity::Low), row(1, 0.5, Fidelity::Full)];
        let front = pareto_rows(&rows).unwrap();
        assert_eq!(front.iter().map(|r| r.episode).collect::<Vec<_>>(), vec![1]);
    }
}
