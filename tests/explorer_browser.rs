//! The explorer of report.html and compare.html in a real browser:
//! scripts/check_report_browser.py drives Debian's chromium through Selenium over the report of a
//! short real search, hovers and clicks a point, and the pinned row must show that episode
//! exactly as episodes.csv logs it; the axis change must move it, the legend must hide a run of
//! the compare page, the default view must fit the searched policies (FP32 one "Show all" away)
//! and the log, zoom and pan controls must change it, and the page must log no console error and
//! request nothing. These tests skip (with a message) only when chromium, chromedriver or
//! Selenium is absent and `CI` is unset; CI installs them with scripts/install-ci-deps.sh.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use bitsearch::report::write_report;
use bitsearch::robust::Breakdown;
use common::browser::{
    assert_pinned_as_logged, assert_prices_add_up, browser_available, check_in_browser, csv_row,
    first_scored, scored,
};
use common::cli::{bitsearch, ok, repo};
use common::fixtures::Tiny;
use serde_json::Value;

fn bitfusion() -> PathBuf {
    repo().join("hardware-profiles/bitfusion.toml")
}

/// A short real search on two devices (the tiny experiment, 6 random episodes each, uniform
/// references on) and the compare page of its two runs, done once for every browser test.
fn searched() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("explorer_browser");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let exp = Tiny::default().toml("explorer");
        let exp = exp.replace("references = false", "references = true");
        std::fs::write(dir.join("exp.toml"), exp).unwrap();
        let args = [
            "search",
            "--experiment",
            "exp.toml",
            "--agent",
            "random",
            "--episodes",
            "6",
        ];
        let devices = ["--profile", "bitfusion", "--profile", "bismo-edge"];
        let rest = ["--cache", "cache", "--quiet", "--out", "out"];
        ok(bitsearch(&[&args[..], &devices, &rest].concat(), &dir));
        let runs = ["out/random-bitfusion", "out/random-bismo-edge"];
        ok(bitsearch(
            &["compare", runs[0], runs[1], "--out", "cmp"],
            &dir,
        ));
        dir
    })
}

#[test]
fn a_pinned_episode_shows_its_policy_and_numbers_exactly_as_logged() {
    if !browser_available() {
        return;
    }
    let run = searched().join("out/random-bitfusion");
    // best-policy.json's episode: re-scored on the test split, so it carries attacks too
    let best: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("best-policy.json")).unwrap())
            .unwrap();
    let episode = best["episode"].as_u64().unwrap() as usize;
    let seen = check_in_browser(&run.join("report.html"), "random-bitfusion", episode, &[]);
    let (header, row) = csv_row(&run.join("episodes.csv"), episode);
    assert_pinned_as_logged(&seen, &header, &row);
    assert_prices_add_up(&seen, &header, &row);
    let tooltip = seen["tooltip"].as_str().unwrap();
    assert!(
        tooltip.contains(&format!("episode {episode}")) && tooltip.contains(&row[3]),
        "{tooltip}"
    );
    // which attack broke it, from episodes.csv's broken_by: the held examples as logged
    let b: Breakdown = row[header.iter().position(|h| h == "broken_by").unwrap()]
        .parse()
        .unwrap();
    let held = format!("{} held", b.held);
    assert!(
        tooltip.contains("first broken by") && tooltip.contains(&held),
        "{tooltip}"
    );
    let attacks = seen["pinned_attacks"].as_array().unwrap();
    // best-policy.json's suite: the worst case at its radius, shown as set (an f32: 0.1)
    let worst = &best["test"]["suite"]["by_eps"][0];
    let eps: f64 = (worst["eps"].as_f64().unwrap() as f32)
        .to_string()
        .parse()
        .unwrap();
    let source = "test split, the search's suite (best-policy.json)";
    let shown =
        |a: &&Value| a["source"] == source && a["attack"] == "worst case" && a["eps"] == eps;
    let line = attacks
        .iter()
        .find(shown)
        .unwrap_or_else(|| panic!("{attacks:#?}"));
    assert_eq!(line["accuracy"], worst["worst_case"]);
    // every scored row of both CSVs is a point on latency × accuracy
    let scored = scored(&run.join("episodes.csv")) + scored(&run.join("references.csv"));
    assert_eq!(seen["visible_count"], scored as u64);
}

#[test]
fn pinned_references_show_their_rows_of_references_csv() {
    if !browser_available() {
        return;
    }
    let run = searched().join("out/random-bitfusion");
    let mut reader = csv::Reader::from_path(run.join("references.csv")).unwrap();
    let header = reader.headers().unwrap().clone();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let col = |name: &str| header.iter().position(|c| c == name).unwrap();
    // uniform 8-bit, and FP32 (every layer at 32 bits, priced too)
    let uniform8 = |r: &&csv::StringRecord| {
        &r[col("agent")] == "uniform" && r[col("policy")].starts_with("8/8,")
    };
    let fp32 = |r: &&csv::StringRecord| &r[col("agent")] == "fp32";
    for (row, name) in [
        (rows.iter().find(uniform8), "uniform reference"),
        (rows.iter().find(fp32), "FP32 reference"),
    ] {
        let row = row.expect("a reference row");
        let episode: usize = row[0].parse().unwrap();
        let page = run.join("report.html");
        let seen = check_in_browser(&page, "random-bitfusion", episode, &["--reference"]);
        assert_pinned_as_logged(&seen, &header, row);
        assert_prices_add_up(&seen, &header, row);
        let tooltip = seen["tooltip"].as_str().unwrap();
        assert!(tooltip.contains(name), "{tooltip}");
    }
}

#[test]
fn the_compare_page_pins_a_point_of_either_run_and_hides_a_run_from_the_legend() {
    if !browser_available() {
        return;
    }
    let dir = searched();
    let run = dir.join("out/random-bismo-edge");
    let (header, row) = first_scored(&run.join("episodes.csv"));
    let episode: usize = row[0].parse().unwrap();
    let toggle = ["--toggle-run", "random-bitfusion"];
    let seen = check_in_browser(
        &dir.join("cmp/compare.html"),
        "random-bismo-edge",
        episode,
        &toggle,
    );
    assert_pinned_as_logged(&seen, &header, &row);
    assert_prices_add_up(&seen, &header, &row);
    // after the axis change (x = the first other field: robust accuracy), both runs' points
    let bitfusion = dir.join("out/random-bitfusion");
    let hidden = (scored(&bitfusion.join("episodes.csv"))
        + scored(&bitfusion.join("references.csv"))) as u64;
    let t = &seen["legend_toggle"];
    let before = t["before"].as_u64().unwrap();
    assert_eq!(
        (t["after"].as_u64(), t["restored"].as_u64()),
        (Some(before - hidden), Some(before)),
        "{t}"
    );
}

#[test]
fn a_pinned_measured_policy_shows_its_measured_latency_and_each_layers_kernel() {
    if !browser_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    common::write_run(dir, "ddpg-bitfusion", "ddpg", 7, 40);
    common::record_profile(dir, &bitfusion());
    common::write_measured(dir, 3);
    let html = write_report(dir).unwrap().html;
    let seen = check_in_browser(&html, "ddpg-bitfusion", 3, &[]);
    let (header, row) = csv_row(&dir.join("episodes.csv"), 3);
    assert_pinned_as_logged(&seen, &header, &row);
    // batch 1 measured 10% above the logged latency, its prediction; batch 16 has none
    let logged: f64 = row[header.iter().position(|h| h == "latency_s").unwrap()]
        .parse()
        .unwrap();
    let measured = seen["pinned_measured"].as_array().unwrap();
    assert_eq!(measured.len(), 2, "{seen:#}");
    assert_eq!(measured[0]["predicted_latency_s"].as_f64(), Some(logged));
    let text = measured[0]["text"].as_str().unwrap();
    assert!(
        text.starts_with("measured in onnxruntime 1.32.0 at batch 1: ")
            && text.contains(" µs (predicted ")
            && text.ends_with(" µs, +10.0%)"),
        "{text}"
    );
    assert_eq!(measured[1]["batch"], 16);
    assert!(!measured[1]["text"].as_str().unwrap().contains("predicted"));
    let kernels: Vec<&str> = (seen["pinned_layers"].as_array().unwrap().iter())
        .map(|l| l["kernel"].as_str().unwrap())
        .collect();
    assert_eq!(
        kernels,
        ["QLinearConv", "QLinearConv", "QGemm", "FusedGemm", "Gemm"]
    );
    // the CPU's name, markup and all, as text
    let host = format!("on {}, 2 threads", common::MEASURED_CPU);
    assert_eq!(seen["pinned_hosts"], serde_json::json!([host]));
    let tooltip = seen["tooltip"].as_str().unwrap();
    assert!(
        tooltip.contains("measured in onnxruntime 1.32.0 at batch 16"),
        "{tooltip}"
    );
}

/// The values of one column of a run CSV's scored rows (and, with `agent`, of that agent's).
fn scored_column(csv: &Path, column: &str, agent: Option<&str>) -> Vec<f64> {
    let mut reader = csv::Reader::from_path(csv).unwrap();
    let header = reader.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (value, failed, who) = (col(column), col("failed"), col("agent"));
    (reader.records().map(Result::unwrap))
        .filter(|r| &r[failed] == "false" && agent.is_none_or(|a| r[who] == *a))
        .map(|r| r[value].parse().unwrap())
        .collect()
}

/// `lo..=hi` of the values.
fn span(values: &[f64]) -> (f64, f64) {
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    (lo, values.iter().copied().fold(f64::NEG_INFINITY, f64::max))
}

#[test]
fn the_default_view_fits_the_searched_policies_and_the_controls_change_it() {
    if !browser_available() {
        return;
    }
    let run = searched().join("out/random-bitfusion");
    let (_, row) = first_scored(&run.join("episodes.csv"));
    let episode: usize = row[0].parse().unwrap();
    let page = run.join("report.html");
    let seen = check_in_browser(&page, "random-bitfusion", episode, &["--check-view"]);
    let view = &seen["view"];
    let range = |step: &str, axis: &str| {
        let a = &view[step][axis];
        (
            a["type"].as_str().unwrap().to_string(),
            a["min"].as_f64().unwrap(),
            a["max"].as_f64().unwrap(),
        )
    };
    // the searched policies and the budget line, from the run's own files
    let latency = scored_column(&run.join("episodes.csv"), "latency_s", None);
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    let budget = config["budget"]["latency_s"].as_f64().unwrap();
    let (lo, hi) = span(&latency);
    let (lo, hi) = (lo.min(budget), hi.max(budget));
    let fp32 = scored_column(&run.join("references.csv"), "latency_s", Some("fp32"))[0];
    let (kind, min, max) = range("default", "x");
    assert_eq!(view["default"]["mode"], "searched", "{view:#}");
    assert_eq!(kind, "linear");
    assert!(
        min <= lo && max >= hi,
        "[{min}, {max}] holds [{lo}, {hi}]: {view:#}"
    );
    // fitted: no wider than the searched span and its margins, so FP32 lies outside
    assert!(
        max - min <= 1.2 * (hi - lo),
        "[{min}, {max}] fits [{lo}, {hi}]: {view:#}"
    );
    assert!(
        max < fp32,
        "FP32 ({fp32} s) is outside the default view: {view:#}"
    );
    let accuracy = span(&scored_column(&run.join("episodes.csv"), "accuracy", None));
    let (_, ymin, ymax) = range("default", "y");
    assert!(ymin <= accuracy.0 && ymax >= accuracy.1, "{view:#}");
    // log x: the scale type changes, the fit still holds the searched policies
    let (kind, min, max) = range("log_x", "x");
    assert_eq!(
        (kind.as_str(), range("log_x", "y").0.as_str()),
        ("logarithmic", "linear")
    );
    assert!(min > 0.0 && min <= lo && max >= hi, "{view:#}");
    assert_eq!(range("linear_again", "x"), range("default", "x"));
    // the wheel zooms in, a drag pans the same width, "Show all" reaches FP32, and the fit
    // comes back as it was
    let (_, wmin, wmax) = range("wheel", "x");
    let (_, dmin, dmax) = range("default", "x");
    assert_eq!(view["wheel"]["mode"], "custom");
    assert!(wmax - wmin < 0.9 * (dmax - dmin), "{view:#}");
    let (_, pmin, pmax) = range("pan", "x");
    assert!(
        ((pmax - pmin) - (wmax - wmin)).abs() <= 1e-9 * (wmax - wmin),
        "{view:#}"
    );
    assert!(pmin < wmin, "dragged right, the view moves left: {view:#}");
    assert!(range("all", "x").2 >= fp32, "{view:#}");
    assert_eq!(range("fit_searched", "x"), range("default", "x"));
    assert!(
        view["in_view"].as_u64() < view["visible"].as_u64(),
        "{view:#}"
    );
}

/// The 2,000-episode case of BENCHMARKS.md: not a timed test, it prints what the browser measured
/// (`cargo test --release --test explorer_browser -- --ignored --nocapture`).
#[test]
#[ignore]
fn explorer_of_2000_episodes() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("explorer-2000");
    let _ = std::fs::remove_dir_all(&dir);
    common::write_run(&dir, "ddpg-bitfusion", "ddpg", 7, 2000);
    common::record_profile(&dir, &bitfusion());
    let start = std::time::Instant::now();
    ok(bitsearch(&["report", dir.to_str().unwrap()], repo()));
    let report_s = start.elapsed().as_secs_f64();
    let html = dir.join("report.html");
    // episode 1000: scored (write_run fails every 17th) and well inside the cloud
    let seen = check_in_browser(&html, "ddpg-bitfusion", 1000, &[]);
    let (header, row) = csv_row(&dir.join("episodes.csv"), 1000);
    assert_pinned_as_logged(&seen, &header, &row);
    let bytes = std::fs::metadata(&html).unwrap().len();
    let ms = |k: &str| {
        seen[k]
            .as_f64()
            .map_or("?".to_string(), |v| format!("{v:.0}"))
    };
    println!(
        "report.html {bytes} bytes, `bitsearch report` {report_s:.2} s; ready_ms {}, load_ms {}, \
         hover_ms {}, click_to_pin_ms {}, axis_change_ms {}, visible_count {}",
        ms("ready_ms"),
        ms("load_ms"),
        ms("hover_ms"),
        ms("click_to_pin_ms"),
        ms("axis_change_ms"),
        seen["visible_count"]
    );
}

#[test]
fn the_browser_check_reports_console_errors_and_requests() {
    // guards the harness itself: a page that logs an error and asks a server for an image
    if !browser_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let page = tmp.path().join("bad.html");
    let hook = "window.bitsearchExplorer = {readyAt: 1, visibleCount: () => 0, pointScreenPosition: () => null};";
    let body = format!("<html><body><canvas id=\"explorer-chart\"></canvas><div id=\"pinned\"></div><img src=\"http://127.0.0.1:9/pixel.png\"><script>console.error('boom'); {hook}</script></body></html>");
    std::fs::write(&page, body).unwrap();
    let script = repo().join("scripts/check_report_browser.py");
    let out = std::process::Command::new("python3")
        .args([
            script.to_str().unwrap(),
            page.to_str().unwrap(),
            "--run",
            "r",
            "--episode",
            "0",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = |k: &str| seen[k].to_string();
    assert!(text("console_errors").contains("boom"), "{seen:#}");
    assert!(
        text("network_requests").contains("http://127.0.0.1:9/pixel.png"),
        "{seen:#}"
    );
    assert!(
        !seen["errors"].as_array().unwrap().is_empty(),
        "no point to pin: {seen:#}"
    );
}
