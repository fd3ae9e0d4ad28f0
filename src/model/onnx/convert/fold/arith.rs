//! The folded arithmetic: Add, Sub, Mul and Neg of constants, elementwise, with one side a
//! single value or both the same size. Integer results that overflow are refused, not wrapped.

use super::super::super::tensor::{Data, Value};
use super::super::super::OnnxError;
use super::Args;

/// Elementwise integer or float arithmetic, with one side a single value or both the same shape.
pub(super) fn arithmetic(args: &Args) -> Result<Value, OnnxError> {
    let (ctx, a) = (args.ctx, args.arg(0)?);
    let zero = Value {
        dims: vec![],
        data: Data::I64(vec![0]),
    };
    let (lhs, rhs) = match (ctx.op, args.given(1)) {
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
        (Data::I64(p), Data::I64(q)) => {
            let op: fn(i64, i64) -> Option<i64> = match ctx.op {
                "Add" => i64::checked_add,
                "Mul" => i64::checked_mul,
                _ => i64::checked_sub,
            };
            let v: Option<Vec<i64>> = (0..n).map(|i| op(p[i % p.len()], q[i % q.len()])).collect();
            Data::I64(v.ok_or_else(|| ctx.rule("integer arithmetic overflows"))?)
        }
        _ => {
            let (p, q) = (lhs.floats(), rhs.floats());
            let op: fn(f32, f32) -> f32 = match ctx.op {
                "Add" => |x: f32, y: f32| x + y,
                "Mul" => |x: f32, y: f32| x * y,
                _ => |x: f32, y: f32| x - y,
            };
            Data::F32((0..n).map(|i| op(p[i % p.len()], q[i % q.len()])).collect())
        }
    };
    Ok(Value { dims, data })
}
