//! The exact GELU in its Erf form, as PyTorch writes `F.gelu` below opset 20 (the Gelu op
//! arrived in opset 20): `x · (1 + erf(x / √2)) · 0.5`, five nodes —
//!
//! ```text
//! Div(x, √2) or Mul(x, 1/√2) → Erf → Add(·, 1) → Mul(x, ·) → Mul(·, 0.5)
//! ```
//!
//! — become one `Op::Gelu`. The tensors between them are held here; any other use of one is an
//! error.

use super::{Builder, Ctx};
use crate::model::graph::Op;
use crate::model::onnx::OnnxError;

/// What the error says a held step of a GELU may feed.
pub(super) const RULE: &str = "GELU's Erf form is imported only whole: Div(x, √2) or Mul(x, \
    1/√2), Erf, Add 1, Mul by x, Mul by 0.5";

/// A held step of the GELU of graph node `x`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// x / √2.
    Scaled,
    /// erf(x / √2).
    Erf,
    /// 1 + erf(x / √2).
    OnePlus,
    /// x · (1 + erf(x / √2)).
    Twice,
}

/// Constants within this of the exact value match (they are stored as f32).
const TOLERANCE: f32 = 1e-6;

impl Builder<'_> {
    /// Converts the node when it is a step of GELU's Erf form; false leaves it to other rules.
    pub(super) fn gelu_step(&mut self, ctx: &Ctx) -> Result<bool, OnnxError> {
        let step = |b: &Self, i: usize| b.gelu.get(ctx.input(i)).copied();
        let scalar = |b: &Self, i: usize| match b.consts.get(ctx.input(i)) {
            Some(v) if v.len() == 1 => v.floats().first().copied(),
            _ => None,
        };
        let near = |v: Option<f32>, want: f32| v.is_some_and(|v| (v - want).abs() <= TOLERANCE);
        let computed = |b: &Self, i: usize| b.ids.get(ctx.input(i)).copied();
        let next = match (ctx.op, step(self, 0), step(self, 1)) {
            ("Div", None, None) if near(scalar(self, 1), std::f32::consts::SQRT_2) => {
                match (computed(self, 0), self.read_by_erf(ctx)?) {
                    (Some(x), true) => (x, Step::Scaled),
                    _ => return Ok(false),
                }
            }
            ("Mul", None, None) if near(scalar(self, 1), std::f32::consts::FRAC_1_SQRT_2) => {
                match (computed(self, 0), self.read_by_erf(ctx)?) {
                    (Some(x), true) => (x, Step::Scaled),
                    _ => return Ok(false),
                }
            }
            ("Erf", Some((x, Step::Scaled)), _) => (x, Step::Erf),
            ("Add", Some((x, Step::Erf)), None) if near(scalar(self, 1), 1.0) => (x, Step::OnePlus),
            ("Add", None, Some((x, Step::Erf))) if near(scalar(self, 0), 1.0) => (x, Step::OnePlus),
            ("Mul", None, Some((x, Step::OnePlus))) if computed(self, 0) == Some(x) => {
                (x, Step::Twice)
            }
            ("Mul", Some((x, Step::OnePlus)), None) if computed(self, 1) == Some(x) => {
                (x, Step::Twice)
            }
            ("Mul", Some((x, Step::Twice)), None) if near(scalar(self, 1), 0.5) => {
                self.push(ctx, Op::Gelu, &[x])?;
                return Ok(true);
            }
            ("Mul", None, Some((x, Step::Twice))) if near(scalar(self, 0), 0.5) => {
                self.push(ctx, Op::Gelu, &[x])?;
                return Ok(true);
            }
            (_, Some(_), _) | (_, _, Some(_)) => return Err(ctx.rule(RULE)),
            _ => return Ok(false),
        };
        self.gelu.insert(ctx.output(0)?.to_string(), next);
        Ok(true)
    }

    /// True when the node's output is read, and only by Erf nodes.
    fn read_by_erf(&self, ctx: &Ctx) -> Result<bool, OnnxError> {
        let out = ctx.output(0)?;
        let mut readers = (self.proto.node.iter()).filter(|n| n.input.iter().any(|i| i == out));
        let first = readers.next();
        Ok(first.is_some_and(|n| n.op_type() == "Erf") && readers.all(|n| n.op_type() == "Erf"))
    }
}
