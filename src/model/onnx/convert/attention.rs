//! A vision transformer as PyTorch's exporter writes one (scripts/export_vit.py): its ops onto
//! the token ops (`model::tokens`), and the multi-head reshapes between them held here until
//! the op that consumes them.
//!
//! - patch tokens: Reshape of a feature map to (N, C, H·W), Transpose perm (0, 2, 1);
//! - class token: Concat on axis 1 of a constant (1, 1, D) and the tokens; position
//!   embedding: Add of a constant (1, T, D) or (T, D);
//! - LayerNormalization over the last axis, Gelu (exact), Softmax over the last axis;
//! - heads: Reshape of the fused qkv (N, T, 3·D) to (N, T, 3, H, D/H), Transpose perm
//!   (2, 0, 3, 1, 4), then q, k, v by Slice [i, i+1) + Squeeze or Gather on axis 0; or Reshape
//!   of a sequence to (N, T, H, D/H) and Transpose perm (0, 2, 1, 3); keys Transposed perm
//!   (0, 1, 3, 2);
//! - scores: MatMul of queries and transposed keys, the scale a Mul or Div by a scalar after
//!   it; mix: MatMul of the softmax and the values, Transpose perm (0, 2, 1, 3), Reshape to
//!   (N, T, D); each named after its MatMul node, its name as a layer when `[quant]
//!   attention` quantizes it;
//! - the class token read by Gather on axis 1 of a scalar index.
//!
//! The tensors between those steps have no graph node; any other use of one is an error.

use super::fold::Dim;
use super::{Builder, Ctx};
use crate::model::graph::{Dims, Op};
use crate::model::onnx::tensor::Attrs;
use crate::model::onnx::OnnxError;
use crate::model::op::Attention;

/// What the error says a held multi-head tensor may feed.
pub(super) const RULE: &str = "a tensor between a transformer's reshapes is imported only as \
    PyTorch writes attention: Reshape to heads, Transpose, q/k/v by Slice + Squeeze or Gather, \
    MatMul of queries and transposed keys, MatMul of the softmax and the values, Transpose \
    (0, 2, 1, 3) and Reshape back to (N, T, D); or a feature map Reshaped to (N, C, H·W) and \
    Transposed (0, 2, 1) into tokens";

/// A held step, on graph nodes of the model being built.
#[derive(Debug, Clone, Copy)]
pub(super) enum Held {
    /// A feature map as (N, C, H·W), before its Transpose into tokens.
    FlatMap { src: usize },
    /// A fused qkv (T, parts·D) as (N, T, parts, H, D/H); `permuted`: then as (parts, N, H,
    /// T, D/H).
    Qkv {
        src: usize,
        heads: usize,
        parts: usize,
        permuted: bool,
    },
    /// One part of a permuted qkv, Sliced but not yet Squeezed: (1, N, H, T, D/H).
    Part { src: usize, heads: usize },
    /// A sequence as (N, T, H, D/H), before its Transpose into heads.
    Split { src: usize, heads: usize },
    /// A sequence as heads (N, H, T, D/H); `keys`: transposed to (N, H, D/H, T).
    Heads {
        src: usize,
        heads: usize,
        keys: bool,
    },
    /// A Mix node's value as heads (N, H, T, D/H); `tokens`: transposed to (N, T, H, D/H).
    Mixed { node: usize, tokens: bool },
}

impl Builder<'_> {
    /// Converts the node when it is part of a transformer; false leaves it to the other rules.
    pub(super) fn transformer(&mut self, ctx: &Ctx, a: &Attrs) -> Result<bool, OnnxError> {
        let held = |b: &Self, i: usize| b.held.get(ctx.input(i)).copied();
        let hold = |b: &mut Self, h: Held| -> Result<bool, OnnxError> {
            b.held.insert(ctx.output(0)?.to_string(), h);
            Ok(true)
        };
        let seq = |b: &Self, i: usize| match b.ids.get(ctx.input(i)) {
            Some(&id) => match b.dims_of(id) {
                Ok(Dims::Seq(t, d)) => Some((id, t, d)),
                _ => None,
            },
            None => None,
        };
        let perm = a.ints("perm");
        match ctx.op {
            "LayerNormalization" => return self.layer_norm(ctx, a).map(|_| true),
            "Gelu" => {
                let approx = a.string("approximate").unwrap_or_else(|| "none".into());
                if approx != "none" {
                    return Err(a.bad("approximate", approx, "only the exact GELU (none)"));
                }
                let src = self.src(ctx, 0)?;
                self.push(ctx, Op::Gelu, &[src])?;
                return Ok(true);
            }
            "Softmax" => {
                let src = self.src(ctx, 0)?;
                let rank = self.dims_of(src)?.shape().len() as i64 + 1;
                let axis = a.int("axis", -1);
                if axis != -1 && axis != rank - 1 {
                    return Err(a.bad("axis", axis, "only the last axis"));
                }
                self.push(ctx, Op::Softmax, &[src])?;
                return Ok(true);
            }
            _ => {}
        }
        Ok(match (ctx.op, held(self, 0), perm.as_deref()) {
            ("Reshape", Some(Held::Mixed { node, tokens: true }), _) => {
                let target = self.reshape_target(ctx)?;
                let Dims::Seq(t, d) = self.dims_of(node)? else {
                    return Err(ctx.rule(RULE));
                };
                if !(target.len() == 3 && fixed(&target[1], t) && fixed(&target[2], d)) {
                    return Err(ctx.rule(RULE));
                }
                self.ids.insert(ctx.output(0)?.to_string(), node);
                true
            }
            ("Reshape", None, _) => {
                let Some(&src) = self.ids.get(ctx.input(0)) else {
                    return Ok(false);
                };
                let target = self.reshape_target(ctx)?;
                let h = match (self.dims_of(src)?, &target[..]) {
                    // Only when every reader makes it tokens: other 3-D reshapes of a map keep
                    // the flatten's rules and errors.
                    (Dims::Map(c, hh, w), [_, c2, hw])
                        if fixed(c2, c) && fixed(hw, hh * w) && self.made_tokens(ctx)? =>
                    {
                        Held::FlatMap { src }
                    }
                    (Dims::Seq(t, d), [_, t2, Dim::Fixed(p), Dim::Fixed(h), Dim::Fixed(dh)])
                        if fixed(t2, t)
                            && *p >= 1
                            && *h >= 1
                            && p.checked_mul(*h).and_then(|v| v.checked_mul(*dh))
                                == Some(d as i64) =>
                    {
                        Held::Qkv {
                            src,
                            heads: *h as usize,
                            parts: *p as usize,
                            permuted: false,
                        }
                    }
                    (Dims::Seq(t, d), [_, t2, Dim::Fixed(h), Dim::Fixed(dh)])
                        if fixed(t2, t) && *h >= 1 && h.checked_mul(*dh) == Some(d as i64) =>
                    {
                        Held::Split {
                            src,
                            heads: *h as usize,
                        }
                    }
                    _ => return Ok(false),
                };
                hold(self, h)?
            }
            ("Transpose", Some(h), p) => {
                let next = match (h, p) {
                    (Held::FlatMap { src }, Some([0, 2, 1])) => {
                        self.push(ctx, Op::Tokens, &[src])?;
                        return Ok(true);
                    }
                    (
                        Held::Qkv {
                            permuted: false, ..
                        },
                        Some([2, 0, 3, 1, 4]),
                    ) => match h {
                        Held::Qkv {
                            src, heads, parts, ..
                        } => Held::Qkv {
                            src,
                            heads,
                            parts,
                            permuted: true,
                        },
                        _ => return Err(ctx.rule(RULE)),
                    },
                    (Held::Split { src, heads }, Some([0, 2, 1, 3])) => Held::Heads {
                        src,
                        heads,
                        keys: false,
                    },
                    (Held::Heads { src, heads, keys }, Some([0, 1, 3, 2])) => Held::Heads {
                        src,
                        heads,
                        keys: !keys,
                    },
                    (
                        Held::Mixed {
                            node,
                            tokens: false,
                        },
                        Some([0, 2, 1, 3]),
                    ) => Held::Mixed { node, tokens: true },
                    _ => return Err(a.bad("perm", perm.clone(), RULE)),
                };
                hold(self, next)?
            }
            ("Slice", Some(Held::Qkv { permuted: true, .. }), _) => {
                let bounds = |i: usize| self.optional(ctx, i).map(|v| v.and_then(|v| v.ints()));
                let (starts, ends, axes) = (bounds(1)?, bounds(2)?, bounds(3)?);
                let steps = bounds(4)?;
                match (starts, ends, axes, steps) {
                    (Some(&[s]), Some(&[e]), Some(&[0]), None | Some(&[1])) if e == s + 1 => {
                        let (src, heads) = self.qkv_part(ctx, s)?;
                        hold(self, Held::Part { src, heads })?
                    }
                    _ => return Err(ctx.rule(RULE)),
                }
            }
            ("Squeeze", Some(Held::Part { src, heads }), _) => {
                let axes = self
                    .optional(ctx, 1)?
                    .and_then(|v| v.ints())
                    .map(<[i64]>::to_vec);
                if axes.or(a.ints("axes")).as_deref() != Some(&[0]) {
                    return Err(ctx.rule(RULE));
                }
                let keys = false;
                hold(self, Held::Heads { src, heads, keys })?
            }
            ("Gather", Some(Held::Qkv { permuted: true, .. }), _) => {
                let index = self.constant(ctx, 1)?;
                match (a.int("axis", 0), index.dims.is_empty(), index.ints()) {
                    (0, true, Some(&[i])) => {
                        let (src, heads) = self.qkv_part(ctx, i)?;
                        let keys = false;
                        hold(self, Held::Heads { src, heads, keys })?
                    }
                    _ => return Err(ctx.rule(RULE)),
                }
            }
            ("Gather", None, _) => {
                let Some((src, t, _)) = seq(self, 0) else {
                    return Ok(false);
                };
                let index = self.constant(ctx, 1)?;
                match (a.int("axis", 0), index.dims.is_empty(), index.ints()) {
                    (1, true, Some(&[i])) if (-(t as i64)..t as i64).contains(&i) => {
                        let index = i.rem_euclid(t as i64) as usize;
                        self.push(ctx, Op::Token { index }, &[src])?;
                        true
                    }
                    _ => return Err(ctx.rule("takes one token: Gather on axis 1 of a scalar")),
                }
            }
            ("MatMul", q, _) => match (q, held(self, 1)) {
                (
                    Some(Held::Heads {
                        src: q,
                        heads,
                        keys: false,
                    }),
                    Some(Held::Heads {
                        src: k, keys: true, ..
                    }),
                ) => {
                    let op = Op::Scores {
                        name: self.layer_name(ctx, ""),
                        heads,
                        scale: 1.0,
                        attention: Attention::Float,
                    };
                    self.push(ctx, op, &[q, k])?;
                    true
                }
                (
                    None,
                    Some(Held::Heads {
                        src: v,
                        heads,
                        keys: false,
                    }),
                ) => {
                    let a = self.src(ctx, 0)?;
                    let op = Op::Mix {
                        name: self.layer_name(ctx, ""),
                        heads,
                        attention: Attention::Float,
                    };
                    let node = self.push(ctx, op, &[a, v])?;
                    self.ids.remove(ctx.output(0)?);
                    hold(
                        self,
                        Held::Mixed {
                            node,
                            tokens: false,
                        },
                    )?
                }
                (None, None) => false,
                _ => return Err(ctx.rule(RULE)),
            },
            ("Mul" | "Div", None, _) => self.scale_scores(ctx)?,
            ("Concat", None, _) => self.class_token(ctx, a)?,
            ("Add", None, _) => self.position(ctx)?,
            (_, Some(_), _) => return Err(ctx.rule(RULE)),
            _ => false,
        })
    }

    /// True when every node reading the output is a Transpose perm (0, 2, 1).
    fn made_tokens(&self, ctx: &Ctx) -> Result<bool, OnnxError> {
        let out = ctx.output(0)?;
        let mut readers = (self.proto.node.iter()).filter(|n| n.input.iter().any(|i| i == out));
        Ok(readers.all(|n| {
            let perm = n.attribute.iter().find(|a| a.name() == "perm");
            n.op_type() == "Transpose" && perm.is_some_and(|p| p.ints == [0, 2, 1])
        }))
    }

    /// Part `i` of the permuted qkv of `ctx`'s input as a graph node (its features sliced).
    fn qkv_part(&mut self, ctx: &Ctx, i: i64) -> Result<(usize, usize), OnnxError> {
        let Some(Held::Qkv {
            src, heads, parts, ..
        }) = self.held.get(ctx.input(0)).copied()
        else {
            return Err(ctx.rule(RULE));
        };
        let Dims::Seq(_, d) = self.dims_of(src)? else {
            return Err(ctx.rule(RULE));
        };
        if !(0..parts as i64).contains(&i) {
            return Err(ctx.rule(&format!("takes part {i} of {parts}")));
        }
        let len = d / parts;
        let op = Op::Channels {
            start: i as usize * len,
            len,
        };
        let id = self.push(ctx, op, &[src])?;
        self.ids.remove(ctx.output(0)?);
        Ok((id, heads))
    }

    /// Mul or Div of attention scores by a scalar: the scale, folded into the Scores op.
    fn scale_scores(&mut self, ctx: &Ctx) -> Result<bool, OnnxError> {
        let Some(&src) = self.ids.get(ctx.input(0)) else {
            return Ok(false);
        };
        let Op::Scores { scale, .. } = self.graph.nodes[src].op else {
            return Ok(false);
        };
        let by = match self.consts.get(ctx.input(1)) {
            Some(v) if v.len() == 1 => v.floats()[0],
            _ => return Ok(false),
        };
        if self.readers(ctx.input(0)) != 1 || src != self.graph.nodes.len() - 1 {
            return Err(ctx.rule("scales attention scores that another node also reads"));
        }
        let scale = match ctx.op {
            "Div" => scale / by,
            _ => scale * by,
        };
        if let Op::Scores { scale: s, .. } = &mut self.graph.nodes[src].op {
            *s = scale;
        }
        self.ids.insert(ctx.output(0)?.to_string(), src);
        Ok(true)
    }

    /// Concat on axis 1 of a constant (1, 1, D) and a token sequence: a class token.
    fn class_token(&mut self, ctx: &Ctx, a: &Attrs) -> Result<bool, OnnxError> {
        let (Some(cls), Some(&src)) = (self.consts.get(ctx.input(0)), self.ids.get(ctx.input(1)))
        else {
            return Ok(false);
        };
        let Ok(Dims::Seq(_, d)) = self.dims_of(src) else {
            return Ok(false);
        };
        if ctx.node.input.len() != 2 || a.int("axis", 0) != 1 || cls.dims != [1, 1, d] {
            return Err(ctx.rule(&format!(
                "joins tokens (T, {d}) with a constant of dims {:?}: a class token is one \
                 (1, 1, {d}) before them on axis 1",
                cls.dims
            )));
        }
        let values = cls.floats();
        let name = self.layer_name(ctx, ctx.input(0));
        let id = self.push(ctx, Op::ClassToken { name }, &[src])?;
        self.params.push((id, vec![("weight", values)]));
        Ok(true)
    }

    /// Add of a token sequence (T, D) and a constant (1, T, D) or (T, D): a position embedding.
    fn position(&mut self, ctx: &Ctx) -> Result<bool, OnnxError> {
        let (k, other) = match (self.consts.get(ctx.input(0)), self.consts.get(ctx.input(1))) {
            (Some(_), None) => (0, 1),
            (None, Some(_)) => (1, 0),
            _ => return Ok(false),
        };
        let Some(&src) = self.ids.get(ctx.input(other)) else {
            return Ok(false);
        };
        let pos = &self.consts[ctx.input(k)];
        match (self.dims_of(src)?, pos.dims.as_slice()) {
            (Dims::Seq(t, d), [1, t2, d2] | [t2, d2]) if (*t2, *d2) == (t, d) => {
                let values = pos.floats();
                let name = self.layer_name(ctx, ctx.input(k));
                let id = self.push(ctx, Op::PosEmbed { name }, &[src])?;
                self.params.push((id, vec![("weight", values)]));
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// LayerNormalization over the last axis with its γ and β (β absent: zeros).
    fn layer_norm(&mut self, ctx: &Ctx, a: &Attrs) -> Result<(), OnnxError> {
        if let Some(name) = a.unknown(&["axis", "epsilon", "stash_type"]) {
            return Err(a.bad(&name, "set", "not an attribute of LayerNormalization"));
        }
        let src = self.src(ctx, 0)?;
        let dims = self.dims_of(src)?;
        let rank = dims.shape().len() as i64 + 1;
        let axis = a.int("axis", -1);
        if axis != -1 && axis != rank - 1 {
            return Err(a.bad("axis", axis, "only the last axis is normalized here"));
        }
        let d = *dims.shape().last().unwrap_or(&0);
        let gamma = self.constant(ctx, 1)?.floats();
        let beta = match self.optional(ctx, 2)? {
            Some(b) => b.floats(),
            None => vec![0.0; d],
        };
        if gamma.len() != d || beta.len() != d {
            return Err(ctx.rule(&format!(
                "{} scales and {} shifts for {d} features",
                gamma.len(),
                beta.len()
            )));
        }
        let eps = a.float("epsilon", 1e-5);
        if !(eps > 0.0 && eps.is_finite()) {
            return Err(a.bad("epsilon", eps, "must be positive and finite"));
        }
        let name = self.layer_name(ctx, ctx.input(1));
        let id = self.push(ctx, Op::LayerNorm { name, eps }, &[src])?;
        self.params
            .push((id, vec![("weight", gamma), ("bias", beta)]));
        Ok(())
    }
}

/// True when `d` is the fixed size `want`.
fn fixed(d: &Dim, want: usize) -> bool {
    matches!(d, Dim::Fixed(v) if *v == want as i64)
}
