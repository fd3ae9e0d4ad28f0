//! The importer against torchvision's CNN families (scripts/export_torchvision.py): each
//! model, exported by PyTorch's default exporter, imports with PyTorch's logits within 1e-5 of
//! the largest. The small members of each family are committed (tests/data/onnx/torchvision);
//! the named full-size models are checked from a directory the script wrote, when
//! `BITSEARCH_TORCHVISION_DIR` names one (an ignored test: their files are ~150 MB).

use std::path::Path;

use super::import;
use super::tests::fixed_input;
use crate::model::{Graph, Model};

/// One model's row of the table: its ops, the largest logit difference against PyTorch and
/// the largest logit, its quantizable layers and MACs per example.
struct Row {
    ops: Vec<&'static str>,
    diff: f32,
    largest: f32,
    layers: usize,
    macs: u64,
}

/// Imports DIR/NAME.onnx and compares its logits on the fixed batch of 2 with PyTorch's.
fn check(dir: &Path, name: &str, entry: &serde_json::Value) -> Row {
    let imported = import(&dir.join(format!("{name}.onnx"))).unwrap_or_else(|e| panic!("{e}"));
    let kinds = op_kinds(&imported.graph);
    let model = Model::from_import(imported).unwrap_or_else(|e| panic!("{name}: {e}"));
    let shape: Vec<usize> = (entry["input"].as_array().unwrap().iter())
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(model.input(), (shape[0], shape[1], shape[2]), "{name}");
    let x = fixed_input((2, shape[0], shape[1], shape[2]));
    let got = model.forward(&x, None).unwrap();
    let got = got.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let want: Vec<f32> = (entry["logits"].as_array().unwrap().iter())
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(got.len(), want.len(), "{name}");
    let diff = (got.iter().zip(&want)).fold(0.0, |m: f32, (a, b)| m.max((a - b).abs()));
    let largest = want.iter().fold(0.0, |m: f32, v| m.max(v.abs()));
    let shapes = model.shapes();
    Row {
        ops: kinds,
        diff,
        largest,
        layers: shapes.len(),
        macs: shapes.iter().map(|s| s.macs).sum(),
    }
}

/// The graph's op kinds, each once, in order of first use.
fn op_kinds(g: &Graph) -> Vec<&'static str> {
    let mut out = Vec::new();
    for n in &g.nodes[1..] {
        let k = n.op.kind();
        if !out.contains(&k) {
            out.push(k);
        }
    }
    out
}

/// Every model in DIR/logits.json, checked; prints the table row of each.
fn check_dir(dir: &Path) -> usize {
    let text = std::fs::read_to_string(dir.join("logits.json")).unwrap();
    let table: serde_json::Value = serde_json::from_str(&text).unwrap();
    let models = table["models"].as_object().unwrap();
    for (name, entry) in models {
        let r = check(dir, name, entry);
        eprintln!(
            "| {name} | {} | {:.1e} (largest logit {:.3}) | {} | {} |",
            r.ops.join(", "),
            r.diff,
            r.largest,
            r.layers,
            r.macs
        );
        assert!(r.largest > 0.0, "{name}: all logits zero");
        assert!(
            r.diff <= 1e-5 * r.largest,
            "{name}: logits differ by {} (largest {})",
            r.diff,
            r.largest
        );
    }
    models.len()
}

#[test]
fn torchvision_families_import_with_pytorchs_logits() {
    let dir = super::tests::fixture("torchvision");
    assert_eq!(check_dir(&dir), 8);
}

/// The named full-size models: `BITSEARCH_TORCHVISION_DIR=DIR cargo test --release --lib
/// torchvision -- --ignored --nocapture` after `scripts/export_torchvision.py full DIR`.
#[test]
#[ignore = "needs BITSEARCH_TORCHVISION_DIR from scripts/export_torchvision.py full"]
fn full_size_torchvision_models_import_with_pytorchs_logits() {
    let dir = std::env::var("BITSEARCH_TORCHVISION_DIR")
        .expect("BITSEARCH_TORCHVISION_DIR names the directory export_torchvision.py full wrote");
    assert!(check_dir(Path::new(&dir)) >= 16);
}
