//! Harness of the ONNX importer: `import_bytes`, and the `Model` it builds, on the real
//! fixtures of tests/data/onnx mutated structurally (`onnx_edit`: dims, data, element types,
//! external data keys, attributes, initializer names, op types, node inputs and outputs, the
//! node order and the graph's input shape changed) and byte by byte. Byte edits alone mostly
//! land in weight data; the structural ones reach the importer's rules. The default exporter's
//! fixtures read their external data from their own directory, as `import` would.

use std::path::{Path, PathBuf};

use bitsearch::model::onnx::import_bytes;
use bitsearch::model::Model;
use proptest::prelude::*;
use prost::Message;

use super::engine::fuzz;
use super::mutate::{input, Input};
use super::onnx_edit::proto::ModelProto;
use super::onnx_edit::{apply, edit, Edit};
use super::shown;

/// The harness input: a fixture (by index) with structural edits, or with byte edits.
#[derive(Debug, Clone)]
enum Case {
    Structural(usize, Vec<Edit>),
    Bytes(usize, Input),
}

fn case(fixtures: usize) -> impl Strategy<Value = Case> {
    prop_oneof![
        3 => (0..fixtures, proptest::collection::vec(edit(), 1..6))
            .prop_map(|(f, edits)| Case::Structural(f, edits)),
        1 => (0..fixtures, input()).prop_map(|(f, inp)| Case::Bytes(f, inp)),
    ]
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/onnx")
}

/// A seed: the file's bytes, its decoded model and the directory of its external data.
type Seed = (Vec<u8>, ModelProto, PathBuf);

/// The fixtures: LeNet-5 (conv, pool, Gemm) and the option-A ResNet-20 (BatchNorm, residual
/// adds, Slice + Pad shortcuts and the constant folding around them) as the TorchScript
/// exporter wrote them; the default exporter's LeNet (external data, a Reshape to (1, 256))
/// and unoptimized ResNet-8 (ReduceMean, Expand, CastLike, and the flatten target computed
/// from the batch size); and small torchvision models: ShuffleNet (Split, Concat, the channel
/// shuffle, a padded MaxPool), EfficientNet (SiLU, Sigmoid gates), MobileNetV3 (HardSwish,
/// HardSigmoid) and DenseNet (Concat, BatchNorm as an affine); and a small ViT
/// (LayerNormalization, Gelu, Softmax, the attention MatMuls and their heads' Reshape,
/// Transpose, Slice and Squeeze, class-token Concat and Gather, position-embedding Add).
fn fixtures() -> Vec<Seed> {
    let dir = fixture_dir();
    let files = [
        "lenet5.onnx",
        "resnet20-a.onnx",
        "lenet-dynamo.onnx",
        "resnet8-dynamo-batch.onnx",
        "torchvision/shufflenet-mini.onnx",
        "torchvision/efficientnet-mini.onnx",
        "torchvision/mobilenet_v3-mini.onnx",
        "torchvision/densenet-mini.onnx",
        "vit/vit-mini.onnx",
    ];
    (files.iter())
        .map(|f| {
            let path = dir.join(f);
            let bytes = std::fs::read(&path).expect("the ONNX fixtures are readable");
            let model = ModelProto::decode(bytes.as_slice()).expect("the fixtures decode");
            let parent = path.parent().unwrap_or(&dir).to_path_buf();
            (bytes, model, parent)
        })
        .collect()
}

/// Imports the bytes (external data from `dir`) and builds the model; true when the import is
/// accepted.
fn import_and_build(bytes: &[u8], dir: &Path) -> bool {
    let Some(imported) = shown(import_bytes(bytes, "fuzz", Some(dir))) else {
        return false;
    };
    let _ = shown(Model::from_import(imported));
    true
}

#[test]
fn fuzz_onnx() {
    let seeds = fixtures();
    for (bytes, _, dir) in &seeds {
        assert!(
            import_and_build(bytes, dir),
            "every fixture imports unmodified"
        );
    }
    fuzz("onnx", 2, case(seeds.len()), |c: &Case| {
        let (bytes, f) = match c {
            Case::Structural(f, edits) => (apply(&seeds[*f].1, edits).encode_to_vec(), *f),
            Case::Bytes(f, inp) => (inp.apply(&seeds[*f].0), *f),
        };
        import_and_build(&bytes, &seeds[f].2)
    });
}
