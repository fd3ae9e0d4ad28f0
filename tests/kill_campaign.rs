//! The kill -9 campaign (scripts/kill-campaign.sh) at a small N: a short search killed with
//! SIGKILL at random moments and named crash points, resumed each time, ends equal to an
//! uninterrupted run, file for file, one policy at a time and on two workers.
//! `scripts/kill-campaign.sh 20` (and `WORKERS=2 scripts/kill-campaign.sh 20`) is the full
//! campaign.

mod common;

use std::process::Command;

use common::cli::repo;

/// Runs the campaign with `kills` kills over `episodes`-episode searches on `workers` workers.
fn campaign(kills: &str, episodes: &str, workers: &str) {
    let work = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg(repo().join("scripts/kill-campaign.sh"))
        .arg(kills)
        .arg(work.path())
        .env("BITSEARCH", env!("CARGO_BIN_EXE_bitsearch"))
        .env("EPISODES", episodes)
        .env("WORKERS", workers)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let passed = format!("kill campaign passed: {kills}/{kills} kills");
    assert!(stdout.contains(&passed), "{stdout}");
}

#[test]
fn a_search_killed_at_random_moments_resumes_to_the_uninterrupted_result() {
    campaign("3", "6", "1");
}

/// Kills land in the middle of batches: while workers score, between a reply and its line,
/// between a batch's lines.
#[test]
fn a_search_on_two_workers_killed_at_random_moments_resumes_to_the_uninterrupted_result() {
    campaign("3", "5", "2");
}
