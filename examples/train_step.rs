//! Times the FP32 training step of a zoo model at batch 128 (forward, cross-entropy, backward,
//! AdamW) on random inputs, for profiling: `CANDLE_NUM_THREADS=1 perf record
//! target/release/examples/train_step cnn6 40` after `cargo build --release --example
//! train_step`. Prints the median step time. Arguments: the architecture (`lenet5`, `cnn6`,
//! `mlp`, `resnet20`, `mobilenet`; default cnn6), the number of steps (default 100), and `q` for the benchmark's
//! quantized step (`bitsearch bench`'s policy, plus the Lipschitz penalty at beta 1e-2).

use bitsearch::bench::bench_policy;
use bitsearch::model::{Arch, Model};
use bitsearch::quant::Quantizer;
use bitsearch::train::{orthogonality_penalty, FusedAdamW};
use candle_core::{DType, Device, Tensor};
use candle_nn::{Optimizer, ParamsAdamW};

fn main() -> anyhow::Result<()> {
    // The binary's own allocator settings (src/main.rs): large buffers stay mapped.
    // SAFETY: mallopt only changes allocator parameters; no other thread runs yet.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
    let mut args = std::env::args().skip(1);
    let arch = match args.next().as_deref() {
        Some("lenet5") => Arch::Lenet5,
        Some("mlp") => Arch::Mlp,
        Some("resnet20") => Arch::Resnet20,
        Some("mobilenet") => Arch::Mobilenet,
        _ => Arch::Cnn6,
    };
    // ResNet-20 and MobileNet on CIFAR-10's images, the others on MNIST's.
    let input = match arch {
        Arch::Resnet20 | Arch::Mobilenet => (3, 32, 32),
        _ => (1, 28, 28),
    };
    let steps: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(100);
    let quantized = args.next().as_deref() == Some("q");
    let dev = Device::Cpu;
    let model = Model::new(arch, input, 10, 0)?;
    let x = Tensor::rand(0f32, 1.0, (128, input.0, input.1, input.2), &dev)?;
    let labels: Vec<u32> = (0..128).map(|i| i % 10).collect();
    let y = Tensor::new(labels.as_slice(), &dev)?.to_dtype(DType::U32)?;
    let n = model.shapes().len();
    let quant = quantized.then(|| Quantizer::new(bench_policy(n), vec![[1.0; 8]; n]));
    let mut opt = FusedAdamW::new(model.vars(), ParamsAdamW::default())?;
    let mut times = Vec::with_capacity(steps);
    for _ in 0..steps {
        let start = std::time::Instant::now();
        let logits = match &quant {
            Some(q) => model.forward(&x, Some(q))?,
            None => model.forward_train(&x)?,
        };
        let mut loss = candle_nn::loss::cross_entropy(&logits, &y)?;
        if quantized {
            loss = (loss + (orthogonality_penalty(&model.weights()?)? * 0.5e-2)?)?;
        }
        opt.backward_step(&loss)?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    let median = times.get(steps / 2).copied().unwrap_or(f64::NAN);
    println!(
        "{} {} train step, batch 128: median {median:.2} ms of {steps}",
        arch.name(),
        if quantized { "quantized" } else { "fp32" }
    );
    Ok(())
}
