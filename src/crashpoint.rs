//! Named crash points for the kill campaign (scripts/kill-campaign.sh): with
//! `BITSEARCH_CRASH_AT=NAME[:K]` in the environment the process SIGKILLs itself the K-th time
//! (default: the first) it reaches `crash_point(NAME)`. Timed kills rarely land inside windows a
//! few microseconds wide (the log repair, between the writes of one episode); this puts a kill
//! exactly there. Without the variable a crash point costs one load of a cached `None`. A
//! search's worker processes are not given it: they get `BITSEARCH_WORKER_CRASH_AT` as theirs
//! (`search::WORKER_CRASH_VAR`), so a worker can be made to crash alone.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// The environment variable that arms a crash point.
pub const VAR: &str = "BITSEARCH_CRASH_AT";

/// The armed point and the hit on which it fires, parsed once; a value that does not parse arms
/// nothing (this is a testing hook, not user input to validate).
fn armed() -> &'static Option<(String, usize)> {
    static ARMED: OnceLock<Option<(String, usize)>> = OnceLock::new();
    ARMED.get_or_init(|| std::env::var(VAR).ok().and_then(|v| parse(&v)))
}

fn parse(value: &str) -> Option<(String, usize)> {
    let (name, k) = match value.split_once(':') {
        Some((name, k)) => (name, k.parse().ok().filter(|&k| k >= 1)?),
        None => (value, 1),
    };
    (!name.is_empty()).then(|| (name.to_string(), k))
}

/// Kills this process with SIGKILL if `name` is the armed point and this is its K-th hit.
pub fn crash_point(name: &str) {
    static HITS: AtomicUsize = AtomicUsize::new(0);
    if let Some((armed, k)) = armed() {
        if armed == name && HITS.fetch_add(1, Ordering::SeqCst) + 1 == *k {
            // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn a_point_parses_with_and_without_a_count() {
        assert_eq!(parse("log-repair"), Some(("log-repair".into(), 1)));
        assert_eq!(parse("after-append:3"), Some(("after-append".into(), 3)));
        assert_eq!(parse("after-append:0"), None);
        assert_eq!(parse("after-append:x"), None);
        assert_eq!(parse(""), None);
    }
}
