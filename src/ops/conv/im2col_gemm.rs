//! The column path of `conv2d`, im2col + gemm: per example, `col = im2col(x_n)` ((C·k·k) ×
//! (OH·OW), or the "wide" column matrix of `im2col.rs` for stride 1) and a gemm:
//! - forward `y_n = relu?(w @ col + b)`,
//! - `dw = Σ_n g_n @ col_nᵀ`,
//! - `dx_n = col2im(wᵀ @ g_n)`.
//!
//! It serves the convolutions the direct path (`direct/`) does not take: stride above 1,
//! padding as large as the kernel, and CPUs without AVX-512 or AVX2 + FMA. Examples are spread
//! over candle's worker pool and each gemm is single-threaded (`parallel.rs` says why).

use super::geometry::Geometry;
use super::im2col::{col2im_add, im2col, Wide};
use crate::ops::linalg::matmul::{matmul, Mat, Parallelism};
use crate::ops::parallel::{for_each_chunk, sum_in_fixed_chunks};
use candle_core::Result;

/// Shapes of one call, checked against each other.
pub(crate) struct Dims {
    pub n: usize,
    pub o: usize,
    pub g: Geometry,
}

/// Per-worker buffers of the stride-1 ("wide") path: a padded example, its wide column matrix
/// and one O × len wide output or gradient (its wrap-around columns stay zero).
struct Scratch {
    pad: Vec<f32>,
    col: Vec<f32>,
    out: Vec<f32>,
}

impl Scratch {
    fn new(d: &Dims, wd: &Wide) -> Scratch {
        Scratch {
            // Unpadded, the input (and its gradient) is its own padded layout.
            pad: match d.g.padding {
                0 => Vec::new(),
                _ => vec![0.0; wd.padded_len(&d.g)],
            },
            col: vec![0.0; d.g.col_rows() * wd.len],
            out: vec![0.0; d.o * wd.len],
        }
    }
}

/// Example `n` of `x` padded (no copy without padding), then its wide column matrix in `col`.
fn wide_cols<'a>(x: &'a [f32], n: usize, d: &Dims, wd: &Wide, pad: &'a mut [f32], col: &mut [f32]) {
    let g = &d.g;
    let xn = &x[n * g.in_len()..][..g.in_len()];
    let xp: &[f32] = match g.padding {
        0 => xn,
        _ => {
            wd.pad(g, xn, pad);
            pad
        }
    };
    wd.im2col(g, xp, col);
}

/// `y_n = relu?(w @ im2col(x_n) + b)` for every example, examples in parallel.
pub(crate) fn forward(x: &[f32], w: &[f32], b: &[f32], d: &Dims, relu: bool) -> Result<Vec<f32>> {
    let (g, pixels) = (&d.g, d.g.col_cols());
    let mut y = vec![0.0; d.n * d.o * pixels];
    let wm = Mat::row_major(w, d.o, g.col_rows());
    match Wide::of(g) {
        Some(wd) => for_each_chunk(
            &mut y,
            d.o * pixels,
            || Scratch::new(d, &wd),
            |s, n, yn| {
                wide_cols(x, n, d, &wd, &mut s.pad, &mut s.col);
                let colm = Mat::row_major(&s.col, g.col_rows(), wd.len);
                matmul(&mut s.out, wm, colm, false, Parallelism::None)?;
                wd.narrow(g, &s.out, yn);
                add_bias(yn, b, pixels, relu);
                Ok(())
            },
        )?,
        None => {
            let col_buf = || vec![0.0; g.col_rows() * pixels];
            for_each_chunk(&mut y, d.o * pixels, col_buf, |col, n, yn| {
                im2col(&x[n * g.in_len()..][..g.in_len()], g, col);
                let colm = Mat::row_major(col, g.col_rows(), pixels);
                matmul(yn, wm, colm, false, Parallelism::None)?;
                add_bias(yn, b, pixels, relu);
                Ok(())
            })?
        }
    }
    Ok(y)
}

/// Adds each channel's bias to its `pixels` outputs, then the fused ReLU.
fn add_bias(yn: &mut [f32], b: &[f32], pixels: usize, relu: bool) {
    for (yc, &bias) in yn.chunks_exact_mut(pixels).zip(b) {
        match relu {
            true => yc.iter_mut().for_each(|v| *v = (*v + bias).max(0.0)),
            false => yc.iter_mut().for_each(|v| *v += bias),
        }
    }
}

/// `dw = sum_n g_n @ im2col(x_n)^T`, summed in fixed chunks of `chunk` examples
/// (`sum_in_fixed_chunks`), each chunk in example order.
pub(crate) fn weight_grad(x: &[f32], g: &[f32], d: &Dims, chunk: usize) -> Result<Vec<f32>> {
    let (geo, pixels, rows) = (&d.g, d.g.col_cols(), d.g.col_rows());
    if let Some(wd) = Wide::of(geo) {
        let init = || Scratch::new(d, &wd);
        return sum_in_fixed_chunks(d.n, chunk, d.o * rows, init, |s, examples, dw| {
            for (i, n) in examples.enumerate() {
                wide_cols(x, n, d, &wd, &mut s.pad, &mut s.col);
                wd.widen(geo, &g[n * d.o * pixels..][..d.o * pixels], &mut s.out);
                let gn = Mat::row_major(&s.out, d.o, wd.len);
                let colt = Mat::row_major(&s.col, rows, wd.len).t();
                matmul(dw, gn, colt, i > 0, Parallelism::None)?;
            }
            Ok(())
        });
    }
    let col_buf = || vec![0.0; rows * pixels];
    sum_in_fixed_chunks(d.n, chunk, d.o * rows, col_buf, |col, examples, dw| {
        for (i, n) in examples.enumerate() {
            im2col(&x[n * geo.in_len()..][..geo.in_len()], geo, col);
            let gn = Mat::row_major(&g[n * d.o * pixels..][..d.o * pixels], d.o, pixels);
            let colt = Mat::row_major(col, rows, pixels).t();
            matmul(dw, gn, colt, i > 0, Parallelism::None)?;
        }
        Ok(())
    })
}

/// `dx_n = col2im(w^T @ g_n)`, examples in parallel.
pub(crate) fn input_grad(w: &[f32], g: &[f32], d: &Dims) -> Result<Vec<f32>> {
    let (geo, pixels, rows) = (&d.g, d.g.col_cols(), d.g.col_rows());
    let mut dx = vec![0.0; d.n * geo.in_len()];
    let wt = Mat::row_major(w, d.o, rows).t();
    if let Some(wd) = Wide::of(geo) {
        for_each_chunk(
            &mut dx,
            geo.in_len(),
            || Scratch::new(d, &wd),
            |s, n, dxn| {
                wd.widen(geo, &g[n * d.o * pixels..][..d.o * pixels], &mut s.out);
                let gn = Mat::row_major(&s.out, d.o, wd.len);
                matmul(&mut s.col, wt, gn, false, Parallelism::None)?;
                match geo.padding {
                    // Unpadded, the padded layout is the input's own.
                    0 => wd.col2im_add(geo, &s.col, dxn),
                    _ => {
                        s.pad.fill(0.0);
                        wd.col2im_add(geo, &s.col, &mut s.pad);
                        wd.unpad_add(geo, &s.pad, dxn);
                    }
                }
                Ok(())
            },
        )?;
        return Ok(dx);
    }
    let col_buf = || vec![0.0; rows * pixels];
    for_each_chunk(&mut dx, geo.in_len(), col_buf, |col, n, dxn| {
        let gn = Mat::row_major(&g[n * d.o * pixels..][..d.o * pixels], d.o, pixels);
        matmul(col, wt, gn, false, Parallelism::None)?;
        col2im_add(col, geo, dxn);
        Ok(())
    })?;
    Ok(dx)
}
