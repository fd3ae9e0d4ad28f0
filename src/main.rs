//! The `bitsearch` binary: parse arguments, run the subcommand, print the whole error chain.

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    tune_malloc();
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
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
