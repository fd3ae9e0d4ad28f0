//! The direct convolution's weight gradient, alone (`weight_grad`) or in one pass with the
//! input gradient (`both_grads`, when the output gradient's planes can serve both):
//! `dw[o, c, tap] = Σ_n Σ_q g_n[o, q] · pad_p(x_n)[c, q + s_tap]`, the batch cut into fixed
//! chunks of examples (`conv2d.rs`'s `WEIGHT_GRAD_CHUNK`), each chunk summed in example order
//! and the chunks' sums added in chunk order; the bias sums ride along (`plane_sums`).

use super::kernels::{add_lane_sums, masked_sum, OutGrid, TapDots, LANES, TAIL};
use super::passes::{input_map, Direct, Upstream};
use crate::ops::conv::planes::copy_masked;
use crate::ops::parallel::{chunk_count, split_by_chunks, sum_in_fixed_chunks_with};
use crate::quant::ActGrid;
use candle_core::Result;
use std::ops::Range;

impl Direct {
    /// Whether the (ReLU-masked) output gradient's planes, padded by `k − 1 − p` for the input
    /// gradient, also serve as the weight gradient's wide grid: when that padding is `p` (a
    /// "same" convolution), plane row `r + p` from column `p` is the grid's row `r`, with zeros
    /// in its wrap-around columns, and the zeros after a plane's last row cover the grid's
    /// rounding up to whole vectors.
    pub(crate) fn shares_grad_planes(&self) -> bool {
        let (p, wp) = (self.input.pad, self.input.wp());
        let (len, valid) = self.wide_len();
        self.grad.pad == p && p * wp + p <= TAIL && len - valid <= 2 * p * (wp + 1)
    }

    /// The weight gradient's wide grid: its length rounded up to whole vectors, and unrounded.
    fn wide_len(&self) -> (usize, usize) {
        let valid = OutGrid::wide_len(self.g.oh, self.g.ow, self.input.wp());
        (valid.div_ceil(LANES) * LANES, valid)
    }

    /// `dw` (O, C, k, k) over `n` examples of the input `act?(x)`: chunks of `chunk` examples
    /// in parallel, each summed in example order (`examples_per_call` at a time), the chunks'
    /// sums added in chunk order. The input's planes are copied again rather than kept from the
    /// forward, so that they are in cache when the kernel reads them.
    pub(crate) fn weight_grad(
        &self,
        x: &[f32],
        act: Option<ActGrid>,
        grad: Upstream,
        (n, chunk): (usize, usize),
        sums: Option<&mut [f32]>,
    ) -> Result<Vec<f32>> {
        let (g, o, wp) = (&self.g, self.o, self.input.wp());
        let (len, _) = self.wide_len();
        let taps = self.input.taps(g.k);
        let dw_len = o * g.c * g.k * g.k;
        let out_len = o * g.oh * g.ow;
        let per = self.examples_per_call();
        let x_step = self.input.buffer_len();
        // Each of `per` examples' input planes, and its gradient's wide grid (wrap-around
        // columns and tail never written), and 16 running sums per weight for the chunk.
        let scratch = || {
            (
                vec![0.0; per * x_step],
                vec![0.0; per * o * len],
                vec![0.0; dw_len * LANES],
            )
        };
        let pieces = self.sum_pieces(sums, n, chunk);
        sum_in_fixed_chunks_with(
            n,
            chunk,
            dw_len,
            pieces,
            scratch,
            |(planes, wide, lanes), examples, mut sums, acc| {
                lanes.fill(0.0);
                for group in groups(&examples, per) {
                    for (k, i) in group.clone().enumerate() {
                        let xi = &x[i * g.in_len()..][..g.in_len()];
                        let dst = &mut planes[k * x_step..][..x_step];
                        self.input.fill(xi, input_map(act), dst);
                        let gi = grad.example(i, out_len);
                        if let Some(s) = sums.as_deref_mut() {
                            let e = i - examples.start;
                            self.plane_sums(gi, &mut s[e * o..][..o]);
                        }
                        let grid = &mut wide[k * o * len..][..o * len];
                        for (r, line) in gi.g.chunks_exact(g.ow).enumerate() {
                            let (oc, oy) = (r / g.oh, r % g.oh);
                            let mask = gi.relu_out.map(|y| &y[r * g.ow..][..g.ow]);
                            copy_masked(&mut grid[oc * len + oy * wp..][..g.ow], line, mask);
                        }
                    }
                    let xs = (planes.as_slice(), x_step);
                    self.tap_dots(&taps, xs, (wide, len, o * len), group.len(), lanes);
                }
                add_lane_sums(lanes, acc);
                Ok(())
            },
        )
    }

    /// Both gradients in one pass when `shares_grad_planes` holds: per example, the masked
    /// gradient is copied once into its planes, which serve the input gradient and, while
    /// still in cache, the weight gradient as its wide grid. The same sums in the same order
    /// as `input_grad` and `weight_grad`.
    pub(crate) fn both_grads(
        &self,
        x: &[f32],
        act: Option<ActGrid>,
        w: &[f32],
        grad: Upstream,
        (n, chunk): (usize, usize),
        sums: Option<&mut [f32]>,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        let (g, o, wp) = (&self.g, self.o, self.input.wp());
        let pass = self.input_pass(w, grad);
        let taps = self.input.taps(g.k);
        let (in_len, dw_len) = (g.in_len(), o * g.c * g.k * g.k);
        let total = n * in_len;
        let mut dx = Vec::with_capacity(total);
        // One piece of `dx` per chunk of examples, every one of them (whatever `in_len` is):
        // `sum_in_fixed_chunks_with` hands each piece to the closure, which writes it whole.
        let dx_pieces = split_by_chunks(&mut dx.spare_capacity_mut()[..total], n, chunk, in_len);
        let dxs = dx_pieces
            .into_iter()
            .zip(self.sum_pieces(sums, n, chunk))
            .collect();
        // The grid starts at row p, column p of each gradient plane.
        let at = self.grad.pad * wp + self.grad.pad;
        let per = self.examples_per_call();
        let (x_step, g_step) = (self.input.buffer_len(), self.grad.buffer_len());
        let scratch = || {
            let lanes = vec![0.0; dw_len * LANES];
            (vec![0.0; per * x_step], vec![0.0; per * g_step], lanes)
        };
        let dw = sum_in_fixed_chunks_with(
            n,
            chunk,
            dw_len,
            dxs,
            scratch,
            |(xp, gp, lanes), examples, (dxc, mut sums), acc| {
                lanes.fill(0.0);
                let mut dx_out = dxc.chunks_mut(in_len);
                for group in groups(&examples, per) {
                    for (k, (i, dxn)) in group.clone().zip(&mut dx_out).enumerate() {
                        let gplanes = pass.grad_planes(i, &mut gp[k * g_step..][..g_step]);
                        if let Some(s) = sums.as_deref_mut() {
                            let gi = grad.example(i, o * g.oh * g.ow);
                            let e = i - examples.start;
                            self.plane_sums(gi, &mut s[e * o..][..o]);
                        }
                        pass.example(gplanes, dxn);
                        let xi = &x[i * in_len..][..in_len];
                        let dst = &mut xp[k * x_step..][..x_step];
                        self.input.fill(xi, input_map(act), dst);
                    }
                    let gs = (&gp[at..], self.grad.hw(), g_step);
                    self.tap_dots(&taps, (xp.as_slice(), x_step), gs, group.len(), lanes);
                }
                add_lane_sums(lanes, acc);
                Ok(())
            },
        )?;
        // SAFETY: `dx_pieces` cut all `total` values into one piece per chunk of examples;
        // `sum_in_fixed_chunks_with` handed every piece to the closure above (it checks that
        // there is one piece per chunk, and runs each even when the weight gradient is empty),
        // and the closure wrote each example's `in_len` values through `InputPass::example`.
        // Any error returned above, before this line.
        unsafe { dx.set_len(total) };
        Ok((dx, dw))
    }

    /// Each chunk's part of the per-example bias sums (`None` for every chunk without them).
    fn sum_pieces<'s>(
        &self,
        sums: Option<&'s mut [f32]>,
        n: usize,
        chunk: usize,
    ) -> Vec<Option<&'s mut [f32]>> {
        match sums {
            Some(s) => split_by_chunks(&mut s[..n * self.o], n, chunk, self.o)
                .into_iter()
                .map(Some)
                .collect(),
            None => (0..chunk_count(n, chunk)).map(|_| None).collect(),
        }
    }

    /// Example `gi`'s bias sums, one per output channel: `masked_sum` of each gradient plane
    /// with its ReLU mask, read while the example's gradient is in cache rather than in a
    /// separate pass over the whole gradient.
    fn plane_sums(&self, gi: Upstream, out: &mut [f32]) {
        let plane = self.g.oh * self.g.ow;
        for (o, s) in out.iter_mut().enumerate() {
            let mask = gi.relu_out.map(|y| &y[o * plane..][..plane]);
            *s = masked_sum(&gi.g[o * plane..][..plane], mask);
        }
    }

    /// Examples per `TapDots` call: on planes whose gradient rows hold at most 20 vectors the
    /// kernels would otherwise load and store each running sum every few products
    /// (BENCHMARKS.md, the convolution kernels); larger planes take one at a time, to keep
    /// their operands in cache.
    fn examples_per_call(&self) -> usize {
        if self.wide_len().0 <= 20 * LANES {
            4
        } else {
            1
        }
    }

    /// `examples` examples' weight-gradient sums, in order: input planes `x.0` (one example
    /// every `x.1` values, taps `taps`), gradient rows `g.0` (at stride `g.1`, one example
    /// every `g.2` values).
    fn tap_dots(
        &self,
        taps: &[usize],
        x: (&[f32], usize),
        g: (&[f32], usize, usize),
        examples: usize,
        lanes: &mut [f32],
    ) {
        let dots = TapDots {
            x: x.0,
            c: self.g.c,
            hw: self.input.hw(),
            taps,
            g: g.0,
            rows: self.o,
            stride: g.1,
            len: self.wide_len().0,
            examples,
            x_step: x.1,
            g_step: g.2,
        };
        dots.accumulate(lanes);
    }
}

/// `examples` cut into consecutive runs of `per` (the last one shorter), in order.
fn groups(examples: &Range<usize>, per: usize) -> impl Iterator<Item = Range<usize>> {
    let end = examples.end;
    examples
        .clone()
        .step_by(per)
        .map(move |first| first..(first + per).min(end))
}
