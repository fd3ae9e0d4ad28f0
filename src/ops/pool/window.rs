//! Max-pooling over windows that may overlap or hang past the edge (torchvision's `MaxPool2d(3,
//! 2, padding=1)` and SqueezeNet's `ceil_mode=True`), as a candle custom op:
//! `y[n,c,i,j] = max of x[n, c, s·i − p .. s·i − p + k, s·j − p .. s·j − p + k]`, each window
//! cut to the input (padding is −∞: it never wins). The caller gives the output size, so floor
//! and ceil rounding are the graph's rule; every window must hold at least one input pixel.
//!
//! The backward adds each window's gradient to its first maximum in row-major order (the same
//! tie rule as `max_pool.rs`); windows overlap, so an input may receive several.

use crate::ops::parallel::for_each_chunk;
use crate::ops::storage::{contiguous_f32, with_f32};
use candle_core::{bail, CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor};

/// A pooling window: side `k`, `stride`, `pad` pixels before each axis, and the output size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
    pub out: (usize, usize),
}

/// Max-pooling of an (N, C, H, W) f32 CPU tensor over `win`'s windows: (N, C, out.0, out.1).
pub fn max_pool2d_window(x: &Tensor, win: Window) -> Result<Tensor> {
    if x.dtype() != DType::F32 || !x.device().is_cpu() {
        bail!(
            "max_pool2d_window: x must be f32 on the CPU, got {:?}",
            x.dtype()
        );
    }
    x.contiguous()?.apply_op1(WindowPool { win })
}

struct WindowPool {
    win: Window,
}

impl WindowPool {
    /// Checks that every window holds an input pixel; returns (planes, h, w).
    fn dims(&self, x: &Shape) -> Result<(usize, usize, usize)> {
        let (n, c, h, w) = x.dims4()?;
        let Window {
            k,
            stride,
            pad,
            out,
        } = self.win;
        // The first window reaches pixel 0 when pad < k; the last starts before the edge.
        let starts_inside = |o: usize, size: usize| o == 0 || (o - 1) * stride < size + pad;
        let fits = pad < k && starts_inside(out.0, h) && starts_inside(out.1, w);
        if k == 0 || stride == 0 || !fits {
            bail!(
                "max_pool2d_window: {:?} has a window outside the {h}x{w} input",
                self.win
            );
        }
        if h * w > u32::MAX as usize {
            bail!("max_pool2d_window: a {h}x{w} plane is too large");
        }
        Ok((n * c, h, w))
    }

    /// The maxima and their in-plane indices, planes in parallel.
    fn pool(
        &self,
        x: &[f32],
        (planes, h, w): (usize, usize, usize),
    ) -> Result<(Vec<f32>, Vec<u32>)> {
        let Window {
            k,
            stride,
            pad,
            out,
        } = self.win;
        let size = out.0 * out.1;
        let mut y = vec![0f32; planes * size];
        let mut idx = vec![0u32; planes * size];
        let mut both: Vec<(&mut [f32], &mut [u32])> = y
            .chunks_mut(size.max(1))
            .zip(idx.chunks_mut(size.max(1)))
            .collect();
        for_each_chunk(
            &mut both,
            1,
            || (),
            |_, p, piece| {
                let xp = &x[p * h * w..][..h * w];
                for (yp, ip) in piece.iter_mut() {
                    for i in 0..out.0 {
                        let rows = (i * stride).saturating_sub(pad)..(i * stride + k - pad).min(h);
                        for j in 0..out.1 {
                            let cols =
                                (j * stride).saturating_sub(pad)..(j * stride + k - pad).min(w);
                            let mut best = rows.start * w + cols.start;
                            let mut best_v = xp[best];
                            for r in rows.clone() {
                                for c in cols.clone() {
                                    if best_v < xp[r * w + c] {
                                        (best, best_v) = (r * w + c, xp[r * w + c]);
                                    }
                                }
                            }
                            yp[i * out.1 + j] = best_v;
                            ip[i * out.1 + j] = best as u32;
                        }
                    }
                }
                Ok(())
            },
        )?;
        Ok((y, idx))
    }
}

impl CustomOp1 for WindowPool {
    fn name(&self) -> &'static str {
        "bitsearch-max-pool2d-window"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let d = self.dims(l.shape())?;
        let (n, c, _, _) = l.shape().dims4()?;
        let (y, _) = self.pool(contiguous_f32(s, l)?, d)?;
        Ok((
            CpuStorage::F32(y),
            Shape::from((n, c, self.win.out.0, self.win.out.1)),
        ))
    }

    /// Each window's gradient added at its first maximum (found again from x).
    fn bwd(&self, x: &Tensor, _y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        if !x.track_op() {
            return Ok(None);
        }
        let d = self.dims(x.shape())?;
        let (planes, h, w) = d;
        let x = x.contiguous()?;
        let idx = with_f32(&x, |xv| Ok(self.pool(xv, d)?.1))?;
        let size = self.win.out.0 * self.win.out.1;
        let mut dx = vec![0f32; planes * h * w];
        with_f32(&grad.contiguous()?, |g| {
            for_each_chunk(
                &mut dx,
                (h * w).max(1),
                || (),
                |_, p, dxp| {
                    let (ip, gp) = (&idx[p * size..][..size], &g[p * size..][..size]);
                    for (&i, &v) in ip.iter().zip(gp) {
                        dxp[i as usize] += v;
                    }
                    Ok(())
                },
            )
        })?;
        Ok(Some(Tensor::from_vec(dx, x.shape(), x.device())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn win(k: usize, stride: usize, pad: usize, out: (usize, usize)) -> Window {
        Window {
            k,
            stride,
            pad,
            out,
        }
    }

    /// 3×3 windows, stride 2, padding 1 on a 4×4 ramp: each output is its window's largest
    /// value (by hand), and the overlapping windows' gradients add up where they share a max.
    #[test]
    fn padded_overlapping_windows_and_their_gradient() -> Result<()> {
        let x = Var::from_vec(
            (0..16).map(|v| v as f32).collect(),
            (1, 1, 4, 4),
            &Device::Cpu,
        )?;
        let y = max_pool2d_window(&x, win(3, 2, 1, (2, 2)))?;
        // Windows rows/cols {0,1}, {1,2,3}: maxima x[1,1]=5, x[1,3]=7, x[3,1]=13, x[3,3]=15.
        assert_eq!(y.flatten_all()?.to_vec1::<f32>()?, [5.0, 7.0, 13.0, 15.0]);
        let g = (y * 2.0)?.sum_all()?.backward()?;
        let g = g.get(&x).map(|g| g.flatten_all()?.to_vec1::<f32>());
        let mut want = vec![0f32; 16];
        for i in [5, 7, 13, 15] {
            want[i] = 2.0;
        }
        assert_eq!(g.transpose()?, Some(want));
        // A constant plane: every window's maximum is its first pixel.
        let x = Var::from_vec(vec![1f32; 9], (1, 1, 3, 3), &Device::Cpu)?;
        let y = max_pool2d_window(&x, win(2, 1, 0, (2, 2)))?;
        let g = y.sum_all()?.backward()?;
        let g = g.get(&x).map(|g| g.flatten_all()?.to_vec1::<f32>());
        assert_eq!(
            g.transpose()?,
            Some(vec![1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0])
        );
        Ok(())
    }

    /// Ceil mode's last window hangs past the edge (6 wide, k 3, stride 2: windows at 0, 2,
    /// then 4 with two pixels); a window starting past the edge, or padding as wide as the
    /// window, is refused.
    #[test]
    fn ceil_windows_and_windows_outside() -> Result<()> {
        let x: Vec<f32> = (0..36).map(|v| -(v as f32)).collect();
        let x = Tensor::from_vec(x, (1, 1, 6, 6), &Device::Cpu)?;
        let y = max_pool2d_window(&x, win(3, 2, 0, (3, 3)))?;
        // Decreasing values: each window's maximum is its first pixel, x[2i, 2j] = -(12i + 2j).
        let want: Vec<f32> = (0..9)
            .map(|v| -((12 * (v / 3) + 2 * (v % 3)) as f32))
            .collect();
        assert_eq!(y.flatten_all()?.to_vec1::<f32>()?, want);
        assert!(max_pool2d_window(&x, win(3, 2, 0, (4, 4))).is_err());
        assert!(max_pool2d_window(&x, win(2, 2, 2, (2, 2))).is_err());
        Ok(())
    }
}
