//! The option-A shortcut of He et al.'s CIFAR ResNets (`F.pad(x[:, :, ::s, ::s], (0, 0, 0, 0,
//! p, p))` in PyTorch): a Slice taking every s-th row, a Slice taking every s-th column (in
//! either order, or one Slice over both axes), then a Pad adding zero channels on both sides.
//! The three nodes become one `Op::ShortcutA`. A Slice of channels alone (step 1) is a channel
//! range (`Op::Channels`); a Slice used any other way is an error.

use super::super::tensor::{Attrs, MAX_ACTIVATIONS, MAX_SPATIAL};
use super::super::OnnxError;
use super::fold::SliceArgs;
use super::{Builder, Ctx};
use crate::model::graph::{Dims, Op};

/// What the error says a Slice of a computed tensor may be.
pub(super) const RULE: &str = "a Slice of a computed tensor is imported as a range of \
    channels (axis 1 alone, step 1) or as part of an option-A shortcut: every s-th row and \
    column from the first (starts 0, ends at the end, steps s), then a Pad of zero channels";

/// A computed tensor's rows (`h`) and columns (`w`) taken every so many.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sliced {
    src: usize,
    h: usize,
    w: usize,
}

impl Builder<'_> {
    /// The node's input as a held Slice, or as a computed tensor taken whole.
    fn sliced_input(&self, ctx: &Ctx) -> Result<Sliced, OnnxError> {
        match self.sliced.get(ctx.input(0)) {
            Some(s) => Ok(*s),
            None => Ok(Sliced {
                src: self.src(ctx, 0)?,
                h: 1,
                w: 1,
            }),
        }
    }

    /// A Slice of a computed tensor, held until its Pad.
    pub(super) fn slice(&mut self, ctx: &Ctx) -> Result<(), OnnxError> {
        let mut s = self.sliced_input(ctx)?;
        let ints = |i: usize| -> Result<Option<Vec<i64>>, OnnxError> {
            match self.optional(ctx, i)? {
                None => Ok(None),
                Some(v) => (v.ints().map(|v| Some(v.to_vec())))
                    .ok_or_else(|| ctx.rule(&format!("input {i} must hold integers"))),
            }
        };
        let starts = ints(1)?.ok_or_else(|| ctx.rule("needs starts"))?;
        let ends = ints(2)?.ok_or_else(|| ctx.rule("needs ends"))?;
        let SliceArgs {
            starts,
            ends,
            axes,
            steps,
        } = SliceArgs::new(ctx, starts, ends, ints(3)?, ints(4)?)?;
        if let ([start], [end], [1 | -3], [1]) = (&starts[..], &ends[..], &axes[..], &steps[..]) {
            if !self.sliced.contains_key(ctx.input(0)) {
                return self.channel_slice(ctx, s.src, *start, *end);
            }
        }
        for k in 0..starts.len() {
            // PyTorch writes "to the end" as i64::MAX; anything past a CIFAR-sized map will do.
            let whole = starts[k] == 0 && ends[k] >= 1 << 20 && steps[k] >= 1;
            let every = |at: usize| {
                (at.checked_mul(steps[k] as usize))
                    .filter(|&v| v <= MAX_SPATIAL)
                    .ok_or_else(|| {
                        ctx.rule(&format!("a step of {}: at most {MAX_SPATIAL}", steps[k]))
                    })
            };
            match (axes[k], whole) {
                (2 | -2, true) => s.h = every(s.h)?,
                (3 | -1, true) => s.w = every(s.w)?,
                _ => return Err(ctx.rule(RULE)),
            }
        }
        self.sliced.insert(ctx.output(0)?.to_string(), s);
        Ok(())
    }

    /// Channels `start .. end` of a feature map (ONNX's rules: negative counts from the end,
    /// both clamped to the channels), as one `Op::Channels`.
    fn channel_slice(
        &mut self,
        ctx: &Ctx,
        src: usize,
        start: i64,
        end: i64,
    ) -> Result<(), OnnxError> {
        let dims = (self.graph.node_dims(self.input))
            .map_err(|e| self.shape_error(e))?
            .dims;
        let c = match dims.get(src) {
            Some(Dims::Map(c, ..)) => *c as i64,
            _ => return Err(ctx.rule("slices the channels of a tensor that is not a feature map")),
        };
        let at = |v: i64| {
            if v < 0 {
                (v.saturating_add(c)).max(0)
            } else {
                v.min(c)
            }
        };
        let (start, end) = (at(start), at(end));
        if end <= start {
            return Err(ctx.rule(&format!(
                "keeps no channel of {c} (from {start} to {end}): a channel slice needs one"
            )));
        }
        let op = Op::Channels {
            start: start as usize,
            len: (end - start) as usize,
        };
        self.push(ctx, op, &[src])?;
        Ok(())
    }

    /// A Pad: of a held Slice (or of a computed tensor), zero channels on both sides only.
    pub(super) fn pad(&mut self, ctx: &Ctx, a: &Attrs) -> Result<(), OnnxError> {
        let mode = a.string("mode").unwrap_or_else(|| "constant".into());
        if mode != "constant" {
            return Err(a.bad("mode", mode, "only zero padding (constant) is supported"));
        }
        let s = self.sliced_input(ctx)?;
        let pads = (self.constant(ctx, 1)?.ints().map(<[i64]>::to_vec))
            .ok_or_else(|| ctx.rule("pads must be integers"))?;
        if let Some(v) = self.optional(ctx, 2)? {
            if v.floats().iter().any(|&x| x != 0.0) {
                return Err(ctx.rule("only zero padding is supported"));
            }
        }
        let [0, before, 0, 0, 0, after, 0, 0] = pads[..] else {
            return Err(ctx.rule(&format!(
                "pads {pads:?}: only channels are padded here (an option-A shortcut)"
            )));
        };
        if s.h != s.w || before < 0 || after != before {
            return Err(ctx.rule(&format!(
                "rows every {} and columns every {} with {before} and {after} zero channels: \
                 an option-A shortcut takes both every s-th and pads both sides equally",
                s.h, s.w
            )));
        }
        let dims = (self.graph.node_dims(self.input))
            .map_err(|e| self.shape_error(e))?
            .dims;
        let c = match dims.get(s.src) {
            Some(Dims::Map(c, ..)) => *c,
            _ => return Err(ctx.rule("pads a tensor that is not a feature map")),
        };
        let out = usize::try_from(before)
            .ok()
            .and_then(|b| b.checked_mul(2)?.checked_add(c))
            .filter(|&out| out <= MAX_ACTIVATIONS)
            .ok_or_else(|| {
                ctx.rule(&format!(
                    "{before} zero channels on each side of {c}: at most {MAX_ACTIVATIONS} in all"
                ))
            })?;
        let op = Op::ShortcutA { stride: s.h, out };
        self.push(ctx, op, &[s.src])?;
        Ok(())
    }
}
