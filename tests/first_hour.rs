//! A new user's first hour, end to end through the binary: `eval` trains a missing baseline,
//! `--budget`/`--set`/`extends` reach config.json, every error message prints once, and the
//! shipped device profiles cite real sources.

mod common;

use std::path::Path;

use common::cli::{bitsearch, fails, ok, stderr};
use common::fixtures::Tiny;

fn tiny_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("exp.toml"), Tiny::default().toml("tiny")).unwrap();
    dir
}

fn eval(dir: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["eval", "--experiment", "exp.toml", "--quiet"];
    args.extend(extra);
    bitsearch(&args, dir)
}

/// How often `needle` occurs in `text`.
fn count(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

#[test]
fn eval_trains_a_missing_baseline_then_reuses_it() {
    let dir = tiny_dir();
    let first = eval(
        dir.path(),
        &["--policy", "8/8,8/8,8/8", "--json", "--no-attack"],
    );
    let out = ok(first.clone());
    // --json keeps stdout one JSON object; the training note goes to stderr.
    let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(
        report["fp32_test_accuracy"].as_f64().unwrap() > 0.5,
        "{out}"
    );
    let err = stderr(&first);
    assert!(
        err.contains("tiny: FP32 baseline test accuracy") && err.contains("baselines"),
        "{err}"
    );
    assert!(dir.path().join("runs/baselines").is_dir());

    let second = eval(
        dir.path(),
        &["--policy", "8/8,8/8,8/8", "--json", "--no-attack"],
    );
    let again: serde_json::Value = serde_json::from_str(ok(second.clone()).trim()).unwrap();
    assert_eq!(again["fp32_test_accuracy"], report["fp32_test_accuracy"]);
    assert!(!stderr(&second).contains("FP32 baseline test accuracy"));
    // The same cache `train` and `search` use.
    let train = ok(bitsearch(
        &["train", "--experiment", "exp.toml", "--quiet"],
        dir.path(),
    ));
    assert!(train.contains("reusing the cached baseline"), "{train}");
}

#[test]
fn search_records_budget_and_set_overrides_in_config_json() {
    let dir = tiny_dir();
    let args = [
        "search",
        "--experiment",
        "exp.toml",
        "--agent",
        "random",
        "--episodes",
        "1",
        "--quiet",
        "--out",
        "out",
        "--budget",
        "latency=0.9",
        "--set",
        "finetune.steps=3",
    ];
    ok(bitsearch(&args, dir.path()));
    let config = std::fs::read_to_string(dir.path().join("out/random-bitfusion/config.json"));
    let config: serde_json::Value = serde_json::from_str(&config.unwrap()).unwrap();
    let exp = &config["experiment"];
    assert_eq!(
        exp["overrides"],
        serde_json::json!(["--budget latency=0.9", "--set finetune.steps=3"])
    );
    assert_eq!(exp["finetune"]["steps"], 3);
    assert_eq!(
        exp["budget"]["latency"],
        serde_json::json!({"Fraction": 0.9})
    );
}

#[test]
fn an_experiment_extending_another_trains_with_its_own_changes() {
    let dir = tiny_dir();
    let child = "extends = \"exp.toml\"\nname = \"tiny-child\"\n[train]\nbatch = 128\n";
    std::fs::write(dir.path().join("child.toml"), child).unwrap();
    let out = ok(bitsearch(
        &["train", "--experiment", "child.toml", "--quiet"],
        dir.path(),
    ));
    assert!(
        out.contains("tiny-child: mlp") && out.contains("1 epochs, batch 128"),
        "{out}"
    );
    std::fs::write(dir.path().join("orphan.toml"), "extends = \"gone.toml\"\n").unwrap();
    let err = fails(bitsearch(
        &["train", "--experiment", "orphan.toml"],
        dir.path(),
    ));
    assert!(
        err.contains("orphan.toml") && err.contains("gone.toml"),
        "{err}"
    );
}

#[test]
fn a_bitwidth_error_prints_once() {
    let dir = tiny_dir();
    let err = fails(eval(dir.path(), &["--policy", "17/17,8/8,8/8"]));
    assert_eq!(count(&err, "bitwidth must be 1..=16 or 32"), 1, "{err}");
    assert!(
        err.contains("policy layer 0") && err.contains("got 17"),
        "{err}"
    );
    // A width the operand cannot take is named once, with what the operand takes.
    let err = fails(eval(dir.path(), &["--policy", "9/9,8/8,8/8"]));
    assert_eq!(count(&err, "int9 is not a weight format"), 1, "{err}");
    assert!(
        err.contains("policy layer 0") && err.contains("int1..int8"),
        "{err}"
    );
}

#[test]
fn a_toml_syntax_error_prints_its_caret_block_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.toml"), "name = \"x\"\n[data\n").unwrap();
    let err = fails(bitsearch(
        &["train", "--experiment", "bad.toml"],
        dir.path(),
    ));
    assert_eq!(count(&err, "invalid table header"), 1, "{err}");
    assert_eq!(count(&err, "TOML parse error at line 2"), 1, "{err}");
    assert!(err.contains("bad.toml"), "{err}");
}

#[test]
fn a_policy_layer_missing_a_bits_says_so_once() {
    let dir = tiny_dir();
    let err = fails(eval(dir.path(), &["--policy", "8/8,8/,8/8"]));
    assert_eq!(count(&err, "no activation bitwidth (a_bits)"), 1, "{err}");
    assert!(
        err.contains("policy layer 1") && !err.contains("got \"\""),
        "{err}"
    );

    let json = r#"{"model": "mlp", "layers": [{"name": "fc1", "w_bits": 8, "a_bits": 8},
        {"name": "fc2", "w_bits": 8}, {"name": "fc3", "w_bits": 8, "a_bits": 8}]}"#;
    std::fs::write(dir.path().join("p.json"), json).unwrap();
    let err = fails(eval(dir.path(), &["--policy", "p.json"]));
    assert_eq!(count(&err, "missing field `a_bits`"), 1, "{err}");
}

#[test]
fn a_bad_set_or_budget_names_the_flag_once() {
    let dir = tiny_dir();
    let train = |flag: &str, value: &str| {
        let args = ["train", "--experiment", "exp.toml", flag, value];
        fails(bitsearch(&args, dir.path()))
    };
    let err = train("--set", "train.batchsize=3");
    assert_eq!(count(&err, "--set train.batchsize=3"), 1, "{err}");
    assert!(err.contains("unknown field `batchsize`"), "{err}");
    let err = train("--set", "train.lr=-1");
    assert!(
        err.contains("--set train.lr=-1") && err.contains("`train.lr` must be greater than zero"),
        "{err}"
    );
    let err = train("--budget", "speed=0.5");
    assert!(
        err.contains("--budget speed=0.5") && err.contains("unknown field `speed`"),
        "{err}"
    );
    let err = train("--set", "epochs");
    assert!(
        err.contains("--set epochs: expected SECTION.KEY=VALUE"),
        "{err}"
    );
}

#[test]
fn shipped_profiles_cite_real_sources_not_planning_documents() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("hardware-profiles");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let profile: toml::Table = toml::from_str(&text).unwrap();
        let sources = profile["sources"].as_table().unwrap();
        for (key, source) in sources {
            let source = source.as_str().unwrap().to_lowercase();
            let words: Vec<&str> = source.split(|c: char| !c.is_alphanumeric()).collect();
            for planning in ["brief", "issue", "planning"] {
                assert!(
                    !words.contains(&planning),
                    "{}: sources.{key} cites {planning:?}: {source}",
                    path.display()
                );
            }
            assert!(
                !source.contains("design.md"),
                "{}: {source}",
                path.display()
            );
        }
        seen += 1;
    }
    assert_eq!(seen, 8);
}

#[test]
fn report_and_compare_print_numbers_in_units_not_e_notation() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    common::write_run(&run, "ddpg-bitfusion", "ddpg", 3, 40);
    ok(bitsearch(&["report", "run"], tmp.path()));
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    let tables: String = html
        .split("<table>")
        .skip(1)
        .map(|t| t.split("</table>").next().unwrap_or(""))
        .collect();
    for header in ["accuracy (%)", "latency (µs)", "energy (", "size (KiB)"] {
        assert!(tables.contains(header), "{header} in {tables}");
    }
    assert!(
        tables.contains("budget: latency</td><td>12 µs</td>"),
        "{tables}"
    );
    // No 2.1e-6 seconds, no 20320.2500 bytes.
    assert!(!tables.contains("e-"), "{tables}");
    assert!(!tables.contains(".2500<"), "{tables}");

    let out = ok(bitsearch(&["compare", "run", "--out", "cmp"], tmp.path()));
    let reference = out.lines().find(|l| l.contains("reference (")).unwrap();
    assert!(
        reference.contains("accuracy = ")
            && reference.contains(" µs)")
            && !reference.contains("e-"),
        "{out}"
    );
    assert!(out.contains("(%·µs; norm.)"), "{out}");
    // compare.csv keeps raw SI values: it is data.
    let csv = std::fs::read_to_string(tmp.path().join("cmp/compare.csv")).unwrap();
    assert!(csv.contains("e-"), "{csv}");
}

#[test]
fn profiles_show_prints_the_files_numbers_without_float_noise() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(bitsearch(&["profiles", "show", "bitfusion"], dir.path()));
    assert!(
        out.contains("512 fusion units, 0.46 pJ per 8x8 MAC"),
        "{out}"
    );
    assert!(!out.contains("00000"), "{out}");
}
