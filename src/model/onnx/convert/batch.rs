//! The nodes around the batch: Shape of a computed tensor (its batch size a symbol, the rest
//! known), shape arithmetic on such shapes (`fold::fold_symbolic`), CastLike of a constant to
//! a computed tensor's type, and Reshape, imported only as a flatten that keeps the batch.

use super::fold::{self, cast_to, settle, shape_range, Dim, Folded, Input};
use super::{Builder, Ctx};
use crate::model::graph::{Dims, Op};
use crate::model::onnx::tensor::Attrs;
use crate::model::onnx::OnnxError;

impl Builder<'_> {
    /// True when an input of the node is a shape holding the batch size and its first input is
    /// not a computed tensor: the node is shape arithmetic to fold symbolically.
    pub(super) fn is_symbolic(&self, ctx: &Ctx) -> bool {
        !self.ids.contains_key(ctx.input(0))
            && (ctx.node.input.iter()).any(|i| self.symbolic.contains_key(i.as_str()))
    }

    /// Shape of a computed tensor: (batch, C, H, W) or (batch, features), from `start` to `end`.
    pub(super) fn shape_of(&mut self, ctx: &Ctx, a: &Attrs) -> Result<(), OnnxError> {
        let src = self.src(ctx, 0)?;
        let mut values = vec![Dim::Batch];
        let fixed = |v: usize| Dim::Fixed(v as i64);
        match self.dims_of(src)? {
            Dims::Map(c, h, w) => values.extend([fixed(c), fixed(h), fixed(w)]),
            Dims::Flat(n) => values.push(fixed(n)),
            Dims::Seq(t, d) => values.extend([fixed(t), fixed(d)]),
        }
        let kept = values[shape_range(a, values.len())].to_vec();
        self.store(ctx, settle(false, kept))
    }

    /// Shape arithmetic on a shape holding the batch size (and constants).
    pub(super) fn fold_symbolic(&mut self, ctx: &Ctx, a: &Attrs) -> Result<(), OnnxError> {
        let mut inputs = Vec::with_capacity(ctx.node.input.len());
        for name in &ctx.node.input {
            inputs.push(match (self.symbolic.get(name), self.consts.get(name)) {
                _ if name.is_empty() => Input::Absent,
                (Some(s), _) => Input::Sym(s),
                (None, Some(v)) => Input::Const(v),
                (None, None) => {
                    return Err(ctx.rule(&format!(
                        "input {name:?} is not a constant or a shape: shape arithmetic is \
                         evaluated at import"
                    )))
                }
            });
        }
        let folded = fold::fold_symbolic(ctx, a, &inputs)?;
        self.store(ctx, folded)
    }

    /// CastLike of a constant to a computed tensor's type (every computed tensor is float32) or
    /// to a shape's (int64).
    pub(super) fn cast_like(&mut self, ctx: &Ctx) -> Result<(), OnnxError> {
        let v = self.constant(ctx, 0)?;
        let like = ctx.input(1);
        let float = match (
            self.ids.contains_key(like),
            self.symbolic.contains_key(like),
        ) {
            (true, _) => true,
            (_, true) => false,
            _ => self.constant(ctx, 1)?.ints().is_none(),
        };
        let cast = cast_to(v, float);
        self.store(ctx, Folded::Const(cast))
    }

    /// Reshape of a computed tensor to (batch, the example's size): a flatten. The target is a
    /// constant or a shape holding the batch size; its first entry must be the batch — the
    /// batch size, 0 (copy it, unless `allowzero`), -1 with the size given, or the batch size
    /// the model's input was exported with — and its second the size or -1.
    pub(super) fn flatten(
        &self,
        ctx: &Ctx,
        a: &Attrs,
        src: usize,
        target: &[Dim],
    ) -> Result<Op, OnnxError> {
        let (size, dim1) = match self.dims_of(src)? {
            Dims::Map(c, h, w) => (c.checked_mul(h).and_then(|v| v.checked_mul(w)), c),
            Dims::Flat(n) => (Some(n), n),
            Dims::Seq(t, d) => (t.checked_mul(d), t),
        };
        let size = size.ok_or_else(|| ctx.rule("its input's size overflows"))? as i64;
        let copies = a.int("allowzero", 0) == 0;
        let first = self.keeps_batch(target, copies);
        let second = match target.get(1) {
            Some(Dim::Fixed(-1)) => true,
            Some(Dim::Fixed(0)) => copies && dim1 as i64 == size,
            Some(Dim::Fixed(n)) => *n == size,
            _ => false,
        };
        if target.len() == 2 && first && second {
            return Ok(Op::Flatten);
        }
        let shown: Vec<String> = (target.iter())
            .map(|d| match d {
                Dim::Batch => "batch".to_string(),
                Dim::Fixed(v) => v.to_string(),
            })
            .collect();
        let exported = match self.batch {
            Some(b) => format!(", or {b}, the batch the model's input was exported with"),
            None => String::new(),
        };
        Err(ctx.rule(&format!(
            "reshapes to ({}) with allowzero {}; only a flatten that keeps the batch is \
             imported: (N, {size}) or (N, -1), N being the batch size, 0 (copied) or \
             -1{exported}",
            shown.join(", "),
            a.int("allowzero", 0)
        )))
    }

    /// A Reshape's target shape: a constant, or a shape holding the batch size.
    pub(super) fn reshape_target(&self, ctx: &Ctx) -> Result<Vec<Dim>, OnnxError> {
        Ok(match self.symbolic.get(ctx.input(1)) {
            Some(s) => s.values.clone(),
            None => (self.constant(ctx, 1)?.ints())
                .ok_or_else(|| ctx.rule("its target shape (input 1) must be integers"))?
                .iter()
                .map(|&v| Dim::Fixed(v))
                .collect(),
        })
    }

    /// True when a Reshape target's first entry keeps the batch: the batch size, 0 (copied,
    /// unless `allowzero`), -1 with no other -1, or the batch the input was exported with.
    pub(super) fn keeps_batch(&self, target: &[Dim], copies: bool) -> bool {
        match target.first() {
            Some(Dim::Batch) => true,
            Some(Dim::Fixed(0)) => copies,
            Some(Dim::Fixed(-1)) => !target[1..].contains(&Dim::Fixed(-1)),
            Some(Dim::Fixed(n)) => self.batch.is_some_and(|b| b as i64 == *n),
            None => false,
        }
    }

    /// Graph node `node`'s output dims per example.
    pub(super) fn dims_of(&self, node: usize) -> Result<Dims, OnnxError> {
        let shapes = (self.graph.node_dims(self.input)).map_err(|e| self.shape_error(e))?;
        (shapes.dims.get(node).copied()).ok_or_else(|| self.node_error(node, "has no dims"))
    }

    /// A folded result under the node's output name.
    fn store(&mut self, ctx: &Ctx, folded: Folded) -> Result<(), OnnxError> {
        let name = ctx.output(0)?.to_string();
        match folded {
            Folded::Const(v) => {
                self.symbolic.remove(&name);
                self.consts.insert(name, v);
            }
            Folded::Sym(s) => {
                self.consts.remove(&name);
                self.symbolic.insert(name, s);
            }
        }
        Ok(())
    }
}
