//! A quantized ONNX export checked by a real consumer: ONNX Runtime (Python; installed by
//! scripts/install-ci-deps.sh) runs it on test images through scripts/check_onnx_export.py,
//! and its predictions are compared with bitsearch's own quantized model.

mod common;

use bitsearch::data::{DataSource, Dataset};
use bitsearch::model::{onnx, Model};
use bitsearch::quant::{Policy, Quantizer};
use candle_core::Device;
use common::cli::repo;

#[test]
fn onnx_runtime_runs_the_export_as_bitsearch_does() {
    let model = onnx::import(&repo().join("tests/data/onnx/lenet5.onnx")).unwrap();
    let model = Model::from_import(model).unwrap();
    let (train, test) = DataSource::EmbeddedMnist10k.load().unwrap();
    let data = Dataset::from_raw(train, test, 500, 0).unwrap();
    // Clips: each layer's largest input on 256 training images.
    let (x, _) = data.train.first(256, &Device::Cpu).unwrap();
    let trace = model.forward_trace(&x, None).unwrap();
    let clips: Vec<[f32; 8]> = (trace.inputs.iter())
        .map(|t| {
            [t.abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap(); 8]
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    for policy in [
        "8/8,8/8,8/8,8/8,8/8",
        "8/8,4/4,2/4,4/4,8/8",
        "32/32,3/2,2/3,4/8,8/2",
    ] {
        let q = Quantizer::new(Policy::parse(policy).unwrap(), clips.clone());
        std::fs::write(
            dir.path().join("model.onnx"),
            onnx::export(&model, &q).unwrap(),
        )
        .unwrap();
        let (xt, yt) = data.test.first(500, &Device::Cpu).unwrap();
        let logits = model.forward(&xt, Some(&q)).unwrap();
        let check = serde_json::json!({
            "shape": xt.dims(),
            "input": xt.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            "labels": yt.to_vec1::<u32>().unwrap(),
            "logits": logits.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        });
        std::fs::write(dir.path().join("check.json"), check.to_string()).unwrap();
        let out = std::process::Command::new("python3")
            .arg(repo().join("scripts/check_onnx_export.py"))
            .arg(dir.path())
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
        eprintln!("{policy}: {rows:?}");
        // The spec's own evaluation (ORT with its graph rewrites off) must give bitsearch's
        // predictions; logits may differ only where ORT's float sums put an activation on the
        // other side of a quantization step (rare: the tolerance counts examples).
        let reference = rows.iter().find(|r| r["config"] == "reference").unwrap();
        let agree = reference["top1_agreement"].as_f64().unwrap();
        let within = reference["examples_within_1e-4"].as_f64().unwrap();
        assert!(agree >= 0.995, "{policy}: top-1 agreement {agree}");
        assert!(
            within >= 0.99,
            "{policy}: only {within} of examples within 1e-4"
        );
    }
}
