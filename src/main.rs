//! The `bitsearch` binary: parse arguments, run the subcommand, print the whole error chain
//! with each message once.

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    tune_malloc();
    pin_thread_count();
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", chain_once(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The messages of an error chain joined by ": ", each once. The library's typed errors embed
/// their source's text in their own message (so `to_string()` alone names file, field and
/// value) *and* return it from `source()`, so anyhow's `{:#}` would print the inner message
/// twice (a TOML caret block, a bitwidth rule). A cause whose text the line already holds adds
/// nothing and is skipped; this is the one place that walks a chain, so the rule lives here.
fn chain_once(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        let text = text.trim_end();
        if line.contains(text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(text);
    }
    line
}

/// candle asks for its thread count on every matmul; without RAYON_NUM_THREADS set, that reads
/// /proc/cpuinfo each time (BENCHMARKS.md has the cost). Setting it once, to what the process may use, keeps candle's choice and drops the cost.
fn pin_thread_count() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        // Called first thing in main, before any other thread exists.
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
}

/// Keeps freed activation buffers in the heap instead of returning them to the OS: glibc's
/// defaults unmap multi-megabyte blocks on free and page-fault them back in on the next
/// training step (BENCHMARKS.md has the cost).
/// 32 MiB is the largest mmap threshold glibc accepts on 64-bit.
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before any other thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}

#[cfg(test)]
mod tests {
    use super::chain_once;

    #[derive(Debug, thiserror::Error)]
    #[error("policy layer 0: {source}")]
    struct Outer {
        source: Inner,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("bitwidth must be 1..=8 or 32 (full precision), got 9")]
    struct Inner;

    #[test]
    fn an_inner_message_the_outer_one_embeds_prints_once() {
        let e = anyhow::Error::new(Outer { source: Inner }).context("invalid --policy 9/9");
        assert_eq!(
            chain_once(&e),
            "invalid --policy 9/9: policy layer 0: bitwidth must be 1..=8 or 32 (full precision), got 9"
        );
    }

    #[test]
    fn causes_that_add_text_are_all_kept() {
        let e = anyhow::Error::new(Inner).context("search on bitfusion");
        assert_eq!(
            chain_once(&e),
            "search on bitfusion: bitwidth must be 1..=8 or 32 (full precision), got 9"
        );
    }
}
