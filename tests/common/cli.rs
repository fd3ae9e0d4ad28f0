//! Running the `bitsearch` binary from a test: one place for the command, its output, and the
//! assertions every end-to-end test makes about success or failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Runs `bitsearch ARGS` in `cwd`.
pub fn bitsearch(args: &[&str], cwd: &Path) -> Output {
    command(args, cwd)
        .output()
        .expect("the bitsearch binary runs")
}

/// `bitsearch ARGS` in `cwd`, not started yet (for tests that spawn, pipe or kill it).
pub fn command(args: &[&str], cwd: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bitsearch"));
    c.args(args).current_dir(cwd);
    c
}

/// The repository's root, where the shipped experiments, agents and profiles are found.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Stdout of a run that must succeed.
pub fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "stdout: {}\nstderr: {}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// Stderr of a run that must fail.
pub fn fails(o: Output) -> String {
    assert!(!o.status.success(), "succeeded: {}", stdout(&o));
    stderr(&o)
}

/// `bitsearch search --experiment EXP --quiet --out out` in `dir` (the default agent and
/// profile), which must succeed; returns the run directory, `dir/out/mbrl-bitfusion`, and its
/// episodes.csv.
pub fn search_default(dir: &Path, exp: &Path) -> (PathBuf, String) {
    let out = dir.join("out");
    let args = [
        "search",
        "--experiment",
        exp.to_str().unwrap(),
        "--quiet",
        "--out",
    ];
    ok(bitsearch(
        &[&args[..], &[out.to_str().unwrap()]].concat(),
        dir,
    ));
    let run = out.join("mbrl-bitfusion");
    let csv = std::fs::read_to_string(run.join("episodes.csv")).unwrap();
    (run, csv)
}

/// The arguments of a scaling test's search: `search --experiment EXP --agent AGENT --episodes
/// EPISODES --workers WORKERS`, the FP32 baseline cached in `cache`, every policy scored afresh
/// (`--no-score-cache`), quiet, into OUT; then `extra`.
pub fn search_args<'a>(
    (exp, agent): (&'a str, &'a str),
    episodes: &'a str,
    workers: &'a str,
    out: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![
        "search",
        "--experiment",
        exp,
        "--agent",
        agent,
        "--episodes",
        episodes,
        "--workers",
        workers,
        "--cache",
        "cache",
        "--no-score-cache",
        "--quiet",
        "--out",
        out,
    ];
    args.extend_from_slice(extra);
    args
}

/// `command(args, cwd)` with stdout discarded and stderr captured (for `ok` and `fails`).
pub fn quiet_command(args: &[&str], cwd: &Path) -> Command {
    let mut c = command(args, cwd);
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    c
}
