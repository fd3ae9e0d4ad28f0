//! Hostile files and shared directories, end to end: a `name` that would escape `--out` is
//! refused by every command that builds a path from it before anything is written; a search,
//! its report and its export write only under their directories; a symbolic link planted in a
//! run, a compare or a sweep directory is replaced or refused, never written through; `report`
//! leaves a directory that is no run as it was; sbatch scripts refuse a path with a newline.
//! Each case is cheap: the refusals happen before any training, and the one real search scores
//! a single episode of the tiny experiment.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::cli::{bitsearch, command, fails, ok, repo};
use common::fixtures::Tiny;

/// Every path under `root` (links not followed), relative to it.
fn tree(root: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            out.insert(path.strip_prefix(root).unwrap().to_path_buf());
            if path.symlink_metadata().unwrap().is_dir() {
                todo.push(path);
            }
        }
    }
    out
}

/// A file whose contents must survive: the target of every planted link.
fn victim(dir: &Path) -> PathBuf {
    let path = dir.join("victim.txt");
    std::fs::write(&path, "precious").unwrap();
    path
}

fn untouched(victim: &Path) {
    assert_eq!(std::fs::read_to_string(victim).unwrap(), "precious");
}

fn is_link(path: &Path) -> bool {
    path.symlink_metadata()
        .is_ok_and(|m| m.file_type().is_symlink())
}

/// bitfusion's profile with its `name` replaced.
fn profile_named(dir: &Path, name: &str) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("hardware-profiles/bitfusion.toml")).unwrap();
    let path = dir.join("device.toml");
    std::fs::write(
        &path,
        text.replace("name = \"bitfusion\"", &format!("name = {name:?}")),
    )
    .unwrap();
    path
}

const ESCAPE: &str = "x/../../escaped-run";

#[test]
fn a_name_that_would_escape_out_is_refused_by_search_sweep_and_dq() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("exp.toml"), Tiny::default().toml("tiny")).unwrap();
    let profile = profile_named(d, ESCAPE);
    let profile = profile.to_str().unwrap();
    let before = tree(d);
    let common = ["--experiment", "exp.toml", "--cache", "A/cache", "--quiet"];
    let search = [
        &["search", "--profile", profile, "--out", "A/out"][..],
        &common,
    ]
    .concat();
    let sweep = [
        &["sweep", "--profile", profile, "--out", "A/sweep"][..],
        &["--experiment", "exp.toml", "--cache", "A/cache"],
    ]
    .concat();
    // dq's default directory is CACHE/dq-NAME.
    let name = format!("name={:?}", "x/../../dq-escaped");
    let dq = [&["dq", "--set", &name][..], &common].concat();
    for args in [&search, &sweep, &dq] {
        let err = fails(bitsearch(args, d));
        assert!(
            err.contains("field `name` becomes part of a directory name") && err.contains("../"),
            "{args:?}: {err}"
        );
    }
    // An experiment's name too.
    std::fs::write(d.join("bad.toml"), Tiny::default().toml("a/b")).unwrap();
    let err = fails(bitsearch(
        &[
            "search",
            "--experiment",
            "bad.toml",
            "--out",
            "A/out",
            "--quiet",
        ],
        d,
    ));
    assert!(
        err.contains("bad.toml: field `name`") && err.contains("\"a/b\""),
        "{err}"
    );
    let mut after = tree(d);
    after.remove(Path::new("bad.toml"));
    assert_eq!(after, before, "the refused commands wrote nothing");
}

/// A planted sweep.json cannot point a cell outside the sweep: `--status` refuses it.
#[test]
fn a_sweep_json_whose_cell_leaves_the_sweep_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sweep");
    std::fs::create_dir(&dir).unwrap();
    let cell = |run: &str| {
        serde_json::json!({"index": 0, "experiment": "/e.toml", "profile": "bitfusion",
            "agent": "mbrl", "seed": 0, "out": "e/s0", "run": run})
    };
    for (run, why) in [
        ("e/s0/../../../../escaped", "no `..`"),
        ("/tmp/elsewhere", "no `..`"),
        ("f/s0/mbrl-bitfusion", "must lie inside `out`"),
    ] {
        let plan = serde_json::json!({"experiments": ["/e.toml"], "profiles": ["bitfusion"],
            "agents": ["mbrl"], "seeds": [0], "episodes": null, "cache": "/c",
            "cells": [cell(run)]});
        std::fs::write(dir.join("sweep.json"), plan.to_string()).unwrap();
        let err = fails(bitsearch(
            &["sweep", "--status", dir.to_str().unwrap()],
            tmp.path(),
        ));
        assert!(
            err.contains("sweep.json: cell 0") && err.contains(why),
            "{run}: {err}"
        );
    }
}

#[test]
fn a_search_report_and_export_write_only_under_their_directories_and_never_through_links() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("exp.toml"), Tiny::default().toml("tiny")).unwrap();
    let victim = victim(d);
    ok(bitsearch(
        &[
            "search",
            "--experiment",
            "exp.toml",
            "--agent",
            "random",
            "--episodes",
            "1",
            "--cache",
            "cache",
            "--out",
            "out",
            "--quiet",
            "--set",
            "front_test.enabled=false",
        ],
        d,
    ));
    let roots = [Path::new("out"), Path::new("cache")];
    let inputs = [Path::new("exp.toml"), Path::new("victim.txt")];
    for p in tree(d) {
        assert!(
            roots.iter().any(|r| p.starts_with(r)) || inputs.contains(&p.as_path()),
            "written outside out/ and cache/: {}",
            p.display()
        );
    }
    let run = d.join("out/random-bitfusion");
    assert!(run.join("report.html").is_file());

    // Links planted at the report and a chart are replaced; their target is untouched.
    for f in [
        "report.html",
        "charts/bitwidths.svg",
        "charts/bitwidths.png",
    ] {
        std::fs::remove_file(run.join(f)).unwrap();
        std::os::unix::fs::symlink(&victim, run.join(f)).unwrap();
    }
    ok(bitsearch(&["report", run.to_str().unwrap()], d));
    untouched(&victim);
    for f in [
        "report.html",
        "charts/bitwidths.svg",
        "charts/bitwidths.png",
    ] {
        assert!(!is_link(&run.join(f)) && run.join(f).is_file(), "{f}");
    }

    // A link at the lock is refused: the report fails and the target keeps its bytes.
    std::fs::remove_file(run.join(".lock")).unwrap();
    std::os::unix::fs::symlink(&victim, run.join(".lock")).unwrap();
    let err = fails(bitsearch(&["report", run.to_str().unwrap()], d));
    assert!(err.contains(".lock: is a symbolic link"), "{err}");
    untouched(&victim);
    std::fs::remove_file(run.join(".lock")).unwrap();

    // The export writes under the run directory only.
    let before = tree(d);
    ok(bitsearch(
        &[
            "export",
            run.to_str().unwrap(),
            "--cache",
            "cache",
            "--check-examples",
            "10",
            "--quiet",
        ],
        d,
    ));
    let added: Vec<PathBuf> = tree(d).difference(&before).cloned().collect();
    assert!(!added.is_empty());
    for p in &added {
        assert!(
            p.to_string_lossy()
                .starts_with("out/random-bitfusion/export-"),
            "{}",
            p.display()
        );
    }
}

/// `report` of a directory that holds no run: refused before it locks or cleans anything, so a
/// user's `thesis.tmp-2024` (which looks like a temporary file) survives and no `.lock` appears.
#[test]
fn report_of_a_directory_that_is_no_run_leaves_it_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("thesis.tmp-2024"), "chapter 1").unwrap();
    let before = tree(tmp.path());
    let err = fails(bitsearch(&["report", tmp.path().to_str().unwrap()], repo()));
    assert!(err.contains("neither a search run"), "{err}");
    assert_eq!(tree(tmp.path()), before);
}

#[test]
fn compare_replaces_links_in_its_out_and_writes_nowhere_else() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let victim = victim(d);
    let (a, b, out) = (d.join("a"), d.join("b"), d.join("cmp"));
    common::write_run(&a, "ddpg-bitfusion", "ddpg", 1, 12);
    common::write_run(&b, "ddpg-bitfusion", "ddpg", 2, 12);
    std::fs::create_dir(&out).unwrap();
    for f in ["compare.csv", "compare.html"] {
        std::os::unix::fs::symlink(&victim, out.join(f)).unwrap();
    }
    let before = tree(d);
    let args = [
        "compare",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    ok(bitsearch(&args, d));
    untouched(&victim);
    for f in ["compare.csv", "compare.html"] {
        assert!(!is_link(&out.join(f)) && out.join(f).is_file(), "{f}");
    }
    for p in tree(d).difference(&before) {
        assert!(
            p.starts_with("cmp"),
            "written outside --out: {}",
            p.display()
        );
    }
    // A link in place of charts/ is refused rather than written into.
    std::fs::remove_dir_all(out.join("charts")).unwrap();
    std::os::unix::fs::symlink(d.join("a"), out.join("charts")).unwrap();
    let err = fails(bitsearch(&args, d));
    assert!(err.contains("charts: is a symbolic link"), "{err}");
    assert!(!a.join("pareto-accuracy-latency.png").exists());
}

/// A sweep directory whose path holds a newline: refused before anything is written (the
/// newline would end an `#SBATCH` line and start a shell command). A space and a quote are
/// quoted, for sbatch's parser and for bash.
#[test]
fn sbatch_scripts_quote_paths_and_refuse_a_newline() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::write(d.join("exp.toml"), Tiny::default().toml("tiny")).unwrap();
    let sweep = |out: &str| {
        command(
            &[
                "sweep",
                "--slurm",
                "--experiment",
                "exp.toml",
                "--cache",
                "cache",
                "--out",
                out,
            ],
            d,
        )
        // No sbatch on the PATH: a script that gets written is not submitted anywhere.
        .env("PATH", "/nonexistent")
        .output()
        .unwrap()
    };
    let evil = "s w/it's\n#SBATCH --x\ntouch pwned\n";
    let err = fails(sweep(evil));
    assert!(
        err.contains("cannot go into an sbatch script") && err.contains("control character"),
        "{err}"
    );
    assert!(
        !d.join("s w").exists() && !d.join("pwned").exists(),
        "nothing written"
    );

    let odd = "s w/it's \"q\"";
    let before = tree(d);
    let err = fails(sweep(odd));
    for p in tree(d).difference(&before) {
        assert!(
            p.starts_with("s w"),
            "written outside --out: {}",
            p.display()
        );
    }
    assert!(err.contains("cannot run sbatch"), "{err}");
    let script = std::fs::read_to_string(d.join(odd).join("sweep.sbatch")).unwrap();
    let abs = d.join(odd).to_str().unwrap().to_string();
    let sbatch_quoted = format!("\"{}/logs/cell-%a.out\"", abs.replace('"', "\\\""));
    assert!(
        script.contains(&format!("#SBATCH --output={sbatch_quoted}\n")),
        "{script}"
    );
    // bash reads the --out argument back as the directory itself.
    let line = script.lines().last().unwrap();
    let arg = line.rsplit_once(" --out ").unwrap().1;
    let echoed = std::process::Command::new("bash")
        .args(["-c", &format!("printf %s {arg}")])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&echoed.stdout), abs);
}
