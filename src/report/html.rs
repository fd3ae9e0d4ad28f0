//! Self-contained HTML pages: inline CSS, the charts' SVG inlined, scripts (the explorer) inlined,
//! nothing fetched: no favicon request either (`rel="icon" href="data:,"`).

use std::fmt::Write;
use std::path::Path;

use super::explore::Explorer;
use super::style::{beta_label, ChartFiles};
use super::units::{quantity, Column, Quantity};
use super::{io_err, ReportError};
use crate::rundir::{DqDir, DqRow, Episode, FrontTest, FrontTestRow, RunDir};

const CSS: &str = "body{font-family:sans-serif;margin:2em auto;max-width:1000px;color:#222}\
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:1.6em;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;font-size:.9em;margin:.5em 0}\
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}th{background:#f2f2f2}\
td.n{text-align:right;font-variant-numeric:tabular-nums}\
figure{margin:1em 0}svg{max-width:100%;height:auto;display:block}\
pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:.8em}.note{color:#555}";

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

/// A whole page around `body`.
pub fn page(title: &str, body: &str) -> String {
    page_with(title, "", body)
}

/// A whole page, with `css` added to its style. The icon is an empty data: URL, else Chromium
/// asks the server (or file://) for /favicon.ico.
pub fn page_with(title: &str, css: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{}</title>\n<link rel=\"icon\" href=\"data:,\">\n<style>{CSS}\n{css}</style>\n\
         </head>\n<body>\n{body}</body>\n</html>\n",
        escape(title)
    )
}

/// A chart's SVG, inlined in a figure (the XML declaration, if any, dropped).
pub fn figure(chart: &ChartFiles) -> Result<String, ReportError> {
    let svg = std::fs::read_to_string(&chart.svg).map_err(io_err(&chart.svg))?;
    let start = svg.find("<svg").unwrap_or(0);
    let name = file_name(&chart.png);
    Ok(format!(
        "<figure>\n{}\n<figcaption class=\"note\">charts/{} (also .svg)</figcaption>\n</figure>\n",
        &svg[start..],
        escape(&name)
    ))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A table with a header row; cells are escaped, `numeric` columns right-aligned.
pub fn table(header: &[&str], rows: &[Vec<String>], numeric: &[bool]) -> String {
    let mut out = String::from("<table>\n<tr>");
    for h in header {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr>\n");
    for row in rows {
        out.push_str("<tr>");
        for (i, cell) in row.iter().enumerate() {
            let class = if numeric.get(i) == Some(&true) {
                " class=\"n\""
            } else {
                ""
            };
            let _ = write!(out, "<td{class}>{}</td>", escape(cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    out
}

fn config_rows(run: &RunDir) -> Vec<Vec<String>> {
    let c = &run.config;
    let opt = |v: Option<u64>| v.map_or("–".to_string(), |v| v.to_string());
    let mut rows = vec![
        vec!["run".into(), c.run.clone()],
        vec![
            "experiment".into(),
            c.experiment_name().unwrap_or_default().to_string(),
        ],
        vec!["model".into(), c.model.clone()],
        vec!["layers".into(), c.layers.len().to_string()],
        vec!["profile".into(), c.profile.name.clone()],
        vec!["agent".into(), c.agent.name.clone()],
        vec!["episodes (planned)".into(), opt(c.episodes)],
        vec!["episodes (logged)".into(), run.full_episodes().to_string()],
        vec!["seed".into(), opt(c.seed)],
        vec![
            "budget: latency".into(),
            quantity(Quantity::Seconds, c.budget.latency_s),
        ],
        vec![
            "budget: energy".into(),
            quantity(Quantity::Joules, c.budget.energy_j),
        ],
        vec![
            "budget: size".into(),
            quantity(Quantity::Bytes, c.budget.size_bytes),
        ],
    ];
    if let Some(u) = &c.uniform8 {
        let text = format!(
            "latency {}, energy {}, size {}",
            quantity(Quantity::Seconds, Some(u.latency_s)),
            quantity(Quantity::Joules, Some(u.energy_j)),
            quantity(Quantity::Bytes, Some(u.size_bytes))
        );
        rows.push(vec!["uniform 8/8".into(), text]);
    }
    rows
}

/// A measured column of the episode table: name, quantity, value.
type Measure = (&'static str, Quantity, fn(&Episode) -> Option<f64>);

const MEASURED: [Measure; 6] = [
    ("accuracy", Quantity::Fraction, |e| e.accuracy),
    ("robust accuracy", Quantity::Fraction, |e| e.robust_accuracy),
    ("latency", Quantity::Seconds, |e| Some(e.latency_s)),
    ("energy", Quantity::Joules, |e| Some(e.energy_j)),
    ("size", Quantity::Bytes, |e| Some(e.size_bytes)),
    ("reward", Quantity::Plain, |e| e.reward),
];

/// A table of episodes, each measured column in one unit chosen for its values.
fn episode_table(rows: &[Episode]) -> String {
    let columns: Vec<(String, Vec<String>)> = (MEASURED.iter())
        .map(|&(name, q, f)| {
            let v: Vec<Option<f64>> = rows.iter().map(f).collect();
            let c = Column::new(q, &v);
            (c.header(name), c.cells(&v))
        })
        .collect();
    let mut header = vec!["episode", "agent", "policy (w/a per layer)"];
    header.extend(columns.iter().map(|(h, _)| h.as_str()));
    header.push("feasible");
    let body: Vec<Vec<String>> = (rows.iter().enumerate())
        .map(|(i, e)| {
            let mut row = vec![e.episode.to_string(), e.agent.clone(), e.policy.clone()];
            row.extend(columns.iter().map(|(_, cells)| cells[i].clone()));
            row.push(e.feasible.to_string());
            row
        })
        .collect();
    let mut numeric = vec![true, false, false];
    numeric.extend([true; MEASURED.len()]);
    table(&header, &body, &numeric)
}

fn best_section(run: &RunDir) -> String {
    let Some(b) = &run.best else {
        return "<p class=\"note\">No best-policy.json yet: the search has not finished.</p>\n"
            .to_string();
    };
    let mut rows = vec![
        vec!["policy".into(), b.policy.clone()],
        vec!["episode".into(), b.episode.to_string()],
        vec!["reward".into(), quantity(Quantity::Plain, Some(b.reward))],
        vec![
            "accuracy (validation / test)".into(),
            pair(b.validation.accuracy, b.test.accuracy),
        ],
        vec![
            "robust accuracy (validation / test)".into(),
            pair(b.validation.robust_accuracy, b.test.robust_accuracy),
        ],
        vec![
            "latency".into(),
            quantity(Quantity::Seconds, Some(b.latency_s)),
        ],
        vec![
            "energy".into(),
            quantity(Quantity::Joules, Some(b.energy_j)),
        ],
        vec!["size".into(), quantity(Quantity::Bytes, Some(b.size_bytes))],
    ];
    if let Some(u) = &b.uniform {
        rows.push(vec![
            "best uniform policy under the budget".into(),
            format!(
                "{} ({})",
                u.policy,
                quantity(Quantity::Seconds, Some(u.latency_s))
            ),
        ]);
        rows.push(vec![
            "its accuracy (validation / test)".into(),
            pair(u.validation.accuracy, u.test.accuracy),
        ]);
        if let Some((val, test)) = b.margin_over_uniform() {
            let (se_val, se_test) = u.standard_errors();
            let points = |x: f64, se: f64| format!("{:+.2} (±{:.2})", 100.0 * x, 100.0 * se);
            rows.push(vec![
                "margin over it, points (validation / test; ± the split's standard error)".into(),
                format!("{} / {}", points(val, se_val), points(test, se_test)),
            ]);
        }
    }
    let mut out =
        "<h3>Best policy (best-policy.json, re-scored on the test split)</h3>\n".to_string();
    out += &table(&["field", "value"], &rows, &[false, false]);
    out
}

/// A column of the front table: its name and each row's value.
type FrontColumn = (String, Quantity, Vec<Option<f64>>);

/// front-test.csv beside the validation numbers: validation accuracy and robust accuracy (the
/// search's suite) against test accuracy, the strong suite's worst case per eps and its AUC, and
/// the masking checks of both.
fn front_section(front: Option<&FrontTest>) -> String {
    let Some(front) = front else {
        return "<p class=\"note\">No front-test.csv: the search has not finished, or \
                `[front_test] enabled = false`.</p>\n"
            .to_string();
    };
    let col = |name: String, q: Quantity, f: &dyn Fn(&FrontTestRow) -> f64| -> FrontColumn {
        (name, q, front.rows.iter().map(|r| Some(f(r))).collect())
    };
    let mut columns = vec![
        col("latency".into(), Quantity::Seconds, &|r| r.latency_s),
        col("val. accuracy".into(), Quantity::Fraction, &|r| {
            r.validation_accuracy
        }),
        col("val. robust".into(), Quantity::Fraction, &|r| {
            r.validation_robust_accuracy
        }),
        col("test accuracy".into(), Quantity::Fraction, &|r| r.accuracy),
        col("test clean (attacked)".into(), Quantity::Fraction, &|r| {
            r.clean_accuracy
        }),
    ];
    for (i, eps) in front.eps.iter().enumerate() {
        let name = format!("test robust ε={eps}");
        columns.push(col(name, Quantity::Fraction, &|r| {
            r.robust.get(i).copied().unwrap_or(0.0)
        }));
    }
    columns.push(col("test robust AUC".into(), Quantity::Fraction, &|r| {
        r.robust_auc
    }));
    let cells: Vec<(String, Vec<String>)> = (columns.iter())
        .map(|(name, q, v)| {
            let c = Column::new(*q, v);
            (c.header(name), c.cells(v))
        })
        .collect();
    let mut header = vec!["episode", "policy (w/a per layer)"];
    header.extend(cells.iter().map(|(h, _)| h.as_str()));
    header.extend(["val. masking", "test masking"]);
    let body: Vec<Vec<String>> = (front.rows.iter().enumerate())
        .map(|(i, r)| {
            let mut row = vec![r.episode.to_string(), r.policy.clone()];
            row.extend(cells.iter().map(|(_, c)| c[i].clone()));
            let val = r
                .validation_masking
                .map_or("–".to_string(), |c| c.to_string());
            row.extend([val, r.masking.to_string()]);
            row
        })
        .collect();
    let mut numeric = vec![true, false];
    numeric.extend(vec![true; cells.len()]);
    let examples = front.rows.first().map_or(0, |r| r.examples);
    let mut out = format!(
        "<p class=\"note\">Every feasible policy of pareto.csv, fine-tuned again with its seed and \
         attacked on {examples} test examples with the strong suite (<code>[front_test]</code>): \
         the robust columns are the per-example worst case over FGSM, PGD, transfer and Square at \
         each ε; AUC is the area under that curve from ε = 0 (clean) per unit ε. A flagged policy's \
         robust numbers are upper bounds.</p>\n"
    );
    out += &table(&header, &body, &numeric);
    out
}

/// Two accuracies (validation / test) in one unit.
fn pair(a: f64, b: f64) -> String {
    let c = Column::new(Quantity::Fraction, &[Some(a), Some(b)]);
    format!("{} / {}", c.cell(Some(a)), c.with_unit(Some(b)))
}

/// The page of a search run; `charts` in the order of `run_charts`.
pub fn run_page(
    run: &RunDir,
    charts: &[ChartFiles],
    explorer: &Explorer,
) -> Result<String, ReportError> {
    let c = &run.config;
    let mut b = format!(
        "<h1>bitsearch run {}</h1>\n<p class=\"note\">{} on {}, model {}.</p>\n",
        escape(&c.run),
        escape(&c.agent.name),
        escape(&c.profile.name),
        escape(&c.model)
    );
    b += &explorer.section()?;
    b += "<h2>Configuration</h2>\n<p class=\"note\">Below the explorer: the static charts \
          (also in charts/ as PNG and SVG, for papers) and tables.</p>\n";
    b += &table(&["field", "value"], &config_rows(run), &[false, false]);
    b += "<h2>Pareto fronts</h2>\n<p class=\"note\">Faint points: every scored policy; line: the \
          front of the feasible ones; triangles: uniform policies; red line: the budget.</p>\n";
    for chart in charts.iter().take(2) {
        b += &figure(chart)?;
    }
    b += "<h2>Best policies</h2>\n";
    b += &best_section(run);
    b += "<h3>Pareto-optimal policies (pareto.csv)</h3>\n";
    match &run.pareto {
        Some(p) => b += &episode_table(&p.rows),
        None => b += "<p class=\"note\">No pareto.csv yet.</p>\n",
    }
    b += "<h2>Front on the test split (front-test.csv)</h2>\n";
    b += &front_section(run.front_test.as_ref());
    // run_charts' order: two Pareto charts, bits, progress, then the front's eps chart if any.
    for chart in charts.iter().skip(4) {
        b += &figure(chart)?;
    }
    if let Some(section) = super::measured::measured_section(run) {
        b += &section;
    }
    b += "<h2>Format per layer</h2>\n";
    for chart in charts.iter().skip(2).take(2) {
        b += &figure(chart)?;
    }
    let json = (c.to_json())
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_default();
    b += &format!(
        "<h2>config.json</h2>\n<details><summary>show</summary><pre>{}</pre></details>\n",
        escape(&json)
    );
    let title = format!("bitsearch report: {}", c.run);
    Ok(page_with(&title, Explorer::css(), &b))
}

/// The page of a DQ study.
pub fn dq_page(dq: &DqDir, charts: &[ChartFiles]) -> Result<String, ReportError> {
    let mut b = "<h1>bitsearch Defensive-Quantization study</h1>\n".to_string();
    for chart in charts {
        b += &figure(chart)?;
    }
    b += "<h2>dq.csv</h2>\n";
    b += &dq_table(dq);
    Ok(page("bitsearch DQ study", &b))
}

/// dq.csv as a table: accuracies and the zero-gradient share in %, one decimals rule per column.
fn dq_table(dq: &DqDir) -> String {
    let attacks: Vec<String> = dq
        .rows
        .first()
        .map(|r| r.attacks.iter().map(|a| a.0.clone()).collect())
        .unwrap_or_default();
    let column = |q: Quantity, f: &dyn Fn(&DqRow) -> Option<f64>| -> Vec<String> {
        let v: Vec<Option<f64>> = dq.rows.iter().map(f).collect();
        Column::new(q, &v).cells(&v)
    };
    let mut percent = vec![column(Quantity::Fraction, &|r| Some(r.clean_accuracy))];
    for i in 0..attacks.len() {
        percent.push(column(Quantity::Fraction, &|r| {
            r.attacks.get(i).and_then(|a| a.1)
        }));
    }
    percent.push(column(Quantity::Fraction, &|r| Some(r.worst_case)));
    let zero_grad = column(Quantity::Fraction, &|r| Some(r.masking_zero_grad));
    let bound = column(Quantity::Plain, &|r| Some(r.lipschitz_bound));
    let mut header: Vec<String> = vec!["bits".into(), "beta".into(), "clean (%)".into()];
    header.extend(attacks.iter().map(|a| format!("{a} (%)")));
    header.extend(
        [
            "worst case (%)",
            "zero-grad (%)",
            "eps rise",
            "above transfer",
            "Lipschitz bound",
        ]
        .map(String::from),
    );
    let rows: Vec<Vec<String>> = (dq.rows.iter().enumerate())
        .map(|(i, r)| {
            let mut row = vec![r.bits.to_string(), beta_label(r.beta)];
            row.extend(percent.iter().map(|c| c[i].clone()));
            row.extend([
                zero_grad[i].clone(),
                r.masking_eps_rise.to_string(),
                r.masking_above_transfer.to_string(),
                bound[i].clone(),
            ]);
            row
        })
        .collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    table(&header, &rows, &vec![true; header.len()])
}
