//! Fuzz harnesses for every parser of user input, on stable Rust with proptest: each harness
//! feeds arbitrary bytes and mutations of a valid seed file to a public reader and requires a
//! result or a typed error — never a panic (proptest catches and shrinks it), never one
//! allocation above `engine::ALLOC_LIMIT` (the tracking allocator below measures every case),
//! never a case longer than ten seconds (a watchdog aborts, naming the harness).
//!
//! CI runs a bounded number of cases per harness (`BITSEARCH_FUZZ_CASES`);
//! `scripts/fuzz.sh SECONDS` runs each harness for that long (`BITSEARCH_FUZZ_SECONDS`).

#[path = "common/mod.rs"]
mod common;

#[path = "fuzz/alloc.rs"]
mod alloc;
#[path = "fuzz/configs.rs"]
mod configs;
#[path = "fuzz/data.rs"]
mod data;
#[path = "fuzz/engine.rs"]
mod engine;
#[path = "fuzz/hardware.rs"]
mod hardware;
#[path = "fuzz/mutate.rs"]
mod mutate;
#[path = "fuzz/onnx.rs"]
mod onnx;
#[path = "fuzz/onnx_edit.rs"]
mod onnx_edit;
#[path = "fuzz/rundir.rs"]
mod rundir;
#[path = "fuzz/sweep.rs"]
mod sweep;

use std::fmt::Display;
use std::path::PathBuf;

#[global_allocator]
static ALLOCATOR: alloc::Tracking = alloc::Tracking;

/// The seed files of the harnesses.
fn seed_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/seeds")
}

/// `Some(value)`, or `None` for an error, after checking that the error prints (a `Display`
/// that panics is a panic on user input too).
fn shown<T, E: Display>(result: Result<T, E>) -> Option<T> {
    match result {
        Ok(v) => Some(v),
        Err(e) => {
            assert!(!e.to_string().is_empty(), "an error with an empty message");
            None
        }
    }
}

#[test]
fn fuzz_idx() {
    data::idx();
}

#[test]
fn fuzz_cifar() {
    data::cifar();
}

#[test]
fn huge_idx_header_fails_fast() {
    data::huge_idx_header_fails_fast();
}

#[test]
fn fuzz_profile_toml() {
    hardware::profile_toml();
}

#[test]
fn fuzz_profile_table() {
    hardware::profile_table();
}

#[test]
fn fuzz_cycle_table() {
    hardware::cycle_table();
}

#[test]
fn fuzz_policy_string() {
    configs::policy_string();
}

#[test]
fn fuzz_policy_json() {
    configs::policy_json();
}

#[test]
fn fuzz_experiment() {
    configs::experiment();
}

#[test]
fn fuzz_agent() {
    configs::agent();
}

#[test]
fn fuzz_run_dir() {
    rundir::run_dir();
}

#[test]
fn fuzz_dq_dir() {
    rundir::dq_dir();
}

#[test]
fn fuzz_sensitivity_dir() {
    rundir::sensitivity_dir();
}

#[test]
fn fuzz_sweep_dir() {
    sweep::sweep_dir();
}

#[test]
fn fuzz_lock_record() {
    sweep::lock_record();
}

#[test]
fn fuzz_score_cache() {
    sweep::score_cache();
}

/// The harness machinery itself: an allocation above the limit fails the harness.
#[test]
#[should_panic(expected = "above the limit")]
fn an_allocation_above_the_limit_fails_the_harness() {
    engine::fuzz("self-check-alloc", 1, proptest::strategy::Just(()), |_| {
        let big = vec![1u8; engine::ALLOC_LIMIT + 1];
        std::hint::black_box(&big);
        true
    });
}

/// The harness machinery itself: a panic inside a case fails the harness, naming it.
#[test]
#[should_panic(expected = "fuzz harness `self-check-panic`")]
fn a_panic_in_a_case_fails_the_harness() {
    engine::fuzz("self-check-panic", 1, proptest::strategy::Just(()), |_| {
        panic!("a parser panicked")
    });
}
