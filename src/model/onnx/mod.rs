//! ONNX import: a model file (weights inside it, or in external data files beside it) becomes
//! a `Graph` and its layers' weights.
//!
//! Supported, at opsets 13 to 21 of the default domain: Conv (any groups, square kernels,
//! symmetric padding), Gemm, MatMul (+ Add of a constant bias), BatchNormalization (folded into
//! the conv before it when nothing else reads that conv's output, else a fixed per-channel
//! affine), Relu, Clip as ReLU6 (or ReLU), Sigmoid, HardSigmoid (PyTorch's), HardSwish, Mul of
//! two computed tensors (a gate; Sigmoid + Mul of one tensor is SiLU, HardSigmoid + Mul
//! HardSwish) or by a per-channel constant (+ Add of a per-channel shift), Concat and Split on
//! the channel axis, a Slice of channels, MaxPool (symmetric padding, either rounding),
//! AveragePool (no padding), GlobalAveragePool, ReduceMean over the spatial axes, Add, Flatten,
//! Reshape to (N, -1), Reshape + Transpose + Reshape as a channel shuffle, Identity, Dropout and
//! Constant; Slice + Pad as the option-A shortcut; and shape arithmetic on constants and on
//! shapes holding the batch size, evaluated at import (`convert::fold`). Anything else is an
//! error naming the node, its op type and, for an attribute outside what the ops above mean,
//! the attribute: never a silently different graph, and never an op left unpriced or
//! unquantized.
//!
//! A file is untrusted: every size it claims is checked before anything is allocated (a
//! tensor's dims against the bytes that hold its values, external data against its file and
//! `external::MAX_EXTERNAL_BYTES`, and `tensor::MAX_UNBACKED`, `MAX_ACTIVATIONS` and
//! `MAX_SPATIAL` for what no bytes back), and external data is read only from inside the
//! model's directory, so a hostile file gets an error naming the node or tensor, the rule and
//! the value, never a panic, a huge allocation or a read elsewhere (tests/fuzz/onnx.rs mutates
//! the fixtures to check it).

mod convert;
mod export;
mod external;
mod tensor;

pub use export::{export, export_with_layers, LayerNodes, Opset};

#[allow(clippy::all, clippy::pedantic)]
pub(crate) mod proto {
    include!(concat!(env!("OUT_DIR"), "/onnx.rs"));
}

use std::path::{Path, PathBuf};

use super::graph::{Graph, ShapeError};
use super::net::LayerWeights;

/// An imported model: its graph, the image shape it takes, its class count and each
/// quantizable layer's weights in layer order.
#[derive(Debug)]
pub struct Imported {
    pub graph: Graph,
    pub input: (usize, usize, usize),
    pub classes: usize,
    pub layers: Vec<LayerWeights>,
    /// The parameters of ops that are not layers (a LayerNorm's γ and β, a class token, a
    /// position embedding), by graph node.
    pub node_params: Vec<NodeParamValues>,
}

/// One op's parameters as a file gives them: its graph node and (suffix, row-major values),
/// `weight` then `bias`.
pub type NodeParamValues = (usize, Vec<(&'static str, Vec<f32>)>);

#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a readable ONNX model (truncated or another format?): {reason}", path.display())]
    Decode { path: PathBuf, reason: String },
    #[error("{}: {what}", path.display())]
    Model { path: PathBuf, what: String },
    #[error(
        "node {node}: op {op} is not supported (bitsearch imports {})",
        convert::SUPPORTED
    )]
    Unsupported { node: String, op: String },
    #[error("node {node} ({op}): attribute {attribute} = {value}: {rule}")]
    Attribute {
        node: String,
        op: String,
        attribute: String,
        value: String,
        rule: String,
    },
    #[error("node {node} ({op}): input {input} must be a constant (an initializer), and is not")]
    MissingInitializer {
        node: String,
        op: String,
        input: String,
    },
    #[error("node {node} ({op}): {rule}")]
    Node {
        node: String,
        op: String,
        rule: String,
    },
    #[error("tensor {name}: {rule}")]
    Tensor { name: String, rule: String },
    #[error("tensor {tensor}: external data {field} = {value:?}: {rule}")]
    External {
        tensor: String,
        field: String,
        value: String,
        rule: String,
    },
    #[error(
        "{found}: bitsearch imports opsets {} to {} of ONNX's operators (re-export with \
         torch.onnx.export(..., opset_version=20))",
        OPSETS.start(),
        OPSETS.end()
    )]
    Opset { found: String },
    #[error("node {node}: {source}")]
    Shape { node: String, source: ShapeError },
}

impl OnnxError {
    /// The error with the file's path in front, for errors that name only a node.
    fn in_file(self, path: &Path) -> OnnxError {
        match self {
            OnnxError::Io { .. } | OnnxError::Decode { .. } | OnnxError::Model { .. } => self,
            other => OnnxError::Model {
                path: path.to_path_buf(),
                what: other.to_string(),
            },
        }
    }
}

/// The opsets of the default domain whose ops the importer reads as they are defined there.
pub const OPSETS: std::ops::RangeInclusive<i64> = 13..=21;

/// Reads and imports the ONNX model at `path`, and any external data it names beside it.
pub fn import(path: &Path) -> Result<Imported, OnnxError> {
    let bytes = std::fs::read(path).map_err(|source| OnnxError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "onnx".into());
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    import_bytes(&bytes, &name, Some(dir)).map_err(|e| match e {
        OnnxError::Decode { reason, .. } => OnnxError::Decode {
            path: path.to_path_buf(),
            reason,
        },
        other => other.in_file(path),
    })
}

/// Imports a model from its bytes; `name` becomes the graph's name. External data is read from
/// `dir` (the model file's directory); without one, a tensor stored outside is an error.
pub fn import_bytes(bytes: &[u8], name: &str, dir: Option<&Path>) -> Result<Imported, OnnxError> {
    use prost::Message;
    let mut model = proto::ModelProto::decode(bytes).map_err(|e| OnnxError::Decode {
        path: PathBuf::from(name),
        reason: e.to_string(),
    })?;
    check_opset(&model)?;
    let graph = model.graph.as_mut().ok_or_else(|| OnnxError::Decode {
        path: PathBuf::from(name),
        reason: "the file has no graph".into(),
    })?;
    if let Some(dir) = dir {
        external::load(graph, dir)?;
    }
    convert::Builder::new(name, graph)?.run()
}

/// The model's opset of the default domain ("" or "ai.onnx") must be in `OPSETS`: an op's
/// meaning (where its axes are, which inputs it takes) is defined per opset.
fn check_opset(model: &proto::ModelProto) -> Result<(), OnnxError> {
    let default = (model.opset_import.iter()).find(|o| matches!(o.domain(), "" | "ai.onnx"));
    match default.map(|o| o.version()) {
        Some(v) if OPSETS.contains(&v) => Ok(()),
        Some(v) => Err(OnnxError::Opset {
            found: format!("the model uses opset {v}"),
        }),
        None => Err(OnnxError::Opset {
            found: "the model names no opset of the default domain".into(),
        }),
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod hostile_tests;

#[cfg(test)]
mod dynamo_tests;

#[cfg(test)]
mod external_tests;

#[cfg(test)]
mod torchvision_tests;

#[cfg(test)]
mod vit_tests;
