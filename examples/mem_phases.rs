//! Peak resident memory of each phase of a search, one after the other in one process, for
//! finding where a search's peak is: `cargo build --release --example mem_phases &&
//! target/release/examples/mem_phases EXPERIMENT [--set K=V]...`. Each phase starts with the
//! kernel's high-water mark reset (`/proc/self/clear_refs`), so its line is that phase's own
//! peak, next to the peak of the bytes the program had allocated and not yet freed (counted by
//! this example's global allocator), and what glibc's heap holds at its end (in use and free).
//!
//! The phases: FP32 training steps at `[train] batch` (BatchNorm on batch statistics), the
//! validation accuracy, the clips' calibration, the search's suite (its transfer examples
//! crafted), one policy's fine-tune (`[finetune]`, steps from `--set finetune.steps=N`), its
//! validation accuracy, the search's suite on it, then the test-split suite (`[attack]`) built
//! and run, as the best policy's re-score does. `MEM_PHASES_STOP=N` ends the process after the
//! N-th phase (for heaptrack on the first phases alone).

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use bitsearch::experiment::{Experiment, Overrides};
use bitsearch::quant::{Format, Policy};
use bitsearch::score::Evaluator;
use bitsearch::train::FusedAdamW;
use candle_core::Device;
use candle_nn::{Optimizer, ParamsAdamW};

/// The system allocator, counting the bytes allocated and not yet freed, and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to `System` unchanged; the counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is passed on to `System`.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, which got it from `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as `dealloc`; `System` moves or resizes the block.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            grow(new_size);
        }
        p
    }
}

fn grow(bytes: usize) {
    let live = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn main() -> anyhow::Result<()> {
    // The binary's allocator settings (src/main.rs), unless MEM_PHASES_GLIBC_DEFAULTS is set
    // (then glibc's own, or its MALLOC_* environment variables).
    if std::env::var_os("MEM_PHASES_GLIBC_DEFAULTS").is_none() {
        // SAFETY: mallopt only changes allocator parameters; no other thread runs yet.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
        }
    }
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .unwrap_or("experiments/resnet20-fashion.toml".into());
    let mut set = Vec::new();
    while let Some(a) = args.next() {
        if a == "--set" {
            set.extend(args.next());
        }
    }
    let overrides = Overrides {
        budget: Vec::new(),
        set,
    };
    let exp = Experiment::load_with(Path::new(&path), &overrides)?;
    let data = exp.data.load()?;
    phase("data loaded", || Ok(()))?;
    let model = (exp.model.init(data.shape, data.classes)?).with_input_norm(data.input_norm());
    phase("FP32 training, 20 steps", || {
        let mut opt = FusedAdamW::new(model.vars(), ParamsAdamW::default())?;
        let idx: Vec<usize> = (0..exp.train.batch.min(data.train.len())).collect();
        for _ in 0..20 {
            let (x, y) = data.train.batch(&idx, &Device::Cpu)?;
            let loss = candle_nn::loss::cross_entropy(&model.forward_train(&x)?, &y)?;
            opt.backward_step(&loss)?;
        }
        Ok(())
    })?;
    phase("validation accuracy, FP32", || {
        bitsearch::train::accuracy(&model, &data.val, None)?;
        Ok(())
    })?;
    let eval = phase("calibration", || Ok(Evaluator::new(&exp, &data, &model)?))?;
    let suite = phase("search suite built (transfer)", || {
        Ok(eval.validation_suite()?)
    })?;
    let n = model.shapes().len();
    let policy = Policy::uniform(n, Format::new(4)?);
    let tuned = phase("fine-tune", || Ok(eval.finetune(&policy)?))?;
    phase("validation accuracy, quantized", || {
        eval.accuracy(&tuned.model, Some(&tuned.q), &data.val)?;
        Ok(())
    })?;
    phase("search suite", || {
        suite.run(&tuned.model, Some(&tuned.q))?;
        Ok(())
    })?;
    drop(suite);
    let test = phase("test suite built (transfer)", || {
        Ok(eval.test_suite(&exp.attack)?)
    })?;
    phase("test accuracy, quantized", || {
        eval.accuracy(&tuned.model, Some(&tuned.q), &data.test)?;
        Ok(())
    })?;
    phase("test suite", || {
        test.run(&tuned.model, Some(&tuned.q))?;
        Ok(())
    })?;
    Ok(())
}

/// Runs `f` with the high-water mark reset first; prints its peak, the RSS after, and the heap.
fn phase<T>(name: &str, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    // Writing 5 resets VmHWM to the current RSS (proc(5)).
    std::fs::write("/proc/self/clear_refs", "5")?;
    PEAK.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
    let start = std::time::Instant::now();
    let out = f()?;
    let secs = start.elapsed().as_secs_f64();
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kb = |key: &str| -> u64 {
        (status.lines().find(|l| l.starts_with(key)))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    };
    // SAFETY: mallinfo2 only reads the allocator's counters.
    let m = unsafe { libc::mallinfo2() };
    let mb = |b: usize| b as f64 / (1 << 20) as f64;
    println!(
        "{name:<32} peak RSS {:>6.1} MB, allocated {:>6.1} MB  after {:>6.1} MB  heap in use {:>6.1} MB, free {:>6.1} MB, mmapped {:>6.1} MB  {secs:>6.1} s",
        kb("VmHWM:") as f64 / 1024.0,
        mb(PEAK.load(Ordering::Relaxed)),
        kb("VmRSS:") as f64 / 1024.0,
        mb(m.uordblks),
        mb(m.fordblks),
        mb(m.hblkhd),
    );
    static DONE: AtomicUsize = AtomicUsize::new(0);
    let done = DONE.fetch_add(1, Ordering::Relaxed) + 1;
    let stop = std::env::var("MEM_PHASES_STOP").ok();
    if stop.and_then(|s| s.parse().ok()) == Some(done) {
        std::process::exit(0);
    }
    Ok(out)
}
