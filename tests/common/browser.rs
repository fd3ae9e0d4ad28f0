//! Driving the report's explorer in a real browser from a test: whether Debian's chromium,
//! chromium-driver and Selenium are there (a test skips without them unless `CI` is set, then it
//! fails), scripts/check_report_browser.py's report of one point, and the assertions that compare
//! a pinned row with its line of episodes.csv or references.csv.

use std::path::Path;

use serde_json::Value;

use super::cli::repo;

const BROWSER: [&str; 2] = ["/usr/bin/chromium", "/usr/bin/chromedriver"];

/// True when the browser tests can run; panics when CI is set but something is missing.
pub fn browser_available() -> bool {
    let selenium = std::process::Command::new("python3")
        .args(["-c", "import selenium"])
        .output()
        .is_ok_and(|o| o.status.success());
    let mut missing: Vec<&str> = BROWSER
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if !selenium {
        missing.push("python3's selenium");
    }
    super::tools_present(&missing)
}

/// What scripts/check_report_browser.py saw, parsed.
pub fn check_in_browser(page: &Path, run: &str, episode: usize, extra: &[&str]) -> Value {
    let script = repo().join("scripts/check_report_browser.py");
    let episode = episode.to_string();
    let mut args = vec![
        script.to_str().unwrap(),
        page.to_str().unwrap(),
        "--run",
        run,
    ];
    args.extend(["--episode", &episode]);
    args.extend(extra);
    let out = std::process::Command::new("python3")
        .args(&args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: {stderr}", script.display());
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["errors"], serde_json::json!([]), "{seen:#}");
    assert_eq!(seen["console_errors"], serde_json::json!([]), "{seen:#}");
    assert_eq!(seen["network_requests"], serde_json::json!([]), "{seen:#}");
    assert_eq!(seen["axis_change_moved"], true, "{seen:#}");
    seen
}

/// The header and the row of an episodes.csv with this episode number.
pub fn csv_row(csv: &Path, episode: usize) -> (csv::StringRecord, csv::StringRecord) {
    let mut reader = csv::Reader::from_path(csv).unwrap();
    let header = reader.headers().unwrap().clone();
    let row = (reader.records().map(Result::unwrap))
        .find(|r| r[0].parse::<usize>() == Ok(episode))
        .unwrap_or_else(|| panic!("{}: no episode {episode}", csv.display()));
    (header, row)
}

/// The pinned row equals the CSV row: policy, bits and every number, exactly (as parsed f64).
pub fn assert_pinned_as_logged(seen: &Value, header: &csv::StringRecord, row: &csv::StringRecord) {
    let cell = |name: &str| &row[header.iter().position(|h| h == name).unwrap()];
    let pinned = &seen["pinned"];
    assert_eq!(pinned["episode"], cell("episode").parse::<u64>().unwrap());
    assert_eq!(pinned["policy"], cell("policy"), "{seen:#}");
    for field in [
        "accuracy",
        "robust_accuracy",
        "latency_s",
        "energy_j",
        "size_bytes",
    ] {
        let logged: f64 = cell(field).parse().unwrap();
        assert_eq!(pinned[field].as_f64(), Some(logged), "{field}: {seen:#}");
    }
    let layers: Vec<&str> = (header.iter())
        .filter_map(|h| h.strip_prefix("w_"))
        .collect();
    let bits: Vec<Value> = (layers.iter())
        .map(|l| {
            serde_json::json!([
                cell(&format!("w_{l}")).parse::<u64>().unwrap(),
                cell(&format!("a_{l}")).parse::<u64>().unwrap()
            ])
        })
        .collect();
    assert_eq!(pinned["bits"], Value::Array(bits), "{seen:#}");
    // which attack broke it: the cell's own text, or nothing for an empty cell
    let broken = Some(cell("broken_by")).filter(|c| !c.is_empty());
    assert_eq!(pinned["broken_by"].as_str(), broken, "{seen:#}");
}

/// The pinned row's per-layer prices, from the recorded profile, add up to the logged totals.
pub fn assert_prices_add_up(seen: &Value, header: &csv::StringRecord, row: &csv::StringRecord) {
    let cell = |name: &str| &row[header.iter().position(|h| h == name).unwrap()];
    let priced = seen["pinned_layers"].as_array().unwrap();
    assert_eq!(
        priced.len(),
        header.iter().filter(|h| h.starts_with("w_")).count()
    );
    for (field, total) in [("latency_s", "latency_s"), ("energy_j", "energy_j")] {
        let sum: f64 = priced.iter().map(|l| l[field].as_f64().unwrap()).sum();
        let logged: f64 = cell(total).parse().unwrap();
        assert!(
            (sum - logged).abs() <= 1e-9 * logged,
            "{field}: {sum} vs {logged}"
        );
    }
    assert!(
        priced
            .iter()
            .all(|l| l["bound"] == "compute" || l["bound"] == "memory"),
        "{seen:#}"
    );
}

/// Rows of an episodes.csv-like file whose fine-tune did not fail.
pub fn scored(csv: &Path) -> usize {
    let mut reader = csv::Reader::from_path(csv).unwrap();
    let failed = reader
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "failed")
        .unwrap();
    reader
        .records()
        .filter(|r| &r.as_ref().unwrap()[failed] == "false")
        .count()
}

/// The header and the first scored row of an episodes.csv.
pub fn first_scored(csv: &Path) -> (csv::StringRecord, csv::StringRecord) {
    let mut reader = csv::Reader::from_path(csv).unwrap();
    let header = reader.headers().unwrap().clone();
    let failed = header.iter().position(|h| h == "failed").unwrap();
    let row = (reader.records().map(Result::unwrap))
        .find(|r| &r[failed] == "false")
        .unwrap();
    (header, row)
}
