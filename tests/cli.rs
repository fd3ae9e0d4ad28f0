//! End-to-end runs of the `bitsearch` binary in temporary directories.

mod common;

use std::path::Path;

use common::cli::{bitsearch, ok, stderr};
use common::fixtures::write_mnist_slice;

fn eval_json(policy: &str, exp: &str, cwd: &Path) -> serde_json::Value {
    let out = ok(bitsearch(
        &["eval", "--experiment", exp, "--policy", policy, "--json"],
        cwd,
    ));
    serde_json::from_str(out.trim()).unwrap()
}

#[test]
fn train_then_eval_round_trip_on_a_small_slice() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("slice");
    std::fs::create_dir(&data).unwrap();
    write_mnist_slice(&data, 1200, 300);
    let exp = r#"
name = "slice"
[data]
source = "idx:slice"
validation = 200
[model]
arch = "mlp"
[train]
epochs = 2
batch = 64
lr = 1e-3
"#;
    std::fs::write(dir.path().join("exp.toml"), exp).unwrap();
    let first = ok(bitsearch(
        &["train", "--experiment", "exp.toml", "--quiet"],
        dir.path(),
    ));
    assert!(
        first.contains("1000 train / 200 validation / 300 test"),
        "{first}"
    );
    assert!(!first.contains("reusing"), "{first}");
    let second = ok(bitsearch(
        &["train", "--experiment", "exp.toml"],
        dir.path(),
    ));
    assert!(second.contains("reusing the cached baseline"), "{second}");

    let fp = eval_json("32/32,32/32,32/32", "exp.toml", dir.path());
    let fp32 = fp["fp32_test_accuracy"].as_f64().unwrap();
    // Full precision through the quantizer path is the FP32 model itself.
    assert_eq!(fp["test_accuracy"].as_f64().unwrap(), fp32);
    assert!(
        fp32 > 0.6,
        "2 epochs on 1,000 digits should beat chance by far: {fp32}"
    );
    let q = eval_json("8/8,8/8,8/8", "exp.toml", dir.path());
    assert_eq!(q["policy"], "8/8,8/8,8/8");
    assert_eq!(q["test_examples"], 300);

    // The JSON policy form gives the same result as the string form.
    let file = r#"{"model": "mlp", "layers": [{"name": "fc1", "w_bits": 8, "a_bits": 8},
        {"name": "fc2", "w_bits": 8, "a_bits": 8}, {"name": "fc3", "w_bits": 8, "a_bits": 8}]}"#;
    std::fs::write(dir.path().join("p.json"), file).unwrap();
    assert_eq!(
        eval_json("p.json", "exp.toml", dir.path())["test_accuracy"],
        q["test_accuracy"]
    );

    let bad = bitsearch(
        &["eval", "--experiment", "exp.toml", "--policy", "8/8,8/8"],
        dir.path(),
    );
    assert!(!bad.status.success());
    let err = stderr(&bad);
    assert!(
        err.contains("2 layers") && err.contains("3 quantizable layers"),
        "{err}"
    );
}

// `eval` without a cached baseline now trains it, as `search` does (issue 10, item 7):
// tests/first_hour.rs, eval_trains_a_missing_baseline_then_reuses_it.

#[test]
fn bad_experiment_names_file_field_and_value() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/mlp-mnist.toml"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        text.replace("batch = 64", "batch = 0"),
    )
    .unwrap();
    let o = bitsearch(&["train", "--experiment", "bad.toml"], dir.path());
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("bad.toml") && err.contains("train.batch") && err.contains("got 0"),
        "{err}"
    );
}

#[test]
fn missing_data_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/mlp-mnist.toml"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("e.toml"),
        text.replace("embedded:mnist-10k", "idx:nowhere"),
    )
    .unwrap();
    let o = bitsearch(&["train", "--experiment", "e.toml"], dir.path());
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("nowhere")
            && err.contains("train-images-idx3-ubyte")
            && err.contains("not found"),
        "{err}"
    );
}
