//! im2col / col2im for square-kernel 2-D convolution of one example (C, H, W).
//!
//! The column matrix is `(C*k*k) x (OH*OW)`, row-major: row `(c, ki, kj)` holds, for every output
//! position `(oy, ox)`, the input pixel `x[c, oy*s + ki - p, ox*s + kj - p]` (0 in the padding).
//! A convolution is then `out (O, OH*OW) = w (O, C*k*k) @ col`.

use candle_core::{bail, Result};
use std::ops::Range;

/// The shape arithmetic of one convolution, shared by forward and backward.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Geometry {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub k: usize,
    pub stride: usize,
    pub padding: usize,
    pub oh: usize,
    pub ow: usize,
}

impl Geometry {
    /// Floor-mode output size, as candle and PyTorch compute it.
    pub(crate) fn new(
        (c, h, w): (usize, usize, usize),
        k: usize,
        stride: usize,
        padding: usize,
    ) -> Result<Self> {
        if k == 0 || stride == 0 || h + 2 * padding < k || w + 2 * padding < k {
            bail!("conv2d: kernel {k}, stride {stride}, padding {padding} do not fit {h}x{w}");
        }
        let out = |n: usize| (n + 2 * padding - k) / stride + 1;
        Ok(Geometry {
            c,
            h,
            w,
            k,
            stride,
            padding,
            oh: out(h),
            ow: out(w),
        })
    }

    /// Rows of the column matrix: C*k*k.
    pub(crate) fn col_rows(&self) -> usize {
        self.c * self.k * self.k
    }

    /// Columns of the column matrix: the output positions OH*OW.
    pub(crate) fn col_cols(&self) -> usize {
        self.oh * self.ow
    }

    /// Input elements of one example.
    pub(crate) fn in_len(&self) -> usize {
        self.c * self.h * self.w
    }

    /// The input index along one axis for output index `o` and kernel offset `kk`, or None in
    /// the padding.
    fn src(&self, o: usize, kk: usize, size: usize) -> Option<usize> {
        (o * self.stride + kk)
            .checked_sub(self.padding)
            .filter(|&i| i < size)
    }

    /// The output columns `ox` whose input column `ox*s + kj - p` lies inside `0..w`.
    fn valid_ox(&self, kj: usize) -> Range<usize> {
        let (s, p) = (self.stride, self.padding);
        let lo = if p > kj { (p - kj).div_ceil(s) } else { 0 };
        let hi = if self.w + p > kj {
            (self.w + p - kj - 1) / s + 1
        } else {
            0
        };
        lo.min(self.ow)..hi.min(self.ow).max(lo.min(self.ow))
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
