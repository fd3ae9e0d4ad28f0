//! Reading ONNX values: initializer and constant tensors (float and int64, inline or raw
//! little-endian bytes) and node attributes, each failure an `OnnxError` naming what it read.

use super::proto::{tensor_proto, AttributeProto, NodeProto, TensorProto};
use super::OnnxError;

/// A constant tensor of the graph: its dims and values (int64 values widened to f64 exactly
/// enough for shapes and clip bounds; floats kept as f32).
#[derive(Debug, Clone)]
pub(super) struct Value {
    pub dims: Vec<usize>,
    pub data: Data,
}

#[derive(Debug, Clone)]
pub(super) enum Data {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

impl Value {
    pub fn len(&self) -> usize {
        match &self.data {
            Data::F32(v) => v.len(),
            Data::I64(v) => v.len(),
        }
    }

    /// The values as f32 (int64 values converted).
    pub fn floats(&self) -> Vec<f32> {
        match &self.data {
            Data::F32(v) => v.clone(),
            Data::I64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }

    /// The values as int64, if they are integers.
    pub fn ints(&self) -> Option<&[i64]> {
        match &self.data {
            Data::I64(v) => Some(v),
            Data::F32(_) => None,
        }
    }
}

/// Decodes `t`; `what` names it in errors (the tensor's name, or the node that holds it).
pub(super) fn decode(t: &TensorProto, what: &str) -> Result<Value, OnnxError> {
    let bad = |rule: String| OnnxError::Tensor {
        name: what.to_string(),
        rule,
    };
    if t.data_location() == tensor_proto::DataLocation::External {
        return Err(bad(
            "its data is in a separate file; re-export with the weights inside the model \
             (torch.onnx.export(..., dynamo=False) or onnx.save(model, path, \
             save_as_external_data=False))"
                .into(),
        ));
    }
    let dims = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| bad(format!("negative dimension {d}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let count: usize = dims.iter().product();
    let raw = t.raw_data.as_deref().unwrap_or_default();
    let data = match tensor_proto::DataType::try_from(t.data_type()) {
        Ok(tensor_proto::DataType::Float) if !raw.is_empty() => Data::F32(
            raw.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        ),
        Ok(tensor_proto::DataType::Float) => Data::F32(t.float_data.clone()),
        Ok(tensor_proto::DataType::Int64) if !raw.is_empty() => Data::I64(
            raw.chunks_exact(8)
                .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                .collect(),
        ),
        Ok(tensor_proto::DataType::Int64) => Data::I64(t.int64_data.clone()),
        _ => {
            return Err(bad(format!(
                "element type {} is not supported (float32 weights, int64 shapes)",
                t.data_type()
            )))
        }
    };
    let v = Value { dims, data };
    if v.len() != count {
        return Err(bad(format!(
            "holds {} values, its dims {:?} need {count} (truncated?)",
            v.len(),
            v.dims
        )));
    }
    Ok(v)
}

/// A node's attributes, read by name.
pub(super) struct Attrs<'a> {
    node: &'a NodeProto,
    label: String,
}

impl<'a> Attrs<'a> {
    pub fn new(node: &'a NodeProto, label: String) -> Self {
        Attrs { node, label }
    }

    fn get(&self, name: &str) -> Option<&'a AttributeProto> {
        self.node.attribute.iter().find(|a| a.name() == name)
    }

    /// An error for attribute `name` with `value` breaking `rule`.
    pub fn bad(&self, name: &str, value: impl std::fmt::Debug, rule: &str) -> OnnxError {
        OnnxError::Attribute {
            node: self.label.clone(),
            op: self.node.op_type().to_string(),
            attribute: name.to_string(),
            value: format!("{value:?}"),
            rule: rule.to_string(),
        }
    }

    pub fn int(&self, name: &str, default: i64) -> i64 {
        self.get(name).and_then(|a| a.i).unwrap_or(default)
    }

    pub fn float(&self, name: &str, default: f32) -> f32 {
        self.float_opt(name).unwrap_or(default)
    }

    pub fn float_opt(&self, name: &str) -> Option<f32> {
        self.get(name).and_then(|a| a.f)
    }

    pub fn ints(&self, name: &str) -> Option<Vec<i64>> {
        self.get(name).map(|a| a.ints.clone())
    }

    pub fn string(&self, name: &str) -> Option<String> {
        self.get(name)
            .and_then(|a| a.s.as_ref())
            .map(|s| String::from_utf8_lossy(s).into_owned())
    }

    pub fn tensor(&self, name: &str) -> Option<&'a TensorProto> {
        self.get(name).and_then(|a| a.t.as_ref())
    }

    /// Every attribute name not in `known`: an attribute the importer would otherwise ignore.
    pub fn unknown(&self, known: &[&str]) -> Option<String> {
        self.node
            .attribute
            .iter()
            .map(|a| a.name().to_string())
            .find(|n| !known.contains(&n.as_str()))
    }
}
