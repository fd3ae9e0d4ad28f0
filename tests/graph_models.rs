//! Graph models end to end: ResNet-20 (BatchNorm, residual adds, strided convs) searched, priced
//! and evaluated through the CLI on a small CIFAR-10-format fixture made from the embedded
//! digits.

mod common;

use common::cli::{bitsearch, fails, ok, repo, search_default};
use common::fixtures::ShortCifar;
use std::path::Path;

/// An experiment extending the shipped ResNet-20 one with the fixture as its data, and small
/// enough for CI: one epoch, three episodes, a short attack suite.
fn experiment(dir: &Path) -> std::path::PathBuf {
    let exp = ShortCifar {
        episodes: 3,
        ..ShortCifar::new("experiments/resnet20-cifar10.toml")
    };
    exp.write(dir, "resnet20-fixture.toml")
}

#[test]
fn resnet20_searches_prices_and_evaluates_on_the_cifar_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let exp = experiment(dir.path());
    let (run, csv) = search_default(dir.path(), &exp);
    let exp = exp.to_str().unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert!(
        header.contains(&"w_s2b1.conv1") && header.contains(&"a_fc"),
        "{header:?}"
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 3, "{csv}");
    for row in &rows {
        let policy = row.split('"').nth(1).unwrap();
        assert_eq!(policy.split(',').count(), 20, "{policy}");
    }
    assert!(run.join("report.html").exists() && run.join("best-policy.json").exists());

    // Every conv of a residual block's second half carries the add's traffic.
    let cost = ok(bitsearch(
        &[
            "cost",
            "--experiment",
            exp,
            "--profile",
            "bitfusion",
            "--json",
        ],
        dir.path(),
    ));
    let cost: serde_json::Value = serde_json::from_str(&cost).unwrap();
    assert_eq!(cost["bits"], vec!["8/8"; 20].join(","));
    let layers = cost["policy"]["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 20);
    let bytes = |name: &str| {
        let l = layers.iter().find(|l| l["layer"] == name).unwrap();
        l["bytes"].as_u64().unwrap()
    };
    assert!(bytes("s1b1.conv2") > bytes("s1b1.conv1"), "{cost}");

    let policy = vec!["4/4"; 20].join(",");
    let eval = ok(bitsearch(
        &[
            "eval",
            "--experiment",
            exp,
            "--policy",
            &policy,
            "--no-attack",
            "--json",
        ],
        dir.path(),
    ));
    let eval: serde_json::Value = serde_json::from_str(&eval).unwrap();
    let acc = eval["test_accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc), "{eval}");
}

/// `bench --policy-only` scores one ResNet-20 policy and hands the PyTorch reference
/// (`scripts/torch_reference.py --policy-dir`) what it needs to score the same one: the manifest
/// with the 20-layer policy and its clips, the baseline with every BatchNorm, and the 3x32x32
/// data; and it reports the work of every part and what the policy scored.
#[test]
fn resnet20_bench_scores_one_policy_and_writes_the_reference_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let exp = experiment(dir.path());
    let args = [
        "bench",
        "--experiment",
        exp.to_str().unwrap(),
        "--policy-only",
    ];
    let rest = ["--policy-runs", "1", "--json", "--reference-dir", "ref"];
    let out = ok(bitsearch(&[&args[..], &rest].concat(), dir.path()));
    let lines: Vec<serde_json::Value> = (out.lines())
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let rows: Vec<&serde_json::Value> = lines.iter().filter(|r| r["name"].is_string()).collect();
    assert_eq!(rows.len(), 7, "only the policy's parts: {out}");
    let work = |part: &str| {
        let row = rows.iter().find(|r| r["name"] == format!("policy: {part}"));
        assert_eq!(row.unwrap()["arch"], "resnet20", "{out}");
        row.and_then(|r| r["work"].as_u64()).unwrap()
    };
    // ShortCifar: 3 fine-tune steps of resnet20-cifar10.toml's batch 64; 100 validation images.
    assert_eq!(work("fine-tune"), 3 * 64);
    assert_eq!(work("accuracy"), 100);
    let stages = ["clean + gradient + fgsm", "transfer", "pgd", "square"].map(work);
    let sum = 3 * 64 + 100 + stages.iter().sum::<u64>();
    assert_eq!(work("total (fine-tune + accuracy + attacks)"), sum);
    let result = lines.iter().find(|r| r["policy_result"].is_object());
    let result = result.unwrap_or_else(|| panic!("no policy_result line: {out}"));
    assert_eq!(result["arch"], "resnet20");
    let policy = result["policy"].as_str().unwrap();
    assert_eq!(policy.split(',').count(), 20, "{policy}");
    let accuracy = result["policy_result"]["accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&accuracy), "{result}");

    let reference = dir.path().join("ref");
    let text = std::fs::read_to_string(reference.join("policy-bench.json")).unwrap();
    let manifest: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(manifest["arch"], "resnet20");
    assert_eq!(manifest["policy"], policy);
    assert_eq!(manifest["clips"].as_array().unwrap().len(), 20);
    assert_eq!(manifest["input_norm"]["mean"].as_array().unwrap().len(), 3);
    let cpu = candle_core::Device::Cpu;
    let base =
        candle_core::safetensors::load(reference.join("baseline.safetensors"), &cpu).unwrap();
    for name in ["conv.bn.running_var", "s3b3.conv2.bn.weight", "fc.weight"] {
        assert!(base.contains_key(name), "{name} missing from the baseline");
    }
    let data = candle_core::safetensors::load(reference.join("data.safetensors"), &cpu).unwrap();
    let train = data["train_x"].dims();
    assert_eq!(&train[1..], &[3, 32, 32]);
    assert_eq!(data["train_y"].dims(), &[train[0]]);
    assert_eq!(data["attack_x"].dims()[0], 20);
}

/// A ViT with quantized attention (`[quant] attention = true`) on the fixture: the search walks
/// each block's QKᵀ and softmax × V as layers between its qkv and proj, logs their bits in
/// episodes.csv, and `profiles show` prices them. One epoch, two episodes.
#[test]
fn a_vit_search_with_quantized_attention_logs_its_matmuls() {
    let dir = tempfile::tempdir().unwrap();
    let exp = ShortCifar {
        calibration: 64,
        finetune_steps: 2,
        pgd_steps: 1,
        examples: 10,
        quant: "attention = true".into(),
        ..ShortCifar::new("experiments/vit-fashion.toml")
    };
    let exp = exp.write(dir.path(), "vit.toml");
    let (_, csv) = search_default(dir.path(), &exp);
    let exp = exp.to_str().unwrap();
    let args = ["search", "--experiment", exp, "--quiet"];
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let at = |c: &str| header.iter().position(|h| *h == c).unwrap_or(usize::MAX);
    for b in 1..=3 {
        let order = [
            "a_b{b}.qkv",
            "w_b{b}.scores",
            "a_b{b}.scores",
            "w_b{b}.mix",
            "a_b{b}.mix",
            "w_b{b}.proj",
        ]
        .map(|c| at(&c.replace("{b}", &b.to_string())));
        assert!(
            order.windows(2).all(|w| w[0] + 1 == w[1]),
            "block {b}: {header:?}"
        );
    }
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{csv}");
    for row in rows {
        let policy = row.split('"').nth(1).unwrap();
        assert_eq!(policy.split(',').count(), 14 + 6, "{policy}");
    }
    // Worker processes score the same layers: random proposes alike in batches and one at a
    // time, and a worker's score equals the search's own, so the logs agree but for `seconds`.
    let random = |workers: &str, out: &str| {
        let flags = ["--agent", "random", "--workers", workers, "--out", out];
        ok(bitsearch(&[&args[..], &flags].concat(), dir.path()));
        let csv =
            std::fs::read_to_string(dir.path().join(out).join("random-bitfusion/episodes.csv"));
        let csv = csv.unwrap();
        let cut = |l: &str| l.rsplit_once(',').unwrap().0.to_string();
        csv.lines().map(cut).collect::<Vec<_>>()
    };
    let (one, two) = (random("1", "r1"), random("2", "r2"));
    assert_eq!(one.len(), 3);
    assert_eq!(one, two);
    // `profiles show` prunes their widths as any layer's: every layer alike on Bit Fusion.
    let shown = ok(bitsearch(
        &["profiles", "--experiment", exp, "show", "bitfusion"],
        dir.path(),
    ));
    assert!(shown.contains("every layer: weights 2,4,8"), "{shown}");
    // `cost` prices each: 4 heads · 17 tokens² · 16 features MACs, no weights to size.
    let args = [
        "cost",
        "--experiment",
        exp,
        "--profile",
        "bitfusion",
        "--json",
    ];
    let cost: serde_json::Value = serde_json::from_str(&ok(bitsearch(&args, dir.path()))).unwrap();
    let layers = cost["policy"]["layers"].as_array().unwrap();
    let mix = layers.iter().find(|l| l["layer"] == "b3.mix").unwrap();
    assert_eq!(mix["macs"], 4 * 17 * 17 * 16, "{mix}");
    assert_eq!(layers.len(), 20);
}

/// An ONNX file exported from PyTorch (scripts/export_onnx.py) goes through the whole tool:
/// its weights are the baseline (nothing trains), the search walks its layers by their
/// PyTorch names, and cost and eval price and score it.
#[test]
fn an_imported_onnx_model_is_searched_priced_and_evaluated() {
    let dir = tempfile::tempdir().unwrap();
    let onnx = repo().join("tests/data/onnx/lenet5.onnx");
    let exp = common::fixtures::quick_onnx_experiment(dir.path(), &onnx, 3, 2);
    let exp = exp.to_str().unwrap();
    let out = dir.path().join("out");
    let o = ok(bitsearch(
        &[
            "search",
            "--experiment",
            exp,
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ],
        dir.path(),
    ));
    assert!(
        !o.contains("epoch"),
        "an imported model must not train: {o}"
    );
    let csv = std::fs::read_to_string(out.join("mbrl-bitfusion/episodes.csv")).unwrap();
    let header = csv.lines().next().unwrap();
    assert!(
        header.contains("w_conv1") && header.contains("a_fc3"),
        "{header}"
    );
    assert_eq!(csv.lines().count(), 3, "{csv}");
    let config = std::fs::read_to_string(out.join("mbrl-bitfusion/config.json")).unwrap();
    assert!(config.contains("lenet5.onnx"), "{config}");

    let cost = ok(bitsearch(
        &["cost", "--experiment", exp, "--profile", "t4"],
        dir.path(),
    ));
    assert!(cost.starts_with("lenet5 on t4"), "{cost}");
    let eval = ok(bitsearch(
        &[
            "eval",
            "--experiment",
            exp,
            "--policy",
            "8/8,4/4,4/4,4/4,8/8",
            "--no-attack",
            "--json",
        ],
        dir.path(),
    ));
    let eval: serde_json::Value = serde_json::from_str(&eval).unwrap();
    assert_eq!(eval["model"], "lenet5");

    // An experiment edited since the search would rebuild another model: export refuses,
    // naming the setting and both values, before any training.
    let text = std::fs::read_to_string(exp).unwrap();
    std::fs::write(exp, text.replace("steps = 3", "steps = 4")).unwrap();
    let run = out.join("mbrl-bitfusion");
    let e = fails(bitsearch(&["export", run.to_str().unwrap()], dir.path()));
    assert!(
        e.contains("finetune.steps")
            && e.contains("3 in config.json, 4 now")
            && e.contains("--experiment"),
        "{e}"
    );
    assert!(!run.join("export-0").exists() && !run.join("export-1").exists());
}

/// An imported model trains further only when asked (`[model] train = true`), from its own
/// weights, into a baseline of its own: the untrained LeNet-5 from PyTorch (chance accuracy)
/// learns the digits in one epoch.
#[test]
fn an_imported_model_trains_further_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let onnx = repo().join("tests/data/onnx/lenet5.onnx");
    let exp = common::fixtures::quick_onnx_experiment(dir.path(), &onnx, 3, 2);
    let exp = exp.to_str().unwrap();
    let train = |extra: &[&str]| {
        let args = [&["train", "--experiment", exp, "--quiet"][..], extra].concat();
        let o = ok(bitsearch(&args, dir.path()));
        let line = o
            .lines()
            .find(|l| l.starts_with("FP32 baseline:"))
            .unwrap()
            .to_string();
        let acc = line.split("test accuracy ").nth(1).unwrap();
        (acc[..acc.find('%').unwrap()].parse::<f64>().unwrap(), o)
    };
    let (as_is, o) = train(&[]);
    assert!(
        as_is < 20.0 && o.contains("imported weights as they are"),
        "untrained: {o}"
    );
    let (trained, o) = train(&["--set", "model.train=true", "--set", "train.epochs=1"]);
    assert!(trained > 80.0 && o.contains("1 epochs"), "trained: {o}");
    // Both baselines stay cached side by side.
    let (again, o) = train(&[]);
    assert_eq!(again, as_is, "{o}");
}

/// PyTorch's default export (the graph in NAME.onnx, its weights in NAME.onnx.data beside it)
/// imports from the path an experiment names relative to itself, whatever the working
/// directory: the weights are read beside the model, not beside the command.
#[test]
fn a_default_pytorch_export_reads_its_weights_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("net")).unwrap();
    std::fs::create_dir_all(dir.path().join("elsewhere")).unwrap();
    for file in ["lenet-dynamo-batch.onnx", "lenet-dynamo-batch.onnx.data"] {
        let from = repo().join("tests/data/onnx").join(file);
        std::fs::copy(from, dir.path().join("net").join(file)).unwrap();
    }
    let onnx = Path::new("net/lenet-dynamo-batch.onnx");
    let exp = common::fixtures::quick_onnx_experiment(dir.path(), onnx, 3, 2);
    let args = [
        "cost",
        "--experiment",
        exp.to_str().unwrap(),
        "--profile",
        "t4",
    ];
    let cost = ok(bitsearch(&args, &dir.path().join("elsewhere")));
    assert!(cost.starts_with("lenet-dynamo-batch on t4"), "{cost}");
}

/// A model file that does not fit the data is refused with both shapes named.
#[test]
fn an_onnx_model_for_other_data_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "extends = \"{}\"\n[model]\nonnx = \"{}\"\n",
        repo().join("experiments/lenet5-mnist.toml").display(),
        repo().join("tests/data/onnx/resnet20.onnx").display()
    );
    let exp = dir.path().join("wrong.toml");
    std::fs::write(&exp, text).unwrap();
    let o = bitsearch(
        &[
            "cost",
            "--experiment",
            exp.to_str().unwrap(),
            "--profile",
            "t4",
        ],
        dir.path(),
    );
    let err = common::cli::fails(o);
    assert!(
        err.contains("resnet20.onnx") && err.contains("3x32x32") && err.contains("1x28x28"),
        "{err}"
    );
}

/// torchvision's families end to end: a ResNet and a MobileNetV2 (their small members from
/// scripts/export_torchvision.py, random weights) are searched on the CIFAR-format fixture,
/// priced with their joins, and exported; the export rebuilds the policy the search scored.
#[test]
fn torchvision_models_search_and_export_on_the_cifar_fixture() {
    for (name, layers) in [("resnet-mini", 13), ("mobilenet_v2-mini", 17)] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("cifar");
        bitsearch::data::write_digit_fixture(&data, 80, 60).unwrap();
        let onnx = repo().join(format!("tests/data/onnx/torchvision/{name}.onnx"));
        let text = format!(
            r#"extends = "{}"
name = "{name}"
[data]
source = "cifar10:{}"
validation = 100
[model]
onnx = "{}"
[quant]
calibration = 128
[finetune]
steps = 2
[attack]
pgd_steps = 2
square_queries = 0
examples = 20
[front_test]
enabled = false
[search]
episodes = 2
attack_examples = 20
references = false
"#,
            repo().join("experiments/resnet20-cifar10.toml").display(),
            data.display(),
            onnx.display()
        );
        let exp = dir.path().join("tv.toml");
        std::fs::write(&exp, text).unwrap();
        let (run, csv) = search_default(dir.path(), &exp);
        let exp = exp.to_str().unwrap();
        assert_eq!(csv.lines().count(), 3, "{name}: {csv}");
        let policy = csv.lines().nth(1).unwrap().split('"').nth(1).unwrap();
        assert_eq!(policy.split(',').count(), layers, "{name}: {policy}");

        let cost = ok(bitsearch(
            &[
                "cost",
                "--experiment",
                exp,
                "--profile",
                "bitfusion",
                "--json",
            ],
            dir.path(),
        ));
        let cost: serde_json::Value = serde_json::from_str(&cost).unwrap();
        assert_eq!(cost["policy"]["layers"].as_array().unwrap().len(), layers);

        let export = dir.path().join("export");
        let args = ["export", run.to_str().unwrap(), "--out"];
        ok(bitsearch(
            &[&args[..], &[export.to_str().unwrap(), "--quiet"]].concat(),
            dir.path(),
        ));
        let record: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(export.join("export.json")).unwrap())
                .unwrap();
        assert_eq!(
            record["validation_accuracy"], record["logged_validation_accuracy"],
            "{name}: the rebuilt model must be the one the search scored: {record}"
        );
        assert!(export.join("model.onnx").exists(), "{name}");
    }
}
