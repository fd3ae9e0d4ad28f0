//! `bitsearch search --workers 2` end to end: each batch's two policies scored by two worker
//! processes. The same seed gives the same episodes.csv every time; a kill at a point of a
//! batch resumes to that file; config.json records the batch size and a resume keeps it; a
//! crashed worker is an error naming it and its request, and loses no completed score.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;

use common::cli::{ok, quiet_command, search_args};
use common::fixtures::{lines_without_timing, Tiny, DDPG};

/// mbrl planning from its third episode, so a batch's second proposal is planned on a belief.
const MBRL: &str = "agent = \"mbrl\"\ninit = 2\nkappa = 1.0\nenumerate = 4096\ncandidates = 200\nmutations = 5\nplanner = \"reinforce\"\n";

/// A tempdir with the tiny experiment (references on: the agent's first data) and the agent.
fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let exp = Tiny::default().toml("tiny-workers");
    let exp = exp.replace("references = false", "references = true");
    std::fs::write(dir.path().join("exp.toml"), exp).unwrap();
    std::fs::write(dir.path().join("agent.toml"), MBRL).unwrap();
    dir
}

/// Five episodes with two workers into OUT, every policy scored afresh (a shared baseline).
fn search(cwd: &Path, out: &str, extra: &[&str]) -> Command {
    search_with(cwd, out, "2", extra)
}

fn search_with(cwd: &Path, out: &str, workers: &str, extra: &[&str]) -> Command {
    let args = search_args(("exp.toml", "agent.toml"), "5", workers, out, extra);
    quiet_command(&args, cwd)
}

fn log(cwd: &Path, out: &str) -> std::path::PathBuf {
    cwd.join(out).join("mbrl-bitfusion/episodes.csv")
}

#[test]
fn two_workers_give_the_same_file_every_time_and_a_kill_mid_batch_resumes_to_it() {
    let dir = setup();
    let d = dir.path();
    ok(search(d, "whole", &[]).output().unwrap());
    let want = lines_without_timing(&log(d, "whole"));
    assert_eq!(want.len(), 6, "a header and five episodes: {want:?}");
    let config = std::fs::read_to_string(d.join("whole/mbrl-bitfusion/config.json")).unwrap();
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(config["workers"], 2);
    assert!(
        !d.join("whole/mbrl-bitfusion/work").exists(),
        "work/ is gone"
    );
    ok(search(d, "again", &[]).output().unwrap());
    assert_eq!(lines_without_timing(&log(d, "again")), want);

    // After the first batch's second reply (its first row logged, its second not), and after
    // the second batch's first row.
    for (i, point) in ["worker-replied:2", "episode-appended:3"]
        .iter()
        .enumerate()
    {
        let out = format!("cut{i}");
        let o = search(d, &out, &[])
            .env("BITSEARCH_CRASH_AT", point)
            .output()
            .unwrap();
        assert_eq!(o.status.signal(), Some(9), "{point}: {o:?}");
        let cut = lines_without_timing(&log(d, &out));
        assert!(cut.len() < 6 && want.starts_with(&cut), "{point}: {cut:?}");
        ok(search(d, &out, &["--resume"]).output().unwrap());
        assert_eq!(lines_without_timing(&log(d, &out)), want, "{point}");
    }

    // A resume keeps the batch size: another is refused, naming the run's.
    let o = search_with(d, "cut0", "3", &["--resume"]).output().unwrap();
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("--workers 3") && e.contains("--workers 2"),
        "{e}"
    );
}

#[test]
fn a_crashed_worker_is_named_and_the_resume_scores_only_what_has_no_line() {
    let dir = setup();
    let d = dir.path();
    ok(search(d, "whole", &[]).output().unwrap());
    let want = lines_without_timing(&log(d, "whole"));
    // The worker of episode 2 (the second batch's first) dies; episode 3's finishes.
    let o = search(d, "cut", &[])
        .env("BITSEARCH_WORKER_CRASH_AT", "worker-episode-2")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("worker 1 (pid") && e.contains("work/2.json") && e.contains("--resume"),
        "{e}"
    );
    assert_eq!(lines_without_timing(&log(d, "cut")), want[..3]);
    let kept = d.join("cut/mbrl-bitfusion/work/3.score.json");
    let reply: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&kept).unwrap()).unwrap();
    ok(search(d, "cut", &["--resume"]).output().unwrap());
    assert_eq!(lines_without_timing(&log(d, "cut")), want);
    // Episode 3 was not scored again: its line carries the kept reply's seconds.
    let text = std::fs::read_to_string(log(d, "cut")).unwrap();
    let row3 = text.lines().nth(4).unwrap();
    let seconds = row3.rsplit_once(',').unwrap().1;
    let kept_seconds = format!("{:.3}", reply["seconds"].as_f64().unwrap());
    assert_eq!(seconds, kept_seconds, "{row3}");
}

/// DDPG learns from each episode before the next: a batch of two is refused, naming the fix,
/// before the run directory gets a config.json.
#[test]
fn ddpg_is_refused_with_two_workers() {
    let dir = setup();
    let d = dir.path();
    std::fs::write(d.join("agent.toml"), DDPG).unwrap();
    let o = search(d, "ddpg", &[]).output().unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(e.contains("sequential") && e.contains("--workers 1"), "{e}");
    assert!(!d.join("ddpg/ddpg-bitfusion/config.json").exists());
}

/// `sweep --workers 2`: sweep.json records the batch size, and its cell logs the episodes a
/// `search --workers 2` with the same seed logs.
#[test]
fn a_sweep_with_two_workers_gives_its_cells_the_searchs_episodes() {
    let dir = setup();
    let d = dir.path();
    ok(search(d, "whole", &["--seed", "3"]).output().unwrap());
    let args = [
        "sweep",
        "--experiment",
        "exp.toml",
        "--agent",
        "agent.toml",
        "--seed",
        "3",
        "--episodes",
        "5",
        "--workers",
        "2",
        "--jobs",
        "1",
        "--cache",
        "cache",
        "--quiet",
        "--out",
        "sw",
    ];
    ok(quiet_command(&args, d).output().unwrap());
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("sw/sweep.json")).unwrap()).unwrap();
    assert_eq!(plan["workers"], 2);
    let cell = d.join("sw/exp/s3/mbrl-bitfusion");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cell.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["workers"], 2);
    assert_eq!(
        lines_without_timing(&cell.join("episodes.csv")),
        lines_without_timing(&log(d, "whole"))
    );
}
