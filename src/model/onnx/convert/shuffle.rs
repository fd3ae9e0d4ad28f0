//! ShuffleNet's channel shuffle as PyTorch exports torchvision's `channel_shuffle`: a Reshape
//! of a feature map (N, C, H, W) to (N, g, C/g, H, W), a Transpose with perm (0, 2, 1, 3, 4),
//! and a Reshape back to (N, C, H, W). The three nodes become one `Op::ChannelShuffle`; the
//! 5-D tensors between them are held here, and any other use of one is an error.

use super::fold::Dim;
use super::{Builder, Ctx};
use crate::model::graph::{Dims, Op};
use crate::model::onnx::tensor::Attrs;
use crate::model::onnx::OnnxError;

/// What the error says a 5-D reshape may be part of.
pub(super) const RULE: &str = "a 5-D tensor is imported only inside a channel shuffle: Reshape \
    (N, C, H, W) to (N, g, C/g, H, W), Transpose perm (0, 2, 1, 3, 4), Reshape to (N, C, H, W)";

/// A held step of a channel shuffle of graph node `src`'s map in `groups` groups.
#[derive(Debug, Clone, Copy)]
pub(super) enum Shuffle {
    /// Reshaped to (N, g, C/g, H, W).
    Grouped { src: usize, groups: usize },
    /// Then transposed to (N, C/g, g, H, W).
    Swapped { src: usize, groups: usize },
}

impl Builder<'_> {
    /// Reshape of a computed tensor: a flatten that keeps the batch, or the first or last step
    /// of a channel shuffle.
    pub(super) fn reshape(&mut self, ctx: &Ctx, a: &Attrs) -> Result<(), OnnxError> {
        let target = self.reshape_target(ctx)?;
        let copies = a.int("allowzero", 0) == 0;
        let fixed = |d: &Dim, want: usize| matches!(d, Dim::Fixed(v) if *v == want as i64);
        if let Some(&Shuffle::Swapped { src, groups }) = self.shuffle.get(ctx.input(0)) {
            let Dims::Map(c, h, w) = self.dims_of(src)? else {
                return Err(ctx.rule(RULE));
            };
            let back = target.len() == 4
                && self.keeps_batch(&target, copies)
                && (fixed(&target[1], c) || target[1] == Dim::Fixed(-1))
                && fixed(&target[2], h)
                && fixed(&target[3], w);
            if !back {
                return Err(ctx.rule(RULE));
            }
            self.push(ctx, Op::ChannelShuffle { groups }, &[src])?;
            return Ok(());
        }
        let src = self.src(ctx, 0)?;
        if target.len() == 5 {
            let grouped = match (self.dims_of(src)?, &target[1..]) {
                (Dims::Map(c, h, w), [Dim::Fixed(g), per, th, tw])
                    if *g >= 1
                        && c % (*g as usize) == 0
                        && (fixed(per, c / *g as usize) || *per == Dim::Fixed(-1))
                        && fixed(th, h)
                        && fixed(tw, w) =>
                {
                    Some(*g as usize)
                }
                _ => None,
            };
            return match (grouped, self.keeps_batch(&target, copies)) {
                (Some(groups), true) => {
                    let held = Shuffle::Grouped { src, groups };
                    self.shuffle.insert(ctx.output(0)?.to_string(), held);
                    Ok(())
                }
                _ => Err(ctx.rule(RULE)),
            };
        }
        let op = self.flatten(ctx, a, src, &target)?;
        self.push(ctx, op, &[src])?;
        Ok(())
    }

    /// Transpose of a computed tensor: only the middle of a channel shuffle.
    pub(super) fn transpose(&mut self, ctx: &Ctx, a: &Attrs) -> Result<(), OnnxError> {
        let perm = a.ints("perm");
        match (self.shuffle.get(ctx.input(0)), perm.as_deref()) {
            (Some(&Shuffle::Grouped { src, groups }), Some([0, 2, 1, 3, 4])) => {
                let held = Shuffle::Swapped { src, groups };
                self.shuffle.insert(ctx.output(0)?.to_string(), held);
                Ok(())
            }
            (Some(_), _) => Err(a.bad("perm", perm, RULE)),
            (None, _) => {
                self.src(ctx, 0)?;
                Err(ctx.rule(&format!("a Transpose of a computed tensor: {RULE}")))
            }
        }
    }
}
