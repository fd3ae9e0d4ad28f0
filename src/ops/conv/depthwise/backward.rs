//! The depthwise convolution's backward passes (the formulas are in `mod.rs`): with the weight
//! gradient, one piece per channel runs its examples in order (its sums' order), the input
//! gradient's planes of that channel alongside while the gradient is in cache; without it,
//! one piece per input-gradient plane.

use super::layout::{Spread, Wide};
use super::{Depthwise, Plan};
use crate::ops::activation::Activation;
use crate::ops::conv::direct::kernels::{
    add_lane_sums, masked_sum, Correlation, Narrowed, OutGrid, TapDots, LANES,
};
use crate::ops::parallel::for_each_piece;
use candle_core::Result;
use std::mem::MaybeUninit;

/// The gradient of the output and the output itself (for the activation's mask).
pub(super) type Upstream<'a> = (&'a [f32], &'a [f32]);

/// The input gradient's spread layout, flipped filters and grid.
struct InputPass {
    spread: Spread,
    taps: Vec<usize>,
    grid: OutGrid,
    /// Each channel's filter with its taps reversed (both axes flipped).
    flipped: Vec<f32>,
}

/// One worker's buffers, zeroed once (each layout rewrites the same places of its own).
struct Scratch {
    phases: Vec<f32>,
    wide: Vec<f32>,
    spread: Vec<f32>,
    /// 16 running lane sums per tap.
    lanes: Vec<f32>,
}

/// dW (C, k²) and db (C).
pub(super) type ParamGrads = (Vec<f32>, Vec<f32>);

impl Depthwise {
    /// dx if `want.0`, (dW, db) if `want.1`.
    pub(super) fn backward(
        &self,
        d: &Plan,
        (x, w): (&[f32], &[f32]),
        up: Upstream,
        want: (bool, bool),
    ) -> Result<(Option<Vec<f32>>, Option<ParamGrads>)> {
        let (c, k2, plane_in) = (d.g.c, d.k2(), d.plane_in());
        // An empty input plane has no gradient to compute (and no grid for one).
        let pass = (want.0 && plane_in > 0).then(|| {
            let spread = Spread::new(d.g);
            InputPass {
                taps: spread.taps(),
                grid: spread.grid(),
                spread,
                flipped: w
                    .chunks_exact(k2)
                    .flat_map(|f| f.iter().rev())
                    .copied()
                    .collect(),
            }
        });
        let wide = Wide::new(&d.phases);
        let scratch = || Scratch {
            phases: d.phases.buffer(),
            wide: wide.buffer(),
            spread: pass.as_ref().map_or(Vec::new(), |p| p.spread.buffer()),
            lanes: vec![0.0; k2 * LANES],
        };
        let total = if want.0 { d.n * c * plane_in } else { 0 };
        let mut dx = Vec::with_capacity(total);
        let dx_planes: Vec<&mut [MaybeUninit<f32>]> = dx.spare_capacity_mut()[..total]
            .chunks_mut(plane_in.max(1))
            .collect();
        let params = match want.1 {
            true => {
                let mut dwb = vec![0.0f32; c * (k2 + 1)];
                let mut per_channel: Vec<Vec<_>> = (0..c).map(|_| Vec::new()).collect();
                for (p, plane) in dx_planes.into_iter().enumerate() {
                    per_channel[p % c].push(plane);
                }
                let pieces = dwb.chunks_mut(k2 + 1).zip(per_channel).collect();
                for_each_piece(pieces, scratch, |s, ch, (sums, dxs)| {
                    self.channel(d, ch, (x, up), (&wide, pass.as_ref()), s, sums, dxs);
                    Ok(())
                })?;
                let dw = dwb.chunks_exact(k2 + 1).flat_map(|a| &a[..k2]).copied();
                let db = dwb.chunks_exact(k2 + 1).map(|a| a[k2]);
                Some((dw.collect(), db.collect()))
            }
            false => {
                if let Some(pass) = &pass {
                    for_each_piece(dx_planes, scratch, |s, p, out| {
                        self.input_grad(d, pass, p, up, &mut s.spread, out);
                        Ok(())
                    })?;
                }
                None
            }
        };
        // SAFETY: with `want.0`, every plane of `dx` was handed to `input_grad` (per channel
        // in `channel`, else per plane above), which writes all of it (the correlation stores
        // every output of its h × w grid); an error would have returned above. Otherwise
        // `total` is 0.
        unsafe { dx.set_len(total) };
        Ok((want.0.then_some(dx), params))
    }

    /// Channel `ch`'s dW and db (into `sums`: k² weights, then the bias), and its input
    /// gradient planes `dxs` (one per example, or none).
    #[allow(clippy::too_many_arguments)]
    fn channel(
        &self,
        d: &Plan,
        ch: usize,
        (x, up): (&[f32], Upstream),
        (wide, pass): (&Wide, Option<&InputPass>),
        s: &mut Scratch,
        sums: &mut [f32],
        mut dxs: Vec<&mut [MaybeUninit<f32>]>,
    ) {
        let (c, k2) = (d.g.c, d.k2());
        let (plane_in, plane_out) = (d.plane_in(), d.plane_out());
        s.lanes.fill(0.0);
        let mut db = 0.0f32;
        for i in 0..d.n {
            let p = i * c + ch;
            let gy = (
                &up.0[p * plane_out..][..plane_out],
                &up.1[p * plane_out..][..plane_out],
            );
            let g = wide.fill(gy, self.activation, &mut s.wide);
            let planes = d
                .phases
                .fill(&x[p * plane_in..][..plane_in], self.act, &mut s.phases);
            let dots = TapDots {
                x: planes,
                c: 1,
                hw: d.phases.len(),
                taps: &d.taps,
                g,
                rows: 1,
                stride: wide.len(),
                len: wide.len(),
                examples: 1,
                x_step: 0,
                g_step: 0,
            };
            dots.accumulate_on(self.isa, &mut s.lanes);
            db += masked_sum(g, None);
            if let (Some(pass), Some(out)) = (pass, dxs.get_mut(i)) {
                self.input_grad(d, pass, p, up, &mut s.spread, out);
            }
        }
        add_lane_sums(&s.lanes, &mut sums[..k2]);
        sums[k2] = db;
    }

    /// Input gradient plane `p` (example `p / C`, channel `p % C`), all of `out`.
    fn input_grad(
        &self,
        d: &Plan,
        pass: &InputPass,
        p: usize,
        up: Upstream,
        spread: &mut [f32],
        out: &mut [MaybeUninit<f32>],
    ) {
        let (ch, k2, plane_out) = (p % d.g.c, d.k2(), d.plane_out());
        let gy = (
            &up.0[p * plane_out..][..plane_out],
            &up.1[p * plane_out..][..plane_out],
        );
        let planes = pass.spread.fill(gy, self.activation, spread);
        let corr = Correlation {
            x: planes,
            c: 1,
            hw: pass.spread.len(),
            taps: &pass.taps,
            w: &pass.flipped[ch * k2..][..k2],
            rows: 1,
        };
        corr.run_on(
            self.isa,
            &mut Narrowed {
                y: out,
                grid: &pass.grid,
                bias: &[],
                activation: Activation::Identity,
            },
        );
    }
}
