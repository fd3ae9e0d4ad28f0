//! The shape arithmetic of one 2-D convolution with a square kernel, shared by every path and
//! pass: `OH = (H + 2p − k) / s + 1` (floor, as candle and PyTorch compute it), the column
//! matrix's sizes, and where an output reads its input along one axis.

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
    pub(super) fn src(&self, o: usize, kk: usize, size: usize) -> Option<usize> {
        (o * self.stride + kk)
            .checked_sub(self.padding)
            .filter(|&i| i < size)
    }

    /// The output columns `ox` whose input column `ox*s + kj - p` lies inside `0..w`.
    pub(super) fn valid_ox(&self, kj: usize) -> Range<usize> {
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
