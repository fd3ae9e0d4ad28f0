//! Harnesses of the files the tool reads back besides a run's tables: a sweep's sweep.json,
//! slurm.json and cells/N.json (read by `sweep --status`, `--resume` and `--cell`, and by
//! `compare` of a sweep directory), a lock's record (`.lock`, read by every process that takes
//! the lock and by `--status`) and the score cache (`BASELINE/scores/KEY.csv`). Each case
//! writes one mutated file into an otherwise valid directory and reads it as those commands do.
//! (agent.json is written for people and read by nothing, so it needs no harness.)

use std::path::{Path, PathBuf};

use bitsearch::rundir::{lock_holder, RunLock};
use bitsearch::search::ScoreCache;
use bitsearch::sweep::{
    cell_states, expand_runs, write_cell_end, CellEnd, Choice, Plan, SlurmJobs, Submission,
};

use super::engine::fuzz;
use super::mutate::input;
use super::shown;

/// The sweep's files the harness mutates, one per case.
const SWEEP_FILES: [&str; 4] = ["sweep.json", "slurm.json", "cells/0.json", "cells/1.json"];

/// A valid sweep of four cells in `dir`: cell 0 done with a logged run, cell 1 failed, and a
/// Slurm submission on record.
fn seed_sweep(dir: &Path) {
    let plan = Plan::new(
        vec![PathBuf::from("/experiments/tiny.toml")],
        vec![
            Choice::new("bitfusion", "bitfusion"),
            Choice::new("t4.toml", "t4"),
        ],
        vec![Choice::new("mbrl", "mbrl")],
        vec![0, 1],
        Some(3),
        PathBuf::from("/cache"),
    )
    .expect("a valid plan");
    plan.create_or_check(dir, false)
        .expect("sweep.json written");
    super::common::write_run(
        &dir.join(&plan.cells[0].run),
        "mbrl-bitfusion",
        "mbrl",
        0,
        3,
    );
    write_cell_end(
        dir,
        0,
        Some(&CellEnd {
            ok: true,
            error: None,
        }),
    )
    .expect("cells/0.json");
    let failed = CellEnd {
        ok: false,
        error: Some("search on t4: diverged".into()),
    };
    write_cell_end(dir, 1, Some(&failed)).expect("cells/1.json");
    let jobs = SlurmJobs {
        submissions: vec![Submission {
            baseline_job: "7".into(),
            array_job: "8".into(),
            cells: vec![0, 1, 2, 3],
        }],
    };
    let text = serde_json::to_string_pretty(&jobs).expect("slurm.json");
    std::fs::write(dir.join(SlurmJobs::FILE), text).expect("write slurm.json");
}

/// One file of a sweep mutated; `--status`, a cell's runner, `compare` of the sweep and the
/// Slurm record read it.
pub fn sweep_dir() {
    let work = tempfile::tempdir().expect("temp dir");
    let dir = work.path().join("sweep");
    seed_sweep(&dir);
    let seeds: Vec<Vec<u8>> = (SWEEP_FILES.iter())
        .map(|f| std::fs::read(dir.join(f)).expect("read a seed"))
        .collect();
    assert_eq!(cell_states(&dir).expect("the seed sweep reads").len(), 4);
    fuzz(
        "sweep-dir",
        4,
        (0..SWEEP_FILES.len(), input()),
        |(k, inp)| {
            for (i, (name, seed)) in SWEEP_FILES.iter().zip(&seeds).enumerate() {
                let bytes = if i == *k {
                    inp.apply(seed)
                } else {
                    seed.clone()
                };
                std::fs::write(dir.join(name), bytes).expect("write into the temp dir");
            }
            let plan = shown(Plan::read(&dir));
            if let Some(plan) = &plan {
                // Whatever the file says, every cell's run directory stays inside the sweep.
                for cell in &plan.cells {
                    let run = dir.join(&cell.run);
                    assert!(
                        run.starts_with(&dir) && !run.components().any(|c| c.as_os_str() == ".."),
                        "cell {} escapes the sweep: {}",
                        cell.index,
                        cell.run.display()
                    );
                    let _ = shown(plan.cell(&dir, cell.index));
                }
            }
            let _ = shown(cell_states(&dir));
            let _ = shown(expand_runs(std::slice::from_ref(&dir)));
            let jobs = SlurmJobs::read(&dir);
            for c in 0..4 {
                let _ = jobs.array_job_of(c);
            }
            plan.is_some()
        },
    );
}

/// A lock's record (`.lock`) mutated: `--status`'s probe and a process taking the lock (which
/// then reports or ignores the record it found) read it.
pub fn lock_record() {
    let work = tempfile::tempdir().expect("temp dir");
    let dir = work.path();
    let seed = {
        let held = RunLock::acquire(dir, "bitsearch search --out runs").expect("lock");
        let bytes = std::fs::read(held.path()).expect("read the record");
        drop(held);
        bytes
    };
    assert!(!seed.is_empty(), "a held lock has a record");
    let path = dir.join(RunLock::FILE);
    fuzz("lock-record", 4, input(), |inp| {
        std::fs::write(&path, inp.apply(&seed)).expect("write into the temp dir");
        let _ = lock_holder(dir);
        match shown(RunLock::acquire(dir, "fuzz")) {
            Some(lock) => {
                let _ = lock.took_over();
                true
            }
            None => false,
        }
    });
}

/// The score cache mutated; a search opening it and looking policies up.
pub fn score_cache() {
    let work = tempfile::tempdir().expect("temp dir");
    let path = work.path().join("scores.csv");
    // The format as `ScoreCache::put` writes it: a scored policy and a failed one.
    let seed = "policy,failed,accuracy,robust_accuracy,masking,broken_by\n\
                \"8/8,2/4\",false,0.30000000000000004,0.6666666666666666,gradient_free,\
                eps=0.1;clean=1;fgsm=2;pgd=0;held=3\n\
                \"2/2,2/2\",true,,,,\n"
        .as_bytes()
        .to_vec();
    std::fs::write(&path, &seed).expect("write the seed");
    let cache = ScoreCache::open(path.clone()).expect("the seed cache reads");
    assert!(cache.get("8/8,2/4").is_some() && cache.get("2/2,2/2").is_some());
    fuzz("score-cache", 2, input(), |inp| {
        std::fs::write(&path, inp.apply(&seed)).expect("write into the temp dir");
        match shown(ScoreCache::open(path.clone())) {
            Some(cache) => {
                let _ = (cache.get("8/8,2/4"), cache.get("2/2,2/2"), cache.get(""));
                true
            }
            None => false,
        }
    });
}
