//! The page of a sensitivity study (`bitsearch sensitivity`): the heatmap (layers × formats,
//! accuracy drop and robust-accuracy drop side by side, each layer's share of latency and
//! energy) and the table behind it, one row per narrowed operand: what it loses, what it saves.

use super::charts::Heatmap;
use super::html::{escape, figure, page, table};
use super::style::{render, ChartFiles};
use super::ReportError;
use crate::rundir::{SensitivityDir, SensitivityRow};

/// Renders the study's heatmap into `dir` (charts/).
pub fn sensitivity_charts(
    study: &SensitivityDir,
    dir: &std::path::Path,
) -> Result<Vec<ChartFiles>, ReportError> {
    Ok(vec![render(&Heatmap::of(study), dir)?])
}

/// report.html of a study.
pub fn sensitivity_page(
    study: &SensitivityDir,
    charts: &[ChartFiles],
) -> Result<String, ReportError> {
    let c = &study.config;
    let name = c
        .experiment
        .get("name")
        .and_then(|n| n.as_str())
        .unwrap_or(&c.model);
    let mut b = format!(
        "<h1>bitsearch sensitivity: {} on {}</h1>\n",
        escape(name),
        escape(&c.profile.name)
    );
    let (done, planned) = (study.table.rows.len(), c.planned_rows());
    let reference = study.table.reference();
    b +=
        &format!(
        "<p>Each row narrows one operand of one layer to a format and keeps every other operand \
         at the reference, uniform {r}/{r}; every policy is fine-tuned and attacked as the search \
         scores it (validation split), and priced on {p}. Drops are in points against the \
         reference (accuracy {acc}, robust accuracy {rob}); savings are fractions of the \
         reference's latency and energy. {done} of {planned} policies scored{more}.</p>\n",
        r = c.reference,
        p = escape(&c.profile.name),
        acc = pct(reference.and_then(|r| r.accuracy)),
        rob = pct(reference.and_then(|r| r.robust_accuracy)),
        more = if done < planned { " (run the command again to continue)" } else { "" },
    );
    for chart in charts {
        b += &figure(chart)?;
    }
    b += "<h2>sensitivity.csv</h2>\n";
    b += &rows_table(&study.table.rows);
    Ok(page("bitsearch sensitivity", &b))
}

fn pct(v: Option<f64>) -> String {
    v.map_or("—".to_string(), |v| format!("{:.2}%", 100.0 * v))
}

fn points(v: Option<f64>) -> String {
    v.map_or("—".to_string(), |v| format!("{:+.2}", -100.0 * v))
}

fn rows_table(rows: &[SensitivityRow]) -> String {
    let header = [
        "layer",
        "operand",
        "format",
        "accuracy",
        "Δ points",
        "robust",
        "Δ points",
        "latency saved",
        "energy saved",
        "layer's latency",
        "layer's energy",
        "masking",
    ];
    let share = |v: Option<f64>| v.map_or(String::new(), |v| format!("{:.1}%", 100.0 * v));
    let body: Vec<Vec<String>> = (rows.iter())
        .map(|r| {
            vec![
                r.layer.clone(),
                r.operand.name().to_string(),
                r.format.clone(),
                pct(r.accuracy),
                points(r.accuracy_drop),
                pct(r.robust_accuracy),
                points(r.robust_accuracy_drop),
                format!("{:.1}%", 100.0 * r.latency_saved),
                format!("{:.1}%", 100.0 * r.energy_saved),
                share(r.layer_latency_share),
                share(r.layer_energy_share),
                r.masking.to_string(),
            ]
        })
        .collect();
    let numeric = [
        false, false, true, true, true, true, true, true, true, true, true, false,
    ];
    table(&header, &body, &numeric)
}
