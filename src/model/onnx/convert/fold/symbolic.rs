//! Shapes holding the batch size. With a dynamic batch (and its graph optimizer off) PyTorch's
//! exporter computes a flatten's target at run time from a tensor's shape: `Shape` → `Squeeze`
//! or `Gather` → `Reshape` or `Unsqueeze` → `Concat` → `Reshape`. bitsearch's graphs run any
//! batch, so the batch size stays a symbol (`Dim::Batch`) and every other entry is a number
//! known at import; the chain folds to a target such as (batch, 256), which the Reshape reads
//! as a flatten. Only those shape moves pass the symbol on; computing with it (multiplying it,
//! filling a tensor of it) is an error naming the node.

use super::super::super::tensor::{Attrs, Data, Value};
use super::super::super::OnnxError;
use super::super::Ctx;
use super::gather::{slice_ranges, SliceArgs};

/// One entry of a shape: the batch size, free until run time, or a number known at import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::model::onnx::convert) enum Dim {
    Batch,
    Fixed(i64),
}

/// A scalar or 1-D int64 tensor whose values include the batch size.
#[derive(Debug, Clone)]
pub(in crate::model::onnx::convert) struct Symbolic {
    pub scalar: bool,
    pub values: Vec<Dim>,
}

/// An input of a symbolic fold.
#[derive(Debug, Clone, Copy)]
pub(in crate::model::onnx::convert) enum Input<'a> {
    Absent,
    Const(&'a Value),
    Sym(&'a Symbolic),
}

/// A symbolic fold's result: a shape still holding the batch size, or a constant once the
/// batch size is left behind (a Gather of another entry).
#[derive(Debug)]
pub(in crate::model::onnx::convert) enum Folded {
    Const(Value),
    Sym(Symbolic),
}

/// The ops that pass the batch size on.
pub(in crate::model::onnx::convert) const SYMBOLIC: [&str; 8] = [
    "Gather",
    "Slice",
    "Squeeze",
    "Unsqueeze",
    "Reshape",
    "Concat",
    "Cast",
    "Identity",
];

/// `values` as a shape: a constant when none of them is the batch size.
pub(in crate::model::onnx::convert) fn settle(scalar: bool, values: Vec<Dim>) -> Folded {
    if values.contains(&Dim::Batch) {
        return Folded::Sym(Symbolic { scalar, values });
    }
    let ints = (values.iter())
        .map(|d| match d {
            Dim::Fixed(v) => *v,
            Dim::Batch => 0,
        })
        .collect();
    Folded::Const(Value {
        dims: if scalar { vec![] } else { vec![values.len()] },
        data: Data::I64(ints),
    })
}

/// The node's result from its inputs, at least one of them symbolic.
pub(in crate::model::onnx::convert) fn fold(
    ctx: &Ctx,
    a: &Attrs,
    inputs: &[Input],
) -> Result<Folded, OnnxError> {
    let ints = |i: usize| constant_ints(ctx, inputs, i);
    if !SYMBOLIC.contains(&ctx.op) {
        return Err(ctx.rule(&format!(
            "{} of a shape holding the batch size: bitsearch leaves the batch free, so only {} \
             pass such a shape on (to a Reshape's target)",
            ctx.op,
            SYMBOLIC.join(", ")
        )));
    }
    if ctx.op == "Concat" {
        return concat(ctx, a, inputs);
    }
    let x = match inputs.first() {
        Some(Input::Sym(s)) => *s,
        _ => return Err(ctx.rule("takes the batch size where it needs a constant")),
    };
    let flat = |what: &str| match x.scalar {
        true => Err(ctx.rule(&format!("{what} of a scalar holding the batch size"))),
        false => Ok(()),
    };
    let one_axis =
        |axes: Option<Vec<i64>>| (axes.unwrap_or_default().iter()).all(|&v| v == 0 || v == -1);
    let axes = || match inputs.get(1) {
        Some(Input::Const(_)) | Some(Input::Sym(_)) => ints(1).map(Some),
        _ => Ok(a.ints("axes")),
    };
    let values = x.values.clone();
    match ctx.op {
        "Identity" => Ok(settle(x.scalar, values)),
        "Cast" => match a.int("to", 0) {
            7 => Ok(settle(x.scalar, values)),
            t => Err(a.bad("to", t, "a shape holding the batch size stays int64 (7)")),
        },
        "Gather" => {
            flat("a Gather")?;
            if !one_axis(a.int_opt("axis").map(|v| vec![v])) {
                return Err(a.bad("axis", a.int("axis", 0), "a 1-D shape has axis 0 only"));
            }
            let (at, scalar) = match inputs.get(1) {
                Some(Input::Const(v)) if v.dims.len() <= 1 => (ints(1)?, v.dims.is_empty()),
                _ => return Err(ctx.rule("needs 1-D or scalar constant indices")),
            };
            let len = values.len() as i64;
            let picked = (at.iter())
                .map(|&i| match i {
                    i if (-len..0).contains(&i) => Ok(values[(i + len) as usize]),
                    i if (0..len).contains(&i) => Ok(values[i as usize]),
                    i => Err(ctx.rule(&format!("index {i} of a shape of {len}"))),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(settle(scalar, picked))
        }
        "Slice" => {
            flat("a Slice")?;
            let given = |i: usize| match inputs.get(i) {
                Some(Input::Const(_)) | Some(Input::Sym(_)) => ints(i).map(Some),
                _ => Ok(None),
            };
            let args = SliceArgs::new(ctx, ints(1)?, ints(2)?, given(3)?, given(4)?)?;
            let ranges = slice_ranges(ctx, &[values.len()], &args)?;
            let kept = ranges[0].iter().map(|&i| values[i]).collect();
            Ok(settle(false, kept))
        }
        "Squeeze" | "Unsqueeze" => {
            let axes = axes()?;
            let (squeeze, to_scalar) = (ctx.op == "Squeeze", !x.scalar && values.len() == 1);
            let fits = match squeeze {
                true => to_scalar && one_axis(axes),
                false => x.scalar && matches!(axes.as_deref(), Some([0] | [-1])),
            };
            match fits {
                true => Ok(settle(squeeze, values)),
                false => Err(ctx.rule(
                    "only a 1-D shape of one value becomes a scalar (Squeeze) and back \
                     (Unsqueeze, axis 0) while it holds the batch size",
                )),
            }
        }
        "Reshape" => match ints(1)?[..] {
            [] if values.len() == 1 => Ok(settle(true, values)),
            [n] if n == -1 || n == values.len() as i64 => Ok(settle(false, values)),
            ref to => Err(ctx.rule(&format!(
                "reshapes a shape of {} values holding the batch size to {to:?}; it stays \
                 1-D or a scalar",
                values.len()
            ))),
        },
        _ => Err(ctx.rule("cannot be evaluated at import time")),
    }
}

/// 1-D shapes and constants one after the other.
fn concat(ctx: &Ctx, a: &Attrs, inputs: &[Input]) -> Result<Folded, OnnxError> {
    if ![0, -1].contains(&a.int("axis", 0)) {
        return Err(a.bad("axis", a.int("axis", 0), "shapes are 1-D: axis 0"));
    }
    let mut values = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        match input {
            Input::Sym(s) if !s.scalar => values.extend_from_slice(&s.values),
            Input::Const(v) if v.dims.len() == 1 => {
                values.extend(constant_ints(ctx, inputs, i)?.into_iter().map(Dim::Fixed))
            }
            Input::Absent => {}
            _ => return Err(ctx.rule(&format!("input {i} is not a 1-D shape"))),
        }
    }
    Ok(settle(false, values))
}

/// Constant input `i` as integers; a symbolic one where a constant is needed is an error.
fn constant_ints(ctx: &Ctx, inputs: &[Input], i: usize) -> Result<Vec<i64>, OnnxError> {
    match inputs.get(i) {
        Some(Input::Const(v)) => (v.ints().map(<[i64]>::to_vec))
            .ok_or_else(|| ctx.rule(&format!("input {i} must hold integers"))),
        Some(Input::Sym(_)) => Err(ctx.rule(&format!(
            "input {i} holds the batch size, known only at run time, where a constant is needed"
        ))),
        _ => Err(ctx.rule(&format!("needs input {i}"))),
    }
}
