//! `[search] fidelity = "multi"` end to end on a tiny LeNet-5 search: episodes.csv has a
//! `fidelity` column, `--episodes` counts the full-fidelity rows, pareto.csv and
//! best-policy.json hold full rows only, the same seed gives the same file, and a kill (here or
//! mid-batch with two workers) resumes to it. Without the option every row is `full`.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::cli::{ok, quiet_command, search_args};
use common::fixtures::{lines_without_timing, Tiny};

/// mbrl planning from its third proposal (its first two are the warm-up's low scores).
const MBRL: &str = "agent = \"mbrl\"\ninit = 2\nkappa = 1.0\nenumerate = 4096\ncandidates = 100\nmutations = 5\nplanner = \"uniform\"\n";

const EPISODES: usize = 5;

/// A tempdir with the tiny LeNet-5 experiment (references on: full data for the models) with
/// two fidelities, the same without them, and the agent.
fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let tiny = Tiny {
        arch: "lenet5",
        finetune_steps: 8,
        ..Tiny::default()
    };
    let exp = tiny.toml("tiny-fidelity");
    let exp = exp.replace("references = false", "references = true");
    std::fs::write(dir.path().join("full.toml"), &exp).unwrap();
    let multi = exp.replace("[search]\n", "[search]\nfidelity = \"multi\"\n")
        + "[search.low]\nsteps = 0.25\nexamples = 0.5\ncost = 0.3\n";
    std::fs::write(dir.path().join("multi.toml"), multi).unwrap();
    std::fs::write(dir.path().join("agent.toml"), MBRL).unwrap();
    dir
}

fn search(cwd: &Path, exp: &str, out: &str, workers: &str, extra: &[&str]) -> Command {
    let episodes = EPISODES.to_string();
    let args = search_args((exp, "agent.toml"), &episodes, workers, out, extra);
    quiet_command(&args, cwd)
}

fn run_dir(cwd: &Path, out: &str) -> PathBuf {
    cwd.join(out).join("mbrl-bitfusion")
}

/// Each row's (episode, fidelity), from the column named `fidelity`.
fn fidelities(csv: &Path) -> Vec<(usize, String)> {
    let mut r = csv::Reader::from_path(csv).unwrap();
    let col = (r.headers().unwrap().iter())
        .position(|h| h == "fidelity")
        .unwrap_or_else(|| panic!("{}: no fidelity column", csv.display()));
    (r.records())
        .map(|rec| {
            let rec = rec.unwrap();
            (rec[0].parse().unwrap(), rec[col].to_string())
        })
        .collect()
}

#[test]
fn multi_fidelity_logs_low_rows_counts_full_ones_and_keeps_them_out_of_the_results() {
    let dir = setup();
    let d = dir.path();
    ok(search(d, "multi.toml", "whole", "1", &[]).output().unwrap());
    let run = run_dir(d, "whole");
    let rows = fidelities(&run.join("episodes.csv"));
    let full: Vec<usize> = (rows.iter())
        .filter(|(_, f)| f == "full")
        .map(|r| r.0)
        .collect();
    let low: Vec<usize> = (rows.iter())
        .filter(|(_, f)| f == "low")
        .map(|r| r.0)
        .collect();
    assert_eq!(
        full.len(),
        EPISODES,
        "--episodes counts full rows: {rows:?}"
    );
    assert!(low.len() >= 2, "the warm-up's low scores: {rows:?}");
    assert_eq!(
        full.len() + low.len(),
        rows.len(),
        "only full or low: {rows:?}"
    );
    // The last row is the last full episode: the search stops once it has them all.
    assert_eq!(rows.last().map(|r| r.1.as_str()), Some("full"));
    for (k, _) in fidelities(&run.join("pareto.csv")) {
        assert!(full.contains(&k), "pareto.csv holds low episode {k}");
    }
    let best: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("best-policy.json")).unwrap())
            .unwrap();
    let k = best["episode"].as_u64().unwrap() as usize;
    assert!(full.contains(&k), "best-policy.json is low episode {k}");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["experiment"]["search"]["fidelity"], "multi");

    // The same seed, the same file; a kill after a low row, then one after a full row, resume
    // to it.
    let want = lines_without_timing(&run.join("episodes.csv"));
    ok(search(d, "multi.toml", "again", "1", &[]).output().unwrap());
    assert_eq!(
        lines_without_timing(&run_dir(d, "again").join("episodes.csv")),
        want
    );
    let first_full = full[0];
    for (i, k) in [low[0], first_full].into_iter().enumerate() {
        let out = format!("cut{i}");
        let point = format!("episode-appended:{}", k + 1);
        let o = search(d, "multi.toml", &out, "1", &[])
            .env("BITSEARCH_CRASH_AT", &point)
            .output()
            .unwrap();
        assert_eq!(o.status.signal(), Some(9), "{point}: {o:?}");
        let log = run_dir(d, &out).join("episodes.csv");
        assert_eq!(lines_without_timing(&log).len(), k + 2, "{point}");
        ok(search(d, "multi.toml", &out, "1", &["--resume"])
            .output()
            .unwrap());
        assert_eq!(lines_without_timing(&log), want, "{point}");
    }
}

#[test]
fn two_workers_with_two_fidelities_resume_to_the_same_file() {
    let dir = setup();
    let d = dir.path();
    ok(search(d, "multi.toml", "whole", "2", &[]).output().unwrap());
    let log = run_dir(d, "whole").join("episodes.csv");
    let want = lines_without_timing(&log);
    let rows = fidelities(&log);
    assert_eq!(rows.iter().filter(|(_, f)| f == "full").count(), EPISODES);
    let o = search(d, "multi.toml", "cut", "2", &[])
        .env("BITSEARCH_CRASH_AT", "episode-appended:3")
        .output()
        .unwrap();
    assert_eq!(o.status.signal(), Some(9), "{o:?}");
    ok(search(d, "multi.toml", "cut", "2", &["--resume"])
        .output()
        .unwrap());
    assert_eq!(
        lines_without_timing(&run_dir(d, "cut").join("episodes.csv")),
        want
    );
}

#[test]
fn without_the_option_every_row_is_full() {
    let dir = setup();
    let d = dir.path();
    ok(search(d, "full.toml", "full", "1", &[]).output().unwrap());
    let rows = fidelities(&run_dir(d, "full").join("episodes.csv"));
    assert_eq!(rows.len(), EPISODES);
    assert!(rows.iter().all(|(_, f)| f == "full"), "{rows:?}");
}
