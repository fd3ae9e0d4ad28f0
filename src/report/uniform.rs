//! Mixed against uniform across runs: each compared run's best policy beside the best uniform
//! policy under the same budget (best-policy.json's `uniform`), on validation and test, and per
//! agent, device and budget the mean ± sd of both accuracies and of the margin — the question
//! "does the searched mixed policy beat fixed bitwidths at equal cost" answered over seeds, in
//! compare-uniform.csv, compare.html and `bitsearch compare`'s output.

use std::fmt::Write;

use super::compare::quote;
use super::study::{spread, Spread};
use super::units::{quantity, Quantity};
use crate::rundir::{BudgetRecord, RunDir};

/// One run that has a uniform yardstick.
#[derive(Debug, Clone, PartialEq)]
pub struct VersusRow {
    pub label: String,
    /// Agent, device and budget: the runs a group's means are over.
    pub group: String,
    pub best: String,
    pub uniform: String,
    /// (best, uniform) accuracy on validation, then on test.
    pub validation: (f64, f64),
    pub test: (f64, f64),
    /// The uniform policy's standard error on (validation, test).
    pub standard_errors: (f64, f64),
}

/// One group's spreads over its runs.
#[derive(Debug, Clone, PartialEq)]
pub struct VersusGroup {
    pub group: String,
    /// Best policy's accuracy, uniform's, margin: on validation, then on test.
    pub validation: [Spread; 3],
    pub test: [Spread; 3],
    /// The largest standard error of a uniform accuracy in the group, per split.
    pub standard_errors: (f64, f64),
}

/// The mixed-against-uniform table of a comparison; `None` from `of` when no run has one.
#[derive(Debug, Clone, PartialEq)]
pub struct Versus {
    pub rows: Vec<VersusRow>,
    /// In the order groups first appear among the runs.
    pub groups: Vec<VersusGroup>,
}

/// "latency ≤ 17.87 µs", the budgets of a run joined, or "no budget".
fn budget_text(b: &BudgetRecord) -> String {
    let parts: Vec<String> = [
        (b.latency_s, Quantity::Seconds, "latency"),
        (b.energy_j, Quantity::Joules, "energy"),
        (b.size_bytes, Quantity::Bytes, "size"),
    ]
    .into_iter()
    .filter_map(|(v, q, name)| v.map(|v| format!("{name} \u{2264} {}", quantity(q, Some(v)))))
    .collect();
    match parts.is_empty() {
        true => "no budget".into(),
        false => parts.join(", "),
    }
}

impl Versus {
    /// The runs of `runs` (labelled `labels`) whose best-policy.json has a uniform yardstick.
    pub fn of(runs: &[RunDir], labels: &[String]) -> Option<Versus> {
        let rows: Vec<VersusRow> = (runs.iter().zip(labels))
            .filter_map(|(run, label)| {
                let best = run.best.as_ref()?;
                let u = best.uniform.as_ref()?;
                let c = &run.config;
                Some(VersusRow {
                    label: label.clone(),
                    group: format!(
                        "{} on {}, {}",
                        c.agent.name,
                        c.profile.name,
                        budget_text(&c.budget)
                    ),
                    best: best.policy.clone(),
                    uniform: u.policy.clone(),
                    validation: (best.validation.accuracy, u.validation.accuracy),
                    test: (best.test.accuracy, u.test.accuracy),
                    standard_errors: u.standard_errors(),
                })
            })
            .collect();
        if rows.is_empty() {
            return None;
        }
        let mut names: Vec<&str> = Vec::new();
        for r in &rows {
            if !names.contains(&r.group.as_str()) {
                names.push(&r.group);
            }
        }
        let groups = names.iter().filter_map(|g| group(&rows, g)).collect();
        Some(Versus { rows, groups })
    }

    pub const FILE: &'static str = "compare-uniform.csv";

    /// compare-uniform.csv: one row per run, accuracies as fractions.
    pub fn csv(&self) -> String {
        let mut out = "run,group,best_policy,uniform_policy,best_validation_accuracy,\
                       uniform_validation_accuracy,margin_validation,se_validation,\
                       best_test_accuracy,uniform_test_accuracy,margin_test,se_test\n"
            .to_string();
        for r in &self.rows {
            let cells = [
                quote(&r.label),
                quote(&r.group),
                quote(&r.best),
                quote(&r.uniform),
            ];
            let _ = writeln!(
                out,
                "{},{:.4},{:.4},{:.4},{:.4},{:.4},{:.4},{:.4},{:.4}",
                cells.join(","),
                r.validation.0,
                r.validation.1,
                r.validation.0 - r.validation.1,
                r.standard_errors.0,
                r.test.0,
                r.test.1,
                r.test.0 - r.test.1,
                r.standard_errors.1,
            );
        }
        out
    }

    /// The per-group table, accuracies and margins in points (mean ± sd (runs)).
    pub fn group_table(&self) -> (Vec<String>, Vec<Vec<String>>) {
        let header = [
            "agent, device, budget",
            "best, validation %",
            "uniform, validation %",
            "margin, validation",
            "best, test %",
            "uniform, test %",
            "margin, test",
        ];
        let rows = (self.groups.iter())
            .map(|g| {
                let (se_val, se_test) = g.standard_errors;
                let mut row = vec![g.group.clone()];
                row.extend(g.validation[..2].iter().map(points));
                row.push(margin(&g.validation[2], se_val));
                row.extend(g.test[..2].iter().map(points));
                row.push(margin(&g.test[2], se_test));
                row
            })
            .collect();
        (header.iter().map(|h| h.to_string()).collect(), rows)
    }
}

/// The spreads of the rows in group `name`.
fn group(rows: &[VersusRow], name: &str) -> Option<VersusGroup> {
    let members: Vec<&VersusRow> = rows.iter().filter(|r| r.group == name).collect();
    let split = |f: &dyn Fn(&VersusRow) -> (f64, f64)| -> Option<[Spread; 3]> {
        let best: Vec<f64> = members.iter().map(|r| f(r).0).collect();
        let uniform: Vec<f64> = members.iter().map(|r| f(r).1).collect();
        let diff: Vec<f64> = members.iter().map(|r| f(r).0 - f(r).1).collect();
        Some([spread(&best)?, spread(&uniform)?, spread(&diff)?])
    };
    let max_se = |f: &dyn Fn(&VersusRow) -> f64| members.iter().map(|r| f(r)).fold(0.0, f64::max);
    Some(VersusGroup {
        group: name.to_string(),
        validation: split(&|r| r.validation)?,
        test: split(&|r| r.test)?,
        standard_errors: (
            max_se(&|r| r.standard_errors.0),
            max_se(&|r| r.standard_errors.1),
        ),
    })
}

/// An accuracy spread in points: `91.98 ± 0.12 (5)`.
fn points(s: &Spread) -> String {
    format!(
        "{:.2} \u{00b1} {:.2} ({})",
        100.0 * s.mean,
        100.0 * s.sd,
        s.runs
    )
}

/// A margin spread in points, signed, flagged when its mean is within the split's standard
/// error: `+0.50 ± 0.20 (5)` or `+0.10 ± 0.20 (5), within the split's ±0.40`.
fn margin(s: &Spread, se: f64) -> String {
    let text = format!(
        "{:+.2} \u{00b1} {:.2} ({})",
        100.0 * s.mean,
        100.0 * s.sd,
        s.runs
    );
    match s.mean.abs() < se {
        true => format!("{text}, within the split's \u{00b1}{:.2}", 100.0 * se),
        false => text,
    }
}
