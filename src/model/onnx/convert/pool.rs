//! The pools: MaxPool and AveragePool over square windows, and ReduceMean over a feature map's
//! spatial axes, which is a global average pool: `y[n, c] = Σ_hw x[n, c, h, w] / (H·W)`
//! (`x.mean((2, 3))` and `nn.AdaptiveAvgPool2d(1)` export to it).

use super::{Builder, Ctx};
use crate::model::graph::{Dims, Op};
use crate::model::onnx::tensor::{Attrs, MAX_SPATIAL};
use crate::model::onnx::OnnxError;

impl Builder<'_> {
    /// ReduceMean over axes (2, 3) of a feature map: a global average pool, then a flatten when
    /// `keepdims` is 0. The axes come from input 1 (opset ≥ 18) or the `axes` attribute.
    /// ReduceSum over them is H·W times that pool, which the graph has no op to scale by: it is
    /// refused with what to export instead.
    pub(super) fn reduce(&mut self, ctx: &Ctx, a: &Attrs) -> Result<(), OnnxError> {
        if let Some(name) = a.unknown(&["axes", "keepdims", "noop_with_empty_axes"]) {
            return Err(a.bad(
                &name,
                "set",
                "not an attribute of the reductions bitsearch imports",
            ));
        }
        let src = self.src(ctx, 0)?;
        let axes = match self.optional(ctx, 1)? {
            Some(v) => Some(
                (v.ints().map(<[i64]>::to_vec))
                    .ok_or_else(|| ctx.rule("its axes (input 1) must be integers"))?,
            ),
            None => a.ints("axes"),
        };
        let axes = axes.unwrap_or_default();
        if axes.is_empty() && a.int("noop_with_empty_axes", 0) != 0 {
            // No axes and the no-op flag: ONNX defines the output as the input.
            self.ids.insert(ctx.output(0)?.to_string(), src);
            return Ok(());
        }
        let rank: i64 = match self.dims_of(src)? {
            Dims::Map(..) => 4,
            Dims::Flat(_) => 2,
            Dims::Seq(..) => 3,
        };
        let mut named: Vec<i64> = (axes.iter())
            .map(|&v| if (-rank..0).contains(&v) { v + rank } else { v })
            .collect();
        named.sort_unstable();
        named.dedup();
        if named != [2, 3] || rank != 4 {
            let what = match axes.is_empty() {
                true => "every axis".to_string(),
                false => format!("axes {axes:?}"),
            };
            return Err(ctx.rule(&format!(
                "reduces {what} of a rank-{rank} tensor; only the spatial axes (2, 3) of a \
                 feature map (N, C, H, W) are imported, as a global average pool"
            )));
        }
        if ctx.op == "ReduceSum" {
            return Err(ctx.rule(
                "a sum over the spatial axes is H·W times a global average pool, and \
                 bitsearch's graph has no op to scale it: export the mean instead \
                 (x.mean((2, 3)) or nn.AdaptiveAvgPool2d(1))",
            ));
        }
        let keep = match a.int("keepdims", 1) {
            v @ (0 | 1) => v == 1,
            v => return Err(a.bad("keepdims", v, "must be 0 or 1")),
        };
        let pooled = self.push(ctx, Op::GlobalAvgPool, &[src])?;
        if !keep {
            // (N, C, 1, 1) → (N, C): the dims a reduction without keepdims leaves.
            self.push(ctx, Op::Flatten, &[pooled])?;
        }
        Ok(())
    }
}

/// MaxPool with square windows, the same padding on every side (less than the window) and
/// either rounding; AveragePool with square windows, no padding, rounding down.
pub(super) fn pool(ctx: &Ctx, a: &Attrs) -> Result<Op, OnnxError> {
    let known = [
        "kernel_shape",
        "strides",
        "pads",
        "ceil_mode",
        "dilations",
        "auto_pad",
        "count_include_pad",
        "storage_order",
    ];
    if let Some(name) = a.unknown(&known) {
        return Err(a.bad(
            &name,
            "set",
            "not an attribute of the pools bitsearch imports",
        ));
    }
    let k = square(a, "kernel_shape", None)?;
    let stride = square(a, "strides", Some(1))?;
    let max = ctx.op == "MaxPool";
    let pad = match a.ints("pads") {
        None => 0,
        Some(p) if p.iter().all(|&v| v == 0) => 0,
        Some(p) if max && p.len() == 4 && p.iter().all(|&v| v == p[0]) && p[0] < k as i64 => {
            p[0] as usize
        }
        Some(p) if max => {
            let rule =
                format!("needs the same padding on all four sides, less than the window {k}");
            return Err(a.bad("pads", p, &rule));
        }
        Some(p) => return Err(a.bad("pads", p, "average pools with padding are not supported")),
    };
    let ceil = match a.int("ceil_mode", 0) {
        0 => false,
        1 if max => true,
        v => {
            let rule = match max {
                true => "must be 0 or 1",
                false => "average pools round down only (ceil_mode 0)",
            };
            return Err(a.bad("ceil_mode", v, rule));
        }
    };
    if let Some(d) = a.ints("dilations").filter(|d| d.iter().any(|&v| v != 1)) {
        return Err(a.bad("dilations", d, "only dilation 1 is supported"));
    }
    check_auto_pad(a)?;
    Ok(match max {
        true => Op::MaxPool {
            k,
            stride,
            pad,
            ceil,
        },
        false => Op::AvgPool { k, stride },
    })
}

/// An attribute holding two equal values from 1 to `MAX_SPATIAL` (`default` when absent).
pub(super) fn square(a: &Attrs, name: &str, default: Option<usize>) -> Result<usize, OnnxError> {
    let fits = |v: i64| v >= 1 && v as u64 <= MAX_SPATIAL as u64;
    match (a.ints(name), default) {
        (None, Some(d)) => Ok(d),
        (Some(v), _) if v.len() == 2 && v[0] == v[1] && fits(v[0]) => Ok(v[0] as usize),
        (v, _) => Err(a.bad(
            name,
            v,
            &format!("needs two equal values from 1 to {MAX_SPATIAL} (square)"),
        )),
    }
}

pub(super) fn check_auto_pad(a: &Attrs) -> Result<(), OnnxError> {
    match a.string("auto_pad").as_deref() {
        None | Some("NOTSET") | Some("VALID") => Ok(()),
        Some(v) => Err(a.bad("auto_pad", v, "only explicit pads are supported")),
    }
}
