//! Times one of `bitsearch bench`'s figures of a zoo model on random inputs, for profiling:
//! `CANDLE_NUM_THREADS=1 perf record target/release/examples/train_step cnn6 40` after `cargo
//! build --release --example train_step`. Prints the median time. Arguments: the architecture
//! (`lenet5`, `cnn6`, `mlp`, `resnet20`, `mobilenet`, `vit`; default cnn6), the number of repetitions
//! (default 100), and the figure: nothing for the FP32 training step at batch 128 (forward,
//! cross-entropy, backward, AdamW), `q` for the quantized step (`bitsearch bench`'s policy, plus
//! the Lipschitz penalty at beta 1e-2), `fwd` for the FP32 forward of 1,000 images, `dx` for the
//! input gradient of an attack step at batch 128 (frozen weights, the benchmark's policy).

use bitsearch::bench::bench_policy;
use bitsearch::model::{Arch, Model};
use bitsearch::quant::Quantizer;
use bitsearch::train::{orthogonality_penalty, FusedAdamW};
use candle_core::{DType, Device, Tensor, Var};
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
        Some("vit") => Arch::Vit,
        _ => Arch::Cnn6,
    };
    // ResNet-20 and MobileNet on CIFAR-10's images, the others on MNIST's.
    let input = match arch {
        Arch::Resnet20 | Arch::Mobilenet => (3, 32, 32),
        _ => (1, 28, 28),
    };
    let steps: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(100);
    let figure = args.next().unwrap_or_default();
    let quantized = figure == "q";
    let dev = Device::Cpu;
    let model = Model::new(arch, input, 10, 0)?;
    let x = Tensor::rand(0f32, 1.0, (128, input.0, input.1, input.2), &dev)?;
    let labels: Vec<u32> = (0..128).map(|i| i % 10).collect();
    let y = Tensor::new(labels.as_slice(), &dev)?.to_dtype(DType::U32)?;
    let n = model.shapes().len();
    let policy = Quantizer::new(bench_policy(n), vec![[1.0; 8]; n]);
    match figure.as_str() {
        "fwd" => {
            let x1000 = Tensor::rand(0f32, 1.0, (1000, input.0, input.1, input.2), &dev)?;
            return report(arch, "fp32 forward, 1000 images", steps, || {
                model.forward_frozen(&x1000, None)?;
                Ok(())
            });
        }
        "dx" => {
            return report(arch, "input gradient, batch 128", steps, || {
                let xv = Var::from_tensor(&x)?;
                let logits = model.forward_frozen(xv.as_tensor(), Some(&policy))?;
                let grads = candle_nn::loss::cross_entropy(&logits, &y)?.backward()?;
                let _ = grads.get(&xv);
                Ok(())
            });
        }
        _ => {}
    }
    let quant = quantized.then_some(policy);
    let mut opt = FusedAdamW::new(model.vars(), ParamsAdamW::default())?;
    let what = match quantized {
        true => "quantized train step, batch 128",
        false => "fp32 train step, batch 128",
    };
    report(arch, what, steps, || {
        let logits = match &quant {
            Some(q) => model.forward(&x, Some(q))?,
            None => model.forward_train(&x)?,
        };
        let mut loss = candle_nn::loss::cross_entropy(&logits, &y)?;
        if quantized {
            loss = (loss + (orthogonality_penalty(&model.weights()?)? * 0.5e-2)?)?;
        }
        opt.backward_step(&loss)?;
        Ok(())
    })
}

/// Runs `f` `runs` times and prints the median.
fn report(
    arch: Arch,
    what: &str,
    runs: usize,
    mut f: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = std::time::Instant::now();
        f()?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    let median = times.get(runs / 2).copied().unwrap_or(f64::NAN);
    println!("{} {what}: median {median:.2} ms of {runs}", arch.name());
    Ok(())
}
