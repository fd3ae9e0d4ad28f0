//! report.html's "Measured on a real runtime": measured.csv (`bitsearch measure`) as a table of
//! each policy's predicted and measured latency per batch, the prediction's error
//! (measured / predicted − 1) and the kernel each layer ran as, with the median absolute error
//! over the rows that have a prediction.

use super::html::{escape, table};
use super::units::Column;
use crate::rundir::{median_abs_error, MeasuredRow, RunDir};

/// The section, or None when the run has no measured.csv.
pub fn measured_section(run: &RunDir) -> Option<String> {
    let rows = run.measured.as_ref()?;
    let mut out = "<h2>Measured on a real runtime (measured.csv)</h2>\n".to_string();
    out += &format!(
        "<p class=\"note\">Each policy rebuilt as its deployable model (measure/episode-N.onnx) \
         and timed with <code>bitsearch measure</code>: the median of its timed runs after \
         warm-up. The prediction is the run's profile's ({}): an accelerator's (an ASIC's) \
         profile predicts that device, not a CPU, so only a profile calibrated on the measuring \
         host with <code>bitsearch profiles calibrate --runtime onnxruntime</code> is comparable \
         with these measurements.</p>\n",
        escape(&run.config.profile.name)
    );
    out += &format!("<p>{}</p>\n", escape(&summary(rows)));
    let (header, body) = measured_table(rows);
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let numeric = [true, false, true, true, true, true, false];
    out += &table(&header, &body, &numeric);
    Some(out)
}

/// Where the rows were measured (each runtime, CPU and thread count), and the median absolute
/// error over the rows with a prediction.
fn summary(rows: &[MeasuredRow]) -> String {
    let mut hosts: Vec<String> = Vec::new();
    for r in rows {
        let host = format!("{} on {}, {} threads", r.runtime, r.cpu, r.threads);
        if !hosts.contains(&host) {
            hosts.push(host);
        }
    }
    let error = match median_abs_error(rows) {
        Some((e, n)) => {
            let rows = if n == 1 { "row" } else { "rows" };
            format!(
                "median absolute error {:.1}% over the {n} {rows} with a prediction",
                100.0 * e
            )
        }
        None => "no row has a prediction (the run's profile was not found, or it prices another \
                 batch size)"
            .to_string(),
    };
    format!("{}; {error}.", hosts.join("; "))
}

/// The header and rows: episode, policy, batch, predicted and measured latency (one unit for
/// both), the error in %, the kernels as measured.csv names them.
fn measured_table(rows: &[MeasuredRow]) -> (Vec<String>, Vec<Vec<String>>) {
    let predicted: Vec<Option<f64>> = rows.iter().map(|r| r.predicted_latency_s).collect();
    let measured: Vec<Option<f64>> = rows.iter().map(|r| Some(r.measured_latency_s)).collect();
    let both: Vec<Option<f64>> = predicted.iter().chain(&measured).copied().collect();
    let latency = Column::new(super::units::Quantity::Seconds, &both);
    let header = vec![
        "episode".to_string(),
        "policy (w/a per layer)".to_string(),
        "batch".to_string(),
        latency.header("predicted"),
        latency.header("measured"),
        "error (%)".to_string(),
        "kernels (layer=kernel)".to_string(),
    ];
    let body = (rows.iter().enumerate())
        .map(|(i, r)| {
            vec![
                r.episode.to_string(),
                r.policy.clone(),
                r.batch.to_string(),
                latency.cell(predicted[i]),
                latency.cell(measured[i]),
                r.error()
                    .map_or("–".to_string(), |e| format!("{:+.1}", 100.0 * e)),
                r.kernels.replace(';', "; "),
            ]
        })
        .collect();
    (header, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(measured: f64, predicted: Option<f64>) -> MeasuredRow {
        MeasuredRow {
            episode: 1,
            policy: "8/8".into(),
            batch: 1,
            predicted_latency_s: predicted,
            measured_latency_s: measured,
            repeats: 50,
            kernels: "conv1=QLinearConv".into(),
            runtime: "onnxruntime 1.32.0".into(),
            cpu: "cpu".into(),
            threads: 2,
        }
    }

    #[test]
    fn predicted_and_measured_share_one_unit() {
        // 900 µs predicted, 1.2 ms measured: both in ms, not one in each
        let (header, body) = measured_table(&[row(1.2e-3, Some(9.0e-4))]);
        assert_eq!(
            (header[3].as_str(), header[4].as_str()),
            ("predicted (ms)", "measured (ms)")
        );
        assert_eq!(
            (
                body[0][3].as_str(),
                body[0][4].as_str(),
                body[0][5].as_str()
            ),
            ("0.9", "1.2", "+33.3")
        );
    }
}
