//! `bitsearch search` end to end: a run killed with SIGKILL in the middle of an episode is
//! resumed with --resume to exactly the uninterrupted run's episodes; one and two threads give
//! the same baseline and episodes, bit for bit.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::cli::command;
use common::fixtures::{lines_without_timing, Tiny, DDPG};

/// `bitsearch search` of the tiny experiment with `agent.toml` into OUT, scoring every policy
/// afresh (no score reused from another run).
fn search_args<'a>(out: &'a str, episodes: &'a str, cache: &'a str) -> Vec<&'a str> {
    vec![
        "search",
        "--experiment",
        "exp.toml",
        "--agent",
        "agent.toml",
        "--episodes",
        episodes,
        "--cache",
        cache,
        "--no-score-cache",
        "--quiet",
        "--out",
        out,
    ]
}

fn search(cwd: &Path, out: &str, extra: &[&str]) -> Command {
    // Every episode fine-tunes (no score reused from the other run), so the kill lands inside
    // one and the resumed run recomputes what the cache would have handed back.
    let mut args = search_args(out, "6", "cache");
    args.extend_from_slice(extra);
    let mut c = command(&args, cwd);
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    c
}

#[test]
fn sigkill_mid_episode_then_resume_equals_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    // Fine-tunes long enough (40 steps) that the kill lands inside an episode.
    let exp = Tiny {
        finetune_steps: 40,
        pgd_steps: 5,
        examples: 50,
        transfer: true,
        ..Tiny::default()
    };
    std::fs::write(dir.path().join("exp.toml"), exp.toml("tiny-cli")).unwrap();
    std::fs::write(dir.path().join("agent.toml"), DDPG).unwrap();
    let whole = search(dir.path(), "whole", &[]).output().unwrap();
    assert!(
        whole.status.success(),
        "{}",
        String::from_utf8_lossy(&whole.stderr)
    );

    let log = dir.path().join("cut/ddpg-bitfusion/episodes.csv");
    let mut child = search(dir.path(), "cut", &[]).spawn().unwrap();
    let start = Instant::now();
    // Wait for two whole episodes (header + 2 lines), then kill during the third.
    while std::fs::read_to_string(&log)
        .map(|t| t.lines().count())
        .unwrap_or(0)
        < 3
    {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "the search made no progress"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the search ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(150));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let done = std::fs::read_to_string(&log).unwrap().lines().count() - 1;
    assert!(done < 6, "killed before the end ({done} episodes logged)");

    let again = search(dir.path(), "cut", &[]).output().unwrap();
    assert!(
        !again.status.success(),
        "a second run without --resume must refuse to overwrite"
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("--resume"));
    let resumed = search(dir.path(), "cut", &["--resume"]).output().unwrap();
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let want = lines_without_timing(&dir.path().join("whole/ddpg-bitfusion/episodes.csv"));
    assert_eq!(want.len(), 7);
    assert_eq!(lines_without_timing(&log), want);
    assert!(dir.path().join("cut/ddpg-bitfusion/report.html").exists());
}

/// The weight gradient is summed in fixed chunks, so the thread count changes no bit of the FP32
/// baseline or of any episode (before, one partial sum per thread made both depend on it).
#[test]
fn one_and_two_threads_give_identical_baselines_and_episodes() {
    let dir = tempfile::tempdir().unwrap();
    let exp = Tiny {
        arch: "lenet5",
        finetune_steps: 10,
        ..Tiny::default()
    };
    std::fs::write(dir.path().join("exp.toml"), exp.toml("tiny-threads")).unwrap();
    std::fs::write(dir.path().join("agent.toml"), DDPG).unwrap();
    let run = |threads: &str| {
        let out = format!("t{threads}");
        let cache = format!("cache{threads}");
        let args = search_args(&out, "3", &cache);
        let mut c = command(&args, dir.path());
        c.env("CANDLE_NUM_THREADS", threads)
            .env("RAYON_NUM_THREADS", threads);
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let run_dir = dir.path().join(&out).join("ddpg-bitfusion");
        let config = std::fs::read_to_string(run_dir.join("config.json")).unwrap();
        let config: serde_json::Value = serde_json::from_str(&config).unwrap();
        assert_eq!(config["threads"].as_u64(), Some(threads.parse().unwrap()));
        let baselines = dir.path().join(&cache).join("baselines");
        let baseline = std::fs::read_dir(&baselines)
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        let weights = std::fs::read(baseline.path().join("model.safetensors")).unwrap();
        (weights, lines_without_timing(&run_dir.join("episodes.csv")))
    };
    let (w1, e1) = run("1");
    let (w2, e2) = run("2");
    assert!(
        w1 == w2,
        "the FP32 baselines differ between 1 and 2 threads"
    );
    assert_eq!(e1.len(), 4);
    assert_eq!(e1, e2);
}
