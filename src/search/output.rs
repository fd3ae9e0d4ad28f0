//! What the search writes besides the episode log: config.json first, pareto.csv and agent.json
//! after every episode, best-policy.json at the end (formats: `crate::rundir`).

use super::score::Scorer;
use super::spec::Run;
use super::SearchError;
use crate::agents::Agent;
use crate::env::Operand;
use crate::score::TestScore;

use crate::rundir::{
    best_row, pareto_rows, AgentInfo, BestPolicy, BitsRecord, BudgetRecord, Episode, KeptWidths,
    ProfileInfo, RunConfig, Scores, TestScores, UniformBest,
};

/// config.json of this run: everything resolved before the first episode.
pub(super) fn config(run: &Run) -> Result<RunConfig, SearchError> {
    let s = run.spec;
    let json = |value: Result<serde_json::Value, serde_json::Error>| {
        value.map_err(|source| SearchError::Json {
            path: run.log.dir.join(RunConfig::FILE),
            source,
        })
    };
    let layers = run.space.layers.clone();
    let b = run.budget;
    Ok(RunConfig {
        run: (run.log.dir.file_name())
            .map(|f| f.to_string_lossy().to_string())
            .unwrap_or_default(),
        experiment: json(serde_json::to_value(s.exp))?,
        model: s.exp.model.name(),
        layers,
        profile: ProfileInfo {
            name: s.profile.name().to_string(),
            compute: s.profile.compute().kind().to_string(),
            file: Some(s.profile.path().to_path_buf()),
            sha256: Some(s.profile.digest().to_string()),
        },
        agent: AgentInfo {
            name: s.agent.name().to_string(),
            config: Some(json(serde_json::to_value(s.agent))?),
        },
        episodes: Some(s.episodes as u64),
        seed: Some(s.seed),
        budget: BudgetRecord {
            latency_s: b.latency_s,
            energy_j: b.energy_j,
            size_bytes: b.size_bytes,
        },
        uniform8: Some(run.space.uniform8),
        bits: Some(bits_record(run)),
        threads: Some(crate::ops::threads()),
        workers: Some(run.workers),
        // A run started before the objectives were recorded keeps saying so.
        objectives: (!run.legacy).then(|| run.objectives.list().to_vec()),
    })
}

/// The searched range and, but for a run started before they were recorded (`Run::legacy`),
/// whether dominated widths were pruned and the widths each layer kept.
fn bits_record(run: &Run) -> BitsRecord {
    let space = &run.space;
    let widths = |v: &[crate::quant::Format]| v.to_vec();
    let kept = (space.layers.iter().enumerate())
        .map(|(l, layer)| KeptWidths {
            layer: layer.name.clone(),
            w: widths(space.options(l, Operand::Weight)),
            a: widths(space.options(l, Operand::Activation)),
        })
        .collect();
    BitsRecord {
        min: space.min_bits,
        max: space.max_bits,
        prune_dominated: (!run.legacy).then_some(space.pruned()),
        kept: (!run.legacy).then_some(kept),
    }
}

/// pareto.csv and agent.json after an episode.
pub(super) fn after_episode(
    run: &Run,
    rows: &[Episode],
    agent: &dyn Agent,
) -> Result<(), SearchError> {
    run.log.write_rows("pareto.csv", &pareto_rows(rows)?)?;
    crate::crashpoint::crash_point("pareto-written");
    run.log.write_json("agent.json", &agent.summary())?;
    Ok(())
}

/// The progress bar's message: the best episode so far.
pub(super) fn progress(rows: &[Episode]) -> String {
    match best_row(rows) {
        Some(b) => format!(
            "best reward {:.3} ({}, acc {:.2}%)",
            b.reward.unwrap_or(0.0),
            b.policy,
            100.0 * b.accuracy.unwrap_or(0.0)
        ),
        None => "no feasible policy yet".into(),
    }
}

/// best-policy.json: the best episode, fine-tuned again with its seed and scored on the test
/// split, beside the best uniform reference under the same budget, scored the same way.
pub(super) fn write_best(
    run: &Run,
    scorer: &Scorer,
    b: &Episode,
) -> Result<Option<BestPolicy>, SearchError> {
    let suite = scorer.eval.test_suite(&run.spec.exp.attack)?;
    let eps = run.spec.exp.reward.robust_eps;
    // Accuracy and the worst case at the reward's radius, on the test split.
    let scores_of = |t: &TestScore| Scores {
        accuracy: t.accuracy,
        robust_accuracy: t.robust.robust(eps),
    };
    let test = scorer.eval.test_score(&b.policy(), &suite)?;
    let report = serde_json::to_value(&test.robust).map_err(|source| SearchError::Json {
        path: run.log.dir.join(BestPolicy::FILE),
        source,
    })?;
    let scores = scores_of(&test);
    let data = scorer.eval.data();
    let examples = (data.val.len(), data.test.len());
    let uniform = match super::references::best_uniform(run)? {
        // The same policy scores the same (its fine-tune is seeded by the policy).
        Some(u) if u.policy == b.policy => UniformBest::new(&u, scores, examples),
        Some(u) => {
            let t = scorer.eval.test_score(&u.policy(), &suite)?;
            UniformBest::new(&u, scores_of(&t), examples)
        }
        None => None,
    };
    let test = TestScores {
        accuracy: scores.accuracy,
        robust_accuracy: scores.robust_accuracy,
        suite: Some(report),
    };
    let names = run.spec.base.layer_names();
    // `best_row` only chooses rows with a reward and validation scores.
    let best = BestPolicy::new(&run.spec.exp.model.name(), &names, b, test);
    let best = best.map(|best| BestPolicy { uniform, ..best });
    if let Some(best) = &best {
        run.log.write_best(best)?;
    }
    Ok(best)
}
