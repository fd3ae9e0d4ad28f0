//! Harnesses of the files and strings a user writes by hand: policy strings and policy JSON,
//! experiment TOML (with an `extends` parent and `--budget`/`--set` overrides) and agent TOML.

use std::path::Path;

use bitsearch::agents::AgentConfig;
use bitsearch::experiment::{Experiment, Overrides};
use bitsearch::quant::Policy;
use proptest::prelude::*;
use proptest::sample::select;

use super::engine::fuzz;
use super::mutate::{input, Input};
use super::shown;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).expect("read a seed")
}

/// `Policy::parse` on mutated policy strings and arbitrary text.
pub fn policy_string() {
    let seeds = ["8/8,4/4,2/4", "32/32, 1/8 ,3/5,7/6", "2/2"].map(str::as_bytes);
    fuzz("policy-string", 1, (0..seeds.len(), input()), |(k, inp)| {
        let text = String::from_utf8_lossy(&inp.apply(seeds[*k])).into_owned();
        let Some(p) = shown(Policy::parse(&text)) else {
            return false;
        };
        let _ = shown(p.check_len("lenet5", 5));
        // What parses prints back to a string that parses to the same policy.
        assert_eq!(Policy::parse(&p.to_string()).ok(), Some(p));
        true
    });
}

/// `Policy::from_json_file` on mutated policy files.
pub fn policy_json() {
    let names = ["conv1", "conv2", "fc1", "fc2", "fc3"];
    let policy = Policy::parse("8/8,4/4,2/4,32/32,3/6").expect("a valid policy");
    let seed = serde_json::to_vec_pretty(&policy.to_file("lenet5", &names)).expect("json");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("policy.json");
    std::fs::write(&path, &seed).expect("write");
    Policy::from_json_file(&path, "lenet5", &names).expect("the seed policy file is valid");
    fuzz("policy-json", 1, input(), |inp: &Input| {
        std::fs::write(&path, inp.apply(&seed)).expect("write into the temp dir");
        shown(Policy::from_json_file(&path, "lenet5", &names)).is_some()
    });
}

/// `--set` keys: every section.key of the experiment files, and a few that are not.
const SET_KEYS: &[&str] = &[
    "name",
    "extends",
    "data.source",
    "data.validation",
    "train.epochs",
    "train.lr",
    "train.batch",
    "quant.percentile",
    "quant.act_clip",
    "finetune.steps",
    "finetune.lipschitz_beta",
    "attack.fgsm_eps",
    "attack.pgd_eps",
    "attack.restarts",
    "attack.square_queries",
    "attack.examples",
    "front_test.eps",
    "front_test.examples",
    "bits.min",
    "bits.max",
    "budget.latency",
    "reward.robust_eps",
    "reward.accuracy",
    "search.episodes",
    "dq.bits",
    "dq.betas",
    "train",
    "train.epochs.x",
    "nosuch.key",
    "a..b",
    ".",
];

const SET_VALUES: &[&str] = &[
    "0",
    "-1",
    "1",
    "2",
    "9",
    "32",
    "1e-3",
    "nan",
    "inf",
    "-inf",
    "1e309",
    "18446744073709551616",
    "9223372036854775807",
    "true",
    "\"max\"",
    "\"auc\"",
    "[]",
    "[0.1, 0.1]",
    "[0.2, 0.1]",
    "[1e9]",
    "[0, -0.1]",
    "{}",
    "idx:nowhere",
    "",
    "[",
    "\"",
];

const BUDGET_KEYS: &[&str] = &[
    "latency",
    "latency_s",
    "energy",
    "energy_j",
    "size",
    "bogus",
];

fn overrides() -> impl Strategy<Value = Overrides> {
    let set = (select(SET_KEYS), select(SET_VALUES)).prop_map(|(k, v)| format!("{k}={v}"));
    let budget = (select(BUDGET_KEYS), select(SET_VALUES)).prop_map(|(k, v)| format!("{k}={v}"));
    let raw = ".{0,24}";
    let some = (
        proptest::collection::vec(prop_oneof![4 => budget, 1 => raw], 0..3),
        proptest::collection::vec(prop_oneof![4 => set, 1 => raw], 0..4),
    )
        .prop_map(|(budget, set)| Overrides { budget, set });
    // Half the cases without flags, so the mutated files alone reach `check()`.
    prop_oneof![Just(Overrides::default()), some]
}

/// An experiment that `extends` a parent: either file mutated, overrides on top; plus
/// `Experiment::from_toml` on the mutated text. Seeds: the shipped experiments.
pub fn experiment() {
    let shipped = repo().join("experiments");
    let child = read(&shipped.join("lenet5-mnist-haq.toml"));
    let parent = read(&shipped.join("lenet5-mnist.toml"));
    let others = ["lenet5-mnist-small.toml", "mlp-mnist.toml"].map(|f| read(&shipped.join(f)));
    let dir = tempfile::tempdir().expect("temp dir");
    let (child_path, parent_path) = (
        dir.path().join("child.toml"),
        dir.path().join("lenet5-mnist.toml"),
    );
    let write = |path: &Path, bytes: &[u8]| std::fs::write(path, bytes).expect("write");
    write(&child_path, &child);
    write(&parent_path, &parent);
    Experiment::load(&child_path).expect("the seed experiment is valid");
    let strategy = (0..4usize, input(), overrides());
    fuzz("experiment", 1, strategy, |(which, inp, over)| {
        let (c, p) = match which {
            0 => (inp.apply(&child), parent.clone()),
            1 => (child.clone(), inp.apply(&parent)),
            k => (inp.apply(&others[k - 2]), parent.clone()),
        };
        write(&child_path, &c);
        write(&parent_path, &p);
        if let Ok(text) = std::str::from_utf8(&c) {
            let _ = shown(Experiment::from_toml(text, &child_path));
        }
        shown(Experiment::load_with(&child_path, over)).is_some()
    });
}

/// `AgentConfig::load` on mutated shipped agent files.
pub fn agent() {
    let shipped = repo().join("agents");
    let files = ["mbrl", "ddpg", "random", "nsga2", "greedy", "exhaustive"];
    let seeds: Vec<Vec<u8>> = files
        .iter()
        .map(|f| read(&shipped.join(format!("{f}.toml"))))
        .collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("agent.toml");
    fuzz("agent", 1, (0..seeds.len(), input()), |(k, inp)| {
        std::fs::write(&path, inp.apply(&seeds[*k])).expect("write into the temp dir");
        shown(AgentConfig::load(&path)).is_some()
    });
}
