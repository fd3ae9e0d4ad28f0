//! What a concurrent run, a kill or a fault of the machine can do to a run directory, end to end
//! with the `bitsearch` binary: a second search or a report on a directory a search is writing
//! is refused naming the holder; a lock left by a killed search is taken over by `--resume`;
//! searches that share a baseline cache train it at once safely; a read-only directory, a
//! file-size limit hit mid-way and a full disk give a clear error, keep every logged episode
//! whole, and `--resume` then finishes the run exactly as an uninterrupted one.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use common::cli::{command, fails, ok, stderr, stdout};
use common::faults::{file_size_limit, read_only, temporary_files, wait_for_lines, Tmpfs};
use common::fixtures::{lines_without_timing, Tiny, DDPG};

/// Long enough that episodes.csv outgrows config.json (for the file-size limit) and that a
/// search is still running while the tests start a second command on its directory.
const EPISODES: &str = "32";
const RUN: &str = "ddpg-bitfusion";

/// The shared inputs: exp.toml, agent.toml, a baseline cache already trained, and `whole/`, an
/// uninterrupted run every other run must equal. Built once, in the target's test directory.
fn fixture() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let root = fixture_root();
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(
            root.join("exp.toml"),
            Tiny::default().toml("tiny-reliability"),
        )
        .unwrap();
        std::fs::write(root.join("agent.toml"), DDPG).unwrap();
        ok(search(&root, "whole").output().unwrap());
        root
    })
}

/// `bitsearch search` of the fixture's experiment into `out` (relative to `cwd`), stdout and
/// stderr piped; every episode fine-tunes (no score cache), so runs take real time.
fn search(cwd: &Path, out: &str) -> Command {
    let root = fixture_root();
    let (exp, agent, cache) = (
        root.join("exp.toml"),
        root.join("agent.toml"),
        root.join("cache"),
    );
    let mut c = command(&["search", "--episodes", EPISODES], cwd);
    c.arg("--experiment").arg(exp).arg("--agent").arg(agent);
    c.arg("--cache")
        .arg(cache)
        .args(["--no-score-cache", "--quiet"]);
    c.args(["--out", out])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// The fixture's directory, whether or not it is built yet (`search` builds `whole/` with it).
/// The shared fixture's directory, named after the checkout too: worktrees that share one
/// target directory (and so one CARGO_TARGET_TMPDIR) must not remove each other's fixture.
fn fixture_root() -> PathBuf {
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).file_name();
    let checkout = checkout.map_or("".into(), |n| n.to_string_lossy());
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("reliability-{checkout}"))
}

fn resume(cwd: &Path, out: &str) -> Output {
    search(cwd, out).arg("--resume").output().unwrap()
}

/// The uninterrupted run's episodes.csv, timing column aside.
fn whole() -> Vec<String> {
    lines_without_timing(&fixture().join("whole").join(RUN).join("episodes.csv"))
}

/// Episodes.csv after a fault: whole lines only, each equal to the uninterrupted run's.
fn assert_whole_prefix(log: &Path) -> usize {
    let text = std::fs::read_to_string(log).unwrap();
    assert!(
        text.ends_with('\n'),
        "a cut line in {}:\n{text}",
        log.display()
    );
    let lines = lines_without_timing(log);
    assert_eq!(lines[..], whole()[..lines.len()], "{}", log.display());
    lines.len() - 1
}

#[test]
fn a_second_search_and_a_report_are_refused_while_a_search_runs() {
    let dir = tempfile::tempdir().unwrap();
    fixture();
    let mut first = search(dir.path(), "out").spawn().unwrap();
    let log = dir.path().join("out").join(RUN).join("episodes.csv");
    wait_for_lines(&mut first, &log, 2);
    let holder = format!(".lock: locked by pid {} on host", first.id());
    let second = fails(resume(dir.path(), "out"));
    assert!(second.contains(&holder), "{second}");
    assert!(second.contains("bitsearch search --episodes"), "{second}");
    assert!(second.contains("still running"), "{second}");
    let mut report = command(&["report", &format!("out/{RUN}")], dir.path());
    let report = fails(report.output().unwrap());
    assert!(report.contains(&holder), "{report}");
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first search still runs"
    );
    ok(first.wait_with_output().unwrap());
    assert_eq!(lines_without_timing(&log), whole());
    assert!(dir
        .path()
        .join("out")
        .join(RUN)
        .join("report.html")
        .exists());
    let lock = std::fs::read_to_string(dir.path().join("out").join(RUN).join(".lock")).unwrap();
    assert_eq!(lock, "", "a finished search leaves the lock released");
}

#[test]
fn a_search_killed_with_sigkill_leaves_a_lock_that_resume_takes_over() {
    let dir = tempfile::tempdir().unwrap();
    fixture();
    let mut child = search(dir.path(), "out").spawn().unwrap();
    let run = dir.path().join("out").join(RUN);
    wait_for_lines(&mut child, &run.join("episodes.csv"), 3);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let record = std::fs::read_to_string(run.join(".lock")).unwrap();
    assert!(
        record.contains(&format!("\"pid\":{}", child.id())),
        "{record}"
    );
    let resumed = resume(dir.path(), "out");
    let err = stderr(&resumed);
    ok(resumed);
    let notice = format!(".lock: took over a stale lock from pid {}", child.id());
    assert!(err.contains(&notice), "{err}");
    assert_eq!(lines_without_timing(&run.join("episodes.csv")), whole());
}

#[test]
fn two_processes_train_the_same_baseline_at_once_on_an_empty_cache() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("exp.toml"),
        Tiny::default().toml("tiny-twice"),
    )
    .unwrap();
    let train = || {
        let args = [
            "train",
            "--experiment",
            "exp.toml",
            "--out",
            "cache",
            "--quiet",
        ];
        let mut c = command(&args, dir.path());
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        c.spawn().unwrap()
    };
    let (a, b) = (train(), train());
    let outputs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
    for o in &outputs {
        // Both trained (neither found the cache filled before it started), so both published.
        assert!(stderr(o).contains("epoch  1:"), "{}", stderr(o));
    }
    let saved: Vec<String> = outputs
        .into_iter()
        .map(|o| ok(o).lines().last().unwrap().to_string())
        .collect();
    assert_eq!(saved[0], saved[1], "both use the same cached baseline");
    let baselines: Vec<_> = std::fs::read_dir(dir.path().join("cache/baselines"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        baselines.len(),
        1,
        "one baseline, no temporary directory: {baselines:?}"
    );
    let again = ok(train().wait_with_output().unwrap());
    assert!(again.contains("reusing the cached baseline"), "{again}");
}

#[test]
fn a_read_only_run_directory_gives_a_clear_error_and_keeps_every_episode() {
    let dir = tempfile::tempdir().unwrap();
    // A killed run's directory: the uninterrupted run's files, episodes.csv cut to 3 episodes.
    let run = dir.path().join("out").join(RUN);
    std::fs::create_dir_all(&run).unwrap();
    let src = fixture().join("whole").join(RUN);
    for file in ["config.json", "references.csv", "pareto.csv", "agent.json"] {
        std::fs::copy(src.join(file), run.join(file)).unwrap();
    }
    let text = std::fs::read_to_string(src.join("episodes.csv")).unwrap();
    let cut: String = text.split_inclusive('\n').take(4).collect();
    std::fs::write(run.join("episodes.csv"), &cut).unwrap();

    // Root ignores permission bits: check the mount really refuses writes.
    let mut probe = Command::new("touch");
    probe.arg(run.join("probe"));
    read_only(&mut probe, &run);
    assert!(
        !probe.status().unwrap().success(),
        "root wrote into the read-only mount"
    );
    assert!(!run.join("probe").exists());

    let mut resumed = search(dir.path(), "out");
    resumed.arg("--resume");
    read_only(&mut resumed, &run);
    let err = fails(resumed.output().unwrap());
    assert!(err.contains(&format!("{RUN}/.lock: cannot lock")), "{err}");
    assert!(err.contains("Read-only file system"), "{err}");
    assert_eq!(
        std::fs::read_to_string(run.join("episodes.csv")).unwrap(),
        cut
    );

    // A new search whose --out is read-only.
    let out = dir.path().join("locked-out");
    std::fs::create_dir_all(&out).unwrap();
    let mut fresh = search(dir.path(), "locked-out");
    read_only(&mut fresh, &out);
    let err = fails(fresh.output().unwrap());
    assert!(
        err.contains(&format!("locked-out/{RUN}: cannot write")),
        "{err}"
    );
    assert!(err.contains("Read-only file system"), "{err}");

    // Writable again, the resume finishes the run as if nothing happened.
    ok(resume(dir.path(), "out"));
    assert_eq!(lines_without_timing(&run.join("episodes.csv")), whole());
}

#[test]
fn a_file_size_limit_hit_mid_way_keeps_whole_lines_and_resume_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture().join("whole").join(RUN);
    // The limit falls inside an episode line well after config.json (the largest file written
    // before the end) fits, so the first write past it is an append to episodes.csv.
    let config = std::fs::metadata(src.join("config.json")).unwrap().len();
    let text = std::fs::read_to_string(src.join("episodes.csv")).unwrap();
    let mut limit = 0;
    for line in text.split_inclusive('\n') {
        if limit > config + 512 {
            limit += line.len() as u64 / 2;
            break;
        }
        limit += line.len() as u64;
    }
    assert!(
        limit < text.len() as u64,
        "episodes.csv outgrows config.json"
    );

    let mut limited = search(dir.path(), "out");
    file_size_limit(&mut limited, limit);
    let err = fails(limited.output().unwrap());
    assert!(
        err.contains(&format!("{RUN}/episodes.csv: cannot write")),
        "{err}"
    );
    assert!(err.contains("File too large"), "{err}");
    let run = dir.path().join("out").join(RUN);
    let logged = assert_whole_prefix(&run.join("episodes.csv"));
    assert!(
        logged >= 10,
        "the fault came mid-way, after {logged} episodes"
    );
    assert!(
        temporary_files(&run).is_empty(),
        "{:?}",
        temporary_files(&run)
    );

    let resumed = resume(dir.path(), "out");
    ok(resumed);
    assert_eq!(lines_without_timing(&run.join("episodes.csv")), whole());
}

#[test]
fn a_full_disk_mid_run_keeps_every_episode_and_resume_finishes() {
    let dir = tempfile::tempdir().unwrap();
    fixture();
    // Room for the whole run (about 0.5 MiB) with a second copy of report.html, which every
    // whole-file write needs while it renames its new version into place.
    let disk = Tmpfs::mount(&dir.path().join("disk"), 2 << 20);
    let mut child = search(&disk.dir, "out").spawn().unwrap();
    let run = disk.dir.join("out").join(RUN);
    wait_for_lines(&mut child, &run.join("episodes.csv"), 3);
    disk.fill("filler");
    let out = child.wait_with_output().unwrap();
    let err = fails(out);
    assert!(err.contains("No space left on device"), "{err}");
    assert!(err.contains(&format!("{RUN}/")), "names the file: {err}");
    let logged = assert_whole_prefix(&run.join("episodes.csv"));
    assert!(logged >= 2, "{logged} episodes kept");
    assert!(
        temporary_files(&run).is_empty(),
        "{:?}",
        temporary_files(&run)
    );

    std::fs::remove_file(disk.dir.join("filler")).unwrap();
    let resumed = resume(&disk.dir, "out");
    let text = stdout(&resumed);
    ok(resumed);
    assert!(text.contains("best of 32 episodes"), "{text}");
    assert_eq!(lines_without_timing(&run.join("episodes.csv")), whole());
}
