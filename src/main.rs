//! The `bitsearch` binary: parse arguments, run the subcommand, print the whole error chain.

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    tune_malloc();
    pin_thread_count();
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// candle asks for its thread count on every matmul; without RAYON_NUM_THREADS set, that reads
/// /proc/cpuinfo each time (measured: a third of a LeNet-5 training step in kernel printf).
/// Setting it once, to what the process may use, keeps candle's choice and drops the cost.
fn pin_thread_count() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        // Called first thing in main, before any other thread exists.
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
}

/// Keeps freed activation buffers in the heap instead of returning them to the OS: glibc's
/// defaults unmap multi-megabyte blocks on free and page-fault them back in on the next
/// training step, which measured as half of a LeNet-5 step (6.0 → 3.1 ms, see src/ops/par.rs).
/// 32 MiB is the largest mmap threshold glibc accepts on 64-bit.
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before any other thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}
