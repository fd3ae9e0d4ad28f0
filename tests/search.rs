//! The search loop on a tiny setup (MLP on a slice of MNIST-10k, few fine-tune steps, a small
//! attack suite): every agent runs, same seed gives the same episodes, and a run interrupted
//! mid-episode resumes to exactly the uninterrupted result.

mod common;

use std::path::PathBuf;

use bitsearch::hardware::{resolve_profile, Profile};
use bitsearch::search::{run_search, RunSpec};
use common::fixtures::{agent, lines_without_timing, DDPG};
use common::search_setup::{best_policy, episodes, every_agent, logged, run, setup, spec, Setup};

#[test]
fn every_agent_runs_a_few_episodes_within_budget() {
    let s = setup();
    let root = tempfile::tempdir().unwrap();
    for a in &every_agent() {
        let dir = root.path().join(a.name());
        let summary = run(&s.exp, &s, a, 5, &dir, false);
        let rows = episodes(&dir);
        assert_eq!(rows.len(), 6, "{}: header + 5 episodes", a.name());
        assert!(
            logged(&dir).iter().all(|r| r.feasible && !r.failed),
            "{}: every episode feasible and scored: {rows:?}",
            a.name()
        );
        // which attack broke each scored policy: the attacked examples, split, and the held
        // ones are the logged worst case
        for r in logged(&dir) {
            let b = r
                .broken_by
                .expect("scored rows say which attack broke them");
            let n = s.exp.search.attack_examples;
            assert_eq!(b.examples(), n as u64, "{b}");
            assert_eq!(Some(f64::from(b.held) / n as f64), r.robust_accuracy);
        }
        assert!(summary.best.is_some());
        assert!(
            dir.join("pareto.csv").exists()
                && dir.join("agent.json").exists()
                && dir.join("config.json").exists()
        );
        assert!(best_policy(&dir)["test"]["accuracy"].as_f64().unwrap() > 0.1);
    }
    let greedy = std::fs::read_to_string(root.path().join("greedy/sensitivity.json")).unwrap();
    assert!(
        greedy.contains("\"w\""),
        "greedy measured sensitivities first"
    );
}

/// Guards a regression: NSGA-II gave a failed policy infinite objectives, its non-dominated sort
/// rejected them and the search aborted, again at the same episode on every resume.
#[test]
fn every_agent_survives_failing_fine_tunes_and_resumes() {
    let s = setup();
    // Adam moves every weight by ~lr per step, so after one step at lr = 1e12 the Lipschitz
    // penalty Σ ||W Wᵀ − I||² (~(1e24 · fan-in)²) overflows f32: every fine-tune diverges
    // (a real `Failure::Diverged`, not a mock).
    let mut exp = s.exp.clone();
    exp.finetune.lr = 1e12;
    assert!(
        exp.finetune.beta > 0.0,
        "the overflow needs the Lipschitz term"
    );
    let root = tempfile::tempdir().unwrap();
    for a in &every_agent() {
        let whole = root.path().join(format!("{}-whole", a.name()));
        let summary = run(&exp, &s, a, 5, &whole, false);
        let rows = episodes(&whole);
        assert_eq!(rows.len(), 6, "{}: header + 5 episodes", a.name());
        assert!(
            logged(&whole)
                .iter()
                .all(|r| r.failed && r.broken_by.is_none()),
            "{}: every episode logged as failed: {rows:?}",
            a.name()
        );
        assert!(summary.best.is_none(), "{}: no scored policy", a.name());
        assert!(!whole.join("best-policy.json").exists());
        // Interrupted after 2 episodes, resumed to 5: the same log as the whole run.
        let cut = root.path().join(format!("{}-cut", a.name()));
        run(&exp, &s, a, 2, &cut, false);
        run(&exp, &s, a, 5, &cut, true);
        assert_eq!(episodes(&cut), rows, "{}: resumed run", a.name());
    }
}

#[test]
fn same_seed_gives_the_same_episodes() {
    let s = setup();
    let root = tempfile::tempdir().unwrap();
    let a = agent(DDPG);
    run(&s.exp, &s, &a, 4, &root.path().join("one"), false);
    run(&s.exp, &s, &a, 4, &root.path().join("two"), false);
    assert_eq!(
        episodes(&root.path().join("one")),
        episodes(&root.path().join("two"))
    );
}

#[test]
fn a_run_killed_mid_episode_resumes_to_the_uninterrupted_result() {
    let s = setup();
    let root = tempfile::tempdir().unwrap();
    let a = agent(DDPG);
    let whole: PathBuf = root.path().join("whole");
    run(&s.exp, &s, &a, 6, &whole, false);
    // The interrupted run stopped after 3 whole episodes while writing the 4th line.
    let cut = root.path().join("cut");
    run(&s.exp, &s, &a, 3, &cut, false);
    let log = cut.join("episodes.csv");
    let mut text = std::fs::read_to_string(&log).unwrap();
    text.push_str("3,ddpg,bitfusion,\"8/8,4");
    std::fs::write(&log, text).unwrap();
    std::fs::remove_file(cut.join("best-policy.json")).unwrap();
    run(&s.exp, &s, &a, 6, &cut, true);
    assert_eq!(episodes(&cut), episodes(&whole));
    let (b1, b2) = (best_policy(&cut), best_policy(&whole));
    assert_eq!(b1["policy"], b2["policy"]);
    assert_eq!(b1["test"]["accuracy"], b2["test"]["accuracy"]);
}

/// Guards a kill after an episode's line but before pareto.csv and agent.json were rewritten:
/// the resume found nothing left to run and left them stale for good.
#[test]
fn a_resume_with_nothing_left_to_run_brings_derived_files_up_to_date() {
    let s = setup();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("r");
    let a = agent(DDPG);
    run(&s.exp, &s, &a, 3, &dir, false);
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    let (pareto, summary) = (read("pareto.csv"), read("agent.json"));
    // As a kill leaves them after the third line: pareto.csv of two episodes, agent.json older.
    let two: Vec<&str> = pareto.lines().take(2).collect();
    std::fs::write(dir.join("pareto.csv"), two.join("\n") + "\n").unwrap();
    std::fs::write(dir.join("agent.json"), "{}").unwrap();
    run(&s.exp, &s, &a, 3, &dir, true);
    assert_eq!(read("pareto.csv"), pareto);
    assert_eq!(read("agent.json"), summary);
}

/// Guards a resume that compared only the profile's name, kind and path: an edited profile file
/// (same path) would have mixed two price models in one episodes.csv.
#[test]
fn a_resume_under_an_edited_profile_is_refused() {
    let s = setup();
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("device.toml");
    let shipped = resolve_profile("bitfusion").unwrap();
    let text = std::fs::read_to_string(shipped).unwrap();
    std::fs::write(&file, &text).unwrap();
    let first = Setup {
        profile: Profile::load(&file).unwrap(),
        ..s
    };
    let dir = root.path().join("r");
    let a = agent("agent = \"random\"\n");
    run(&first.exp, &first, &a, 1, &dir, false);
    std::fs::write(&file, text.replace("clock_hz = 500e6", "clock_hz = 400e6")).unwrap();
    let edited = Setup {
        profile: Profile::load(&file).unwrap(),
        ..first
    };
    let e = run_search(&spec(&edited.exp, &edited, &a, 2, &dir, true))
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot resume: profile.sha256 differs"), "{e}");
    assert_eq!(episodes(&dir).len(), 2, "the logged episode is kept");
}

/// Guards references.csv being reused only because it exists: a new run into a directory left
/// by a run of another experiment (killed before its first episode) must score its own.
#[test]
fn references_of_another_experiment_are_scored_again() {
    let s = setup();
    let root = tempfile::tempdir().unwrap();
    let a = agent("agent = \"random\"\n");
    let mut exp = s.exp.clone();
    exp.search.references = true;
    exp.finetune.steps = 2;
    let mut other = exp.clone();
    other.finetune.steps = 6;
    let refs = |d: &str| lines_without_timing(&root.path().join(d).join("references.csv"));
    run(&other, &s, &a, 1, &root.path().join("fresh"), false);
    let dir = root.path().join("reused");
    run(&exp, &s, &a, 1, &dir, false);
    assert_ne!(
        refs("reused"),
        refs("fresh"),
        "the two experiments must differ"
    );
    std::fs::remove_file(dir.join("episodes.csv")).unwrap();
    run(&other, &s, &a, 1, &dir, false);
    assert_eq!(refs("reused"), refs("fresh"));
}

#[test]
fn an_existing_run_needs_resume_and_an_unchanged_config() {
    let s = setup();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("r");
    let a = agent("agent = \"random\"\n");
    run(&s.exp, &s, &a, 2, &dir, false);
    let spec = spec(&s.exp, &s, &a, 3, &dir, false);
    let e = run_search(&spec).unwrap_err().to_string();
    assert!(e.contains("--resume"), "{e}");
    let other = RunSpec {
        seed: 8,
        resume: true,
        ..spec
    };
    let e = run_search(&other).unwrap_err().to_string();
    assert!(e.contains("seed"), "{e}");
    // A changed setting deep in the experiment is named by its path, with both values.
    let mut exp = s.exp.clone();
    exp.finetune.steps = 5;
    let changed = RunSpec {
        exp: &exp,
        seed: 7,
        ..other
    };
    let e = run_search(&changed).unwrap_err().to_string();
    assert!(
        e.contains("experiment.finetune.steps") && e.contains("(4 then, 5 now)"),
        "{e}"
    );
}
