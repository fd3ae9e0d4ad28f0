//! The ops of the torchvision families that join or split branches, gate channels or map each
//! value: Mul (a squeeze-and-excitation gate, SiLU as Sigmoid + Mul, HardSwish as x ·
//! HardSigmoid(x), a per-channel scale), Concat and Split on the channel axis, HardSigmoid,
//! and a BatchNorm that is not folded into a conv (a fixed per-channel affine). ShuffleNet's
//! channel shuffle is in `shuffle.rs`.

use super::{Builder, Ctx};
use crate::model::graph::{Dims, Op};
use crate::model::onnx::tensor::Attrs;
use crate::model::onnx::OnnxError;

impl Builder<'_> {
    /// Mul of two computed tensors: SiLU or HardSwish when one operand is the Sigmoid or
    /// HardSigmoid of the other and nothing else reads it (the two nodes become one
    /// activation), else a gate or an elementwise product. Mul of a computed map and a constant
    /// of one value per channel is a per-channel scale.
    pub(super) fn mul(&mut self, ctx: &Ctx) -> Result<(), OnnxError> {
        if let Some(k) = (0..2).find(|&i| self.consts.contains_key(ctx.input(i))) {
            let src = self.src(ctx, 1 - k)?;
            let scale = self.per_channel(ctx, k, src)?;
            let c = scale.len();
            let op = Op::Affine {
                scale,
                shift: vec![0.0; c],
            };
            self.push(ctx, op, &[src])?;
            return Ok(());
        }
        let (a, b) = (self.src(ctx, 0)?, self.src(ctx, 1)?);
        for (gate, x, k) in [(a, b, 0), (b, a, 1)] {
            let fused = match self.graph.nodes[gate].op {
                Op::Sigmoid => Op::Silu,
                Op::HardSigmoid => Op::HardSwish,
                _ => continue,
            };
            if self.graph.nodes[gate].inputs == [x] && self.readers(ctx.input(k)) == 1 {
                // The gate's node becomes the activation; only this Mul read its output.
                self.graph.nodes[gate].op = fused;
                let what = format!("{} + Mul", self.labels[gate].1);
                self.labels[gate] = (ctx.label.to_string(), what);
                self.ids.insert(ctx.output(0)?.to_string(), gate);
                return Ok(());
            }
        }
        self.push(ctx, Op::Mul, &[a, b])?;
        Ok(())
    }

    /// Constant input `k` as one value per channel of graph node `src`'s feature map: shaped
    /// (C, 1, 1) or (1, C, 1, 1) (ONNX broadcasts from the last axis), or one value for all.
    fn per_channel(&self, ctx: &Ctx, k: usize, src: usize) -> Result<Vec<f32>, OnnxError> {
        let v = self.constant(ctx, k)?;
        let c = match self.dims_of(src)? {
            Dims::Map(c, ..) => Some(c),
            Dims::Flat(_) | Dims::Seq(..) => None,
        };
        let values = v.floats();
        match (c, v.dims.as_slice()) {
            (Some(c), d) if values.len() == 1 && d.len() <= 4 => Ok(vec![values[0]; c]),
            (Some(c), [n, 1, 1] | [1, n, 1, 1]) if *n == c => Ok(values),
            (c, d) => Err(ctx.rule(&format!(
                "{} a computed tensor and a constant of dims {d:?}: imported only as a \
                 per-channel affine of a feature map{}, the constant shaped (C, 1, 1) or (1, C, \
                 1, 1) or a single value",
                ctx.op,
                c.map(|c| format!(" ({c} channels)")).unwrap_or_default(),
            ))),
        }
    }

    /// The Add of a per-channel constant to a per-channel scale just imported: its shift.
    pub(super) fn affine_shift(
        &mut self,
        ctx: &Ctx,
        k: usize,
        src: usize,
    ) -> Result<bool, OnnxError> {
        let last = self.graph.nodes.len() - 1;
        let fresh = src == last
            && matches!(&self.graph.nodes[src].op, Op::Affine { shift, .. } if shift.iter().all(|&v| v == 0.0));
        if !fresh || self.readers(ctx.input(1 - k)) != 1 {
            return Ok(false);
        }
        let add = self.per_channel(ctx, k, src)?;
        if let Op::Affine { shift, .. } = &mut self.graph.nodes[src].op {
            *shift = add;
        }
        self.ids.insert(ctx.output(0)?.to_string(), src);
        Ok(true)
    }

    /// Concat of computed tensors on the channel axis (1, or -3 of a feature map, -1 of flat
    /// vectors).
    pub(super) fn concat(&mut self, ctx: &Ctx, a: &Attrs) -> Result<(), OnnxError> {
        let srcs = (0..ctx.node.input.len())
            .map(|i| self.src(ctx, i))
            .collect::<Result<Vec<_>, _>>()?;
        let first = *srcs.first().ok_or_else(|| ctx.rule("joins no tensors"))?;
        self.channel_axis(a, first)?;
        self.push(ctx, Op::Concat, &srcs)?;
        Ok(())
    }

    /// `axis` names the channels of graph node `src`'s output.
    fn channel_axis(&self, a: &Attrs, src: usize) -> Result<(), OnnxError> {
        let axis = a.int("axis", 0);
        let ok = match self.dims_of(src)? {
            Dims::Map(..) => matches!(axis, 1 | -3),
            Dims::Flat(_) => matches!(axis, 1 | -1),
            Dims::Seq(..) => matches!(axis, 2 | -1),
        };
        match ok {
            true => Ok(()),
            false => Err(a.bad(
                "axis",
                axis,
                "only the channel axis (1) of (N, C, H, W) or (N, F) is imported",
            )),
        }
    }

    /// Split of a computed feature map into channel ranges, one graph node per output: sizes
    /// from input 1, or `num_outputs` (opset 18: equal parts, the last smaller), or equal parts
    /// one per output.
    pub(super) fn split(&mut self, ctx: &Ctx, a: &Attrs) -> Result<(), OnnxError> {
        if let Some(name) = a.unknown(&["axis", "num_outputs", "split"]) {
            return Err(a.bad(&name, "set", "not an attribute of Split"));
        }
        let src = self.src(ctx, 0)?;
        self.channel_axis(a, src)?;
        let c = match self.dims_of(src)? {
            Dims::Map(c, ..) => c,
            Dims::Flat(n) | Dims::Seq(_, n) => n,
        };
        let outputs = ctx.node.output.len();
        let sizes: Vec<usize> = match (self.optional(ctx, 1)?, a.ints("split")) {
            (Some(v), _) => (v.ints().unwrap_or_default().iter())
                .map(|&s| usize::try_from(s).unwrap_or(0))
                .collect(),
            (None, Some(v)) => v.iter().map(|&s| usize::try_from(s).unwrap_or(0)).collect(),
            (None, None) => {
                // Checked before anything is built: the file claims the count.
                let parts = a.int("num_outputs", outputs as i64);
                if parts != outputs as i64 {
                    return Err(a.bad(
                        "num_outputs",
                        parts,
                        &format!("the node has {outputs} outputs"),
                    ));
                }
                let parts = outputs.max(1);
                let each = c.div_ceil(parts);
                (0..parts)
                    .map(|i| each.min(c.saturating_sub(i * each)))
                    .collect()
            }
        };
        let total = sizes.iter().try_fold(0usize, |s, &v| s.checked_add(v));
        if sizes.len() != outputs || sizes.contains(&0) || total != Some(c) {
            return Err(ctx.rule(&format!(
                "splits {c} channels into {sizes:?} for {outputs} outputs: needs one positive \
                 size per output, adding up to the channels"
            )));
        }
        let mut start = 0;
        for (i, &len) in sizes.iter().enumerate() {
            let id = self.graph.push(Op::Channels { start, len }, &[src]);
            self.labels
                .push((ctx.label.to_string(), ctx.op.to_string()));
            let name = ctx.node.output[i].clone();
            self.ids.insert(name, id);
            start += len;
        }
        Ok(())
    }

    /// HardSigmoid with PyTorch's constants, α = 1/6 and β = 1/2 (what `nn.Hardsigmoid`
    /// exports); other slopes are refused.
    pub(super) fn hard_sigmoid(&self, a: &Attrs) -> Result<Op, OnnxError> {
        if let Some(name) = a.unknown(&["alpha", "beta"]) {
            return Err(a.bad(&name, "set", "not an attribute of HardSigmoid"));
        }
        let (alpha, beta) = (a.float("alpha", 0.2), a.float("beta", 0.5));
        if (alpha - 1.0 / 6.0).abs() > 1e-6 || beta != 0.5 {
            return Err(a.bad(
                "alpha, beta",
                (alpha, beta),
                "only PyTorch's hardsigmoid, alpha 1/6 and beta 1/2, is imported",
            ));
        }
        Ok(Op::HardSigmoid)
    }

    /// A BatchNorm of channels that no conv just wrote (DenseNet normalizes a Concat), as a
    /// fixed affine: `scale = γ / √(var + ε)`, `shift = β − mean · scale`, in f64.
    pub(super) fn affine_batch_norm(
        &mut self,
        ctx: &Ctx,
        src: usize,
        values: [Vec<f32>; 4],
        eps: f32,
    ) -> Result<(), OnnxError> {
        let [gamma, beta, mean, var] = values;
        let scale: Vec<f64> = (gamma.iter().zip(&var))
            .map(|(&g, &v)| f64::from(g) / (f64::from(v) + f64::from(eps)).sqrt())
            .collect();
        let shift = (beta.iter().zip(&mean).zip(&scale))
            .map(|((&b, &m), &s)| (f64::from(b) - f64::from(m) * s) as f32)
            .collect();
        let scale = scale.into_iter().map(|s| s as f32).collect();
        self.push(ctx, Op::Affine { scale, shift }, &[src])?;
        Ok(())
    }
}
