//! Number formats end to end on a small LeNet-5: a search over `[bits] formats` logs and
//! records named formats (episodes.csv, config.json's kept options, best-policy.json with
//! `w_format`/`a_format`, which `eval` reads back), a sensitivity study gives each operand only
//! the formats it may take, and malformed format input is named.

mod common;

use std::path::Path;

use bitsearch::quant::{Format, Policy};
use bitsearch::rundir::{Sensitivity, Varied};
use common::cli::{bitsearch, fails, ok};
use common::fixtures::Tiny;

/// The tiny experiment on LeNet-5 with `bits` as its `[bits]` table, written into `dir`.
fn experiment(dir: &Path, bits: &str) {
    let exp = Tiny {
        arch: "lenet5",
        finetune_steps: 1,
        ..Tiny::default()
    };
    let text = exp.toml("formats") + "[bits]\n" + bits + "\n";
    std::fs::write(dir.join("exp.toml"), text).unwrap();
}

const FORMATS: &str = r#"formats = ["int4", "int8", "fp8e4m3", "fp16", "int4g32"]"#;

#[test]
fn a_search_over_formats_logs_records_and_reads_them_back() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    experiment(dir, FORMATS);
    let args = [
        "search",
        "--experiment",
        "exp.toml",
        "--agent",
        "random",
        "--episodes",
        "8",
        "--cache",
        "cache",
        "--quiet",
        "--out",
        "out",
    ];
    ok(bitsearch(&args, dir));
    let run = dir.join("out/random-bitfusion");
    let csv = std::fs::read_to_string(run.join("episodes.csv")).unwrap();
    let named = ["fp8e4m3", "fp16", "int4g32"];
    assert!(named.iter().any(|n| csv.contains(n)), "{csv}");
    // Every logged policy reads back, and its activations never take the weights-only format.
    let mut reader = csv::Reader::from_path(run.join("episodes.csv")).unwrap();
    let column = (reader.headers().unwrap().iter())
        .position(|h| h == "policy")
        .unwrap();
    for row in reader.records() {
        let policy = Policy::parse(&row.unwrap()[column]).unwrap();
        assert!(policy.iter().all(|l| l.a != Format::INT4_G32), "{policy}");
    }
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    let kept = &config["bits"]["kept"][0];
    assert!(
        kept["w"].as_array().unwrap().contains(&"int4g32".into()),
        "{kept}"
    );
    assert!(
        !kept["a"].as_array().unwrap().contains(&"int4g32".into()),
        "{kept}"
    );
    assert_eq!(config["experiment"]["bits"]["formats"]["weight"][0], 4);
    // best-policy.json names its formats; its layers are a policy file eval reads.
    let text = std::fs::read_to_string(run.join("best-policy.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    for layer in json["layers"].as_array().unwrap() {
        if let Some(f) = layer.get("w_format") {
            let f: Format = f.as_str().unwrap().parse().unwrap();
            assert_eq!(layer["w_bits"], f.width(), "{layer}");
        }
    }
    let file = serde_json::json!({"model": json["model"], "layers": json["layers"]});
    std::fs::write(dir.join("best.json"), file.to_string()).unwrap();
    let eval = [
        "eval",
        "--experiment",
        "exp.toml",
        "--policy",
        "best.json",
        "--cache",
        "cache",
        "--no-attack",
        "--quiet",
        "--json",
    ];
    let out: serde_json::Value = serde_json::from_str(&ok(bitsearch(&eval, dir))).unwrap();
    assert_eq!(out["policy"], json["policy"], "{out}");
}

#[test]
fn a_sensitivity_study_gives_each_operand_its_own_formats() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    experiment(
        dir,
        r#"w_formats = ["int4g32"]
a_formats = ["int16"]"#,
    );
    let args = [
        "sensitivity",
        "--experiment",
        "exp.toml",
        "--cache",
        "cache",
        "--quiet",
        "--out",
        "study",
    ];
    ok(bitsearch(&args, dir));
    let table = Sensitivity::read(&dir.join("study/sensitivity.csv")).unwrap();
    let formats = |operand| {
        let mut f: Vec<&str> = (table.rows.iter())
            .filter(|r| r.layer == "conv2" && r.operand == operand)
            .map(|r| r.format.as_str())
            .collect();
        f.sort_unstable();
        f
    };
    assert_eq!(formats(Varied::Weight), ["8", "int4g32"]);
    let sixteen = formats(Varied::Activation);
    assert_eq!(
        sixteen.len(),
        2,
        "the reference's 8 and int16 as the device runs it"
    );
    assert!(
        sixteen.contains(&"8") && !sixteen.contains(&"int4g32"),
        "{sixteen:?}"
    );
}

#[test]
fn malformed_formats_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    experiment(dir, r#"formats = ["int8", "fp4"]"#);
    let e = fails(bitsearch(
        &[
            "search",
            "--experiment",
            "exp.toml",
            "--episodes",
            "1",
            "--quiet",
        ],
        dir,
    ));
    assert!(
        e.contains("exp.toml") && e.contains("bits.formats") && e.contains("\"fp4\""),
        "{e}"
    );
    let e = fails(bitsearch(
        &[
            "cost",
            "--profile",
            "bitfusion",
            "--policy",
            "8/int4g32,8/8,8/8,8/8,8/8",
            "--arch",
            "lenet5",
        ],
        dir,
    ));
    assert!(e.contains("layer 0") && e.contains("int4g32"), "{e}");
}
