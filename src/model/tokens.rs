//! The token-sequence ops of a vision transformer: their shape rules and their forward passes
//! (candle's own differentiable ops, so every gradient is candle's), and which quantizable
//! layers read signed activations.
//!
//! A sequence is (N, T, D) as a tensor and `Dims::Seq(T, D)` per example; multi-head attention
//! splits D into `heads` slices of D / heads features, one per head:
//!
//! ```text
//! scores_h = scale · q_h k_hᵀ          (T, T) per head: Dims::Map(heads, T, T)
//! mix      = [a_1 v_1 | … | a_H v_H]   (T, D), the heads' outputs side by side
//! ```

use candle_core::{Tensor, D};

use super::graph::{Dims, Graph, Op};

/// The output dims of a token op on inputs `parts`, or the rule it breaks.
pub(super) fn infer(op: &Op, parts: &[Dims]) -> Result<Dims, String> {
    let seq = |at: usize, what: &str| match parts.get(at) {
        Some(&Dims::Seq(t, d)) => Ok((t, d)),
        other => Err(format!(
            "{what} needs a token sequence (T, D), got {other:?}"
        )),
    };
    let split = |heads: usize, d: usize| match heads {
        0 => Err("needs at least one head".to_string()),
        h if !d.is_multiple_of(h) => Err(format!("{h} heads must divide {d} features")),
        _ => Ok(()),
    };
    Ok(match *op {
        Op::Tokens => match parts.first() {
            Some(&Dims::Map(c, h, w)) => Dims::Seq(h * w, c),
            other => return Err(format!("needs a (C, H, W) feature map, got {other:?}")),
        },
        Op::ClassToken { .. } => {
            let (t, d) = seq(0, "a class token")?;
            Dims::Seq(t + 1, d)
        }
        Op::PosEmbed { .. } => {
            let (t, d) = seq(0, "a position embedding")?;
            Dims::Seq(t, d)
        }
        Op::LayerNorm { eps, .. } => {
            if !(eps > 0.0 && eps.is_finite()) {
                return Err(format!("epsilon {eps} must be positive and finite"));
            }
            match parts.first() {
                Some(&d @ (Dims::Seq(..) | Dims::Flat(_))) => d,
                other => return Err(format!("normalizes tokens or vectors, got {other:?}")),
            }
        }
        Op::Scores { heads, scale, .. } => {
            let ((t, d), k) = (seq(0, "attention scores")?, seq(1, "attention scores")?);
            if (t, d) != k {
                return Err(format!("queries ({t}, {d}) and keys {k:?} differ in shape"));
            }
            if !scale.is_finite() {
                return Err(format!("scale {scale} must be finite"));
            }
            split(heads, d)?;
            Dims::Map(heads, t, t)
        }
        Op::Mix { heads, .. } => {
            let (t, d) = seq(1, "attention values")?;
            split(heads, d)?;
            match parts.first() {
                Some(&Dims::Map(h, a, b)) if (h, a, b) == (heads, t, t) => Dims::Seq(t, d),
                other => {
                    return Err(format!(
                        "weights {other:?} must be (heads, T, T) = ({heads}, {t}, {t}) for values \
                         ({t}, {d})"
                    ))
                }
            }
        }
        Op::Token { index } => {
            let (t, d) = seq(0, "taking a token")?;
            if index >= t {
                return Err(format!("token {index} of {t}"));
            }
            Dims::Flat(d)
        }
        _ => return Err(format!("{} is not a token op", op.kind())),
    })
}

/// For each layer node, whether its input can be negative: a transformer's linear layers read
/// LayerNorm, attention and GELU outputs (no ReLU before them), so their activation grid is
/// signed. That is every layer whose input is a token sequence, or is taken from one or from a
/// LayerNorm through shape-only ops; every other layer keeps the unsigned grid.
pub(super) fn signed_inputs(g: &Graph, dims: &[Dims], layer_nodes: &[usize]) -> Vec<bool> {
    let signed = |mut j: usize| loop {
        if matches!(dims[j], Dims::Seq(..)) {
            return true;
        }
        let n = &g.nodes[j];
        match (&n.op, n.inputs.first()) {
            (Op::LayerNorm { .. }, _) => return true,
            (Op::Flatten | Op::Token { .. } | Op::Channels { .. }, Some(&before)) => j = before,
            _ => return false,
        }
    };
    (layer_nodes.iter())
        .map(|&l| g.nodes[l].inputs.first().is_some_and(|&j| signed(j)))
        .collect()
}

/// (N, C, H, W) → (N, H·W, C).
pub(super) fn tokens(x: &Tensor) -> candle_core::Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    x.reshape((n, c, h * w))?.transpose(1, 2)?.contiguous()
}

/// The class token `cls` (D) before every example's tokens.
pub(super) fn class_token(x: &Tensor, cls: &Tensor) -> candle_core::Result<Tensor> {
    let (n, _, d) = x.dims3()?;
    let cls = cls.reshape((1, 1, d))?.broadcast_as((n, 1, d))?;
    Tensor::cat(&[&cls, x], 1)
}

/// `x + pos` with `pos` (T, D).
pub(super) fn pos_embed(x: &Tensor, pos: &Tensor) -> candle_core::Result<Tensor> {
    x.broadcast_add(&pos.unsqueeze(0)?)
}

/// LayerNorm over the last axis (module doc of `Op::LayerNorm`).
pub(super) fn layer_norm(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f32,
) -> candle_core::Result<Tensor> {
    let centered = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
    let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
    let normed = centered.broadcast_div(&(var + eps as f64)?.sqrt()?)?;
    normed.broadcast_mul(gamma)?.broadcast_add(beta)
}

/// Softmax over the last axis, with candle's differentiable ops.
pub(super) fn softmax(x: &Tensor) -> candle_core::Result<Tensor> {
    candle_nn::ops::softmax(x, D::Minus1)
}

/// (N, T, D) → (N, heads, T, D / heads).
fn heads_of(x: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
    let (n, t, d) = x.dims3()?;
    x.reshape((n, t, heads, d / heads))?
        .transpose(1, 2)?
        .contiguous()
}

/// `scale · q_h k_hᵀ` per head: (N, heads, T, T).
pub(super) fn scores(
    q: &Tensor,
    k: &Tensor,
    heads: usize,
    scale: f32,
) -> candle_core::Result<Tensor> {
    let kt = heads_of(k, heads)?.transpose(2, 3)?.contiguous()?;
    heads_of(q, heads)?.matmul(&kt)? * scale as f64
}

/// `a_h v_h` per head, the heads side by side: (N, T, D).
pub(super) fn mix(a: &Tensor, v: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
    let (n, t, d) = v.dims3()?;
    a.contiguous()?
        .matmul(&heads_of(v, heads)?)?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((n, t, d))
}

/// Token `index` of each example: (N, D).
pub(super) fn token(x: &Tensor, index: usize) -> candle_core::Result<Tensor> {
    x.narrow(1, index, 1)?.squeeze(1)?.contiguous()
}

#[cfg(test)]
#[path = "tokens_tests.rs"]
mod tests;
