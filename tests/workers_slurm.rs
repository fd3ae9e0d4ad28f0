//! `bitsearch search --workers 2 --slurm` on a real one-node Slurm cluster
//! (scripts/slurm-cluster.sh): each batch's workers run as Slurm jobs and the episodes are the
//! local `--workers 2` run's; a worker job that fails is an error naming the job, its request
//! and its output file, and the run resumes (here, without Slurm) to the same episodes; a
//! killed search cancels its jobs. Skipped (with a message) only when Slurm is absent and `CI`
//! is unset. The flag's own rules (`--workers`, a missing sbatch) need no cluster.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::cli::{command, fails, ok, search_args};
use common::fixtures::{lines_without_timing, Tiny};
use common::slurm::{slurm_available, Cluster};

/// A tempdir with a small LeNet-5 experiment (embedded digits, one FP32 epoch, 5 fine-tune
/// steps, a 20-example suite).
fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let tiny = Tiny {
        arch: "lenet5",
        ..Tiny::default()
    };
    std::fs::write(dir.path().join("exp.toml"), tiny.toml("lenet5-slurm")).unwrap();
    dir
}

/// Four random-agent episodes in batches of two into OUT, every policy scored afresh, with
/// `extra` flags.
fn args<'a>(out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    search_args(("exp.toml", "random"), "4", "2", out, extra)
}

fn run_dir(cwd: &Path, out: &str) -> PathBuf {
    cwd.join(out).join("random-bitfusion")
}

fn log(cwd: &Path, out: &str) -> Vec<String> {
    lines_without_timing(&run_dir(cwd, out).join("episodes.csv"))
}

/// The ids of the cluster's jobs still queued or running.
fn queued(cluster: &Cluster) -> Vec<String> {
    let out = cluster
        .client("squeue")
        .args(["-h", "-o", "%i %T"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect()
}

/// Polls until `done()` holds, or panics after `limit` naming `what`.
fn wait_until(what: &str, limit: Duration, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "waited {limit:?} for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn slurm_needs_batches_and_names_a_missing_sbatch() {
    let dir = setup();
    let d = dir.path();
    let e = fails(
        command(&["search", "--slurm", "--out", "o"], d)
            .output()
            .unwrap(),
    );
    assert!(
        e.contains("--slurm") && e.contains("--workers N with N > 1"),
        "{e}"
    );
    let e = fails(
        command(&args("o", &["--slurm"]), d)
            .env("PATH", "/nonexistent")
            .output()
            .unwrap(),
    );
    assert!(e.contains("cannot run sbatch (is Slurm installed"), "{e}");
    assert!(
        !d.join("o").exists() && !d.join("cache").exists(),
        "nothing written"
    );
}

#[test]
fn slurm_workers_log_the_local_episodes_and_a_failed_job_is_named() {
    if !slurm_available() {
        return;
    }
    let dir = setup();
    let d = dir.path();
    let cluster = Cluster::start(&d.join("cluster"));
    ok(command(&args("local", &[]), d).output().unwrap());
    let want = log(d, "local");
    assert_eq!(want.len(), 5, "a header and four episodes: {want:?}");

    cluster.bitsearch(&args("slurm", &["--slurm"]), d);
    assert_eq!(log(d, "slurm"), want, "Slurm and local workers differ");
    let run = run_dir(d, "slurm");
    assert!(!run.join("work").exists(), "work/ is gone");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["workers"], 2);

    // Episode 2's worker (the second batch's first) dies; the error names its job, request and
    // output file, which holds what it wrote.
    let o = cluster
        .command(&args("fail", &["--slurm"]), d)
        .env("BITSEARCH_WORKER_CRASH_AT", "worker-episode-2")
        .output()
        .unwrap();
    let e = fails(o);
    let work = run_dir(d, "fail").join("work");
    let (request, out) = (work.join("2.json"), work.join("2.log"));
    assert!(
        e.contains("worker 1 (Slurm job ")
            && e.contains(&format!("failed on {}", request.display()))
            && e.contains(&out.display().to_string())
            && e.contains("--resume"),
        "{e}"
    );
    assert!(out.is_file() && work.join("2.sbatch").is_file());
    assert_eq!(log(d, "fail"), want[..3]);
    // Where the workers ran does not change the episodes: a resume here finishes the run.
    ok(command(&args("fail", &["--resume"]), d).output().unwrap());
    assert_eq!(log(d, "fail"), want);
    assert!(queued(&cluster).is_empty(), "{:?}", queued(&cluster));
    drop(cluster);
}

/// A search killed while its jobs run (SIGKILL: it cannot clean up) leaves none running: each
/// job's guard cancels it. The fine-tune is long, so a job that was not cancelled would still
/// be running, and no reply appears.
#[test]
fn a_killed_search_cancels_its_jobs() {
    if !slurm_available() {
        return;
    }
    let dir = setup();
    let d = dir.path();
    let cluster = Cluster::start(&d.join("cluster"));
    let mut search = cluster.command(
        &args("cut", &["--slurm", "--set", "finetune.steps=5000"]),
        d,
    );
    let mut search = search
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("two running jobs", Duration::from_secs(300), || {
        queued(&cluster)
            .iter()
            .filter(|j| j.ends_with(" RUNNING"))
            .count()
            == 2
    });
    search.kill().unwrap();
    search.wait().unwrap();
    wait_until("the jobs' cancel", Duration::from_secs(30), || {
        queued(&cluster).is_empty()
    });
    let work = run_dir(d, "cut").join("work");
    for k in 0..2 {
        assert!(
            !work.join(format!("{k}.score.json")).exists(),
            "episode {k}"
        );
    }
    drop(cluster);
}
