//! `bitsearch sensitivity` end to end on a small LeNet-5 (one FP32 epoch, 1 fine-tune step, 20
//! attacked examples, widths {2, 8}): the CSV holds the reference and every layer × operand ×
//! format, the reference's drop is 0, a 2-bit weight costs accuracy somewhere, a second run takes
//! every score from the cache, the report draws the heatmap, and bad input is named.

mod common;

use std::path::Path;

use bitsearch::rundir::{Sensitivity, Varied};
use common::cli::{bitsearch, fails, ok};
use common::fixtures::Tiny;

/// The tiny experiment on LeNet-5 with the widths {2, 8}, written into `dir`.
fn experiment(dir: &Path) {
    // One fine-tune step: with more, the one-epoch baseline is still learning and each
    // policy's own fine-tune order moves accuracy by more than a 2-bit weight costs.
    let exp = Tiny {
        arch: "lenet5",
        finetune_steps: 1,
        ..Tiny::default()
    };
    let text = exp.toml("sens") + "[bits]\nchoices = [2, 8]\n";
    std::fs::write(dir.join("exp.toml"), text).unwrap();
}

fn sensitivity(dir: &Path, extra: &[&str]) -> std::process::Output {
    let args = [
        "sensitivity",
        "--experiment",
        "exp.toml",
        "--cache",
        "cache",
        "--quiet",
    ];
    bitsearch(&[&args[..], extra].concat(), dir)
}

#[test]
fn sensitivity_scores_every_operand_then_reuses_the_cache_and_draws_the_heatmap() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    experiment(dir);
    let first = ok(sensitivity(dir, &["--out", "study"]));
    // The reference and the ten 2-bit policies are fine-tuned; each 8-bit row is the reference.
    assert!(
        first.contains("21 policies: 11 scored here, 10 from the score cache"),
        "{first}"
    );
    let table = Sensitivity::read(&dir.join("study/sensitivity.csv")).unwrap();
    assert_eq!(table.rows.len(), 1 + 5 * 2 * 2);
    let reference = table.reference().unwrap();
    assert_eq!(reference.accuracy_drop, Some(0.0));
    assert_eq!(reference.robust_accuracy_drop, Some(0.0));
    for layer in ["conv1", "conv2", "fc1", "fc2", "fc3"] {
        for operand in [Varied::Weight, Varied::Activation] {
            let formats: Vec<&str> = (table.rows.iter())
                .filter(|r| r.layer == layer && r.operand == operand)
                .map(|r| r.format.as_str())
                .collect();
            assert_eq!(formats, ["2", "8"], "{layer} {operand:?}");
        }
    }
    let drops = |format: &str| -> Vec<f64> {
        (table.rows.iter())
            .filter(|r| r.operand == Varied::Weight && r.format == format)
            .map(|r| r.accuracy_drop.unwrap())
            .collect()
    };
    let worst2 = drops("2").into_iter().fold(f64::MIN, f64::max);
    assert!(drops("8").iter().all(|&d| d == 0.0), "{:?}", drops("8"));
    assert!(
        worst2 > 0.0,
        "no 2-bit weight cost accuracy: {:?}",
        drops("2")
    );
    let shares: f64 = (table.rows.iter())
        .filter(|r| r.operand == Varied::Weight && r.format == "8")
        .map(|r| r.layer_latency_share.unwrap())
        .sum();
    assert!(
        (shares - 1.0).abs() < 1e-9,
        "latency shares sum to {shares}"
    );

    // Again: nothing is fine-tuned, and the table is the same.
    let again = ok(sensitivity(dir, &["--out", "study"]));
    assert!(
        again.contains("21 policies: 0 scored here, 21 from the score cache"),
        "{again}"
    );
    assert_eq!(
        Sensitivity::read(&dir.join("study/sensitivity.csv")).unwrap(),
        table
    );

    let html = std::fs::read_to_string(dir.join("study/report.html")).unwrap();
    assert!(
        html.contains("<svg")
            && html.contains("accuracy drop (points)")
            && html.contains("robust-accuracy drop (points)")
            && html.contains("<h2>sensitivity.csv</h2>"),
        "no heatmap in report.html"
    );
    assert!(dir.join("study/charts/sensitivity.png").is_file());

    // `report` redraws it from the directory alone, and names a broken row.
    ok(bitsearch(&["report", "study"], dir));
    let csv = dir.join("study/sensitivity.csv");
    let text = std::fs::read_to_string(&csv).unwrap();
    std::fs::write(&csv, text.replacen(",weight,2,", ",bias,2,", 1)).unwrap();
    let e = fails(bitsearch(&["report", "study"], dir));
    assert!(
        e.contains("sensitivity.csv:3:") && e.contains("`operand`") && e.contains("\"bias\""),
        "{e}"
    );
}

#[test]
fn a_bad_profile_is_named_before_any_training() {
    let tmp = tempfile::tempdir().unwrap();
    experiment(tmp.path());
    let e = fails(sensitivity(tmp.path(), &["--profile", "no-such-device"]));
    assert!(e.contains("no-such-device"), "{e}");
    assert!(
        !tmp.path().join("cache").exists(),
        "trained before refusing: {e}"
    );
}

#[test]
fn a_search_run_directory_is_not_written_into() {
    let tmp = tempfile::tempdir().unwrap();
    experiment(tmp.path());
    std::fs::create_dir(tmp.path().join("run")).unwrap();
    std::fs::write(tmp.path().join("run/config.json"), "{}").unwrap();
    let e = fails(sensitivity(tmp.path(), &["--out", "run"]));
    assert!(
        e.contains("holds a search run") && e.contains("--out"),
        "{e}"
    );
    assert!(!tmp.path().join("run/sensitivity.csv").exists());
}
