//! Fashion-MNIST end to end: the shipped cnn6 experiment, as installed by
//! scripts/install-ci-deps.sh (Debian's dataset-fashion-mnist), searches to a report.

mod common;

use std::path::Path;

use common::cli::{bitsearch, ok, repo};

const FASHION: &str = "/usr/share/datasets/fashion-mnist";

fn fashion_present() -> bool {
    let present = Path::new(FASHION)
        .join("t10k-labels-idx1-ubyte.gz")
        .exists();
    common::tools_present(if present {
        &[]
    } else {
        &["Fashion-MNIST (Debian package dataset-fashion-mnist)"]
    })
}

/// A short search of the shipped cnn6-fashion experiment on all 60,000 training images (one
/// training epoch, three short episodes): it reaches the report, its best policy is a trained model's
/// (well above the 10% of chance on ten classes), and the attack radius is the file's.
#[test]
fn cnn6_fashion_searches_to_a_report() {
    if !fashion_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let experiment = repo().join("experiments/cnn6-fashion.toml");
    let args = [
        "search",
        "--experiment",
        experiment.to_str().unwrap(),
        "--agent",
        "random",
        "--episodes",
        "3",
        "--quiet",
        "--out",
        "out",
        "--set",
        "train.epochs=1",
        "--set",
        "search.references=false",
        "--set",
        "finetune.steps=50",
        "--set",
        "search.attack_examples=50",
        "--set",
        "front_test.examples=50",
        "--set",
        "front_test.square_queries=50",
    ];
    ok(bitsearch(&args, dir.path()));
    let run = dir.path().join("out/random-bitfusion");
    assert!(run.join("report.html").is_file());
    let config = std::fs::read_to_string(run.join("config.json")).unwrap();
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    let exp = &config["experiment"];
    assert_eq!(exp["model"]["arch"], "cnn6");
    let eps = exp["attack"]["pgd_eps"][0].as_f64().unwrap();
    assert!((eps - 0.05).abs() < 1e-6, "{}", exp["attack"]);
    let best = std::fs::read_to_string(run.join("best-policy.json")).unwrap();
    let best: serde_json::Value = serde_json::from_str(&best).unwrap();
    let test_accuracy = best["test"]["accuracy"].as_f64().unwrap();
    assert!(test_accuracy > 0.6, "{best}");
}

/// An experiment whose data directory is missing says which package provides it.
#[test]
fn a_missing_fashion_directory_names_the_package() {
    let dir = tempfile::tempdir().unwrap();
    let experiment = repo().join("experiments/lenet5-fashion.toml");
    let missing = format!(
        "data.source=\"idx:{}\"",
        dir.path().join("fashion-mnist").display()
    );
    let out = bitsearch(
        &[
            "train",
            "--experiment",
            experiment.to_str().unwrap(),
            "--quiet",
            "--set",
            &missing,
        ],
        dir.path(),
    );
    let err = common::cli::fails(out);
    assert!(err.contains("dataset-fashion-mnist"), "{err}");
    assert_eq!(err.matches("does not exist").count(), 1, "{err}");
}
