//! What a search on the tiny setup writes beside its episodes: scores shared through the cache,
//! the feasible front re-scored on the test split, config.json's record of what was searched,
//! the uniform references that seed the agent, and the widths a profile makes dominated.

mod common;

use std::path::Path;

use bitsearch::agents::AgentConfig;
use bitsearch::rundir::{Episodes, FrontTest};
use bitsearch::search::{run_search, RunSpec};
use common::fixtures::{agent, lines_without_timing};
use common::search_setup::{episodes, every_agent, logged, run, setup, spec};

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
