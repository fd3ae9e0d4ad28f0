//! best-policy.json, and the one rule that picks the best episode (for best-policy.json, the
//! search's progress line and the report's "best so far").

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::episodes::Episode;
use super::files::read_json;
use super::RunDirError;
use crate::quant::Bits;

/// One layer of best-policy.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BestLayer {
    pub name: String,
    pub w_bits: Bits,
    pub a_bits: Bits,
}

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
                .map(|(name, b)| BestLayer {
                    name: name.to_string(),
                    w_bits: b.w,
                    a_bits: b.a,
                })
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
        })
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

/// The best episode: among the feasible, scored (not failed) rows with a reward, the highest
/// reward; the first of equal rewards.
pub fn best_row(rows: &[Episode]) -> Option<&Episode> {
    let mut best: Option<(&Episode, f64)> = None;
    for r in rows.iter().filter(|r| r.feasible && !r.failed) {
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
            bits: vec![crate::quant::LayerBits::uniform(Bits::FULL)],
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
            seconds: 0.0,
        }
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
}
