//! ONNX import: a model file (weights inside it) becomes a `Graph` and its layers' weights.
//!
//! Supported: Conv (any groups, square kernels, symmetric padding), Gemm, MatMul (+ Add of a
//! constant bias), BatchNormalization (after a conv), Relu, Clip as ReLU6 (or ReLU), MaxPool,
//! AveragePool (no padding), GlobalAveragePool, Add, Flatten, Reshape to (N, -1), Identity,
//! Dropout and Constant; Slice + Pad as the option-A shortcut; and shape arithmetic on
//! constants, evaluated at import (`convert::fold`). Anything else is an error naming the node, its op type and, for an
//! attribute outside what the ops above mean, the attribute: never a silently different graph.
//!
//! A file is untrusted: every size it claims is checked before anything is allocated (a
//! tensor's dims against the bytes that hold its values, and `tensor::MAX_UNBACKED`,
//! `MAX_ACTIVATIONS` and `MAX_SPATIAL` for what no bytes back), so a hostile file gets an error
//! naming the node or tensor, the rule and the value, never a panic or a huge allocation
//! (tests/fuzz/onnx.rs mutates the fixtures to check it).

mod convert;
mod export;
mod tensor;

pub use export::{export, Opset};

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
}

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

/// Reads and imports the ONNX model at `path`.
pub fn import(path: &Path) -> Result<Imported, OnnxError> {
    let bytes = std::fs::read(path).map_err(|source| OnnxError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "onnx".into());
    import_bytes(&bytes, &name).map_err(|e| match e {
        OnnxError::Decode { reason, .. } => OnnxError::Decode {
            path: path.to_path_buf(),
            reason,
        },
        other => other.in_file(path),
    })
}

/// Imports a model from its bytes; `name` becomes the graph's name.
pub fn import_bytes(bytes: &[u8], name: &str) -> Result<Imported, OnnxError> {
    use prost::Message;
    let model = proto::ModelProto::decode(bytes).map_err(|e| OnnxError::Decode {
        path: PathBuf::from(name),
        reason: e.to_string(),
    })?;
    let graph = model.graph.as_ref().ok_or_else(|| OnnxError::Decode {
        path: PathBuf::from(name),
        reason: "the file has no graph".into(),
    })?;
    convert::Builder::new(name, graph)?.run()
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod hostile_tests;
