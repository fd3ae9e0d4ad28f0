//! Times a LeNet-5 style forward+backward at batch 128 with candle's ops and with `bitsearch::ops`.
//!
//! Run: `cargo run --release --example bench_ops` (median of 30 runs after 3 warm-ups; candle and
//! `ops` share candle's worker pool, sized by CANDLE_NUM_THREADS, else all physical cores).
//! glibc's default malloc returns freed multi-megabyte buffers to the OS and page-faults them
//! back on every step; `GLIBC_TUNABLES=glibc.malloc.trim_threshold=268435456:glibc.malloc.mmap_threshold=268435456`
//! (or a global allocator that keeps memory) removes that, and roughly halves the `ops` step. The network: conv 1->6 k5 on 28x28,
//! max-pool 2, ReLU, conv 6->16 k5, max-pool 2, ReLU, flatten (256), then optionally fc
//! 256->120->84->10 (candle matmul + broadcast_add, the same in both columns).

use bitsearch::ops;
use candle_core::{DType, Device, Result, Tensor, Var};
use std::time::Instant;

const BATCH: usize = 128;
const RUNS: usize = 30;

struct Params {
    w1: Var,
    b1: Var,
    w2: Var,
    b2: Var,
    fc: Vec<(Var, Var)>,
}

impl Params {
    fn new(dev: &Device) -> Result<Self> {
        let v = |dims: &[usize], scale: f64| -> Result<Var> {
            Var::from_tensor(&(Tensor::randn(0f32, 1.0, dims, dev)? * scale)?)
        };
        let fc = [(256, 120), (120, 84), (84, 10)]
            .iter()
            .map(|&(i, o)| Ok((v(&[o, i], (1.0 / i as f64).sqrt())?, v(&[o], 0.01)?)))
            .collect::<Result<_>>()?;
        Ok(Params {
            w1: v(&[6, 1, 5, 5], 0.2)?,
            b1: v(&[6], 0.01)?,
            w2: v(&[16, 6, 5, 5], 0.08)?,
            b2: v(&[16], 0.01)?,
            fc,
        })
    }

    /// The convolutional trunk with candle's ops.
    fn trunk_candle(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.conv2d(&self.w1, 0, 1, 1, 1)?;
        let y = y
            .broadcast_add(&self.b1.reshape((1, 6, 1, 1))?)?
            .max_pool2d(2)?
            .relu()?;
        let y = y.conv2d(&self.w2, 0, 1, 1, 1)?;
        y.broadcast_add(&self.b2.reshape((1, 16, 1, 1))?)?
            .max_pool2d(2)?
            .relu()?
            .flatten_from(1)
    }

    /// The same trunk with `bitsearch::ops` (ReLU fused into the conv: it commutes with max).
    fn trunk_ops(&self, x: &Tensor) -> Result<Tensor> {
        let y = ops::max_pool2d(&ops::conv2d(x, &self.w1, Some(&self.b1), 1, 0, true)?, 2)?;
        let y = ops::max_pool2d(&ops::conv2d(&y, &self.w2, Some(&self.b2), 1, 0, true)?, 2)?;
        y.flatten_from(1)
    }

    fn head(&self, mut y: Tensor) -> Result<Tensor> {
        for (i, (w, b)) in self.fc.iter().enumerate() {
            y = y.matmul(&w.t()?)?.broadcast_add(b)?;
            if i + 1 < self.fc.len() {
                y = y.relu()?;
            }
        }
        Ok(y)
    }
}

/// Median wall time of `f` in milliseconds.
fn median_ms(mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    for _ in 0..3 {
        f()?;
    }
    let mut t = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let start = Instant::now();
        f()?;
        t.push(start.elapsed().as_secs_f64() * 1e3);
    }
    t.sort_by(|a, b| a.total_cmp(b));
    Ok(t[RUNS / 2])
}

fn main() -> Result<()> {
    let dev = Device::Cpu;
    let p = Params::new(&dev)?;
    let x = Tensor::rand(0f32, 1.0, (BATCH, 1, 28, 28), &dev)?;
    let xv = Var::from_tensor(&x)?;
    let r = Tensor::randn(0f32, 1.0, (BATCH, 256), &dev)?;
    let r10 = Tensor::randn(0f32, 1.0, (BATCH, 10), &dev)?;
    type Trunk = fn(&Params, &Tensor) -> Result<Tensor>;
    let impls: [(&str, Trunk); 2] = [("ops", Params::trunk_ops), ("candle", Params::trunk_candle)];
    let pool = candle_core::utils::barrier_pool().n_workers() + 1;
    println!("candle pool threads: {pool}, batch {BATCH}, median of {RUNS} runs (ms)");
    println!(
        "{:<8} {:>9} {:>10} {:>12} {:>14}",
        "impl", "forward", "fwd+bwd", "fwd+bwd+dx", "with fc head"
    );
    for (name, trunk) in impls {
        let fwd = median_ms(|| trunk(&p, &x).map(drop))?;
        let step = median_ms(|| (trunk(&p, &x)? * &r)?.sum_all()?.backward().map(drop))?;
        let dx = median_ms(|| (trunk(&p, &xv)? * &r)?.sum_all()?.backward().map(drop))?;
        let full = median_ms(|| {
            (p.head(trunk(&p, &x)?)? * &r10)?
                .sum_all()?
                .backward()
                .map(drop)
        })?;
        println!("{name:<8} {fwd:>9.2} {step:>10.2} {dx:>12.2} {full:>14.2}");
    }
    let y = Tensor::zeros((BATCH, 256), DType::F32, &dev)?;
    let yv = Var::from_tensor(&y)?;
    let head = median_ms(|| {
        (p.head(yv.as_tensor().clone())? * &r10)?
            .sum_all()?
            .backward()
            .map(drop)
    })?;
    println!("fc head alone (candle matmul + broadcast_add, fwd+bwd): {head:.2}");
    Ok(())
}
