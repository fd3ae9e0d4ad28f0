//! The folded ops that make or re-label a constant: ConstantOfShape, Concat, Reshape,
//! Unsqueeze, Squeeze, Shape, Cast and CastLike.

use super::super::super::tensor::{decode, Attrs, Data, Value};
use super::super::super::OnnxError;
use super::super::Ctx;
use super::{to_dims, Args};

/// A tensor of the input's shape filled with the `value` attribute's first value (default 0.0).
pub(super) fn constant_of_shape(args: &Args) -> Result<Value, OnnxError> {
    let dims = to_dims(args.ctx, &args.ints(0)?)?;
    let n = args.capped(&dims)?;
    let fill = match args.attrs.tensor("value") {
        Some(t) => decode(t, args.ctx.label)?,
        None => Value {
            dims: vec![1],
            data: Data::F32(vec![0.0]),
        },
    };
    let data = match fill.data {
        Data::F32(v) => Data::F32(vec![v.first().copied().unwrap_or(0.0); n]),
        Data::I64(v) => Data::I64(vec![v.first().copied().unwrap_or(0); n]),
    };
    Ok(Value { dims, data })
}

/// 1-D constants one after the other (integers if the first is).
pub(super) fn concat(args: &Args) -> Result<Value, OnnxError> {
    let parts: Vec<&Value> = args.inputs.iter().flatten().copied().collect();
    if parts.iter().any(|p| p.dims.len() != 1) || ![0, -1].contains(&args.attrs.int("axis", 0)) {
        return Err(args.ctx.rule("only 1-D constants are concatenated"));
    }
    let n = (parts.iter().map(|p| p.len()))
        .try_fold(0usize, usize::checked_add)
        .unwrap_or(usize::MAX);
    args.capped(&[n])?;
    let ints = parts.iter().filter(|p| p.ints().is_some()).count();
    let data = match (ints, parts.len()) {
        (0, _) => Data::F32(parts.iter().flat_map(|p| p.floats()).collect()),
        (i, n) if i == n => Data::I64(
            parts
                .iter()
                .flat_map(|p| p.ints().unwrap_or_default().to_vec())
                .collect(),
        ),
        (i, n) => {
            let rule = format!("concatenates {i} integer and {} float constants", n - i);
            return Err(args.ctx.rule(&rule));
        }
    };
    Ok(Value {
        dims: vec![n],
        data,
    })
}

/// The input's values under new dims.
pub(super) fn reshape(args: &Args) -> Result<Value, OnnxError> {
    let x = args.arg(0)?;
    let dims = reshape_dims(args.ctx, &x.dims, &args.ints(1)?)?;
    Ok(Value {
        dims,
        data: x.data.clone(),
    })
}

/// Reshape's target dims: 0 keeps the input's dim, one -1 takes what is left.
fn reshape_dims(ctx: &Ctx, from: &[usize], to: &[i64]) -> Result<Vec<usize>, OnnxError> {
    let cannot = || ctx.rule(&format!("cannot reshape {from:?} to {to:?}"));
    let n: usize = from.iter().product();
    let mut dims: Vec<i64> = (to.iter().enumerate())
        .map(|(i, &d)| match d {
            0 => from.get(i).map_or(0, |&f| f as i64),
            d => d,
        })
        .collect();
    if dims.iter().any(|&d| d < -1) || dims.iter().filter(|&&d| d == -1).count() > 1 {
        return Err(cannot());
    }
    let known = (dims.iter().filter(|&&d| d != -1))
        .try_fold(1i64, |p, &d| p.checked_mul(d))
        .ok_or_else(cannot)?;
    if let Some(free) = dims.iter().position(|&d| d == -1) {
        dims[free] = if known > 0 { n as i64 / known } else { 0 };
    }
    let dims = to_dims(ctx, &dims)?;
    let product = dims.iter().try_fold(1usize, |p, &d| p.checked_mul(d));
    match product == Some(n) {
        true => Ok(dims),
        false => Err(cannot()),
    }
}

/// The axes of Unsqueeze or Squeeze: input 1 (opset ≥ 13) or the `axes` attribute.
fn axes(args: &Args) -> Result<Vec<i64>, OnnxError> {
    match args.given(1) {
        Some(_) => args.ints(1),
        None => Ok(args.attrs.ints("axes").unwrap_or_default()),
    }
}

/// Which of `rank` axes `axes` names (negative ones counting from the end): a mask, so a long
/// list costs one pass.
fn mask(axes: &[i64], rank: usize) -> Vec<bool> {
    let mut named = vec![false; rank];
    for &a in axes {
        if let Some(slot) = named.get_mut(a.rem_euclid(rank.max(1) as i64) as usize) {
            *slot = true;
        }
    }
    named
}

/// The input with a dim of 1 inserted at each axis.
pub(super) fn unsqueeze(args: &Args) -> Result<Value, OnnxError> {
    let x = args.arg(0)?;
    let axes = axes(args)?;
    let named = mask(&axes, x.dims.len() + axes.len());
    let mut src = x.dims.iter();
    let dims = (named.iter())
        .map(|&one| match one {
            true => 1,
            false => *src.next().unwrap_or(&1),
        })
        .collect();
    Ok(Value {
        dims,
        data: x.data.clone(),
    })
}

/// The input without its dims of 1 at the axes (all of them when no axes are given).
pub(super) fn squeeze(args: &Args) -> Result<Value, OnnxError> {
    let x = args.arg(0)?;
    let axes = axes(args)?;
    let named = mask(&axes, x.dims.len());
    let dims = (x.dims.iter().zip(&named))
        .filter(|&(&d, &n)| !(d == 1 && (axes.is_empty() || n)))
        .map(|(&d, _)| d)
        .collect();
    Ok(Value {
        dims,
        data: x.data.clone(),
    })
}

/// The input's dims from `start` to `end` (opset 15; all of them by default) as a 1-D int64
/// tensor.
pub(super) fn shape(args: &Args) -> Result<Value, OnnxError> {
    let dims = &args.arg(0)?.dims;
    let d: Vec<i64> = dims[shape_range(args.attrs, dims.len())]
        .iter()
        .map(|&d| d as i64)
        .collect();
    Ok(Value {
        dims: vec![d.len()],
        data: Data::I64(d),
    })
}

/// The dims Shape keeps of a tensor of `rank`: from `start` to `end`, negative ones counting
/// from the end, both clamped to the rank (an empty range when `start` is past `end`).
pub(in crate::model::onnx::convert) fn shape_range(
    a: &Attrs,
    rank: usize,
) -> std::ops::Range<usize> {
    let at = |v: i64| {
        let v = if v < 0 {
            v.saturating_add(rank as i64)
        } else {
            v
        };
        v.clamp(0, rank as i64) as usize
    };
    let (start, end) = (at(a.int("start", 0)), at(a.int("end", rank as i64)));
    start..end.max(start)
}

/// The input as float (`to` = 1) or int64 (`to` = 7), ONNX's TensorProto element types.
pub(super) fn cast(args: &Args) -> Result<Value, OnnxError> {
    let x = args.arg(0)?;
    match args.attrs.int("to", 0) {
        1 => Ok(cast_to(x, true)),
        7 => Ok(cast_to(x, false)),
        t => {
            let rule = "constants are cast to float (1) or int64 (7) only";
            Err(args.attrs.bad("to", t, rule))
        }
    }
}

/// CastLike of two constants: the first as the second's element type.
pub(super) fn cast_like(args: &Args) -> Result<Value, OnnxError> {
    let like = args.arg(1)?;
    Ok(cast_to(args.arg(0)?, like.ints().is_none()))
}

/// `x` as float (`float`) or int64 (floats truncated toward zero, as ONNX's Cast does).
pub(in crate::model::onnx::convert) fn cast_to(x: &Value, float: bool) -> Value {
    let data = match float {
        true => Data::F32(x.floats()),
        false => Data::I64(match &x.data {
            Data::I64(v) => v.clone(),
            Data::F32(v) => v.iter().map(|&f| f as i64).collect(),
        }),
    };
    Value {
        dims: x.dims.clone(),
        data,
    }
}
