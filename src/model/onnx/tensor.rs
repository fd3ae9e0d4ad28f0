//! Reading ONNX values: initializer and constant tensors (float and int64, inline or raw
//! little-endian bytes; external data is read into raw bytes first, by `external`), Constant
//! nodes' values and node attributes, each failure an `OnnxError` naming what it read.

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

/// The most elements a tensor no file bytes back may hold: a ConstantOfShape's output, any
/// constant folded at import, and the dims an empty tensor claims. Such tensors are shape
/// arithmetic (a handful of values); 2^22 elements is far above that and keeps the largest one
/// (32 MiB of int64, and its index list when it is sliced) under the fuzz harness's 64 MiB limit.
pub(super) const MAX_UNBACKED: usize = 1 << 22;

/// The most values one example's input or any layer's output may hold: 2^26 floats (256 MiB an
/// example) is far beyond the ImageNet-sized maps a model bitsearch trains produces, and keeps
/// every count of shape inference far from overflowing.
pub(super) const MAX_ACTIVATIONS: usize = 1 << 26;

/// The largest image side, kernel, stride or padding: 2^16 pixels is beyond any image bitsearch
/// trains on, and keeps `h + 2·padding` and the products of shape inference in range.
pub(super) const MAX_SPATIAL: usize = 1 << 16;

/// `dims`' element count, checked: `Err` names the rule when the product overflows, or when the
/// dims other than zeros multiply to more than `limit` (an empty tensor still claims them).
pub(super) fn element_count(dims: &[usize], limit: usize) -> Result<usize, String> {
    let overflow = || format!("dims {dims:?} multiply past the largest size (overflow)");
    let nonzero = (dims.iter().filter(|&&d| d != 0))
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(overflow)?;
    if nonzero > limit {
        return Err(format!(
            "dims {dims:?} claim {nonzero} elements; at most {limit} are allowed here"
        ));
    }
    Ok(if dims.contains(&0) { 0 } else { nonzero })
}

/// Decodes `t`; `what` names it in errors (the tensor's name, or the node that holds it). The
/// dims are checked against the bytes that hold the values before anything is allocated.
pub(super) fn decode(t: &TensorProto, what: &str) -> Result<Value, OnnxError> {
    let bad = |rule: String| OnnxError::Tensor {
        name: what.to_string(),
        rule,
    };
    if t.data_location() == tensor_proto::DataLocation::External {
        // `import` reads external data first (`external::load`); bytes alone have no directory.
        return Err(bad(
            "its data is in a separate file (external data), which only a model imported \
             from its path can reach"
                .into(),
        ));
    }
    let dims = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| bad(format!("negative dimension {d}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let raw = t.raw_data.as_deref().unwrap_or_default();
    let Some(size) = element_size(t.data_type()) else {
        return Err(bad(format!(
            "element type {} is not supported (float32 weights, int64 shapes)",
            t.data_type()
        )));
    };
    let typed = match size {
        4 => t.float_data.len(),
        _ => t.int64_data.len(),
    };
    // What the file holds bounds what the dims may claim.
    let held = if raw.is_empty() {
        typed
    } else {
        raw.len() / size
    };
    let count = element_count(&dims, held.max(MAX_UNBACKED)).map_err(bad)?;
    let short = match raw.is_empty() {
        true => (typed != count).then(|| format!("holds {typed} values")),
        false => (raw.len() != count * size).then(|| format!("holds {} bytes", raw.len())),
    };
    if let Some(holds) = short {
        return Err(bad(format!(
            "{holds}, its dims {dims:?} need {count} values (truncated?)"
        )));
    }
    let data = match (size, raw.is_empty()) {
        (4, false) => Data::F32(
            raw.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        ),
        (4, true) => Data::F32(t.float_data.clone()),
        (_, false) => Data::I64(
            raw.chunks_exact(8)
                .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                .collect(),
        ),
        (_, true) => Data::I64(t.int64_data.clone()),
    };
    Ok(Value { dims, data })
}

/// A Constant node's value: its `value` tensor, or a `value_int` / `value_float` (a scalar) or
/// `value_ints` / `value_floats` (1-D) attribute, as PyTorch's default exporter writes small
/// shape constants.
pub(super) fn constant(a: &Attrs) -> Result<Value, OnnxError> {
    let forms = [
        "value",
        "value_int",
        "value_ints",
        "value_float",
        "value_floats",
    ];
    if let Some(name) = a.unknown(&forms) {
        let rule = "only numeric constants are imported (value, value_int(s), value_float(s))";
        return Err(a.bad(&name, "set", rule));
    }
    let (dims, data) = if let Some(t) = a.tensor("value") {
        return decode(t, &a.label);
    } else if let Some(v) = a.int_opt("value_int") {
        (vec![], Data::I64(vec![v]))
    } else if let Some(v) = a.float_opt("value_float") {
        (vec![], Data::F32(vec![v]))
    } else if let Some(v) = a.ints("value_ints") {
        (vec![v.len()], Data::I64(v))
    } else if let Some(v) = a.floats("value_floats") {
        (vec![v.len()], Data::F32(v))
    } else {
        return Err(a.bad("value", "absent", "a Constant needs a value"));
    };
    Ok(Value { dims, data })
}

/// The bytes of one element of ONNX element type `data_type`, for the types bitsearch reads
/// (float32 and int64); `None` for any other.
pub(super) fn element_size(data_type: i32) -> Option<usize> {
    match tensor_proto::DataType::try_from(data_type) {
        Ok(tensor_proto::DataType::Float) => Some(4),
        Ok(tensor_proto::DataType::Int64) => Some(8),
        _ => None,
    }
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
        self.int_opt(name).unwrap_or(default)
    }

    pub fn int_opt(&self, name: &str) -> Option<i64> {
        self.get(name).and_then(|a| a.i)
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

    pub fn floats(&self, name: &str) -> Option<Vec<f32>> {
        self.get(name).map(|a| a.floats.clone())
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
