//! Constant folding: a node whose inputs are all constants is evaluated at import time, so the
//! shape arithmetic exporters write around an op (PyTorch computes F.pad's `pads` with
//! ConstantOfShape, Concat, Reshape, Slice, Transpose and Cast even with constant folding on)
//! reaches the op as one constant. Only the small set of shape ops below is evaluated, one
//! function per op; every result is a tensor no file bytes back, so its size is capped
//! (`MAX_UNBACKED`) before it is built. Shapes that hold the batch size, known only at run
//! time, fold too, with the batch size kept as a symbol (`symbolic`).

mod arith;
mod gather;
mod shape;
mod symbolic;

pub(super) use gather::SliceArgs;
pub(super) use shape::{cast_to, shape_range};
pub(super) use symbolic::{fold as fold_symbolic, settle, Dim, Folded, Input, Symbolic};

use super::super::tensor::{element_count, Attrs, Value, MAX_UNBACKED};
use super::super::OnnxError;
use super::Ctx;

/// The ops `fold` evaluates.
pub(super) const FOLDED: [&str; 17] = [
    "ConstantOfShape",
    "Gather",
    "Expand",
    "CastLike",
    "Identity",
    "Concat",
    "Reshape",
    "Slice",
    "Transpose",
    "Cast",
    "Unsqueeze",
    "Squeeze",
    "Shape",
    "Add",
    "Sub",
    "Mul",
    "Neg",
];

/// A folded node: its context, attributes and constant inputs (`None` for an absent optional
/// input).
pub(super) struct Args<'a> {
    pub ctx: &'a Ctx<'a>,
    pub attrs: &'a Attrs<'a>,
    pub inputs: &'a [Option<&'a Value>],
}

impl<'a> Args<'a> {
    /// Input `i`, if given.
    fn given(&self, i: usize) -> Option<&'a Value> {
        self.inputs.get(i).copied().flatten()
    }

    /// Input `i`, which must be given.
    fn arg(&self, i: usize) -> Result<&'a Value, OnnxError> {
        self.given(i)
            .ok_or_else(|| self.ctx.rule(&format!("needs input {i}")))
    }

    /// Input `i` as integers.
    fn ints(&self, i: usize) -> Result<Vec<i64>, OnnxError> {
        (self.arg(i)?.ints().map(<[i64]>::to_vec))
            .ok_or_else(|| self.ctx.rule(&format!("input {i} must hold integers")))
    }

    /// The element count of a result of `dims`, refused above `MAX_UNBACKED` (checked before
    /// the result is allocated).
    fn capped(&self, dims: &[usize]) -> Result<usize, OnnxError> {
        element_count(dims, MAX_UNBACKED).map_err(|rule| self.ctx.rule(&rule))
    }
}

/// The value of `ctx`'s node from its constant `inputs` (`None` for an absent optional input).
pub(super) fn fold(ctx: &Ctx, a: &Attrs, inputs: &[Option<&Value>]) -> Result<Value, OnnxError> {
    let args = Args {
        ctx,
        attrs: a,
        inputs,
    };
    let v = match ctx.op {
        "ConstantOfShape" => shape::constant_of_shape(&args)?,
        "Concat" => shape::concat(&args)?,
        "Reshape" => shape::reshape(&args)?,
        "Unsqueeze" => shape::unsqueeze(&args)?,
        "Squeeze" => shape::squeeze(&args)?,
        "Shape" => shape::shape(&args)?,
        "Cast" => shape::cast(&args)?,
        "CastLike" => shape::cast_like(&args)?,
        "Identity" => args.arg(0)?.clone(),
        "Gather" => gather::gather(&args)?,
        "Expand" => gather::expand(&args)?,
        "Transpose" => gather::transpose(&args)?,
        "Slice" => gather::slice(&args)?,
        "Add" | "Sub" | "Mul" | "Neg" => arith::arithmetic(&args)?,
        _ => return Err(ctx.rule("cannot be evaluated at import time")),
    };
    // Dims a result only passes on (a Reshape to (2^40, 0) of nothing) are capped too, and
    // the values must be as many as the dims say: the next fold indexes by them.
    let count =
        element_count(&v.dims, v.len().max(MAX_UNBACKED)).map_err(|rule| ctx.rule(&rule))?;
    if count != v.len() {
        let rule = format!("gives {} values for dims {:?}", v.len(), v.dims);
        return Err(ctx.rule(&rule));
    }
    Ok(v)
}

/// Integers as dims, refusing negative ones.
fn to_dims(ctx: &Ctx, v: &[i64]) -> Result<Vec<usize>, OnnxError> {
    v.iter()
        .map(|&d| usize::try_from(d).map_err(|_| ctx.rule(&format!("negative dimension {d}"))))
        .collect()
}
