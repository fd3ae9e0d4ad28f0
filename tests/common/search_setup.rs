//! The tiny search setup the search tests share: an MLP trained on a slice of MNIST-10k, few
//! fine-tune steps, a small attack suite, bitfusion; a search on it and readers of what it wrote.

use std::path::Path;

use bitsearch::agents::AgentConfig;
use bitsearch::data::Dataset;
use bitsearch::experiment::Experiment;
use bitsearch::hardware::{resolve_profile, Profile};
use bitsearch::model::{Arch, Model};
use bitsearch::search::{run_search, RunSpec};
use bitsearch::train::train_fp32;

use super::fixtures::{agent, lines_without_timing, Tiny, DDPG};

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

pub struct Setup {
    pub exp: Experiment,
    pub data: Dataset,
    pub base: Model,
    pub profile: Profile,
}

pub fn setup() -> Setup {
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
pub fn spec<'a>(
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
pub fn run(
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
pub fn episodes(dir: &Path) -> Vec<String> {
    lines_without_timing(&dir.join("episodes.csv"))
}

/// episodes.csv's rows, through the run-directory reader.
pub fn logged(dir: &Path) -> Vec<bitsearch::rundir::Episode> {
    bitsearch::rundir::Episodes::read(&dir.join("episodes.csv"), "")
        .unwrap()
        .rows
}

pub fn best_policy(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("best-policy.json")).unwrap()).unwrap()
}

/// The five agents of the tiny setup.
pub fn every_agent() -> [AgentConfig; 5] {
    [
        agent("agent = \"mbrl\"\ninit = 2\nkappa = 1.0\nenumerate = 4096\ncandidates = 50\nmutations = 5\nplanner = \"reinforce\"\n"),
        agent(DDPG),
        agent("agent = \"random\"\n"),
        agent("agent = \"nsga2\"\npopulation = 3\nmutation = 0.2\ncrossover = 0.9\n"),
        agent("agent = \"greedy\"\nbuckets = 500\nsweep_to = 0.6\n"),
    ]
}
