//! The compare view: the Pareto fronts of several runs overlaid, and their hypervolumes against
//! one shared reference point.
//!
//! Reference point (documented in compare.csv and compare.html): per objective, the worst value
//! over the feasible scored policies of all compared runs. Hypervolumes are also given
//! normalized by the box between that reference and the best observed point, so 1 = a single
//! policy best in every objective.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use super::charts::{ParetoChart, ParetoSeries};
use super::explore::Explorer;
use super::html::{escape, figure, page_with, table};
use super::study::{AtSpec, Study};
use super::style::{render, ChartFiles};
use super::uniform::Versus;
use super::units::{quantity, Column, Quantity, Scale};
use super::ReportError;
use crate::pareto::{hypervolume, senses, worst_point, Objective, Reference};
use crate::rundir::{write_atomic, RunDir};

/// The objective sets whose hypervolume is compared.
pub const HV_SETS: [&[Objective]; 3] = [
    &[Objective::Accuracy, Objective::Latency],
    &[Objective::RobustAccuracy, Objective::Energy],
    &[
        Objective::Accuracy,
        Objective::RobustAccuracy,
        Objective::Latency,
    ],
];

/// The hypervolumes of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct CompareRow {
    pub label: String,
    pub dir: PathBuf,
    pub agent: String,
    pub profile: String,
    pub scored: usize,
    /// Per entry of `HV_SETS`: (hypervolume, normalized hypervolume).
    pub hv: Vec<(f64, f64)>,
}

/// The result of `compare`.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub rows: Vec<CompareRow>,
    /// Per entry of `HV_SETS`: the shared reference point, in the objectives' units.
    pub references: Vec<Vec<f64>>,
    pub csv: PathBuf,
    pub html: PathBuf,
    pub charts: Vec<ChartFiles>,
    /// What compare.html says is missing (a run's per-layer prices, and why).
    pub notes: Vec<String>,
    /// The hypervolumes at N episodes, when `--at` asked for them.
    pub study: Option<Study>,
    /// Each run's best policy against the best uniform one under its budget, when any run
    /// records one (also compare-uniform.csv).
    pub uniform: Option<Versus>,
}

/// A set's name, as in the CSV header (`accuracy_latency_s`).
pub fn set_name(set: &[Objective]) -> String {
    set.iter().map(|o| o.column()).collect::<Vec<_>>().join("_")
}

fn points(run: &RunDir, set: &[Objective]) -> Vec<Vec<f64>> {
    run.scored()
        .filter(|e| e.feasible)
        .filter_map(|e| set.iter().map(|&o| e.objective(o)).collect())
        .collect()
}

/// Labels: the run names, told apart where two runs share a name by their directory's name,
/// or, when that is the run name itself, by its parent's (a sweep's `random-t4 (s0)` and
/// `random-t4 (s1)`).
fn labels(runs: &[RunDir]) -> Vec<String> {
    let names: Vec<&str> = runs.iter().map(|r| r.config.run.as_str()).collect();
    let file_name = |p: Option<&Path>| {
        p.and_then(Path::file_name)
            .map(|d| d.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    runs.iter()
        .map(|r| {
            let name = r.config.run.as_str();
            if names.iter().filter(|&&n| n == name).count() < 2 {
                return name.to_string();
            }
            let dir = file_name(Some(&r.dir));
            match dir == name {
                true => format!("{name} ({})", file_name(r.dir.parent())),
                false => format!("{name} ({dir})"),
            }
        })
        .collect()
}

/// Hypervolumes of every run for one objective set against the shared reference.
fn set_hypervolumes(runs: &[RunDir], set: &[Objective]) -> (Vec<f64>, Vec<(f64, f64)>) {
    let s = senses(set);
    let all: Vec<Vec<f64>> = runs.iter().flat_map(|r| points(r, set)).collect();
    let (Ok(reference), Ok(ideal)) = (worst_point(&all, &s), best_point(&all, set)) else {
        // No feasible scored policy in any run: nothing dominates anything.
        return (vec![f64::NAN; set.len()], vec![(0.0, 0.0); runs.len()]);
    };
    let box_volume: f64 = reference
        .iter()
        .zip(&ideal)
        .map(|(r, i)| (r - i).abs())
        .product();
    let r = Reference::Given(reference.clone());
    let hv = runs
        .iter()
        .map(|run| {
            let v = hypervolume(&points(run, set), &s, &r).unwrap_or(0.0);
            let norm = if box_volume > 0.0 {
                v / box_volume
            } else {
                0.0
            };
            (v, norm)
        })
        .collect();
    (reference, hv)
}

fn best_point(all: &[Vec<f64>], set: &[Objective]) -> Result<Vec<f64>, crate::pareto::ParetoError> {
    // The best point is the worst point with every sense flipped.
    let flipped: Vec<_> = set
        .iter()
        .map(|o| match o.sense() {
            crate::pareto::Sense::Maximize => crate::pareto::Sense::Minimize,
            crate::pareto::Sense::Minimize => crate::pareto::Sense::Maximize,
        })
        .collect();
    worst_point(all, &flipped)
}

/// Reads the runs in `dirs`, writes the overlaid charts, compare.csv and compare.html to `out`.
pub fn compare(dirs: &[PathBuf], out: &Path) -> Result<Comparison, ReportError> {
    compare_at(dirs, out, None)
}

/// `compare`, and with `at` the hypervolumes at N episodes (`study`): in compare.html, and in
/// compare-at.csv and compare-agents.csv beside compare.csv.
pub fn compare_at(
    dirs: &[PathBuf],
    out: &Path,
    at: Option<&AtSpec>,
) -> Result<Comparison, ReportError> {
    if dirs.is_empty() {
        return Err(ReportError::NoRuns);
    }
    let runs = dirs
        .iter()
        .map(|d| RunDir::read(d))
        .collect::<Result<Vec<_>, _>>()?;
    let labels = labels(&runs);
    let charts_dir = out.join("charts");
    crate::rundir::create_dir(&charts_dir)?;
    let charts = vec![
        render(
            &overlay(&runs, &labels, Objective::Latency, Objective::Accuracy),
            &charts_dir,
        )?,
        render(
            &overlay(&runs, &labels, Objective::Energy, Objective::RobustAccuracy),
            &charts_dir,
        )?,
    ];
    let mut references = Vec::new();
    let mut per_set = Vec::new();
    for set in HV_SETS {
        let (r, hv) = set_hypervolumes(&runs, set);
        references.push(r);
        per_set.push(hv);
    }
    let rows = (runs.iter().zip(&labels).enumerate())
        .map(|(i, (run, label))| CompareRow {
            label: label.clone(),
            dir: run.dir.clone(),
            agent: run.config.agent.name.clone(),
            profile: run.config.profile.name.clone(),
            scored: run.scored().count(),
            hv: per_set.iter().map(|hv| hv[i]).collect(),
        })
        .collect();
    let study = match at {
        Some(spec) => Some(study_of(&runs, &labels, spec, &charts_dir)?),
        None => None,
    };
    let explorer = Explorer::of_runs(&runs, &labels);
    let cmp = Comparison {
        rows,
        references,
        csv: out.join("compare.csv"),
        html: out.join("compare.html"),
        charts,
        notes: explorer.notes.clone(),
        study,
        uniform: Versus::of(&runs, &labels),
    };
    if let Some(study) = &cmp.study {
        study.write(out)?;
    }
    if let Some(v) = &cmp.uniform {
        write_atomic(&out.join(Versus::FILE), v.csv().as_bytes())?;
    }
    write_atomic(&cmp.csv, csv_text(&cmp).as_bytes())?;
    let html = html_text(&cmp, &explorer)?;
    write_atomic(&cmp.html, html.as_bytes())?;
    Ok(cmp)
}

/// The study of `spec`, its charts drawn into `charts_dir`.
fn study_of(
    runs: &[RunDir],
    labels: &[String],
    spec: &AtSpec,
    charts_dir: &Path,
) -> Result<Study, ReportError> {
    let reference = (spec.reference.iter())
        .map(|d| RunDir::read(d))
        .collect::<Result<Vec<_>, _>>()?;
    let mut study = Study::compute(runs, labels, &reference, &spec.at)?;
    for chart in study.charts() {
        study.chart_files.push(render(&chart, charts_dir)?);
    }
    Ok(study)
}

fn overlay(runs: &[RunDir], labels: &[String], x: Objective, y: Objective) -> ParetoChart {
    let budgets: Vec<Option<f64>> = runs
        .iter()
        .map(|r| match x {
            Objective::Latency => r.config.budget.latency_s,
            _ => r.config.budget.energy_j,
        })
        .collect();
    // A budget line only when every run has the same one.
    let budget = budgets
        .first()
        .copied()
        .flatten()
        .filter(|b| budgets.iter().all(|o| *o == Some(*b)));
    ParetoChart {
        stem: format!("compare-{}-{}", y.column(), x.column()),
        title: format!("{} vs {}: {} runs", y.label(), x.label(), runs.len()),
        x,
        y,
        series: (runs.iter().zip(labels))
            .map(|(run, label)| ParetoSeries::of_run(label, run, x, y))
            .collect(),
        markers: Vec::new(),
        budget,
        baseline: None,
    }
}

/// The reference point of each set, as one line of text per set, each value in its own unit.
pub fn reference_text(cmp: &Comparison) -> Vec<String> {
    (HV_SETS.iter().zip(&cmp.references))
        .map(|(set, r)| {
            let parts: Vec<String> = (set.iter().zip(r))
                .map(|(o, &v)| format!("{} = {}", o.label(), quantity(Quantity::of(*o), Some(v))))
                .collect();
            format!("{}: reference ({})", set_name(set), parts.join(", "))
        })
        .collect()
}

fn csv_text(cmp: &Comparison) -> String {
    let mut header = vec![
        "run".to_string(),
        "dir".into(),
        "agent".into(),
        "profile".into(),
        "scored".into(),
    ];
    for set in HV_SETS {
        let name = set_name(set);
        header.push(format!("hv_{name}"));
        header.push(format!("hv_norm_{name}"));
        header.extend(set.iter().map(|o| format!("ref_{name}_{}", o.column())));
    }
    let mut out = header.join(",") + "\n";
    for row in &cmp.rows {
        let mut cells = vec![
            quote(&row.label),
            quote(&row.dir.display().to_string()),
            quote(&row.agent),
            quote(&row.profile),
            row.scored.to_string(),
        ];
        for ((hv, norm), r) in row.hv.iter().zip(&cmp.references) {
            cells.push(format!("{hv:e}"));
            cells.push(format!("{norm:.6}"));
            cells.extend(r.iter().map(|v| format!("{v:e}")));
        }
        let _ = writeln!(out, "{}", cells.join(","));
    }
    out
}

/// A text cell of compare.csv: RFC 4180 quoting (a cell holding `,`, `"`, `\n` or `\r` is
/// quoted, `"` doubled), and a cell a spreadsheet would run as a formula (starting with `=`,
/// `+`, `-`, `@`, a tab or a carriage return: a run directory or label is anyone's text) gets a
/// leading `'` inside quotes, as OWASP's "CSV Injection" page advises.
pub(super) fn quote(s: &str) -> String {
    let text = defused(s);
    if text.len() != s.len() || s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// `s` as text a spreadsheet shows rather than runs: a leading `'` when it starts like a
/// formula (`=`, `+`, `-`, `@`, a tab or a carriage return). Every text cell of the compare
/// CSVs that comes from a run (its label, directory, agent) goes through it.
pub(super) fn defused(s: &str) -> String {
    match s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        true => format!("'{s}"),
        false => s.to_string(),
    }
}

/// The rows of the hypervolume table, as printed and in the HTML page.
pub fn table_rows(cmp: &Comparison) -> (Vec<String>, Vec<Vec<String>>) {
    let mut header = vec![
        "run".to_string(),
        "agent".into(),
        "profile".into(),
        "scored".into(),
    ];
    // Per set: the hypervolumes of every run, in the set's unit, with the normalized value.
    let mut hv_cells: Vec<Vec<String>> = Vec::new();
    for (i, (set, reference)) in HV_SETS.iter().zip(&cmp.references).enumerate() {
        let (factor, unit) = hv_unit(set, reference);
        let labels: Vec<&str> = set.iter().map(|o| o.label()).collect();
        header.push(format!("HV {} ({unit}; norm.)", labels.join("·")));
        let values: Vec<Option<f64>> = cmp.rows.iter().map(|r| Some(r.hv[i].0)).collect();
        let column = Column::scaled(factor, &unit, &values);
        hv_cells.push(
            (cmp.rows.iter())
                .map(|r| format!("{} ({:.3})", column.cell(Some(r.hv[i].0)), r.hv[i].1))
                .collect(),
        );
    }
    let rows = (cmp.rows.iter().enumerate())
        .map(|(k, r)| {
            let mut row = vec![
                r.label.clone(),
                r.agent.clone(),
                r.profile.clone(),
                r.scored.to_string(),
            ];
            row.extend(hv_cells.iter().map(|cells| cells[k].clone()));
            row
        })
        .collect();
    (header, rows)
}

/// A set's hypervolume unit: the product of its objectives' units, each scaled by the shared
/// reference point (accuracy × latency in %·µs), as (factor, unit).
fn hv_unit(set: &[Objective], reference: &[f64]) -> (f64, String) {
    let scales: Vec<Scale> = (set.iter().zip(reference))
        .map(|(o, &r)| Scale::for_max(Quantity::of(*o), r))
        .collect();
    let units: Vec<&str> = scales.iter().map(|s| s.unit).collect();
    (scales.iter().map(|s| s.factor).product(), units.join("·"))
}

fn html_text(cmp: &Comparison, explorer: &Explorer) -> Result<String, ReportError> {
    let mut b = format!("<h1>bitsearch compare: {} runs</h1>\n", cmp.rows.len());
    b += &explorer.section()?;
    b += "<h2>Fronts</h2>\n<p class=\"note\">Static charts (also in charts/ as PNG and SVG, for \
          papers).</p>\n";
    for chart in &cmp.charts {
        b += &figure(chart)?;
    }
    b += "<h2>Hypervolume</h2>\n<p class=\"note\">Over the feasible scored policies of each run. \
          Shared reference point: the worst value per objective over all compared runs; the \
          normalized value divides by the box between that point and the best observed one.</p>\n<ul>\n";
    for line in reference_text(cmp) {
        b += &format!("<li>{}</li>\n", escape(&line));
    }
    b += "</ul>\n";
    let (header, rows) = table_rows(cmp);
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let numeric: Vec<bool> = (0..header.len()).map(|i| i >= 3).collect();
    b += &table(&header, &rows, &numeric);
    if let Some(study) = &cmp.study {
        b += &study.html()?;
    }
    if let Some(v) = &cmp.uniform {
        b += "<h2>Mixed against uniform</h2>\n<p class=\"note\">Each run's best policy \
              (best-policy.json) beside the best uniform policy under the same budget, both \
              fine-tuned alike and re-scored on the test split; accuracies in percent, margins in \
              points, mean \u{00b1} sd (runs). A margin whose mean is within the split's \
              standard error says so. Per run: compare-uniform.csv.</p>\n";
        let (header, rows) = v.group_table();
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        let numeric: Vec<bool> = (0..header.len()).map(|i| i > 0).collect();
        b += &table(&header, &rows, &numeric);
    }
    Ok(page_with("bitsearch compare", Explorer::css(), &b))
}

#[cfg(test)]
mod tests {
    use super::quote;

    /// Guards against a run directory named `=HYPERLINK(...)` running as a formula when
    /// compare.csv is opened in a spreadsheet, and a `\r` splitting a row.
    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        assert_eq!(quote("runs/a"), "runs/a");
        assert_eq!(quote("a,b"), "\"a,b\"");
        assert_eq!(quote("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(quote("a\rb"), "\"a\rb\"");
        assert_eq!(quote("=1+1"), "\"'=1+1\"");
        assert_eq!(quote("@SUM(A1)"), "\"'@SUM(A1)\"");
        assert_eq!(quote("+1"), "\"'+1\"");
        assert_eq!(quote("-x,\"y\""), "\"'-x,\"\"y\"\"\"");
        assert_eq!(quote("\tx"), "\"'\tx\"");
    }
}
