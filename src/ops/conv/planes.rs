//! Zero-bordered planes of a stride-1 convolution: one example's `C` planes copied into the
//! middles of planes padded by `p` (`fill_padded`, with the fused ReLU mask or the input's
//! activation quantizer applied in the copy), and `Planes`, the shape of one side (input, or
//! output gradient) of the direct convolution with its taps `ki·wp + kj`.

use super::direct::kernels::TAIL;
use crate::ops::activation::relu_pass;
use crate::quant::ActGrid;

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
/// must be zero already (a scratch buffer, zeroed when made and reused), so a row costs one
/// copy and no border writes.
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
    // Quantized in one pass over the whole planes, borders included (+0 quantizes to +0), so
    // the vector loop runs over whole planes rather than over short rows and their tails.
    if let RowMap::Quant(q) = map {
        let planes = src.len().checked_div(h * w).unwrap_or(0);
        q.quantize_in_place(&mut dst[..planes * plane]);
    }
    dst
}

/// `dst = src` where `mask` (if any) is positive, else +0.
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
        vec![0.0; self.buffer_len()]
    }

    /// The length of a `buffer`.
    pub(crate) fn buffer_len(&self) -> usize {
        self.c * self.hw() + TAIL
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
