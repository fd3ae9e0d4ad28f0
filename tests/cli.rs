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

// `eval` without a cached baseline trains it, as `search` does:
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
            && err.contains("directory does not exist")
            && err.contains("set data.source"),
        "{err}"
    );
}

/// `bench` scores one policy part by part (each attack stage with its example passes) and hands
/// the PyTorch reference its inputs; a reference path it cannot write is an error naming it.
#[test]
fn bench_scores_one_policy_and_writes_the_reference_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let exp = common::fixtures::Tiny {
        arch: "lenet5",
        ..Default::default()
    };
    std::fs::write(dir.path().join("exp.toml"), exp.toml("tiny-bench")).unwrap();
    let args = |reference: &'static str| {
        let mut a = vec!["bench", "--experiment", "exp.toml", "--arch", "lenet5"];
        a.extend(["--runs", "1", "--no-training", "--policy-runs", "1"]);
        a.extend(["--cache", "cache", "--json", "--reference-dir", reference]);
        a
    };
    let out = ok(bitsearch(&args("ref"), dir.path()));
    let rows: Vec<serde_json::Value> = (out.lines())
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let policy: Vec<&serde_json::Value> = (rows.iter())
        .filter(|r| {
            r["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("policy: "))
        })
        .collect();
    assert_eq!(policy.len(), 7, "{out}");
    for stage in ["clean + gradient + fgsm", "pgd", "square"] {
        let row = policy
            .iter()
            .find(|r| r["name"] == format!("policy: {stage}"));
        let work = row.and_then(|r| r["work"].as_u64());
        assert!(work.is_some_and(|w| w > 0), "{stage}: {row:?}");
    }
    let reference = dir.path().join("ref");
    for file in [
        "policy-bench.json",
        "baseline.safetensors",
        "data.safetensors",
    ] {
        assert!(reference.join(file).is_file(), "{file} missing");
    }
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(reference.join("policy-bench.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["policy"], "8/8,4/4,2/4,4/4,8/8");
    assert_eq!(manifest["attack_examples"], 20);

    std::fs::write(dir.path().join("a-file"), "").unwrap();
    let o = bitsearch(&args("a-file"), dir.path());
    assert!(!o.status.success());
    assert!(stderr(&o).contains("a-file"), "{}", stderr(&o));
}

/// `eval --finetune` scores a policy the one way the search does (its calibration, its
/// policy-seeded fine-tune, its test suite): for a searched run's best policy it prints exactly
/// the test numbers of best-policy.json, and with `--split validation` its validation accuracy;
/// so does best-policy.json's uniform yardstick.
#[test]
fn eval_finetune_reproduces_the_searched_best_policy() {
    let dir = tempfile::tempdir().unwrap();
    let exp = common::fixtures::Tiny {
        transfer: true,
        ..Default::default()
    };
    std::fs::write(dir.path().join("exp.toml"), exp.toml("tiny-eval")).unwrap();
    std::fs::write(dir.path().join("agent.toml"), "agent = \"random\"\n").unwrap();
    let search = [
        "search",
        "--experiment",
        "exp.toml",
        "--agent",
        "agent.toml",
        "--episodes",
        "3",
        "--cache",
        "cache",
        "--no-score-cache",
        "--quiet",
        "--set",
        "search.references=true",
        "--out",
        "out",
    ];
    let printed = ok(bitsearch(&search, dir.path()));
    let best_file = dir.path().join("out/random-bitfusion/best-policy.json");
    let best: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&best_file).unwrap()).unwrap();
    let policy = best["policy"].as_str().unwrap();
    // `eval --finetune --json` of the best policy with `extra` flags: its stdout and its object.
    let eval_best = |extra: &[&str]| {
        let fixed = ["eval", "--experiment", "exp.toml", "--cache", "cache"];
        let flags = ["--policy", policy, "--finetune", "--json", "--quiet"];
        let out = ok(bitsearch(&[&fixed[..], &flags, extra].concat(), dir.path()));
        let json: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        (out, json)
    };
    let (out, eval) = eval_best(&[]);
    assert_eq!(eval["test_accuracy"], best["test"]["accuracy"], "{out}");
    // Radii are f32: best-policy.json holds them widened to f64, eval prints them shortest.
    let numbers = |v: &serde_json::Value, list: &str, field: &str| -> Vec<f64> {
        (v[list].as_array().unwrap().iter())
            .map(|x| x[field].as_f64().unwrap())
            .collect()
    };
    let suite = &best["test"]["suite"];
    assert_eq!(
        numbers(&eval["robust"], "by_eps", "worst_case"),
        numbers(suite, "by_eps", "worst_case"),
        "{out}"
    );
    assert_eq!(
        numbers(&eval["robust"], "attacks", "accuracy"),
        numbers(suite, "attacks", "accuracy"),
        "{out}"
    );
    // On the validation split it prints the episode's own accuracy, what the search ranked by.
    let (out, eval) = eval_best(&["--split", "validation", "--no-attack"]);
    assert_eq!(eval["split"], "validation", "{out}");
    assert!(eval.get("test_accuracy").is_none(), "{out}");
    let acc = best["validation"]["accuracy"].as_f64().unwrap();
    assert_eq!(eval["validation_accuracy"].as_f64(), Some(acc), "{out}");
    uniform_yardstick_is_the_best_feasible_reference(dir.path(), &best, &printed);
}

/// best-policy.json's `uniform`: the feasible uniform row of references.csv with the highest
/// reward, its validation numbers, and the test accuracy `eval --finetune` gives its policy.
fn uniform_yardstick_is_the_best_feasible_reference(
    dir: &std::path::Path,
    best: &serde_json::Value,
    printed: &str,
) {
    let refs = dir.join("out/random-bitfusion/references.csv");
    let mut reader = csv::Reader::from_path(&refs).unwrap();
    let header = reader.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let feasible: Vec<&csv::StringRecord> = (rows.iter())
        .filter(|r| &r[col("agent")] == "uniform" && &r[col("feasible")] == "true")
        .collect();
    assert!(!feasible.is_empty(), "{rows:?}");
    let reward = |r: &csv::StringRecord| r[col("reward")].parse::<f64>().unwrap();
    let top =
        (feasible.iter().copied()).fold(
            feasible[0],
            |a, b| if reward(b) > reward(a) { b } else { a },
        );
    let u = &best["uniform"];
    assert_eq!(u["policy"].as_str(), Some(&top[col("policy")]), "{u}");
    let val: f64 = top[col("accuracy")].parse().unwrap();
    assert_eq!(u["validation"]["accuracy"].as_f64(), Some(val), "{u}");
    let flags = ["--policy", &top[col("policy")], "--finetune", "--json"];
    let fixed = [
        "eval",
        "--experiment",
        "exp.toml",
        "--cache",
        "cache",
        "--quiet",
    ];
    let out = ok(bitsearch(&[&fixed[..], &flags].concat(), dir));
    let eval: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(eval["test_accuracy"], u["test"]["accuracy"], "{out}");
    assert!(
        printed.contains("best uniform under the budget: "),
        "{printed}"
    );
}

/// `bitsearch dq` end to end: the study's files are written through the run-directory format
/// and read back by its reader, one row per (bits, beta), every layer's amplification.
#[test]
fn dq_writes_a_study_its_reader_reads() {
    let dir = tempfile::tempdir().unwrap();
    let exp = common::fixtures::Tiny::default();
    std::fs::write(dir.path().join("exp.toml"), exp.toml("tiny-dq")).unwrap();
    let o = ok(bitsearch(
        &[
            "dq",
            "--experiment",
            "exp.toml",
            "--bits",
            "8,2",
            "--betas",
            "0",
            "--steps",
            "3",
            "--cache",
            "cache",
            "--out",
            "study",
            "--quiet",
        ],
        dir.path(),
    ));
    assert!(o.contains("wrote"), "{o}");
    let study = bitsearch::rundir::DqDir::read(&dir.path().join("study")).unwrap();
    let bits: Vec<u8> = study.rows.iter().map(|r| r.bits).collect();
    assert_eq!(bits, [8, 2]);
    assert!(study
        .rows
        .iter()
        .all(|r| r.attacks.iter().all(|a| a.1.is_some())));
    // The MLP's three layers, for each of the two rows.
    assert_eq!(study.amplification.len(), 6, "{:?}", study.amplification);
    assert!(dir.path().join("study/config.json").is_file());
}
