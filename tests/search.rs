//! The search loop on a tiny setup (MLP on a slice of MNIST-10k, few fine-tune steps, a small
//! attack suite): every agent runs, same seed gives the same episodes, and a run interrupted
//! mid-episode resumes to exactly the uninterrupted result.

mod common;

use std::path::{Path, PathBuf};

use bitsearch::agents::AgentConfig;
use bitsearch::data::Dataset;
use bitsearch::experiment::Experiment;
use bitsearch::hardware::{resolve_profile, Profile};
use bitsearch::model::{Arch, Model};
use bitsearch::rundir::{Episodes, FrontTest};
use bitsearch::search::{run_search, RunSpec};
use bitsearch::train::train_fp32;
use common::fixtures::{agent, lines_without_timing, Tiny, DDPG};

fn tiny_experiment() -> Experiment {
    let text = Tiny {
        validation: 300,
        finetune_steps: 4,
        finetune_batch: 32,
        pgd_steps: 3,
        examples: 40,
        transfer: true,
        ..Tiny::default()
    }
    .toml("tiny");
    Experiment::from_toml(
        &text,
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tiny.toml")
            .as_path(),
    )
    .unwrap()
}

struct Setup {
    exp: Experiment,
    data: Dataset,
    base: Model,
    profile: Profile,
}

fn setup() -> Setup {
    let exp = tiny_experiment();
    let data = exp.data.load().unwrap().truncate(1000, 300, 100);
    let base = Model::new(Arch::Mlp, data.shape, data.classes, 0)
        .unwrap()
        .with_input_norm(data.input_norm());
    train_fp32(&base, &data, &exp.train, false).unwrap();
    let profile = Profile::load(&resolve_profile("bitfusion").unwrap()).unwrap();
    Setup {
        exp,
        data,
        base,
        profile,
    }
}

/// The spec of a search with `exp` on the setup's data, baseline and profile (seed 7, no
/// score cache).
fn spec<'a>(
    exp: &'a Experiment,
    s: &'a Setup,
    agent: &'a AgentConfig,
    episodes: usize,
    dir: &Path,
    resume: bool,
) -> RunSpec<'a> {
    RunSpec {
        exp,
        data: &s.data,
        base: &s.base,
        profile: &s.profile,
        agent,
        episodes,
        seed: 7,
        dir: dir.to_path_buf(),
        resume,
        show: false,
        scores: None,
        after_episodes: None,
    }
}

/// A search with `exp` on the setup's data, baseline and profile.
fn run(
    exp: &Experiment,
    s: &Setup,
    agent: &AgentConfig,
    episodes: usize,
    dir: &Path,
    resume: bool,
) -> bitsearch::search::RunSummary {
    run_search(&spec(exp, s, agent, episodes, dir, resume)).unwrap()
}

/// episodes.csv without the timing column (the last one).
fn episodes(dir: &Path) -> Vec<String> {
    lines_without_timing(&dir.join("episodes.csv"))
}

/// episodes.csv's rows, through the run-directory reader.
fn logged(dir: &Path) -> Vec<bitsearch::rundir::Episode> {
    bitsearch::rundir::Episodes::read(&dir.join("episodes.csv"), "")
        .unwrap()
        .rows
}

fn best_policy(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("best-policy.json")).unwrap()).unwrap()
}

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

/// The five agents of the tiny setup.
fn every_agent() -> [AgentConfig; 5] {
    [
        agent("agent = \"mbrl\"\ninit = 2\nkappa = 1.0\nenumerate = 4096\ncandidates = 50\nmutations = 5\nplanner = \"reinforce\"\n"),
        agent(DDPG),
        agent("agent = \"random\"\n"),
        agent("agent = \"nsga2\"\npopulation = 3\nmutation = 0.2\ncrossover = 0.9\n"),
        agent("agent = \"greedy\"\nbuckets = 500\nsweep_to = 0.6\n"),
    ]
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

#[test]
fn cached_scores_equal_fresh_ones_and_are_shared_across_runs_and_agents() {
    let s = setup();
    let root = tempfile::tempdir().unwrap();
    let cache = root.path().join("scores").join("k.csv");
    let a = agent("agent = \"random\"\n");
    let with_cache = |dir: &Path, agent: &AgentConfig, episodes| {
        let spec = RunSpec {
            scores: Some(cache.clone()),
            ..spec(&s.exp, &s, agent, episodes, dir, false)
        };
        run_search(&spec).unwrap()
    };
    let fresh = root.path().join("fresh");
    run(&s.exp, &s, &a, 3, &fresh, false);
    let first = root.path().join("first");
    with_cache(&first, &a, 3);
    // Written once per distinct policy (references included), then read back by the second run.
    let lines = std::fs::read_to_string(&cache).unwrap().lines().count();
    let second = root.path().join("second");
    with_cache(&second, &a, 3);
    assert_eq!(
        episodes(&first),
        episodes(&fresh),
        "a cached score is the fresh score"
    );
    assert_eq!(episodes(&second), episodes(&fresh));
    assert_eq!(
        std::fs::read_to_string(&cache).unwrap().lines().count(),
        lines,
        "the second run scored nothing anew"
    );
    // Another agent's run takes its references from the cache, equal to the fresh ones.
    let refs = |dir: &Path| lines_without_timing(&dir.join("references.csv"));
    let nsga = root.path().join("nsga2");
    with_cache(&nsga, &every_agent()[2], 2);
    assert_eq!(refs(&nsga), refs(&fresh));
}

/// The (episode, policy) of every feasible row of pareto.csv and of every row of
/// front-test.csv, and front-test.csv.
fn fronts(dir: &Path) -> (Keys, Keys, FrontTest) {
    let pareto = Episodes::read(&dir.join("pareto.csv"), "test").unwrap();
    let feasible = (pareto.rows.iter())
        .filter(|e| e.feasible)
        .map(|e| (e.episode, e.policy.clone()))
        .collect();
    let front = FrontTest::read(&dir.join(FrontTest::FILE)).unwrap();
    let rescored = (front.rows.iter())
        .map(|r| (r.episode, r.policy.clone()))
        .collect();
    (feasible, rescored, front)
}

type Keys = Vec<(usize, String)>;

#[test]
fn the_feasible_front_is_rescored_on_the_test_split_and_reported() {
    let s = setup();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("r");
    let a = agent("agent = \"random\"\n");
    run(&s.exp, &s, &a, 4, &dir, false);
    let (feasible, rescored, front) = fronts(&dir);
    assert!(
        !feasible.is_empty(),
        "the tiny search finds a feasible policy"
    );
    assert_eq!(rescored, feasible, "exactly the feasible pareto.csv rows");
    assert_eq!(front.eps, vec![0.1, 0.2]);
    for r in &front.rows {
        assert_eq!(r.examples, 50.min(s.data.test.len()));
        assert!(r.accuracy > 0.1 && r.accuracy <= 1.0, "{r:?}");
        // A per-example worst case never exceeds the clean accuracy of the same examples.
        assert!(r.robust.iter().all(|&w| w <= r.clean_accuracy), "{r:?}");
        assert!(r.robust_auc <= r.clean_accuracy + 1e-12, "{r:?}");
        // PGD is one of the attacks the worst case is taken over.
        assert!(r.robust.iter().zip(&r.pgd).all(|(w, p)| w <= p), "{r:?}");
    }
    // A resumed finished run does not re-score an unchanged front (the timing column would
    // differ); a missing file is written again.
    let path = dir.join(FrontTest::FILE);
    let text = std::fs::read_to_string(&path).unwrap();
    run(&s.exp, &s, &a, 4, &dir, true);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    std::fs::remove_file(&path).unwrap();
    run(&s.exp, &s, &a, 4, &dir, true);
    assert_eq!(fronts(&dir).2.rows.len(), front.rows.len());
    // More episodes change pareto.csv; front-test.csv follows it.
    run(&s.exp, &s, &a, 7, &dir, true);
    let (feasible, rescored, front) = fronts(&dir);
    assert_eq!(rescored, feasible, "after the resume");
    let report = bitsearch::report::write_report(&dir).unwrap();
    let html = std::fs::read_to_string(&report.html).unwrap();
    assert!(
        html.contains("Front on the test split") && html.contains("test robust ε=0.2"),
        "report.html shows the front table"
    );
    assert!(html.contains(&front.rows[0].policy));
    assert!(dir.join("charts/front-test-eps.svg").is_file());
}

/// The search hands the run directory to `after_episodes` once the episodes and
/// best-policy.json are written and before the front's test-split re-score, so the command line
/// can write report.html while the re-score runs.
#[test]
fn after_episodes_comes_between_the_best_policy_and_the_front_re_score() {
    let s = setup();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("run");
    let mut exp = s.exp.clone();
    exp.front_test.enabled = true;
    let a = agent("agent = \"random\"\n");
    let seen = std::cell::RefCell::new(Vec::new());
    let after = |d: &Path| {
        seen.borrow_mut().push((
            d.join("best-policy.json").exists(),
            d.join("front-test.csv").exists(),
        ))
    };
    let spec = RunSpec {
        after_episodes: Some(&after),
        ..spec(&exp, &s, &a, 3, &dir, false)
    };
    run_search(&spec).unwrap();
    assert_eq!(*seen.borrow(), [(true, false)]);
    assert!(dir.join("front-test.csv").exists());
}

fn config_json(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap()
}

/// config.json records what the agent ranked by; a config.json written before it was recorded
/// (no `objectives`, no pruned widths) still resumes, as the run was started, and keeps saying
/// so.
#[test]
fn config_json_records_the_objectives_and_an_older_one_still_resumes() {
    let s = setup();
    let root = tempfile::tempdir().unwrap();
    let a = agent("agent = \"nsga2\"\npopulation = 3\nmutation = 0.2\ncrossover = 0.9\n");
    let dir = root.path().join("r");
    let mut exp = s.exp.clone();
    exp.search.references = true;
    // An older run searched every width: started here with pruning off, then its config.json
    // is made to look as an older version wrote it.
    let mut unpruned = exp.clone();
    unpruned.bits.prune_dominated = false;
    run(&unpruned, &s, &a, 2, &dir, false);
    let agent_json = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join("agent.json")).unwrap()).unwrap()
    };
    assert!(agent_json()["references"].as_u64().unwrap() > 0);
    let c = config_json(&dir);
    assert_eq!(
        c["objectives"],
        serde_json::json!(["accuracy", "robust_accuracy", "latency"]),
        "the tiny experiment budgets latency and weighs robustness"
    );
    let mut old = c.clone();
    old.as_object_mut().unwrap().remove("objectives");
    for path in ["/bits", "/experiment/bits"] {
        let bits = old.pointer_mut(path).unwrap().as_object_mut().unwrap();
        bits.remove("prune_dominated");
        bits.remove("kept");
    }
    std::fs::write(dir.join("config.json"), old.to_string()).unwrap();
    run(&exp, &s, &a, 4, &dir, true);
    assert_eq!(episodes(&dir).len(), 5);
    let resumed = config_json(&dir);
    assert!(resumed.get("objectives").is_none());
    assert_eq!(
        resumed["bits"], old["bits"],
        "nothing pruned, as it was started"
    );
    assert_eq!(
        agent_json()["references"],
        0,
        "as it was started: no references as data"
    );
    // The experiment's cost is part of the experiment: a resume under another is refused.
    let mut energy = exp.clone();
    energy.search.cost = Some(bitsearch::pareto::Objective::Energy);
    let e = run_search(&spec(&energy, &s, &a, 5, &dir, true))
        .unwrap_err()
        .to_string();
    assert!(e.contains("experiment.search.cost"), "{e}");
}

/// The run's uniform references are the agent's data before its first proposal, read back from
/// references.csv on a fresh run and on a resume alike, so the resumed run equals the
/// uninterrupted one; they are never episodes.
#[test]
fn references_seed_the_agent_and_a_resume_replays_the_same_way() {
    let s = setup();
    let root = tempfile::tempdir().unwrap();
    let mut exp = s.exp.clone();
    exp.search.references = true;
    let a = agent("agent = \"mbrl\"\ninit = 2\nkappa = 1.0\nenumerate = 4096\ncandidates = 50\nmutations = 5\nplanner = \"reinforce\"\n");
    let whole = root.path().join("whole");
    run(&exp, &s, &a, 5, &whole, false);
    let cut = root.path().join("cut");
    run(&exp, &s, &a, 2, &cut, false);
    run(&exp, &s, &a, 5, &cut, true);
    assert_eq!(episodes(&cut), episodes(&whole));
    let refs = bitsearch::rundir::Episodes::read(&whole.join("references.csv"), "")
        .unwrap()
        .rows;
    let uniform: Vec<String> = (refs.iter())
        .filter(|r| r.agent == "uniform")
        .map(|r| r.policy.clone())
        .collect();
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(whole.join("agent.json")).unwrap()).unwrap();
    assert_eq!(summary["references"], uniform.len(), "{uniform:?}");
    assert!(
        logged(&whole).iter().all(|r| !uniform.contains(&r.policy)),
        "a reference is never proposed again"
    );
}

/// On bitfusion 3 bits cost what 4 cost and 5-7 what 8 cost: the default space keeps 2, 4 and 8
/// on every layer, config.json says so, and references and episodes stay within them.
#[test]
fn dominated_widths_are_pruned_and_recorded() {
    let s = setup();
    let root = tempfile::tempdir().unwrap();
    let mut exp = s.exp.clone();
    exp.search.references = true;
    let a = agent("agent = \"random\"\n");
    let dir = root.path().join("r");
    run(&exp, &s, &a, 4, &dir, false);
    let bits = &config_json(&dir)["bits"];
    assert_eq!(bits["prune_dominated"], true);
    let kept = bits["kept"].as_array().unwrap();
    assert_eq!(kept.len(), s.base.layer_names().len());
    for k in kept {
        assert_eq!(
            (&k["w"], &k["a"]),
            (&serde_json::json!([2, 4, 8]), &serde_json::json!([2, 4, 8])),
            "{k}"
        );
    }
    let refs = bitsearch::rundir::Episodes::read(&dir.join("references.csv"), "").unwrap();
    let uniform: Vec<usize> = (refs.rows.iter())
        .filter(|r| r.agent == "uniform")
        .map(|r| r.episode)
        .collect();
    assert_eq!(uniform, [2, 4, 8], "one reference per kept width");
    for r in logged(&dir) {
        assert!(
            r.bits
                .iter()
                .all(|b| [2, 4, 8].contains(&b.w.width()) && [2, 4, 8].contains(&b.a.width())),
            "{}",
            r.policy
        );
    }
    // Switched off, every width the device runs is searched.
    exp.bits.prune_dominated = false;
    let all = root.path().join("all");
    run(&exp, &s, &a, 1, &all, false);
    let bits = &config_json(&all)["bits"];
    assert_eq!(bits["prune_dominated"], false);
    assert_eq!(
        bits["kept"][0]["w"],
        serde_json::json!([2, 3, 4, 5, 6, 7, 8])
    );
}
