//! The foundation's accuracy targets on the embedded MNIST-10k, through the README's commands:
//! `bitsearch train` on the default experiments, then `bitsearch eval` of uniform policies.

mod common;

use std::path::Path;

use common::cli::{bitsearch, ok};

fn run(args: &[&str], cwd: &Path) -> String {
    ok(bitsearch(args, cwd))
}

fn eval(exp: &str, policy: &str, cwd: &Path) -> (f64, f64) {
    let out = run(
        &["eval", "--experiment", exp, "--policy", policy, "--json"],
        cwd,
    );
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    (
        v["test_accuracy"].as_f64().unwrap(),
        v["fp32_test_accuracy"].as_f64().unwrap(),
    )
}

fn uniform(bits: u8, layers: usize) -> String {
    vec![format!("{bits}/{bits}"); layers].join(",")
}

/// Trains the default experiment (7,000 train / 1,000 validation / 2,000 test, 8 epochs) and
/// checks FP32 accuracy, 8-bit post-training quantization and the 2-bit collapse.
fn check(exp: &str, layers: usize, min_fp32: f64) {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&["train", "--experiment", exp, "--quiet"], dir.path());
    assert!(
        out.contains("7000 train / 1000 validation / 2000 test"),
        "{out}"
    );
    let (q8, fp32) = eval(exp, &uniform(8, layers), dir.path());
    assert!(
        fp32 >= min_fp32,
        "{exp}: FP32 test accuracy {fp32} below {min_fp32}"
    );
    assert!(
        (q8 - fp32).abs() <= 0.005,
        "{exp}: 8/8 gives {q8}, FP32 {fp32}: more than 0.5 points apart"
    );
    let (q2, _) = eval(exp, &uniform(2, layers), dir.path());
    assert!(
        q2 < fp32 - 0.2,
        "{exp}: 2/2 post-training should fall sharply (>20 points): {q2} vs {fp32}"
    );
}

#[test]
fn lenet5_default_reaches_96_5_and_quantizes() {
    check("experiments/lenet5-mnist.toml", 5, 0.965);
}

#[test]
fn mlp_default_reaches_94_and_quantizes() {
    check("experiments/mlp-mnist.toml", 3, 0.94);
}
