//! Self-contained HTML pages: inline CSS, the charts' SVG inlined, no scripts, no network.

use std::fmt::Write;
use std::path::Path;

use super::style::ChartFiles;
use super::{io_err, ReportError};
use crate::rundir::{DqDir, Episode, RunDir};

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
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}</body>\n</html>\n",
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

/// A number with four significant digits, or `–` when absent.
pub fn num(v: Option<f64>) -> String {
    match v {
        None => "–".to_string(),
        Some(v) if v.fract() == 0.0 && v.abs() < 1e12 => format!("{v:.0}"),
        Some(v) if v.abs() < 1e-3 || v.abs() >= 1e5 => format!("{v:.3e}"),
        Some(v) => format!("{v:.4}"),
    }
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
        vec![
            "episodes (logged)".into(),
            run.episodes.rows.len().to_string(),
        ],
        vec!["seed".into(), opt(c.seed)],
        vec!["budget: latency (s)".into(), num(c.budget.latency_s)],
        vec!["budget: energy (J)".into(), num(c.budget.energy_j)],
        vec!["budget: size (bytes)".into(), num(c.budget.size_bytes)],
    ];
    if let Some(u) = &c.uniform8 {
        let text = format!(
            "latency {} s, energy {} J, size {} bytes",
            num(Some(u.latency_s)),
            num(Some(u.energy_j)),
            num(Some(u.size_bytes))
        );
        rows.push(vec!["uniform 8/8".into(), text]);
    }
    rows
}

const EPISODE_HEADER: [&str; 10] = [
    "episode",
    "agent",
    "policy (w/a per layer)",
    "accuracy",
    "robust accuracy",
    "latency (s)",
    "energy (J)",
    "size (bytes)",
    "reward",
    "feasible",
];

fn episode_row(e: &Episode) -> Vec<String> {
    vec![
        e.episode.to_string(),
        e.agent.clone(),
        e.policy.clone(),
        num(e.accuracy),
        num(e.robust_accuracy),
        num(Some(e.latency_s)),
        num(Some(e.energy_j)),
        num(Some(e.size_bytes)),
        num(e.reward),
        e.feasible.to_string(),
    ]
}

fn best_section(run: &RunDir) -> String {
    let Some(b) = &run.best else {
        return "<p class=\"note\">No best-policy.json yet: the search has not finished.</p>\n"
            .to_string();
    };
    let rows = vec![
        vec!["policy".into(), b.policy.clone()],
        vec!["episode".into(), b.episode.to_string()],
        vec!["reward".into(), num(Some(b.reward))],
        vec![
            "accuracy (validation / test)".into(),
            pair(b.validation.accuracy, b.test.accuracy),
        ],
        vec![
            "robust accuracy (validation / test)".into(),
            pair(b.validation.robust_accuracy, b.test.robust_accuracy),
        ],
        vec!["latency (s)".into(), num(Some(b.latency_s))],
        vec!["energy (J)".into(), num(Some(b.energy_j))],
        vec!["size (bytes)".into(), num(Some(b.size_bytes))],
    ];
    let mut out =
        "<h3>Best policy (best-policy.json, re-scored on the test split)</h3>\n".to_string();
    out += &table(&["field", "value"], &rows, &[false, false]);
    out
}

fn pair(a: f64, b: f64) -> String {
    format!("{} / {}", num(Some(a)), num(Some(b)))
}

/// The page of a search run; `charts` in the order of `run_charts`.
pub fn run_page(run: &RunDir, charts: &[ChartFiles]) -> Result<String, ReportError> {
    let c = &run.config;
    let mut b = format!(
        "<h1>bitsearch run {}</h1>\n<p class=\"note\">{} on {}, model {}.</p>\n",
        escape(&c.run),
        escape(&c.agent.name),
        escape(&c.profile.name),
        escape(&c.model)
    );
    b += "<h2>Configuration</h2>\n";
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
        Some(p) => {
            let rows: Vec<Vec<String>> = p.rows.iter().map(episode_row).collect();
            b += &table(
                &EPISODE_HEADER,
                &rows,
                &[true, false, false, true, true, true, true, true, true],
            );
        }
        None => b += "<p class=\"note\">No pareto.csv yet.</p>\n",
    }
    b += "<h2>Bits per layer</h2>\n";
    for chart in charts.iter().skip(2) {
        b += &figure(chart)?;
    }
    let json = (c.to_json())
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_default();
    b += &format!(
        "<h2>config.json</h2>\n<details><summary>show</summary><pre>{}</pre></details>\n",
        escape(&json)
    );
    Ok(page(&format!("bitsearch report: {}", c.run), &b))
}

/// The page of a DQ study.
pub fn dq_page(dq: &DqDir, charts: &[ChartFiles]) -> Result<String, ReportError> {
    let mut b = "<h1>bitsearch Defensive-Quantization study</h1>\n".to_string();
    for chart in charts {
        b += &figure(chart)?;
    }
    let attacks: Vec<String> = dq
        .rows
        .first()
        .map(|r| r.attacks.iter().map(|a| a.0.clone()).collect())
        .unwrap_or_default();
    let mut header: Vec<&str> = vec!["bits", "beta", "clean"];
    header.extend(attacks.iter().map(String::as_str));
    header.extend([
        "worst case",
        "zero-grad",
        "eps rise",
        "above transfer",
        "Lipschitz bound",
    ]);
    let rows: Vec<Vec<String>> = dq
        .rows
        .iter()
        .map(|r| {
            let mut row = vec![
                r.bits.to_string(),
                num(Some(r.beta)),
                num(Some(r.clean_accuracy)),
            ];
            row.extend(r.attacks.iter().map(|a| num(Some(a.1))));
            row.extend([
                num(Some(r.worst_case)),
                num(Some(r.masking_zero_grad)),
                r.masking_eps_rise.to_string(),
                r.masking_above_transfer.to_string(),
                num(Some(r.lipschitz_bound)),
            ]);
            row
        })
        .collect();
    b += "<h2>dq.csv</h2>\n";
    b += &table(&header, &rows, &vec![true; header.len()]);
    Ok(page("bitsearch DQ study", &b))
}
