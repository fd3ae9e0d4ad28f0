//! Quantized ONNX exports checked by a real consumer: ONNX Runtime (Python; installed by
//! scripts/install-ci-deps.sh) runs them on test images through scripts/check_onnx_export.py,
//! and its predictions are compared with bitsearch's own quantized model.

mod common;

use std::path::Path;

use bitsearch::data::{DataSource, Dataset};
use bitsearch::model::onnx::{self, Opset};
use bitsearch::model::{Attention, Model};
use bitsearch::quant::{ClipMethod, Policy, Quantizer};
use candle_core::Device;
use common::cli::{bitsearch, fails, ok, repo, search_default};
use common::fixtures::ShortCifar;

/// Runs scripts/check_onnx_export.py on an export directory and asserts ORT agrees with
/// bitsearch in the two configurations that run the exported model as written: "reference"
/// (graph optimizations off: every node as the ONNX spec defines it) and "float-bias" (every
/// default optimization but WeightBiasQuantization, which rounds float biases to int32 codes;
/// the script's docstring says why that one changes the model). ORT's "default" row is printed.
fn assert_onnx_runtime_agrees(dir: &Path, what: &str, expect: [f64; 2]) {
    let out = std::process::Command::new("python3")
        .arg(repo().join("scripts/check_onnx_export.py"))
        .arg(dir)
        .output()
        .expect("python3 runs (scripts/install-ci-deps.sh installs onnxruntime)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<serde_json::Value> = (text.lines())
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    eprintln!("{what}: {rows:?}");
    for config in ["reference", "float-bias"] {
        let row = (rows.iter().find(|r| r["config"] == config)).expect("a row per config");
        assert_agrees(row, &format!("{what}, {config}"), expect);
    }
}

/// ORT must give bitsearch's predictions (top-1 on at least `top1` of the examples: 99.5%
/// for a trained model), and at least `exact` of the examples must have all logits within 1e-4 of the largest |logit|. The rest may
/// differ only where ORT's float sums, added in another order than ours, put an activation on
/// the other side of a quantization step: one flipped rounding anywhere moves that example's
/// logits by a step's worth. How often that happens grows with the quantized activations per
/// example (~2 k in LeNet-5, ~190 k in ResNet-20), so deep models get a lower `exact`; with the
/// activations unquantized there is nothing to flip and every example must be within 1e-4.
/// An untrained model's logits lie within a hair of each other, so there a flip changes the
/// top-1 far more often than in a trained one: graph models here are untrained (training one
/// would take minutes) and get a lower `top1`.
fn assert_agrees(row: &serde_json::Value, what: &str, [top1, exact]: [f64; 2]) {
    let agree = row["top1_agreement"].as_f64().unwrap();
    let within = row["examples_within_1e-4"].as_f64().unwrap();
    assert!(
        agree >= top1,
        "{what}: top-1 agreement {agree} (at least {top1} expected)"
    );
    assert!(
        within >= exact,
        "{what}: only {within} of examples within 1e-4 (at least {exact} expected)"
    );
}

/// The trained LeNet-5 fixture, its clips calibrated on 256 embedded training digits, and 500
/// test digits with their labels.
fn trained_lenet5() -> (
    Model,
    bitsearch::quant::Clips,
    (candle_core::Tensor, candle_core::Tensor),
) {
    let model = onnx::import(&repo().join("tests/data/onnx/lenet5-trained.onnx")).unwrap();
    let model = Model::from_import(model).unwrap();
    let (train, test) = DataSource::EmbeddedMnist10k.load().unwrap();
    let data = Dataset::from_raw(train, test, 500, 0).unwrap();
    let (x, _) = data.train.first(256, &Device::Cpu).unwrap();
    let clips = bitsearch::calib::calibrate_model(&model, &x, ClipMethod::Max).unwrap();
    (model, clips, data.test.first(500, &Device::Cpu).unwrap())
}

/// A trained model: top-1 on 99.5% of examples, 99% of examples' logits within 1e-4.
const TRAINED: [f64; 2] = [0.995, 0.99];

#[test]
fn onnx_runtime_runs_the_export_as_bitsearch_does() {
    if !common::onnx_runtime_present() {
        return;
    }
    let (model, clips, (xt, yt)) = trained_lenet5();
    let dir = tempfile::tempdir().unwrap();
    for policy in [
        "8/8,8/8,8/8,8/8,8/8",
        "8/8,4/4,2/4,4/4,8/8",
        "32/32,3/2,2/3,4/8,8/2",
    ] {
        let q = Quantizer::new(Policy::parse(policy).unwrap(), clips.clone());
        // Opset 21 holds the widths up to 4 in INT4/UINT4 containers instead of int8/uint8.
        for opset in [Opset::V13, Opset::V21] {
            let check = Some((&xt, &yt));
            bitsearch::deploy::write_files(dir.path(), &model, &q, opset, check).unwrap();
            assert_onnx_runtime_agrees(dir.path(), &format!("{policy} {opset:?}"), TRAINED);
        }
    }
}

/// Every number format a policy can take exports as ONNX Runtime runs it (opset 21): fp8 as
/// FLOAT8E4M3FN/FLOAT8E5M2 codes (weights, per output channel) and a saturating
/// QuantizeLinear (activations), fp16 and bf16 as casts, activations of 9 to 16 bits in uint16
/// codes and group-wise int4 weights as INT4 with blocked scales (LeNet-5's rows of 25, 150,
/// 400, 120 and 84 inputs: groups of 32 and 128 that a row does not fill). fp16 and bf16, being
/// casts, export at opset 13 too. model.safetensors is written for the integer policy alone.
#[test]
fn onnx_runtime_runs_every_format_as_bitsearch_does() {
    if !common::onnx_runtime_present() {
        return;
    }
    let (model, clips, (xt, yt)) = trained_lenet5();
    let dir = tempfile::tempdir().unwrap();
    let policies = [
        (
            "fp8e4m3/fp8e4m3,fp8e4m3/fp8e4m3,fp8e5m2/fp8e5m2,fp8e4m3/fp8e5m2,fp8e5m2/fp8e4m3",
            Opset::V21,
        ),
        (
            "fp16/fp16,bf16/bf16,fp16/bf16,bf16/fp16,fp16/32",
            Opset::V21,
        ),
        (
            "fp16/fp16,bf16/bf16,fp16/bf16,bf16/fp16,fp16/32",
            Opset::V13,
        ),
        ("8/16,4/12,8/16,2/9,8/16", Opset::V21),
        (
            "int4g32/8,int4g32/4,int4g128/16,int4g32/fp8e4m3,int4g128/fp16",
            Opset::V21,
        ),
    ];
    for (k, (policy, opset)) in policies.into_iter().enumerate() {
        let q = Quantizer::new(Policy::parse(policy).unwrap(), clips.clone());
        let check = Some((&xt, &yt));
        let out = dir.path().join(k.to_string());
        let files = bitsearch::deploy::write_files(&out, &model, &q, opset, check).unwrap();
        // The safetensors file holds integer grids only; the ONNX file holds every format.
        let integers = q
            .policy()
            .layers()
            .iter()
            .all(|l| l.w.is_plain() && l.a.is_plain());
        let safetensors = files.iter().any(|f| f == "model.safetensors");
        assert_eq!(safetensors, integers, "{policy}: {files:?}");
        assert_eq!(out.join("model.safetensors").exists(), integers, "{policy}");
        assert_onnx_runtime_agrees(&out, &format!("{policy} {opset:?}"), TRAINED);
    }
}

/// The whole path a user takes: a PyTorch model exported to ONNX is imported, searched, and its
/// best policy exported with `bitsearch export`; the export rebuilds exactly the model the
/// search scored (same validation accuracy as episodes.csv) and ONNX Runtime agrees with it.
#[test]
fn an_imported_model_goes_through_search_and_export_to_onnx_runtime() {
    if !common::onnx_runtime_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exp = common::fixtures::quick_onnx_experiment(
        dir.path(),
        &repo().join("tests/data/onnx/lenet5-trained.onnx"),
        20,
        3,
    );
    let out = dir.path().join("out");
    let args = ["--quiet", "--out", out.to_str().unwrap()];
    let search = [
        "search",
        "--experiment",
        exp.to_str().unwrap(),
        "--budget",
        "latency=0.6",
    ];
    ok(bitsearch(&[&search[..], &args[..]].concat(), dir.path()));
    let run = out.join("mbrl-bitfusion");
    let best: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("best-policy.json")).unwrap())
            .unwrap();

    // Run from another directory with no --experiment: config.json names the file and the
    // --budget override, and the export must find and reapply both.
    let export = dir.path().join("export");
    let o = ok(bitsearch(
        &[
            "export",
            run.to_str().unwrap(),
            "--out",
            export.to_str().unwrap(),
            "--quiet",
        ],
        &run,
    ));
    assert!(!o.contains("warning"), "{o}");
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(export.join("export.json")).unwrap())
            .unwrap();
    assert_eq!(record["episode"], best["episode"], "{record}");
    assert_eq!(record["policy"], best["policy"], "{record}");
    assert_eq!(
        record["validation_accuracy"], record["logged_validation_accuracy"],
        "the rebuilt model must be the one the search scored: {record}"
    );
    assert_eq!(
        record["test_accuracy"], best["test"]["accuracy"],
        "{record}"
    );
    let policy = std::fs::read_to_string(export.join("policy.json")).unwrap();
    assert!(policy.contains("\"conv1\""), "{policy}");
    assert_onnx_runtime_agrees(&export, "best policy", TRAINED);
    let int4 = dir.path().join("export-int4");
    let run_dir = run.to_str().unwrap();
    let args = [
        "export",
        run_dir,
        "--opset",
        "21",
        "--out",
        int4.to_str().unwrap(),
    ];
    ok(bitsearch(&args, &run));
    assert_onnx_runtime_agrees(&int4, "best policy, opset 21", TRAINED);

    let e = fails(bitsearch(
        &["export", run.to_str().unwrap(), "--episode", "9"],
        &run,
    ));
    assert!(e.contains("no episode 9") && e.contains("holds 3"), "{e}");
}

/// The zoo ViT through the whole tool on the CIFAR-format fixture (3x32x32: 8x8 patches, 16
/// tokens): trained one epoch, searched for two episodes, its best policy exported with
/// `bitsearch export` as the model the search scored, and ONNX Runtime agrees with it.
#[test]
fn a_vit_goes_through_search_and_export_to_onnx_runtime() {
    if !common::onnx_runtime_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exp = ShortCifar {
        attack: "fgsm_eps = [0.05]\npgd_eps = [0.05]".into(),
        ..ShortCifar::new("experiments/vit-fashion.toml")
    };
    let exp = exp.write(dir.path(), "vit.toml");
    let (run, csv) = search_default(dir.path(), &exp);
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    for column in ["w_patch", "a_b1.qkv", "w_b3.fc2", "a_head"] {
        assert!(header.contains(&column), "{column}: {header:?}");
    }
    assert_eq!(csv.lines().count(), 3, "{csv}");
    let export = dir.path().join("export");
    let args = ["export", run.to_str().unwrap(), "--quiet", "--out"];
    ok(bitsearch(
        &[&args[..], &[export.to_str().unwrap()]].concat(),
        &run,
    ));
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(export.join("export.json")).unwrap())
            .unwrap();
    assert_eq!(
        record["validation_accuracy"], record["logged_validation_accuracy"],
        "the rebuilt model must be the one the search scored: {record}"
    );
    assert_onnx_runtime_agrees(&export, "vit best policy", [0.98, 0.95]);
}

/// A ViT exported by PyTorch (scripts/export_vit.py) is imported, searched for two episodes on
/// the embedded digits, and its best policy exported; ONNX Runtime agrees with it, as with the
/// zoo one.
#[test]
fn an_imported_vit_goes_through_search_and_export_to_onnx_runtime() {
    if !common::onnx_runtime_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let onnx = repo().join("tests/data/onnx/vit/vit-mini.onnx");
    let exp = common::fixtures::quick_onnx_experiment(dir.path(), &onnx, 3, 2);
    let (run, csv) = search_default(dir.path(), &exp);
    assert!(
        csv.lines().next().unwrap().contains("w_blocks.1.fc2"),
        "{csv}"
    );
    let export = dir.path().join("export");
    let args = ["export", run.to_str().unwrap(), "--quiet", "--out"];
    ok(bitsearch(
        &[&args[..], &[export.to_str().unwrap()]].concat(),
        &run,
    ));
    assert_onnx_runtime_agrees(&export, "imported vit best policy", [0.98, 0.95]);
}

/// A layer's "W/A" formats from its index.
type BitsOf = fn(usize) -> String;

/// Widths cycling through 2..8 bits.
fn mixed(i: usize) -> String {
    format!("{}/{}", 2 + i % 7, 2 + (i + 3) % 7)
}

/// The same weights with every activation at full precision.
fn weights_only(i: usize) -> String {
    format!("{}/32", 2 + i % 7)
}

/// Integer policies and what ORT must agree on: with quantized activations a flipped rounding
/// is possible (`assert_agrees`), with none every example within 1e-4.
const INTEGER: [(BitsOf, [f64; 2]); 2] = [(mixed, [0.98, 0.95]), (weights_only, [1.0, 1.0])];

/// Graph models export as exactly: residual adds, BatchNorm (folded), option-A shortcuts (Slice
/// + Pad), depthwise convs and ReLU6 (Clip), on CIFAR-format images (the digit fixture).
#[test]
fn graph_models_export_as_onnx_runtime_runs_them() {
    if !common::onnx_runtime_present() {
        return;
    }
    let imported = onnx::import(&repo().join("tests/data/onnx/resnet20.onnx")).unwrap();
    let models = [
        Model::from_import(imported).unwrap(),
        Model::new(bitsearch::model::Arch::Resnet20, (3, 32, 32), 10, 1).unwrap(),
        Model::new(bitsearch::model::Arch::Mobilenet, (3, 32, 32), 10, 1).unwrap(),
    ];
    exports_agree_with_onnx_runtime(&models, Opset::V13, &INTEGER);
}

/// torchvision's families (their small members, random weights) export as exactly: SiLU,
/// HardSwish, HardSigmoid, Sigmoid gates (Mul), Concat, channel Slices and shuffles, a
/// BatchNorm as a per-channel affine, padded and ceil-mode max-pools.
#[test]
fn torchvision_models_export_as_onnx_runtime_runs_them() {
    if !common::onnx_runtime_present() {
        return;
    }
    let dir = repo().join("tests/data/onnx/torchvision");
    let models: Vec<Model> = [
        "efficientnet",
        "mobilenet_v3",
        "shufflenet",
        "densenet",
        "squeezenet",
        "regnet",
    ]
    .iter()
    .map(|n| {
        Model::from_import(onnx::import(&dir.join(format!("{n}-mini.onnx"))).unwrap()).unwrap()
    })
    .collect();
    exports_agree_with_onnx_runtime(&models, Opset::V13, &INTEGER);
}

/// The zoo ViT exports as exactly: patch tokens, class token (Expand + Concat), position
/// embedding, LayerNorm (ReduceMean arithmetic), exact GELU (Erf), the heads' Reshape and
/// Transpose around two activation × activation MatMuls, Softmax, per-token linear layers
/// (MatMul + Add) and signed activation quantizers (int8 codes around zero); with quantized
/// attention (`[quant] attention`), a QuantizeLinear/DequantizeLinear pair on both inputs of
/// each attention MatMul (unsigned codes for the softmax).
#[test]
fn vit_exports_as_onnx_runtime_runs_it() {
    if !common::onnx_runtime_present() {
        return;
    }
    let model = || Model::new(bitsearch::model::Arch::Vit, (3, 32, 32), 10, 1).unwrap();
    let attention = model().with_attention(Attention::Quantized).unwrap();
    assert_eq!(attention.shapes().len(), model().shapes().len() + 6);
    exports_agree_with_onnx_runtime(&[model(), attention], Opset::V13, &INTEGER);
}

/// The zoo ViT with quantized attention at opset 21, where its signed operands take every
/// format: signed INT4/int8 codes (their type named, without a zero point: ONNX Runtime's
/// default optimizations fail the session otherwise), fp8 with negative values kept, int16, and
/// group-wise int4 weights on its linear layers.
#[test]
fn vit_exports_every_format_at_opset_21_as_onnx_runtime_runs_it() {
    if !common::onnx_runtime_present() {
        return;
    }
    fn fp8(i: usize) -> String {
        ["fp8e4m3/fp8e4m3", "fp8e5m2/fp8e5m2", "8/fp8e4m3"][i % 3].into()
    }
    fn wide(i: usize) -> String {
        ["8/16", "int4g32/8", "fp8e4m3/16", "int4g128/4"][i % 4].into()
    }
    let model = Model::new(bitsearch::model::Arch::Vit, (3, 32, 32), 10, 1).unwrap();
    let attention = model.with_attention(Attention::Quantized).unwrap();
    let policies: [(BitsOf, [f64; 2]); 3] = [
        (mixed, [0.98, 0.95]),
        (fp8, [0.98, 0.95]),
        (wide, [0.98, 0.95]),
    ];
    exports_agree_with_onnx_runtime(&[attention], Opset::V21, &policies);
}

/// Each model, calibrated on the digit fixture, exported at `opset` under each of `policies`
/// (the first layer's input at full precision), runs in ONNX Runtime with bitsearch's
/// predictions.
fn exports_agree_with_onnx_runtime(
    models: &[Model],
    opset: Opset,
    policies: &[(BitsOf, [f64; 2])],
) {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("cifar");
    bitsearch::data::write_digit_fixture(&data_dir, 60, 500).unwrap();
    let (train, test) = DataSource::Cifar10Dir(data_dir).load().unwrap();
    let data = Dataset::from_raw(train, test, 50, 0).unwrap();
    let (x, _) = data.train.first(128, &Device::Cpu).unwrap();
    let (xt, yt) = data.test.first(500, &Device::Cpu).unwrap();
    for (k, model) in models.iter().enumerate() {
        let clips = bitsearch::calib::calibrate_model(model, &x, ClipMethod::Max).unwrap();
        for (p, (policy, expect)) in policies.iter().enumerate() {
            let bits: Vec<String> = (0..model.shapes().len())
                .map(|i| {
                    if i == 0 {
                        "8/32".to_string()
                    } else {
                        policy(i)
                    }
                })
                .collect();
            let q = Quantizer::new(Policy::parse(&bits.join(",")).unwrap(), clips.clone());
            let out = dir.path().join(format!("model-{k}-{p}"));
            bitsearch::deploy::write_files(&out, model, &q, opset, Some((&xt, &yt))).unwrap();
            let what = format!("{} {} {opset:?}", model.name(), bits.join(","));
            assert_onnx_runtime_agrees(&out, &what, *expect);
        }
    }
}
