//! The kill -9 campaign (scripts/kill-campaign.sh) at a small N: a short search killed with
//! SIGKILL at random moments and named crash points, resumed each time, ends equal to an
//! uninterrupted run, file for file. `scripts/kill-campaign.sh 20` is the full campaign.

mod common;

use std::process::Command;

use common::cli::repo;

#[test]
fn a_search_killed_at_random_moments_resumes_to_the_uninterrupted_result() {
    let work = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg(repo().join("scripts/kill-campaign.sh"))
        .arg("3")
        .arg(work.path())
        .env("BITSEARCH", env!("CARGO_BIN_EXE_bitsearch"))
        .env("EPISODES", "6")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("kill campaign passed: 3/3 kills"),
        "{stdout}"
    );
}
