//! The folded ops that pick a constant's values by index: Transpose, Slice (whose inputs the
//! option-A shortcut reads through the same `SliceArgs`), Gather and Expand. Transpose and Slice
//! never hold more values than their input; Gather's and Expand's results are capped
//! (`Args::capped`) before they are built.

use super::super::super::tensor::{Data, Value};
use super::super::super::OnnxError;
use super::super::Ctx;
use super::{to_dims, Args};

/// The input with its axes permuted (`perm`; reversed by default).
pub(super) fn transpose(args: &Args) -> Result<Value, OnnxError> {
    let x = args.arg(0)?;
    let rank = x.dims.len();
    let perm: Vec<usize> = match args.attrs.ints("perm") {
        Some(p) => p
            .iter()
            .map(|&v| usize::try_from(v).unwrap_or(usize::MAX))
            .collect(),
        None => (0..rank).rev().collect(),
    };
    let mut sorted = perm.clone();
    sorted.sort_unstable();
    if sorted != (0..rank).collect::<Vec<_>>() {
        return Err(args.attrs.bad("perm", perm, "must permute the axes"));
    }
    let dims: Vec<usize> = perm.iter().map(|&p| x.dims[p]).collect();
    let src = strides(&x.dims);
    let idx = indices(&dims, |i| {
        i.iter().zip(&perm).map(|(&k, &p)| k * src[p]).sum()
    });
    Ok(take(x, dims, &idx))
}

/// ONNX Slice of a constant.
pub(super) fn slice(args: &Args) -> Result<Value, OnnxError> {
    let x = args.arg(0)?;
    let given = |i: usize| args.given(i).map(|_| args.ints(i)).transpose();
    let slice = SliceArgs::new(args.ctx, args.ints(1)?, args.ints(2)?, given(3)?, given(4)?)?;
    let ranges = slice_ranges(args.ctx, &x.dims, &slice)?;
    let dims: Vec<usize> = ranges.iter().map(|r| r.len()).collect();
    let src = strides(&x.dims);
    let idx = indices(&dims, |i| {
        (0..i.len()).map(|k| ranges[k][i[k]] * src[k]).sum()
    });
    Ok(take(x, dims, &idx))
}

/// ONNX Gather: the input's entries along `axis` (default 0) at the indices (negative ones
/// counting from the end), the indices' dims in place of that axis.
pub(super) fn gather(args: &Args) -> Result<Value, OnnxError> {
    let x = args.arg(0)?;
    let picks = args.arg(1)?;
    let at = args.ints(1)?;
    let rank = x.dims.len() as i64;
    let axis = args.attrs.int("axis", 0);
    if axis < -rank || axis >= rank {
        return Err(args.attrs.bad(
            "axis",
            axis,
            &format!("not an axis of a rank-{rank} constant"),
        ));
    }
    let axis = axis.rem_euclid(rank) as usize;
    let len = x.dims[axis] as i64;
    let at = (at.iter())
        .map(|&i| match i {
            i if (-len..0).contains(&i) => Ok((i + len) as usize),
            i if (0..len).contains(&i) => Ok(i as usize),
            i => Err(args.ctx.rule(&format!("index {i} of an axis of {len}"))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let dims: Vec<usize> = (x.dims[..axis].iter())
        .chain(&picks.dims)
        .chain(&x.dims[axis + 1..])
        .copied()
        .collect();
    args.capped(&dims)?;
    let (src, k, step) = (strides(&x.dims), picks.dims.len(), strides(&picks.dims));
    let idx = indices(&dims, |i| {
        let pick = at[(i[axis..axis + k].iter().zip(&step))
            .map(|(&p, &s)| p * s)
            .sum::<usize>()];
        let outer = (i[..axis].iter().zip(&src)).map(|(&p, &s)| p * s);
        let inner = (i[axis + k..].iter().zip(&src[axis + 1..])).map(|(&p, &s)| p * s);
        outer.chain(inner).sum::<usize>() + pick * src[axis]
    });
    Ok(take(x, dims, &idx))
}

/// ONNX Expand: the input broadcast (numpy's rule, aligned at the last axis) with the shape.
pub(super) fn expand(args: &Args) -> Result<Value, OnnxError> {
    let x = args.arg(0)?;
    let shape = to_dims(args.ctx, &args.ints(1)?)?;
    let rank = x.dims.len().max(shape.len());
    let pad = |d: &[usize]| -> Vec<usize> {
        let mut v = vec![1; rank - d.len()];
        v.extend_from_slice(d);
        v
    };
    let (from, to) = (pad(&x.dims), pad(&shape));
    let dims = (from.iter().zip(&to))
        .map(|(&a, &b)| match (a, b) {
            (a, b) if a == b || b == 1 => Ok(a),
            (1, b) => Ok(b),
            _ => Err(args
                .ctx
                .rule(&format!("cannot expand {:?} to {shape:?}", x.dims))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    args.capped(&dims)?;
    // A broadcast axis (1 in the input) steps through the input by 0.
    let src: Vec<usize> = (strides(&from).iter().zip(&from))
        .map(|(&s, &d)| if d == 1 { 0 } else { s })
        .collect();
    let idx = indices(&dims, |i| i.iter().zip(&src).map(|(&p, &s)| p * s).sum());
    Ok(take(x, dims, &idx))
}

/// ONNX Slice's inputs, with their defaults (axes 0, 1, …; steps 1) and all of one length:
/// what both the folder and the option-A shortcut (`shortcut`) read a Slice through.
pub(in crate::model::onnx::convert) struct SliceArgs {
    pub starts: Vec<i64>,
    pub ends: Vec<i64>,
    pub axes: Vec<i64>,
    pub steps: Vec<i64>,
}

impl SliceArgs {
    pub fn new(
        ctx: &Ctx,
        starts: Vec<i64>,
        ends: Vec<i64>,
        axes: Option<Vec<i64>>,
        steps: Option<Vec<i64>>,
    ) -> Result<SliceArgs, OnnxError> {
        let axes = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
        let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
        if [ends.len(), axes.len(), steps.len()] != [starts.len(); 3] {
            return Err(ctx.rule("starts, ends, axes and steps differ in length"));
        }
        Ok(SliceArgs {
            starts,
            ends,
            axes,
            steps,
        })
    }
}

/// Per axis, the source indices ONNX's Slice keeps (negative starts/ends count from the end;
/// both are clamped to the axis; a negative step walks backwards). Each list is at most its
/// axis long.
pub(super) fn slice_ranges(
    ctx: &Ctx,
    dims: &[usize],
    a: &SliceArgs,
) -> Result<Vec<Vec<usize>>, OnnxError> {
    let mut ranges: Vec<Vec<usize>> = dims.iter().map(|&d| (0..d).collect()).collect();
    let rank = dims.len() as i64;
    for (k, &axis) in a.axes.iter().enumerate() {
        if axis < -rank || axis >= rank {
            return Err(ctx.rule(&format!("axis {axis} of a rank-{rank} constant")));
        }
        let axis = axis.rem_euclid(rank) as usize;
        let d = dims[axis] as i64;
        let (s, e, st) = (a.starts[k], a.ends[k], a.steps[k]);
        if st == 0 {
            return Err(ctx.rule("a slice step of 0"));
        }
        let at = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
        let (mut i, end) = match st > 0 {
            true => (at(s).clamp(0, d), at(e).clamp(0, d)),
            false => (at(s).clamp(-1, d - 1), at(e).clamp(-1, d - 1)),
        };
        let mut keep = Vec::new();
        while (st > 0 && i < end) || (st < 0 && i > end) {
            keep.push(i as usize);
            match i.checked_add(st) {
                Some(next) => i = next,
                None => break,
            }
        }
        ranges[axis] = keep;
    }
    Ok(ranges)
}

/// Row-major strides of `dims` (their products stay within the tensor's element count).
fn strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * dims[i + 1];
    }
    s
}

/// For every output position (row-major over `dims`), the source offset `at` gives.
fn indices(dims: &[usize], at: impl Fn(&[usize]) -> usize) -> Vec<usize> {
    let n: usize = dims.iter().product();
    let mut pos = vec![0; dims.len()];
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(at(&pos));
        for k in (0..dims.len()).rev() {
            pos[k] += 1;
            if pos[k] < dims[k] {
                break;
            }
            pos[k] = 0;
        }
    }
    out
}

fn take(x: &Value, dims: Vec<usize>, idx: &[usize]) -> Value {
    let data = match &x.data {
        Data::F32(v) => Data::F32(idx.iter().map(|&i| v[i]).collect()),
        Data::I64(v) => Data::I64(idx.iter().map(|&i| v[i]).collect()),
    };
    Value { dims, data }
}
