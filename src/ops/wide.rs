//! Zero-bordered planes and the "wide" grid of a stride-1 convolution: `fill_padded` (with a
//! fused ReLU mask or activation quantizer), `Planes`, and the wide column matrix, im2col
//! without the per-row copies.
//!
//! With the input plane padded to `wp = w + 2p` columns, output `(oy, ox)` becomes column
//! `q = oy·wp + ox` of a wide grid, and row `(c, ki, kj)` of the column matrix is then one
//! contiguous run of the padded input, `xpad[c, ki, kj ..][..L]` with `L = (oh−1)·wp + ow`. So
//! the matrix is built with one copy per row (`C·k·k` copies of `L` values) instead of one per row
//! and output line (`C·k·k·oh` copies of `ow` values: LeNet-5's second conv copied 8 floats at a
//! time, and `perf record` put im2col, col2im and memmove at 38% of a search's time). The grid's
//! `wp − ow` wrap-around columns per line cost a little extra gemm work and are dropped (forward)
//! or held at zero (backward).

use super::direct::{relu_pass, TAIL};
use super::im2col::Geometry;
use crate::quant::ActGrid;
use std::mem::MaybeUninit;

/// Sizes of the wide grid of one stride-1 convolution.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Wide {
    /// Padded plane: rows and columns.
    pub hp: usize,
    pub wp: usize,
    /// Wide columns: `(oh − 1)·wp + ow`.
    pub len: usize,
}

impl Wide {
    /// The wide grid of `g`, or None unless the stride is 1.
    pub(crate) fn of(g: &Geometry) -> Option<Wide> {
        if g.stride != 1 || g.oh == 0 || g.ow == 0 {
            return None;
        }
        let (hp, wp) = (g.h + 2 * g.padding, g.w + 2 * g.padding);
        Some(Wide {
            hp,
            wp,
            len: (g.oh - 1) * wp + g.ow,
        })
    }

    /// Values of one padded example.
    pub(crate) fn padded_len(&self, g: &Geometry) -> usize {
        g.c * self.hp * self.wp
    }

    /// Writes example `x` (C, H, W) into the middle of `pad` (C, hp, wp), zero borders.
    pub(crate) fn pad(&self, g: &Geometry, x: &[f32], pad: &mut [f32]) {
        fill_padded(x, (g.h, g.w), g.padding, RowMap::Copy, pad);
    }

    /// Fills `col` ((C·k·k) × len) from the padded example `xp`: row `(c, ki, kj)` is the run
    /// starting at `xp[c, ki, kj]`.
    pub(crate) fn im2col(&self, g: &Geometry, xp: &[f32], col: &mut [f32]) {
        for (r, row) in col.chunks_exact_mut(self.len).enumerate() {
            row.copy_from_slice(&xp[self.start(g, r)..][..self.len]);
        }
    }

    /// The adjoint of `im2col`: adds every row of `col` into the padded gradient `dxp`.
    pub(crate) fn col2im_add(&self, g: &Geometry, col: &[f32], dxp: &mut [f32]) {
        for (r, row) in col.chunks_exact(self.len).enumerate() {
            let start = self.start(g, r);
            (dxp[start..][..self.len].iter_mut())
                .zip(row)
                .for_each(|(d, &v)| *d += v);
        }
    }

    /// Where row `r = (c, ki, kj)` starts in a padded example.
    fn start(&self, g: &Geometry, r: usize) -> usize {
        let (c, ki, kj) = (r / (g.k * g.k), r / g.k % g.k, r % g.k);
        (c * self.hp + ki) * self.wp + kj
    }

    /// Copies the valid columns of the wide rows `wide` (O × len) into `out` (O × oh·ow).
    pub(crate) fn narrow(&self, g: &Geometry, wide: &[f32], out: &mut [f32]) {
        for (wr, or) in wide
            .chunks_exact(self.len)
            .zip(out.chunks_exact_mut(g.oh * g.ow))
        {
            for (oy, line) in or.chunks_exact_mut(g.ow).enumerate() {
                line.copy_from_slice(&wr[oy * self.wp..][..g.ow]);
            }
        }
    }

    /// Spreads `out` (O × oh·ow) onto the valid columns of `wide` (O × len), whose wrap-around
    /// columns stay zero (zero-filled once, never written).
    pub(crate) fn widen(&self, g: &Geometry, out: &[f32], wide: &mut [f32]) {
        for (or, wr) in out
            .chunks_exact(g.oh * g.ow)
            .zip(wide.chunks_exact_mut(self.len))
        {
            for (oy, line) in or.chunks_exact(g.ow).enumerate() {
                wr[oy * self.wp..][..g.ow].copy_from_slice(line);
            }
        }
    }

    /// Adds the middle of the padded gradient `dxp` (C, hp, wp) into `dx` (C, H, W).
    pub(crate) fn unpad_add(&self, g: &Geometry, dxp: &[f32], dx: &mut [f32]) {
        let p = g.padding;
        for (dc, pc) in dx
            .chunks_exact_mut(g.h * g.w)
            .zip(dxp.chunks_exact(self.hp * self.wp))
        {
            for (dr, pr) in dc
                .chunks_exact_mut(g.w)
                .zip(pc.chunks_exact(self.wp).skip(p))
            {
                dr.iter_mut().zip(&pr[p..]).for_each(|(d, &v)| *d += v);
            }
        }
    }
}

/// What a copy into planes does to each value.
#[derive(Clone, Copy, Debug)]
pub(crate) enum RowMap<'a> {
    Copy,
    /// Keeps a value only where the fused ReLU's output (laid out like the source) is positive.
    Relu(&'a [f32]),
    /// The input's activation quantizer, fused into the copy.
    Quant(ActGrid),
}

impl RowMap<'_> {
    /// `dst = map(src)`, where `src` starts at value `at` of the whole source; the quantizer
    /// is left to `fill_padded`'s one pass (the values are copied here).
    fn apply(&self, dst: &mut [f32], src: &[f32], at: usize) {
        match *self {
            RowMap::Copy | RowMap::Quant(_) => copy_masked(dst, src, None),
            RowMap::Relu(m) => copy_masked(dst, src, Some(&m[at..][..src.len()])),
        }
    }
}

/// Example `src` (C, h, w), mapped by `map`, into the middles of the zero-bordered planes
/// (C, h + 2·pad, w + 2·pad) of `dst`. Only the middles are written: `dst`'s borders and tail
/// must be zero already (a scratch buffer, zeroed when made and reused). Writing the borders
/// every time cost two small memsets per row, a libc call each (BENCHMARKS.md).
pub(crate) fn fill_padded<'a>(
    src: &[f32],
    (h, w): (usize, usize),
    pad: usize,
    map: RowMap,
    dst: &'a mut [f32],
) -> &'a [f32] {
    let wp = w + 2 * pad;
    let plane = (h + 2 * pad) * wp;
    for (i, row) in src.chunks_exact(w).enumerate() {
        let (c, y) = (i / h, i % h);
        map.apply(
            &mut dst[c * plane + (y + pad) * wp + pad..][..w],
            row,
            i * w,
        );
    }
    // Quantized in one pass over the whole planes, borders included (they stay +0): rows of
    // 14 or 28 values left most of the work to the vector loop's scalar tails.
    if let RowMap::Quant(q) = map {
        let planes = src.len().checked_div(h * w).unwrap_or(0);
        q.quantize_in_place(&mut dst[..planes * plane]);
    }
    dst
}

/// An initialized buffer seen as one `fill_padded` may write.
pub(crate) fn as_uninit(x: &mut [f32]) -> &mut [MaybeUninit<f32>] {
    // SAFETY: same layout; the callers only ever write initialized values through it.
    unsafe { &mut *(x as *mut [f32] as *mut [MaybeUninit<f32>]) }
}

/// `dst = src` where `mask` (if any) is positive, else +0. (The unmasked loop compiles to a
/// `memmove` call per row; AVX-512 masked copies instead measured no faster, BENCHMARKS.md.)
pub(crate) fn copy_masked(dst: &mut [f32], src: &[f32], mask: Option<&[f32]>) {
    match mask {
        Some(m) => {
            for ((d, &s), &y) in dst.iter_mut().zip(src).zip(m) {
                *d = relu_pass(s, y);
            }
        }
        None => dst.iter_mut().zip(src).for_each(|(d, &s)| *d = s),
    }
}

/// Zero-bordered planes of one side (input, or output gradient) of a convolution.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Planes {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub pad: usize,
}

impl Planes {
    pub(crate) fn wp(&self) -> usize {
        self.w + 2 * self.pad
    }

    /// Values per padded plane.
    pub(crate) fn hw(&self) -> usize {
        (self.h + 2 * self.pad) * self.wp()
    }

    /// A zeroed buffer for every plane plus the kernels' `TAIL`: `fill` writes only the
    /// middles, so its borders stay zero however often it is reused.
    pub(crate) fn buffer(&self) -> Vec<f32> {
        vec![0.0; self.c * self.hw() + TAIL]
    }

    /// Example `src` (C, H, W), mapped by `map`, into the planes (zero borders and tail) of
    /// `dst` (`fill_padded`).
    pub(crate) fn fill<'a>(&self, src: &[f32], map: RowMap, dst: &'a mut [f32]) -> &'a [f32] {
        fill_padded(src, (self.h, self.w), self.pad, map, dst)
    }

    /// The taps of a k×k kernel: offsets `ki·wp + kj`.
    pub(crate) fn taps(&self, k: usize) -> Vec<usize> {
        (0..k * k).map(|t| t / k * self.wp() + t % k).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::im2col::{col2im_add, im2col};
    use super::*;
    use candle_core::Result;

    /// The wide matrix's valid columns are exactly im2col's matrix, and its adjoint adds back
    /// exactly what col2im adds, for paddings 0..2 and odd sizes.
    #[test]
    fn wide_columns_are_im2col_and_its_adjoint_is_col2im() -> Result<()> {
        for &(c, h, w, k, p) in &[
            (1, 5, 5, 3, 0),
            (2, 6, 7, 3, 1),
            (3, 7, 5, 2, 0),
            (2, 5, 6, 5, 2),
        ] {
            let g = Geometry::new((c, h, w), k, 1, p)?;
            let wide = Wide::of(&g).expect("stride 1");
            let x: Vec<f32> = (0..g.in_len()).map(|i| i as f32 + 1.0).collect();
            let mut pad = vec![0.0; wide.padded_len(&g)];
            wide.pad(&g, &x, &mut pad);
            let mut col_w = vec![f32::NAN; g.col_rows() * wide.len];
            wide.im2col(&g, &pad, &mut col_w);
            let mut got = vec![f32::NAN; g.col_rows() * g.col_cols()];
            wide.narrow(&g, &col_w, &mut got);
            let mut want = vec![0.0; got.len()];
            im2col(&x, &g, &mut want);
            assert_eq!(got, want, "im2col {g:?}");

            let col: Vec<f32> = (0..want.len()).map(|i| (i % 97) as f32).collect();
            let mut col_wide = vec![0.0; col_w.len()];
            wide.widen(&g, &col, &mut col_wide);
            let mut dxp = vec![0.0; pad.len()];
            wide.col2im_add(&g, &col_wide, &mut dxp);
            let mut got = vec![0.0; g.in_len()];
            wide.unpad_add(&g, &dxp, &mut got);
            let mut want = vec![0.0; g.in_len()];
            col2im_add(&col, &g, &mut want);
            assert_eq!(got, want, "col2im {g:?}");
        }
        Ok(())
    }
}
