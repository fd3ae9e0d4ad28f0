//! Harnesses of the run-directory readers, on a real run's files (tests/fuzz/seeds/run: a
//! 60-episode mbrl search, and a measured.csv of two of its policies) and a DQ study: one file
//! of the directory is the input, the others stay valid. Each case reads the directory as
//! `report` does (`read_any`, then the report itself when the read succeeds), as `compare` does
//! (`RunDir::read`, then `compare` against the seed run) and as `--resume` does
//! (`RunLog::resume` of episodes.csv, config.json); a DQ study and a sensitivity study as
//! `report` reads them.

use std::path::Path;

use bitsearch::report::{compare::compare, write_report};
use bitsearch::rundir::{read_any, BestPolicy, FrontTest, Measured, RunConfig, RunDir, RunLog};

use super::engine::fuzz;
use super::mutate::input;
use super::{seed_dir, shown};

/// The files of the seed run, in the order the harness picks them by.
const RUN_FILES: [&str; 7] = [
    "episodes.csv",
    "config.json",
    "best-policy.json",
    "front-test.csv",
    "references.csv",
    "pareto.csv",
    "measured.csv",
];

fn read_files(dir: &Path, names: &[&str]) -> Vec<Vec<u8>> {
    (names.iter())
        .map(|f| std::fs::read(dir.join(f)).expect("read a seed"))
        .collect()
}

fn write_files(dir: &Path, names: &[&str], contents: &[Vec<u8>]) {
    for (name, bytes) in names.iter().zip(contents) {
        std::fs::write(dir.join(name), bytes).expect("write into the temp dir");
    }
}

/// What `--resume` reads: episodes.csv through the log (which may rewrite a cut last line)
/// and config.json.
fn resume(dir: &Path, layers: &[String]) {
    if let Some(log) = shown(RunLog::new(dir, layers.to_vec())) {
        let _ = shown(log.resume("episodes.csv"));
    }
    let _ = shown(RunConfig::read(&dir.join(RunConfig::FILE)));
}

/// One file of a search run directory mutated; the report, compare and resume readers.
pub fn run_dir() {
    let seed = seed_dir().join("run");
    let seeds = read_files(&seed, &RUN_FILES);
    let seed_run = RunDir::read(&seed).expect("the seed run directory reads");
    assert!(
        seed_run.best.is_some() && seed_run.front_test.is_some() && seed_run.measured.is_some()
    );
    let layers: Vec<String> = seed_run
        .config
        .layers
        .iter()
        .map(|l| l.name.clone())
        .collect();
    let work = tempfile::tempdir().expect("temp dir");
    let (dir, out) = (work.path().join("run"), work.path().join("compare"));
    std::fs::create_dir_all(&dir).expect("mkdir");
    // A report renders PNG and SVG charts: the dearest case, so fewer cases per batch.
    fuzz("run-dir", 8, (0..RUN_FILES.len(), input()), |(k, inp)| {
        let mut files = seeds.clone();
        files[*k] = inp.apply(&seeds[*k]);
        write_files(&dir, &RUN_FILES, &files);
        let _ = shown(BestPolicy::read(&dir.join(BestPolicy::FILE)));
        let _ = shown(FrontTest::read(&dir.join(FrontTest::FILE)));
        let _ = shown(Measured::read(&dir));
        resume(&dir, &layers);
        write_files(&dir, &RUN_FILES, &files);
        let read = shown(read_any(&dir)).is_some();
        if read {
            let _ = shown(write_report(&dir));
            let _ = shown(compare(&[dir.clone(), seed.clone()], &out));
        }
        read
    });
}

/// A DQ study (dq.csv, amplification.csv) with one file mutated; `read_any` and the report.
pub fn dq_dir() {
    study_dir(
        "dq-dir",
        &["dq.csv", "amplification.csv"],
        super::common::write_dq,
    );
}

/// A sensitivity study (sensitivity.csv, sensitivity.json) with one file mutated; `read_any`
/// and the report (its heatmap).
pub fn sensitivity_dir() {
    let names = ["sensitivity.csv", "sensitivity.json"];
    study_dir("sensitivity-dir", &names, super::common::write_sensitivity);
}

/// A study directory of `names`, as `write` makes it, with one file mutated: `read_any` must
/// not panic, and the report of what it reads must not either.
fn study_dir(label: &'static str, names: &[&str], write: fn(&Path)) {
    let seed = tempfile::tempdir().expect("temp dir");
    write(seed.path());
    let seeds = read_files(seed.path(), names);
    let work = tempfile::tempdir().expect("temp dir");
    read_any(seed.path()).unwrap_or_else(|e| panic!("{label}: the seed study reads: {e}"));
    fuzz(label, 8, (0..names.len(), input()), |(k, inp)| {
        let mut files = seeds.clone();
        files[*k] = inp.apply(&seeds[*k]);
        write_files(work.path(), names, &files);
        let read = shown(read_any(work.path())).is_some();
        if read {
            let _ = shown(write_report(work.path()));
        }
        read
    });
}
