//! The column matrix of one example (C, H, W) and its adjoint, for a square-kernel 2-D
//! convolution: `im2col` / `col2im_add` at any stride, and `Wide`, the stride-1 "wide" column
//! matrix built with one copy per row.
//!
//! The column matrix is `(C·k·k) × (OH·OW)`, row-major: row `(c, ki, kj)` holds, for every
//! output position `(oy, ox)`, the input pixel `x[c, oy·s + ki − p, ox·s + kj − p]` (0 in the
//! padding). A convolution is then `out (O, OH·OW) = w (O, C·k·k) @ col`.
//!
//! The wide matrix: with the input plane padded to `wp = w + 2p` columns, output `(oy, ox)`
//! becomes column `q = oy·wp + ox` of a wide grid, and row `(c, ki, kj)` is then one contiguous
//! run of the padded input, `xpad[c, ki, kj ..][..L]` with `L = (oh − 1)·wp + ow`: `C·k·k`
//! copies of `L` values instead of `C·k·k·oh` copies of `ow`. The grid's `wp − ow` wrap-around
//! columns per line are dropped (forward) or held at zero (backward).

use super::geometry::Geometry;
use super::planes::{fill_padded, RowMap};

/// Fills `col` ((C*k*k) x (OH*OW)) from one example `x` (C*H*W).
pub(crate) fn im2col(x: &[f32], g: &Geometry, col: &mut [f32]) {
    let (k, s, ow) = (g.k, g.stride, g.ow);
    for (row, col_row) in col.chunks_exact_mut(g.col_cols()).enumerate() {
        let (c, ki, kj) = (row / (k * k), row / k % k, row % k);
        let xs = g.valid_ox(kj);
        for (oy, out) in col_row.chunks_exact_mut(ow).enumerate() {
            let Some(y) = g.src(oy, ki, g.h) else {
                out.fill(0.0);
                continue;
            };
            let x_row = &x[(c * g.h + y) * g.w..][..g.w];
            out[..xs.start].fill(0.0);
            out[xs.end..].fill(0.0);
            if xs.is_empty() {
                continue;
            }
            let x0 = xs.start * s + kj - g.padding;
            if s == 1 {
                out[xs.clone()].copy_from_slice(&x_row[x0..x0 + xs.len()]);
            } else {
                for (o, &v) in out[xs.clone()]
                    .iter_mut()
                    .zip(x_row[x0..].iter().step_by(s))
                {
                    *o = v;
                }
            }
        }
    }
}

/// Adds the column matrix `col` back into one example's input gradient `dx` (the adjoint of
/// `im2col`): every pixel receives the sum over the windows that read it.
pub(crate) fn col2im_add(col: &[f32], g: &Geometry, dx: &mut [f32]) {
    let (k, s, ow) = (g.k, g.stride, g.ow);
    for (row, col_row) in col.chunks_exact(g.col_cols()).enumerate() {
        let (c, ki, kj) = (row / (k * k), row / k % k, row % k);
        let xs = g.valid_ox(kj);
        if xs.is_empty() {
            continue;
        }
        let x0 = xs.start * s + kj - g.padding;
        for (oy, src) in col_row.chunks_exact(ow).enumerate() {
            let Some(y) = g.src(oy, ki, g.h) else {
                continue;
            };
            let dx_row = &mut dx[(c * g.h + y) * g.w..][..g.w];
            for (d, &v) in dx_row[x0..].iter_mut().step_by(s).zip(&src[xs.clone()]) {
                *d += v;
            }
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Result;

    /// The column matrix by the definition, one element at a time.
    fn naive_im2col(x: &[f32], g: &Geometry) -> Vec<f32> {
        let mut col = Vec::new();
        for c in 0..g.c {
            for ki in 0..g.k {
                for kj in 0..g.k {
                    for oy in 0..g.oh {
                        for ox in 0..g.ow {
                            let y = (oy * g.stride + ki) as isize - g.padding as isize;
                            let xx = (ox * g.stride + kj) as isize - g.padding as isize;
                            let inside =
                                (0..g.h as isize).contains(&y) && (0..g.w as isize).contains(&xx);
                            let i = (c * g.h) as isize * g.w as isize + y * g.w as isize + xx;
                            col.push(if inside { x[i as usize] } else { 0.0 });
                        }
                    }
                }
            }
        }
        col
    }

    /// col2im by the definition: every column entry is added to the pixel it was read from.
    fn naive_col2im(col: &[f32], g: &Geometry) -> Vec<f32> {
        let mut dx = vec![0.0; g.in_len()];
        let mut next = col.iter();
        for c in 0..g.c {
            for ki in 0..g.k {
                for kj in 0..g.k {
                    for oy in 0..g.oh {
                        for ox in 0..g.ow {
                            let v = next.next().copied().unwrap_or(f32::NAN);
                            let y = (oy * g.stride + ki) as isize - g.padding as isize;
                            let xx = (ox * g.stride + kj) as isize - g.padding as isize;
                            if (0..g.h as isize).contains(&y) && (0..g.w as isize).contains(&xx) {
                                dx[(c * g.h + y as usize) * g.w + xx as usize] += v;
                            }
                        }
                    }
                }
            }
        }
        dx
    }

    #[test]
    fn im2col_and_col2im_match_definition_for_strides_and_padding() -> Result<()> {
        for &(c, h, w, k, s, p) in &[
            (1, 5, 5, 3, 1, 0),
            (2, 6, 7, 3, 2, 1),
            (3, 7, 5, 2, 2, 0),
            (1, 4, 4, 3, 3, 2),
            (2, 5, 6, 5, 1, 2),
            (1, 3, 3, 3, 2, 2),
        ] {
            let g = Geometry::new((c, h, w), k, s, p)?;
            let x: Vec<f32> = (0..g.in_len()).map(|i| i as f32 + 1.0).collect();
            let mut col = vec![f32::NAN; g.col_rows() * g.col_cols()];
            im2col(&x, &g, &mut col);
            assert_eq!(col, naive_im2col(&x, &g), "im2col {g:?}");
            // Distinct column values (small integers, exact in f32) so a misrouted add shows.
            let col: Vec<f32> = (0..col.len()).map(|i| (i % 97) as f32).collect();
            let mut dx = vec![0.0; g.in_len()];
            col2im_add(&col, &g, &mut dx);
            assert_eq!(dx, naive_col2im(&col, &g), "col2im {g:?}");
        }
        Ok(())
    }

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
