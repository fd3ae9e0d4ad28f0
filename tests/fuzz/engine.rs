//! Runs one harness: proptest's `TestRunner` (panics caught and shrunk to a minimal input),
//! each case measured by the tracking allocator and watched by a watchdog thread.
//!
//! Settings (environment):
//! - `BITSEARCH_FUZZ_CASES`: cases per batch (default `DEFAULT_CASES`, scaled by the harness's
//!   cost), so CI's run of the whole binary stays under a minute;
//! - `BITSEARCH_FUZZ_SECONDS`: when set, batches with fresh seeds repeat until that many seconds
//!   have passed (scripts/fuzz.sh);
//! - `BITSEARCH_FUZZ_SEED`: the base seed (default 0; CI runs are reproducible).

use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

use super::alloc;

/// Cases per batch of a harness of cost 1.
const DEFAULT_CASES: u32 = 2000;
/// The largest single allocation any case may make. Every seed is under 16 KiB and arbitrary
/// inputs under 1 KiB; a gzip stream can inflate about 1,000-fold, so 64 MiB is far above what
/// any input justifies and far below a header's claim of 2^32 images.
pub const ALLOC_LIMIT: usize = 64 << 20;
/// The longest one case may run before the watchdog aborts the binary.
const CASE_LIMIT: Duration = Duration::from_secs(10);

fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    match text.trim().parse() {
        Ok(v) => Some(v),
        Err(_) => panic!("{name} must be a whole number, got {text:?}"),
    }
}

/// Aborts the process when a case runs longer than `CASE_LIMIT`, naming the harness and input.
struct Watchdog {
    /// Milliseconds since `epoch` when the running case began; 0 when idle.
    started: Arc<AtomicU64>,
    input: Arc<Mutex<String>>,
    stop: Arc<AtomicBool>,
    epoch: Instant,
}

impl Watchdog {
    fn start(name: &'static str) -> Watchdog {
        let dog = Watchdog {
            started: Arc::new(AtomicU64::new(0)),
            input: Arc::new(Mutex::new(String::new())),
            stop: Arc::new(AtomicBool::new(false)),
            epoch: Instant::now(),
        };
        let (started, input, stop, epoch) = (
            dog.started.clone(),
            dog.input.clone(),
            dog.stop.clone(),
            dog.epoch,
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                let at = started.load(Ordering::Relaxed);
                let now = epoch.elapsed().as_millis() as u64;
                if at != 0 && now.saturating_sub(at) > CASE_LIMIT.as_millis() as u64 {
                    let input = input.lock().map(|s| s.clone()).unwrap_or_default();
                    eprintln!(
                        "\nfuzz: harness `{name}`: one case ran longer than {CASE_LIMIT:?} \
                         (a hang); aborting. Input: {input}"
                    );
                    std::process::abort();
                }
            }
        });
        dog
    }

    fn begin(&self, input: String) {
        if let Ok(mut slot) = self.input.lock() {
            *slot = input;
        }
        let now = self.epoch.elapsed().as_millis() as u64;
        self.started.store(now.max(1), Ordering::Relaxed);
    }

    fn end(&self) {
        self.started.store(0, Ordering::Relaxed);
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A 32-byte ChaCha seed from the harness name, the base seed and the batch number.
fn seed_bytes(name: &str, base: u64, batch: u64) -> [u8; 32] {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    let mut out = [0u8; 32];
    for (k, v) in [h, base, batch, h ^ batch.rotate_left(17)]
        .iter()
        .enumerate()
    {
        out[k * 8..k * 8 + 8].copy_from_slice(&v.to_le_bytes());
    }
    out
}

/// Runs harness `name`: `case` on values of `strategy`; `case` says whether the reader accepted
/// the input (counted, to show the mutations get past the headers). `cost` divides the default case count
/// (a harness that renders a report costs more per case). Panics (failing the test) on a panic
/// inside `case`, an allocation above `ALLOC_LIMIT`; aborts on a hang.
pub fn fuzz<S>(name: &'static str, cost: u32, strategy: S, case: impl Fn(&S::Value) -> bool)
where
    S: Strategy,
    S::Value: Debug,
{
    let cases = env_number("BITSEARCH_FUZZ_CASES")
        .map_or(DEFAULT_CASES / cost.max(1), |c| c as u32)
        .max(1);
    let seconds = env_number("BITSEARCH_FUZZ_SECONDS");
    let base = env_number("BITSEARCH_FUZZ_SEED").unwrap_or(0);
    let began = Instant::now();
    let dog = Watchdog::start(name);
    let (ran, peak, accepted) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let mut batch = 0u64;
    loop {
        let config = Config {
            cases,
            failure_persistence: None,
            max_shrink_iters: 2_000,
            ..Config::default()
        };
        let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes(name, base, batch));
        let mut runner = TestRunner::new_with_rng(config, rng);
        let result = runner.run(&strategy, |value| {
            dog.begin(format!("{value:?}"));
            let mut ok = false;
            let used = alloc::measure(name, || ok = case(&value));
            dog.end();
            ran.fetch_add(1, Ordering::Relaxed);
            accepted.fetch_add(u64::from(ok), Ordering::Relaxed);
            peak.fetch_max(used as u64, Ordering::Relaxed);
            if used > ALLOC_LIMIT {
                return Err(TestCaseError::fail(format!(
                    "one allocation of {used} bytes, above the limit of {ALLOC_LIMIT}"
                )));
            }
            Ok(())
        });
        if let Err(e) = result {
            println!(
                "fuzz {name}: FAILED ({} cases ran)",
                ran.load(Ordering::Relaxed)
            );
            panic!("fuzz harness `{name}` (BITSEARCH_FUZZ_SEED={base}, batch {batch}): {e}");
        }
        batch += 1;
        let more = seconds.is_some_and(|s| began.elapsed() < Duration::from_secs(s));
        if !more {
            break;
        }
    }
    println!(
        "fuzz {name}: {} cases ({} accepted), 0 panics, largest allocation {} bytes, {:.1} s",
        ran.load(Ordering::Relaxed),
        accepted.load(Ordering::Relaxed),
        peak.load(Ordering::Relaxed),
        began.elapsed().as_secs_f64()
    );
}
