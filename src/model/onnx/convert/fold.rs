//! Constant folding: a node whose inputs are all constants is evaluated at import time, so the
//! shape arithmetic exporters write around an op (PyTorch computes F.pad's `pads` with
//! ConstantOfShape, Concat, Reshape, Slice, Transpose and Cast even with constant folding on)
//! reaches the op as one constant. Only the small set of shape ops below is evaluated.

use super::super::tensor::{Attrs, Data, Value};
use super::super::OnnxError;
use super::Ctx;

/// The ops `fold` evaluates.
pub(super) const FOLDED: [&str; 13] = [
    "ConstantOfShape",
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

/// The value of `ctx`'s node from its constant `inputs` (`None` for an absent optional input).
pub(super) fn fold(ctx: &Ctx, a: &Attrs, inputs: &[Option<&Value>]) -> Result<Value, OnnxError> {
    let arg = |i: usize| -> Result<&Value, OnnxError> {
        inputs
            .get(i)
            .copied()
            .flatten()
            .ok_or_else(|| ctx.rule(&format!("needs input {i}")))
    };
    let ints = |i: usize| -> Result<Vec<i64>, OnnxError> {
        (arg(i)?.ints().map(<[i64]>::to_vec))
            .ok_or_else(|| ctx.rule(&format!("input {i} must hold integers")))
    };
    let x = arg(0);
    match ctx.op {
        "ConstantOfShape" => {
            let dims = to_dims(ctx, &ints(0)?)?;
            let n: usize = dims.iter().product();
            let fill = match a.tensor("value") {
                Some(t) => super::super::tensor::decode(t, ctx.label)?,
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
        "Concat" => {
            let parts: Vec<&Value> = inputs.iter().flatten().copied().collect();
            if parts.iter().any(|p| p.dims.len() != 1) || ![0, -1].contains(&a.int("axis", 0)) {
                return Err(ctx.rule("only 1-D constants are concatenated"));
            }
            let data = match parts.first().map(|p| &p.data) {
                Some(Data::I64(_)) => Data::I64(
                    parts
                        .iter()
                        .flat_map(|p| p.ints().unwrap_or_default().to_vec())
                        .collect(),
                ),
                _ => Data::F32(parts.iter().flat_map(|p| p.floats()).collect()),
            };
            let n = parts.iter().map(|p| p.len()).sum();
            Ok(Value {
                dims: vec![n],
                data,
            })
        }
        "Reshape" => {
            let x = x?;
            let dims = reshape_dims(ctx, &x.dims, &ints(1)?)?;
            Ok(Value {
                dims,
                data: x.data.clone(),
            })
        }
        "Unsqueeze" | "Squeeze" => {
            let x = x?;
            let axes = match inputs.get(1).copied().flatten() {
                Some(_) => ints(1)?,
                None => a.ints("axes").unwrap_or_default(),
            };
            let dims = match ctx.op {
                "Unsqueeze" => {
                    let rank = (x.dims.len() + axes.len()) as i64;
                    let axes: Vec<i64> = axes.iter().map(|&v| v.rem_euclid(rank)).collect();
                    let mut src = x.dims.iter();
                    (0..rank)
                        .map(|i| {
                            if axes.contains(&i) {
                                1
                            } else {
                                *src.next().unwrap_or(&1)
                            }
                        })
                        .collect()
                }
                _ => {
                    let rank = x.dims.len() as i64;
                    let axes: Vec<i64> = axes.iter().map(|&v| v.rem_euclid(rank.max(1))).collect();
                    (x.dims.iter().enumerate())
                        .filter(|(i, &d)| {
                            !(d == 1 && (axes.is_empty() || axes.contains(&(*i as i64))))
                        })
                        .map(|(_, &d)| d)
                        .collect()
                }
            };
            Ok(Value {
                dims,
                data: x.data.clone(),
            })
        }
        "Shape" => {
            let d: Vec<i64> = x?.dims.iter().map(|&d| d as i64).collect();
            Ok(Value {
                dims: vec![d.len()],
                data: Data::I64(d),
            })
        }
        "Cast" => {
            let x = x?;
            // ONNX's TensorProto element types: 1 = float, 7 = int64.
            let data = match a.int("to", 0) {
                1 => Data::F32(x.floats()),
                7 => Data::I64(match &x.data {
                    Data::I64(v) => v.clone(),
                    Data::F32(v) => v.iter().map(|&f| f as i64).collect(),
                }),
                t => {
                    return Err(a.bad("to", t, "constants are cast to float (1) or int64 (7) only"))
                }
            };
            Ok(Value {
                dims: x.dims.clone(),
                data,
            })
        }
        "Transpose" => {
            let x = x?;
            let rank = x.dims.len();
            let perm: Vec<usize> = match a.ints("perm") {
                Some(p) => p.iter().map(|&v| v as usize).collect(),
                None => (0..rank).rev().collect(),
            };
            let mut sorted = perm.clone();
            sorted.sort_unstable();
            if sorted != (0..rank).collect::<Vec<_>>() {
                return Err(a.bad("perm", perm, "must permute the axes"));
            }
            let dims: Vec<usize> = perm.iter().map(|&p| x.dims[p]).collect();
            let src = strides(&x.dims);
            let idx = indices(&dims, |i| {
                i.iter().zip(&perm).map(|(&k, &p)| k * src[p]).sum()
            });
            Ok(take(x, dims, &idx))
        }
        "Slice" => {
            let x = x?;
            let given = |i: usize| inputs.get(i).copied().flatten().map(|_| ints(i));
            let args = SliceArgs::new(
                ctx,
                ints(1)?,
                ints(2)?,
                given(3).transpose()?,
                given(4).transpose()?,
            )?;
            let ranges = slice_ranges(ctx, &x.dims, &args)?;
            let dims: Vec<usize> = ranges.iter().map(|r| r.len()).collect();
            let src = strides(&x.dims);
            let idx = indices(&dims, |i| {
                (0..i.len()).map(|k| ranges[k][i[k]] * src[k]).sum()
            });
            Ok(take(x, dims, &idx))
        }
        "Add" | "Sub" | "Mul" | "Neg" => arithmetic(ctx, x?, inputs.get(1).copied().flatten()),
        _ => Err(ctx.rule("cannot be evaluated at import time")),
    }
}

/// Elementwise integer or float arithmetic, with one side a single value or both the same shape.
fn arithmetic(ctx: &Ctx, a: &Value, b: Option<&Value>) -> Result<Value, OnnxError> {
    let zero = Value {
        dims: vec![],
        data: Data::I64(vec![0]),
    };
    let (lhs, rhs) = match (ctx.op, b) {
        ("Neg", _) => (&zero, a),
        (_, Some(b)) => (a, b),
        _ => return Err(ctx.rule("needs two inputs")),
    };
    let n = lhs.len().max(rhs.len());
    if !(lhs.len() == n || lhs.len() == 1) || !(rhs.len() == n || rhs.len() == 1) {
        return Err(ctx.rule("constant arithmetic needs equal shapes or a single value"));
    }
    let dims = if lhs.len() == n {
        lhs.dims.clone()
    } else {
        rhs.dims.clone()
    };
    let data = match (&lhs.data, &rhs.data) {
        (Data::I64(p), Data::I64(q)) => Data::I64(elementwise(ctx.op, p, q, n)),
        _ => Data::F32(elementwise(ctx.op, &lhs.floats(), &rhs.floats(), n)),
    };
    Ok(Value { dims, data })
}

/// `p op q` over `n` values, a single-valued side repeated.
fn elementwise<T>(op: &str, p: &[T], q: &[T], n: usize) -> Vec<T>
where
    T: Copy + std::ops::Add<Output = T> + std::ops::Sub<Output = T> + std::ops::Mul<Output = T>,
{
    (0..n)
        .map(|i| {
            let (x, y) = (p[i % p.len()], q[i % q.len()]);
            match op {
                "Add" => x + y,
                "Mul" => x * y,
                _ => x - y,
            }
        })
        .collect()
}

fn to_dims(ctx: &Ctx, v: &[i64]) -> Result<Vec<usize>, OnnxError> {
    v.iter()
        .map(|&d| usize::try_from(d).map_err(|_| ctx.rule(&format!("negative dimension {d}"))))
        .collect()
}

/// Reshape's target dims: 0 keeps the input's dim, one -1 takes what is left.
fn reshape_dims(ctx: &Ctx, from: &[usize], to: &[i64]) -> Result<Vec<usize>, OnnxError> {
    let n: usize = from.iter().product();
    let mut dims: Vec<i64> = (to.iter().enumerate())
        .map(|(i, &d)| {
            if d == 0 {
                from.get(i).map_or(0, |&f| f as i64)
            } else {
                d
            }
        })
        .collect();
    let known: i64 = dims.iter().filter(|&&d| d != -1).product();
    if let Some(free) = dims.iter().position(|&d| d == -1) {
        dims[free] = if known > 0 { n as i64 / known } else { 0 };
    }
    let dims = to_dims(ctx, &dims)?;
    match dims.iter().product::<usize>() == n {
        true => Ok(dims),
        false => Err(ctx.rule(&format!("cannot reshape {from:?} to {to:?}"))),
    }
}

/// ONNX Slice's inputs, with their defaults (axes 0, 1, …; steps 1) and all of one length:
/// what both the folder and the option-A shortcut (`shortcut`) read a Slice through.
pub(super) struct SliceArgs {
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
/// both are clamped to the axis; a negative step walks backwards).
fn slice_ranges(ctx: &Ctx, dims: &[usize], a: &SliceArgs) -> Result<Vec<Vec<usize>>, OnnxError> {
    let mut ranges: Vec<Vec<usize>> = dims.iter().map(|&d| (0..d).collect()).collect();
    let rank = dims.len() as i64;
    for (k, &axis) in a.axes.iter().enumerate() {
        let axis = axis.rem_euclid(rank.max(1)) as usize;
        let d = dims.get(axis).copied().unwrap_or(0) as i64;
        let (s, e, st) = (a.starts[k], a.ends[k], a.steps[k]);
        if st == 0 {
            return Err(ctx.rule("a slice step of 0"));
        }
        let at = |v: i64| if v < 0 { v + d } else { v };
        let (mut i, end) = match st > 0 {
            true => (at(s).clamp(0, d), at(e).clamp(0, d)),
            false => (at(s).clamp(-1, d - 1), at(e).clamp(-1, d - 1)),
        };
        let mut keep = Vec::new();
        while (st > 0 && i < end) || (st < 0 && i > end) {
            keep.push(i as usize);
            i += st;
        }
        ranges[axis] = keep;
    }
    Ok(ranges)
}

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
