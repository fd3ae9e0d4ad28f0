//! The vision transformer's graph (Dosovitskiy et al. 2021, pre-norm as in timm): a patch
//! embedding (a conv with kernel = stride = patch, its pixels as tokens), a class token and a
//! learned position embedding, `depth` blocks of
//!
//! ```text
//! x = x + proj(attention(LayerNorm(x)))      attention: one qkv linear, `heads` heads
//! x = x + fc2(GELU(fc1(LayerNorm(x))))
//! ```
//!
//! then a LayerNorm and the head on the class token.
//!
//! Q, K and V come from one `qkv` linear (3·dim outputs, sliced), as timm's and PyTorch's
//! `nn.MultiheadAttention` compute them: the three read the same LayerNorm output, so one layer
//! has one input quantizer, which is what a device reading that tensor once does, and the agent
//! walks one layer instead of three.

use super::graph::{Graph, Op};
use super::op::Attention;

/// The sizes of a ViT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VitSize {
    /// Side of a square patch (the embedding conv's kernel and stride).
    pub patch: usize,
    /// Features per token.
    pub dim: usize,
    pub heads: usize,
    pub depth: usize,
    /// The MLP's hidden features per token feature.
    pub mlp_ratio: usize,
}

/// PyTorch's LayerNorm epsilon.
pub const LAYER_NORM_EPS: f32 = 1e-5;

/// The ViT of `size` for `classes` outputs, as a graph.
pub fn vit(name: &str, size: VitSize, classes: usize) -> Graph {
    let VitSize {
        patch,
        dim,
        heads,
        depth,
        mlp_ratio,
    } = size;
    let linear = |name: String, out: usize| Op::Linear { name, out };
    let norm = |name: String| Op::LayerNorm {
        name,
        eps: LAYER_NORM_EPS,
    };
    let mut g = Graph::new(name);
    g.then(Op::Conv {
        name: "patch".into(),
        out: dim,
        kernel: patch,
        stride: patch,
        padding: 0,
        groups: 1,
    });
    g.then(Op::Tokens);
    g.then(Op::ClassToken { name: "cls".into() });
    let mut x = g.then(Op::PosEmbed { name: "pos".into() });
    // The usual 1/√(features per head) keeps the scores' spread independent of the head size.
    let scale = 1.0 / ((dim / heads.max(1)).max(1) as f32).sqrt();
    for b in 1..=depth {
        g.then(norm(format!("b{b}.ln1")));
        let qkv = g.then(linear(format!("b{b}.qkv"), 3 * dim));
        let part = |g: &mut Graph, k: usize| {
            g.push(
                Op::Channels {
                    start: k * dim,
                    len: dim,
                },
                &[qkv],
            )
        };
        let (q, k, v) = (part(&mut g, 0), part(&mut g, 1), part(&mut g, 2));
        let attention = Attention::Float;
        let name = format!("b{b}.scores");
        g.push(
            Op::Scores {
                name,
                heads,
                scale,
                attention,
            },
            &[q, k],
        );
        let a = g.then(Op::Softmax);
        let name = format!("b{b}.mix");
        g.push(
            Op::Mix {
                name,
                heads,
                attention,
            },
            &[a, v],
        );
        let o = g.then(linear(format!("b{b}.proj"), dim));
        x = g.push(Op::Add, &[x, o]);
        g.then(norm(format!("b{b}.ln2")));
        g.then(linear(format!("b{b}.fc1"), mlp_ratio * dim));
        g.then(Op::Gelu);
        let f = g.then(linear(format!("b{b}.fc2"), dim));
        x = g.push(Op::Add, &[x, f]);
    }
    g.then(norm("norm".into()));
    g.then(Op::Token { index: 0 });
    g.then(linear("head".into(), classes));
    g
}
