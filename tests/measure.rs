//! Latency measured on a real runtime: `profiles calibrate --runtime onnxruntime` builds this
//! host's profile from ONNX Runtime, a search prices its policies with it, and `bitsearch
//! measure --front` times the front's deployable models in ONNX Runtime and writes
//! measured.csv, which the run's report then shows.

mod common;

use std::path::Path;

use common::cli::{bitsearch, command, fails, ok, repo};

fn exp() -> String {
    repo()
        .join("experiments/lenet5-mnist-small.toml")
        .display()
        .to_string()
}

/// Calibrates host-ort.toml in `dir` on LeNet-5 and returns calibrate's output.
fn calibrate(dir: &Path) -> String {
    let e = exp();
    let args = [
        "profiles",
        "--experiment",
        &e,
        "calibrate",
        "--runtime",
        "onnxruntime",
    ];
    let rest = ["--out", "host-ort.toml", "--repeats", "20"];
    ok(bitsearch(&[&args[..], &rest[..]].concat(), dir))
}

#[test]
fn a_front_searched_on_the_ort_profile_is_measured_in_onnx_runtime() {
    if !common::onnx_runtime_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = calibrate(d);
    // Uniform 8/8 leaves bare 8-bit quantizers, which ORT fuses into integer kernels; the
    // 2..7-bit container keeps its clamps and runs in float.
    let line = |p: &str| {
        out.lines()
            .find(|l| l.contains(p))
            .unwrap_or("")
            .to_string()
    };
    assert!(line("uniform 8/8").contains("QLinearConv"), "{out}");
    assert!(!line("uniform 4/4").contains("QLinearConv"), "{out}");
    ok(bitsearch(&["profiles", "validate", "host-ort.toml"], d));

    let e = exp();
    // A budget no LeNet-5 policy reaches: under ONNX Runtime the 2..7-bit container runs in
    // float, and on a loaded host its timing can exceed any fixed multiple of uniform 8/8's,
    // leaving no policy feasible. The search still ranks by latency.
    let search = [
        "search",
        "--experiment",
        &e,
        "--profile",
        "host-ort.toml",
        "--budget",
        "latency_s=1",
        "--agent",
        "random",
        "--episodes",
        "8",
        "--quiet",
        "--out",
        "out",
    ];
    ok(bitsearch(&search, d));
    let run = d.join("out/random-host-onnxruntime");
    let front = std::fs::read_to_string(run.join("pareto.csv")).unwrap();
    let feasible = front
        .lines()
        .skip(1)
        .filter(|l| l.contains(",true,"))
        .count();
    assert!(feasible >= 3, "a 3-policy front at least:\n{front}");

    let run_arg = run.to_str().unwrap();
    let out = ok(bitsearch(
        &["measure", run_arg, "--front", "--repeats", "20"],
        d,
    ));
    assert!(out.contains("predicted vs measured"), "{out}");
    let csv = std::fs::read_to_string(run.join("measured.csv")).unwrap();
    let mut rows = csv::Reader::from_reader(csv.as_bytes());
    let header = rows.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = rows.records().map(Result::unwrap).collect();
    // The profile prices batch 1, so each policy has one row, with its prediction.
    assert_eq!(rows.len(), feasible, "{csv}");
    let mut errors = Vec::new();
    for r in &rows {
        let measured: f64 = r[col("measured_latency_s")].parse().unwrap();
        let predicted: f64 = r[col("predicted_latency_s")].parse().unwrap();
        assert!(measured > 0.0 && predicted > 0.0, "{csv}");
        errors.push((measured / predicted - 1.0).abs());
        assert_eq!(r[col("kernels")].split(';').count(), 5, "{csv}");
        assert!(r[col("runtime")].starts_with("onnxruntime 1."), "{csv}");
    }
    // Priced by ORT itself on this host, the front is predicted within a factor of two (an
    // ASIC profile such as bitfusion is off by orders of magnitude here).
    errors.sort_by(f64::total_cmp);
    assert!(errors[errors.len() / 2] < 1.0, "{errors:?}\n{csv}");

    // The report shows the measurements beside the predictions, each layer's kernel among them.
    ok(bitsearch(&["report", run_arg], d));
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(
        html.contains("<h2>Measured on a real runtime"),
        "no measured section"
    );
    let kernel = rows[0][col("kernels")].split(';').next().unwrap();
    assert!(html.contains(kernel), "{kernel} is not in report.html");
}

#[test]
fn measure_refuses_an_unknown_episode_and_names_a_missing_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let e = exp();
    let search = [
        "search",
        "--experiment",
        &e,
        "--agent",
        "random",
        "--episodes",
        "2",
        "--quiet",
        "--out",
        "out",
        "--set",
        "front_test.enabled=false",
    ];
    ok(bitsearch(&search, d));
    let run = d.join("out/random-bitfusion");
    let err = fails(bitsearch(
        &["measure", run.to_str().unwrap(), "--episode", "7"],
        d,
    ));
    assert!(
        err.contains("no episode 7") && err.contains("it holds 2"),
        "{err}"
    );
    // Without an interpreter that runs ONNX Runtime, the error names it and how to install it.
    let out = command(&["measure", run.to_str().unwrap(), "--episode", "1"], d)
        .env("BITSEARCH_PYTHON", "/nonexistent/python3")
        .output()
        .unwrap();
    let err = fails(out);
    assert!(
        err.contains("/nonexistent/python3") && err.contains("pip install onnxruntime"),
        "{err}"
    );
    assert!(!run.join("measured.csv").exists());
}
