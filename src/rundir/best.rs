//! best-policy.json, and the one rule that picks the best episode (for best-policy.json, the
//! search's progress line and the report's "best so far").

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::episodes::Episode;
use super::files::read_json;
use super::RunDirError;

/// One layer of best-policy.json: the policy file's layer form.
pub type BestLayer = crate::quant::PolicyFileLayer;

/// Accuracy and robust accuracy on one split.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    pub accuracy: f64,
    pub robust_accuracy: f64,
}

/// Test-split scores, with the whole attack suite's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestScores {
    pub accuracy: f64,
    /// The suite's worst case.
    pub robust_accuracy: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suite: Option<serde_json::Value>,
}

/// One attack of best-policy.json's `test.suite` (the attack suite's report, `robust::SuiteReport`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SuiteAttack {
    /// `fgsm`, `pgd`, `transfer` or `square`.
    pub kind: String,
    pub eps: f64,
    pub accuracy: f64,
}

/// The suite's per-example worst case over every attack at one radius.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct SuiteWorst {
    pub eps: f64,
    pub worst_case: f64,
}

/// What readers take from `test.suite`: each attack's accuracy and the worst case per radius,
/// on `examples` test examples. Every field may be absent (suites written by older versions);
/// a field of the wrong type is an error.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SuiteSummary {
    #[serde(default)]
    pub examples: usize,
    #[serde(default)]
    pub attacks: Vec<SuiteAttack>,
    #[serde(default)]
    pub by_eps: Vec<SuiteWorst>,
}

impl TestScores {
    /// The attacks of `suite`; `None` when the file records no suite.
    pub fn suite_summary(&self) -> Result<Option<SuiteSummary>, serde_json::Error> {
        self.suite
            .as_ref()
            .map(SuiteSummary::deserialize)
            .transpose()
    }
}

/// The yardstick of best-policy.json: the best uniform reference under the same budget (the
/// feasible uniform rows of references.csv, chosen by `best_row`), re-scored on the test split
/// the same way as the best policy, so "did mixed precision beat uniform" is one subtraction on
/// each split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UniformBest {
    pub policy: String,
    pub validation: Scores,
    /// Test accuracy and the suite's worst case (the full report is in the best policy's).
    pub test: Scores,
    pub latency_s: f64,
    pub energy_j: f64,
    pub size_bytes: f64,
    /// The examples each accuracy is measured on (the whole validation and test splits), for
    /// the margin's standard error.
    pub validation_examples: usize,
    pub test_examples: usize,
}

/// The binomial standard error of an accuracy `p` measured on `n` examples, √(p(1−p)/n): 0.9
/// points at 91% on 1,000 examples. A margin smaller than it is within the split's noise.
pub fn standard_error(p: f64, n: usize) -> f64 {
    match n {
        0 => f64::INFINITY,
        _ => (p * (1.0 - p) / n as f64).max(0.0).sqrt(),
    }
}

impl UniformBest {
    /// The record of reference row `row` with its test-split scores, measured on
    /// `examples` = (validation, test) examples; `None` for a row without validation scores,
    /// which `best_row` never chooses.
    pub fn new(row: &Episode, test: Scores, examples: (usize, usize)) -> Option<Self> {
        Some(UniformBest {
            policy: row.policy.clone(),
            validation: Scores {
                accuracy: row.accuracy?,
                robust_accuracy: row.robust_accuracy?,
            },
            test,
            latency_s: row.latency_s,
            energy_j: row.energy_j,
            size_bytes: row.size_bytes,
            validation_examples: examples.0,
            test_examples: examples.1,
        })
    }

    /// The standard error of this policy's accuracy on (validation, test).
    pub fn standard_errors(&self) -> (f64, f64) {
        (
            standard_error(self.validation.accuracy, self.validation_examples),
            standard_error(self.test.accuracy, self.test_examples),
        )
    }
}

/// best-policy.json: the best episode (`best_row`), re-scored on the test split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BestPolicy {
    pub model: String,
    pub policy: String,
    pub layers: Vec<BestLayer>,
    pub episode: usize,
    pub reward: f64,
    pub validation: Scores,
    pub test: TestScores,
    pub latency_s: f64,
    pub energy_j: f64,
    pub size_bytes: f64,
    /// The best uniform policy under the same budget; absent when the run scored no uniform
    /// reference (`search.references = false`), none met the budget, or an older version wrote
    /// the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uniform: Option<UniformBest>,
}

impl BestPolicy {
    pub const FILE: &'static str = "best-policy.json";

    /// The record of `best` (a row `best_row` chose) with its test-split scores; `None` for a
    /// row without validation scores or reward, which `best_row` never chooses.
    pub fn new(model: &str, layers: &[&str], best: &Episode, test: TestScores) -> Option<Self> {
        Some(BestPolicy {
            model: model.to_string(),
            policy: best.policy.clone(),
            layers: (layers.iter().zip(&best.bits))
                .map(|(name, b)| BestLayer::new(name, *b))
                .collect(),
            episode: best.episode,
            reward: best.reward?,
            validation: Scores {
                accuracy: best.accuracy?,
                robust_accuracy: best.robust_accuracy?,
            },
            test,
            latency_s: best.latency_s,
            energy_j: best.energy_j,
            size_bytes: best.size_bytes,
            uniform: None,
        })
    }

    /// Accuracy of the best policy minus the best uniform one's, in points of a fraction, on
    /// (validation, test); `None` without a uniform yardstick.
    pub fn margin_over_uniform(&self) -> Option<(f64, f64)> {
        let u = self.uniform.as_ref()?;
        Some((
            self.validation.accuracy - u.validation.accuracy,
            self.test.accuracy - u.test.accuracy,
        ))
    }

    /// Reads best-policy.json; a `test.suite` must hold the suite's attacks.
    pub fn read(path: &Path) -> Result<BestPolicy, RunDirError> {
        let best: BestPolicy = read_json(path, "written by `bitsearch search` when it finishes")?;
        best.test
            .suite_summary()
            .map_err(|source| RunDirError::Json {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(best)
    }
}

/// The best episode: among the feasible, scored (not failed) full-fidelity rows with a reward,
/// the highest reward; the first of equal rewards.
pub fn best_row(rows: &[Episode]) -> Option<&Episode> {
    let mut best: Option<(&Episode, f64)> = None;
    for r in rows.iter().filter(|r| r.feasible && r.counts()) {
        if let Some(x) = r.reward {
            if best.is_none_or(|(_, b)| x > b) {
                best = Some((r, x));
            }
        }
    }
    best.map(|(r, _)| r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(episode: usize, reward: Option<f64>, feasible: bool, failed: bool) -> Episode {
        Episode {
            episode,
            agent: "ddpg".into(),
            profile: "bitfusion".into(),
            policy: "8/8".into(),
            bits: vec![crate::quant::LayerBits::uniform(crate::quant::Format::FULL)],
            accuracy: Some(0.9),
            robust_accuracy: Some(0.5),
            latency_s: 1.0,
            energy_j: 1.0,
            size_bytes: 1.0,
            reward,
            feasible,
            failed,
            masking: None,
            broken_by: None,
            fidelity: crate::fidelity::Fidelity::Full,
            seconds: 0.0,
        }
    }

    /// A low-fidelity score is the agent's data: never the best, however high its reward.
    #[test]
    fn best_row_skips_low_fidelity_rows() {
        let low = Episode {
            fidelity: crate::fidelity::Fidelity::Low,
            ..row(0, Some(9.0), true, false)
        };
        let rows = vec![low, row(1, Some(1.0), true, false)];
        assert_eq!(best_row(&rows).map(|r| r.episode), Some(1));
        assert_eq!(best_row(&rows[..1]).map(|r| r.episode), None);
    }

    #[test]
    fn best_row_skips_infeasible_and_failed_rows_and_keeps_the_first_of_ties() {
        // The two rules this replaced disagreed here: the search's (feasible, first of ties)
        // chose episode 1; the report's (no feasibility filter, last of ties) chose episode 3,
        // and episode 2 among the first three.
        let rows = [
            row(0, Some(0.5), true, false),
            row(1, Some(1.0), true, false),
            row(2, Some(1.0), true, false),
            row(3, Some(2.0), false, false),
            row(4, None, true, true),
        ];
        assert_eq!(best_row(&rows).map(|r| r.episode), Some(1));
        assert_eq!(best_row(&rows[..3]).map(|r| r.episode), Some(1));
        assert_eq!(best_row(&rows[3..]).map(|r| r.episode), None);
    }

    #[test]
    fn the_suite_reads_as_attacks_and_a_wrong_type_is_an_error() {
        // the shape robust::SuiteReport serializes to (f32 radii through f64)
        let suite = serde_json::json!({
            "examples": 20, "clean": 0.85, "headline_eps": 0.10000000149011612,
            "attacks": [{"kind": "fgsm", "eps": 0.10000000149011612, "accuracy": 0.75}],
            "by_eps": [{"eps": 0.10000000149011612, "worst_case": 0.7}],
        });
        let mut test = TestScores {
            accuracy: 0.8,
            robust_accuracy: 0.7,
            suite: Some(suite),
        };
        let s = test.suite_summary().unwrap().unwrap();
        assert_eq!((s.examples, s.attacks[0].kind.as_str()), (20, "fgsm"));
        assert_eq!((s.attacks[0].accuracy, s.by_eps[0].worst_case), (0.75, 0.7));
        test.suite = Some(serde_json::json!({"attacks": 3}));
        assert!(test.suite_summary().is_err());
        test.suite = None;
        assert!(test.suite_summary().unwrap().is_none());
    }

    #[test]
    fn the_record_carries_the_rows_scores_and_layers() {
        let r = row(7, Some(-0.25), true, false);
        let test = TestScores {
            accuracy: 0.8,
            robust_accuracy: 0.4,
            suite: None,
        };
        let b = BestPolicy::new("lenet5", &["conv1"], &r, test).unwrap();
        assert_eq!((b.episode, b.reward), (7, -0.25));
        assert_eq!(b.layers[0].name, "conv1");
        assert_eq!(b.validation.accuracy, 0.9);
        assert!(BestPolicy::new("lenet5", &["conv1"], &row(8, None, true, true), b.test).is_none());
    }

    #[test]
    fn the_margin_over_uniform_subtracts_each_split_and_old_files_read_without_one() {
        let test = TestScores {
            accuracy: 0.8,
            robust_accuracy: 0.4,
            suite: None,
        };
        let mut b =
            BestPolicy::new("lenet5", &["conv1"], &row(7, Some(0.1), true, false), test).unwrap();
        assert_eq!(b.margin_over_uniform(), None);
        let mut u = row(4, Some(0.0), true, false);
        u.accuracy = Some(0.85);
        let scores = Scores {
            accuracy: 0.75,
            robust_accuracy: 0.3,
        };
        b.uniform = UniformBest::new(&u, scores, (1000, 10_000));
        let (val, test) = b.margin_over_uniform().unwrap();
        assert!((val - 0.05).abs() < 1e-12 && (test - 0.05).abs() < 1e-12);
        u.accuracy = None;
        let (se_val, se_test) = b.uniform.as_ref().unwrap().standard_errors();
        assert!((se_val - 0.0112916).abs() < 1e-6, "{se_val}");
        assert!((se_test - 0.0043301).abs() < 1e-6, "{se_test}");
        assert!((standard_error(0.91, 1000) - 0.00905).abs() < 1e-5);
        assert_eq!(standard_error(0.5, 0), f64::INFINITY);
        assert!(UniformBest::new(&u, scores, (1, 1)).is_none());
        // A file without the field (as older versions wrote it) reads, and round-trips.
        let mut json = serde_json::to_value(&b).unwrap();
        assert!(json.get("uniform").is_some());
        json.as_object_mut().unwrap().remove("uniform");
        let old: BestPolicy = serde_json::from_value(json).unwrap();
        assert_eq!(old.uniform, None);
    }
}
