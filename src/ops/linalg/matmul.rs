//! A safe, bounds-checked wrapper around `gemm::gemm` for strided f32 matrices.

use candle_core::{bail, Result};
pub(crate) use gemm::Parallelism;

/// A read-only view of a matrix inside a slice: element (i, j) is `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> Mat<'a> {
    /// `data` read as a row-major `rows x cols` matrix.
    pub(crate) fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Mat {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose, as a view (no copy).
    pub(crate) fn t(self) -> Self {
        Mat {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    /// Rows `start..start + count` of the view (checked by `matmul` like any view).
    pub(crate) fn rows(self, start: usize, count: usize) -> Self {
        let from = (start * self.rs).min(self.data.len());
        Mat {
            data: &self.data[from..],
            rows: count,
            ..self
        }
    }

    /// Whether every element the view addresses lies inside `data`.
    fn in_bounds(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < self.data.len()
    }
}

/// `dst = a @ b` (or `dst += a @ b` when `accumulate`), `dst` row-major `a.rows x b.cols`.
pub(crate) fn matmul(
    dst: &mut [f32],
    a: Mat,
    b: Mat,
    accumulate: bool,
    par: Parallelism,
) -> Result<()> {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if b.rows != k || dst.len() != m * n || !a.in_bounds() || !b.in_bounds() {
        bail!(
            "ops: matmul shape mismatch ({m}x{k}) @ ({}x{n}) into {}",
            b.rows,
            dst.len()
        );
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        // gemm would read lhs/rhs pointers of empty slices; the product is zero.
        if !accumulate {
            dst.fill(0.0);
        }
        return Ok(());
    }
    // SAFETY: the views were checked to stay inside their slices, `dst` holds exactly m*n
    // elements addressed row-major, and `dst` (a &mut) cannot alias `a` or `b`.
    // gemm's argument order is (column stride, row stride) and it computes
    // dst = alpha*dst + beta*lhs@rhs, reading dst only when `read_dst`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_matches_hand_product_and_transposes() -> Result<()> {
        // a = [[1,2,3],[4,5,6]], b = [[1,0],[0,1],[1,1]]; a@b = [[4,5],[10,11]] by hand.
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let b = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        let mut dst = [0.0; 4];
        let (ma, mb) = (Mat::row_major(&a, 2, 3), Mat::row_major(&b, 3, 2));
        matmul(&mut dst, ma, mb, false, Parallelism::None)?;
        assert_eq!(dst, [4.0, 5.0, 10.0, 11.0]);
        // Accumulating adds the same product again.
        matmul(&mut dst, ma, mb, true, Parallelism::None)?;
        assert_eq!(dst, [8.0, 10.0, 20.0, 22.0]);
        // (a@b)^T = b^T @ a^T through transposed views.
        let mut dst_t = [0.0; 4];
        matmul(&mut dst_t, mb.t(), ma.t(), false, Parallelism::None)?;
        assert_eq!(dst_t, [4.0, 10.0, 5.0, 11.0]);
        Ok(())
    }

    #[test]
    fn matmul_rejects_mismatched_shapes() {
        let a = [0.0; 6];
        let mut dst = [0.0; 4];
        let ma = Mat::row_major(&a, 2, 3);
        assert!(matmul(&mut dst, ma, ma, false, Parallelism::None).is_err());
    }
}
