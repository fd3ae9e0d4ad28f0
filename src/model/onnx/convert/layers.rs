//! The ONNX ops that carry weights or need constants: Conv, Gemm / MatMul (+ a bias Add),
//! BatchNormalization (folded into its conv, or a fixed affine), Add and Clip.

use super::pool::{check_auto_pad, square};
use super::{bn_weights, Builder, Ctx};
use crate::model::graph::{Dims, Op};
use crate::model::net::LayerWeights;
use crate::model::onnx::tensor::Attrs;
use crate::model::onnx::tensor::MAX_SPATIAL;
use crate::model::onnx::OnnxError;

impl Builder<'_> {
    pub(super) fn conv(&mut self, ctx: &Ctx, a: &Attrs) -> Result<(), OnnxError> {
        let known = [
            "kernel_shape",
            "strides",
            "pads",
            "dilations",
            "group",
            "auto_pad",
        ];
        if let Some(name) = a.unknown(&known) {
            return Err(a.bad(
                &name,
                "set",
                "not an attribute of the convs bitsearch imports",
            ));
        }
        let src = self.src(ctx, 0)?;
        let w = self.constant(ctx, 1)?.clone();
        let [o, _, kh, kw] = w.dims[..] else {
            return Err(ctx.rule(&format!("weight has dims {:?}, not (O, C/g, k, k)", w.dims)));
        };
        if w.len() == 0 {
            return Err(ctx.rule(&format!(
                "weight of dims {:?} has no elements: a conv needs at least one output \
                 channel, input channel and kernel tap",
                w.dims
            )));
        }
        if kh != kw {
            return Err(a.bad(
                "kernel_shape",
                [kh, kw],
                "only square kernels are supported",
            ));
        }
        if let Some(ks) = a
            .ints("kernel_shape")
            .filter(|k| k[..] != [kh as i64, kw as i64])
        {
            return Err(a.bad("kernel_shape", ks, "differs from the weight's shape"));
        }
        let stride = square(a, "strides", Some(1))?;
        let fits = |v: i64| v >= 0 && v as u64 <= MAX_SPATIAL as u64;
        let padding = match a.ints("pads") {
            None => 0,
            Some(p) if p.len() == 4 && p.iter().all(|&v| v == p[0]) && fits(p[0]) => p[0] as usize,
            Some(p) => {
                let rule = format!("needs the same padding, 0 to {MAX_SPATIAL}, on all four sides");
                return Err(a.bad("pads", p, &rule));
            }
        };
        if let Some(d) = a.ints("dilations").filter(|d| d.iter().any(|&v| v != 1)) {
            return Err(a.bad("dilations", d, "only dilation 1 is supported"));
        }
        check_auto_pad(a)?;
        let groups = a.int("group", 1);
        if groups < 1 {
            return Err(a.bad("group", groups, "must be at least 1"));
        }
        let b = match self.optional(ctx, 2)? {
            Some(b) if b.len() == o => b.floats(),
            Some(b) => {
                return Err(ctx.rule(&format!("bias has {} values for {o} outputs", b.len())))
            }
            None => vec![0.0; o],
        };
        let weight_name = ctx.input(1).to_string();
        let name = self.layer_name(ctx, &weight_name);
        let op = Op::Conv {
            name,
            out: o,
            kernel: kh,
            stride,
            padding,
            groups: groups as usize,
        };
        let id = self.push(ctx, op, &[src])?;
        let layer = LayerWeights {
            w: w.floats(),
            w_dims: w.dims.clone(),
            b,
            bn: None,
        };
        self.weights.insert(id, layer);
        Ok(())
    }

    /// Gemm (`A·Bᵀ + C` with transB = 1, or `A·B + C`) or MatMul (`A·B`, a bias from an Add
    /// after it): a linear layer with the weight stored (out, in).
    pub(super) fn linear(&mut self, ctx: &Ctx, a: &Attrs) -> Result<(), OnnxError> {
        let src = self.src(ctx, 0)?;
        let w = self.constant(ctx, 1)?.clone();
        let gemm = ctx.op == "Gemm";
        if gemm {
            if let Some(name) = a.unknown(&["alpha", "beta", "transA", "transB"]) {
                return Err(a.bad(&name, "set", "not an attribute of Gemm"));
            }
            for (name, default) in [("alpha", 1.0), ("beta", 1.0)] {
                let v = a.float(name, default);
                if v != 1.0 {
                    return Err(a.bad(name, v, "only 1 is supported"));
                }
            }
            if a.int("transA", 0) != 0 {
                return Err(a.bad(
                    "transA",
                    a.int("transA", 0),
                    "the input must not be transposed",
                ));
            }
        }
        let [r, c] = w.dims[..] else {
            return Err(ctx.rule(&format!("weight has dims {:?}, not a matrix", w.dims)));
        };
        if w.len() == 0 {
            let rule = format!("weight of dims {:?} has no elements", w.dims);
            return Err(ctx.rule(&rule));
        }
        let trans_b = gemm && a.int("transB", 0) != 0;
        let values = w.floats();
        // Stored (out, in): Gemm's transB = 1 already is; otherwise B is (in, out).
        let (out, input, weights) = match trans_b {
            true => (r, c, values),
            false => {
                let mut t = vec![0.0; values.len()];
                for i in 0..r {
                    for j in 0..c {
                        t[j * r + i] = values[i * c + j];
                    }
                }
                (c, r, t)
            }
        };
        let b = match gemm.then(|| self.optional(ctx, 2)).transpose()?.flatten() {
            Some(b) if b.len() == out => b.floats(),
            Some(b) => {
                return Err(ctx.rule(&format!("bias has {} values for {out} outputs", b.len())))
            }
            None => vec![0.0; out],
        };
        let weight_name = match ctx.input(1) {
            w if w.ends_with(".weight") => w.to_string(),
            w => self.bias_after(ctx).unwrap_or_else(|| w.to_string()),
        };
        let name = self.layer_name(ctx, &weight_name);
        let id = self.push(ctx, Op::Linear { name, out }, &[src])?;
        let layer = LayerWeights {
            w: weights,
            w_dims: vec![out, input],
            b,
            bn: None,
        };
        self.weights.insert(id, layer);
        Ok(())
    }

    /// For a MatMul whose weight is a folded constant (PyTorch transposes a linear layer's
    /// weight for a MatMul on tokens, under a generated name), the name its bias Add gives:
    /// `blocks.0.qkv.bias` names the layer `blocks.0.qkv`.
    fn bias_after(&self, ctx: &Ctx) -> Option<String> {
        let out = ctx.node.output.first()?;
        let add = (self.proto.node.iter())
            .find(|n| n.op_type() == "Add" && n.input.iter().any(|i| i == out))?;
        let bias = add.input.iter().find(|i| *i != out)?;
        let layer = bias.strip_suffix(".bias")?;
        self.consts
            .contains_key(bias)
            .then(|| format!("{layer}.weight"))
    }

    pub(super) fn batch_norm(&mut self, ctx: &Ctx, a: &Attrs) -> Result<(), OnnxError> {
        if let Some(name) = a.unknown(&["epsilon", "momentum", "training_mode", "spatial"]) {
            return Err(a.bad(&name, "set", "not an attribute of BatchNormalization"));
        }
        if a.int("training_mode", 0) != 0 {
            return Err(a.bad(
                "training_mode",
                1,
                "only inference-mode BatchNorm is supported",
            ));
        }
        let src = self.src(ctx, 0)?;
        // Folded into the conv that wrote its input when nothing else reads the conv's output;
        // otherwise a fixed per-channel affine of its input (DenseNet's pre-activation BN).
        let conv = match self.weights.get(&src) {
            Some(w)
                if matches!(self.graph.nodes[src].op, Op::Conv { .. })
                    && w.bn.is_none()
                    && self.readers(ctx.input(0)) == 1 =>
            {
                Some(src)
            }
            _ => None,
        };
        let o = match (conv, self.dims_of(src)?) {
            (Some(conv), _) => self.weights[&conv].b.len(),
            (None, Dims::Map(c, ..)) => c,
            (None, Dims::Flat(_) | Dims::Seq(..)) => {
                return Err(ctx.rule("normalizes a flat tensor: only feature maps (N, C, H, W)"))
            }
        };
        let mut values: [Vec<f32>; 4] = Default::default();
        for (i, v) in values.iter_mut().enumerate() {
            let t = self.constant(ctx, i + 1)?;
            if t.len() != o {
                return Err(ctx.rule(&format!(
                    "parameter {} has {} values for {o} channels",
                    i + 1,
                    t.len()
                )));
            }
            *v = t.floats();
        }
        let eps = a.float("epsilon", 1e-5);
        let Some(conv) = conv else {
            return self.affine_batch_norm(ctx, src, values, eps);
        };
        if let Some(w) = self.weights.get_mut(&conv) {
            w.bn = Some(bn_weights(values, eps));
        }
        self.push(ctx, Op::BatchNorm, &[conv])?;
        Ok(())
    }

    /// A residual add of two computed tensors, or a MatMul's bias.
    pub(super) fn add(&mut self, ctx: &Ctx) -> Result<(), OnnxError> {
        let names: Vec<&str> = ctx.node.input.iter().map(String::as_str).collect();
        let constant = names.iter().position(|n| self.consts.contains_key(*n));
        match constant {
            None => {
                let (a, b) = (self.src(ctx, 0)?, self.src(ctx, 1)?);
                self.push(ctx, Op::Add, &[a, b])?;
            }
            Some(k) if k > 1 => {
                let rule = format!("adds {} tensors; Add takes two", names.len());
                return Err(ctx.rule(&rule));
            }
            Some(k) => {
                let src = self.src(ctx, 1 - k)?;
                if self.affine_shift(ctx, k, src)? {
                    return Ok(());
                }
                let bias = self.constant(ctx, k)?.floats();
                let fresh = matches!(self.graph.nodes[src].op, Op::Linear { .. })
                    && src == self.graph.nodes.len() - 1;
                match self.weights.get_mut(&src) {
                    Some(w)
                        if fresh && w.b.len() == bias.len() && w.b.iter().all(|&v| v == 0.0) =>
                    {
                        w.b = bias;
                        self.ids.insert(ctx.output(0)?.to_string(), src);
                    }
                    _ => {
                        return Err(ctx.rule(
                            "adds a constant that is not a MatMul's bias nor the shift of a \
                             per-channel scale (Mul by a constant just before)",
                        ))
                    }
                }
            }
        }
        Ok(())
    }

    /// Clip(0, 6) is ReLU6, Clip(0, ∞) is ReLU; bounds as inputs (opset ≥ 11) or attributes.
    pub(super) fn clip(&self, ctx: &Ctx, a: &Attrs) -> Result<Op, OnnxError> {
        let bound = |i: usize, attr: &str| -> Result<Option<f32>, OnnxError> {
            match self.optional(ctx, i)? {
                Some(v) => Ok(v.floats().first().copied()),
                None => Ok(a.float_opt(attr)),
            }
        };
        let (lo, hi) = (bound(1, "min")?, bound(2, "max")?);
        match (lo, hi) {
            (Some(l), Some(h)) if l == 0.0 && h == 6.0 => Ok(Op::Relu6),
            (Some(0.0), None) => Ok(Op::Relu),
            (Some(l), Some(h)) if l == 0.0 && h.is_infinite() => Ok(Op::Relu),
            other => Err(a.bad(
                "min, max",
                other,
                "only Clip(0, 6) (ReLU6) and Clip(0) (ReLU)",
            )),
        }
    }
}
