//! Agent files (`agents/*.toml`): `agent = "mbrl" | "ddpg" | "random" | "nsga2" | "greedy" |
//! "exhaustive"` and that
//! agent's hyper-parameters. The file deserializes into a `RawAgentConfig`; `check()` applies
//! the field rules of `crate::validate` and is the only way to an `AgentConfig`, the type the
//! agents take.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::validate::{
    fraction, non_negative, parse_toml, positive, positive_count, read_text, FieldError, FileError,
};

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    Field(#[from] FieldError),
    #[error("the greedy agent needs per-layer sensitivities, measured before the search")]
    NoSensitivity,
    /// The search's probe failed (its error, unchanged).
    #[error(
        "the exhaustive agent's space has {size} policies ({} bitwidths [{}] per {per}, \
         {operands} {per}s), more than its limit of {limit}: declare fewer bitwidths with \
         `[bits] choices = [...]` or fewer with min/max, set `[bits] tie = true` (one bitwidth per \
         layer), or raise `limit` in the agent file",
        bitwidths.len(),
        bitwidths.join(", ")
    )]
    SpaceTooLarge {
        size: String,
        bitwidths: Vec<String>,
        operands: usize,
        per: &'static str,
        limit: usize,
    },
    #[error("the exhaustive agent has proposed all {policies} policies of its space")]
    Exhausted { policies: usize },
    /// A batch of several proposals asked of an agent that learns from each episode before
    /// its next proposal (DDPG).
    #[error(
        "the {agent} agent is sequential (it learns from each episode before proposing the next), \
         so it cannot propose a batch of {batch}: run it with --workers 1"
    )]
    Sequential { agent: &'static str, batch: usize },
    #[error(transparent)]
    Probe(Box<dyn std::error::Error + Send + Sync>),
    #[error(transparent)]
    Pareto(#[from] crate::pareto::ParetoError),
    #[error("tensor error in the agent: {0}")]
    Tensor(#[from] candle_core::Error),
}

/// An agent file as serde reads it, before any rule is checked.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "agent", rename_all = "lowercase", deny_unknown_fields)]
pub enum RawAgentConfig {
    Mbrl(MbrlConfig),
    Ddpg(DdpgConfig),
    Random,
    Nsga2(Nsga2Config),
    Greedy(GreedyConfig),
    Exhaustive(ExhaustiveConfig),
}

/// A validated agent file (from `RawAgentConfig::check`), written into config.json as read.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "agent", rename_all = "lowercase")]
pub enum AgentConfig {
    Mbrl(MbrlConfig),
    Ddpg(DdpgConfig),
    Random,
    Nsga2(Nsga2Config),
    Greedy(GreedyConfig),
    Exhaustive(ExhaustiveConfig),
}

/// HAQ's DDPG hyper-parameters.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DdpgConfig {
    pub hidden: usize,
    pub actor_lr: f64,
    pub critic_lr: f64,
    pub batch: usize,
    /// Replay capacity in episodes (× steps per episode transitions).
    pub replay_episodes: usize,
    pub tau: f64,
    pub discount: f64,
    /// Episodes of uniform random actions before the actor acts.
    pub warmup: usize,
    /// Initial standard deviation of the truncated-normal exploration noise.
    pub sigma: f64,
    /// Multiplies sigma after every episode past the warm-up.
    pub sigma_decay: f64,
    /// Moving-average weight of the reward baseline, moved at every update towards the sampled
    /// batch's mean reward: b ← d·b + (1 − d)·mean(r) (HAQ's `moving_alpha` = 1 − d = 0.5).
    pub baseline_decay: f64,
}

/// The model-based agent (agents/mbrl.toml says what each field means).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MbrlConfig {
    /// Random feasible policies scored before the models choose.
    pub init: usize,
    /// Optimism of the imagined reward: mean + kappa * sd of each learned objective.
    pub kappa: f64,
    /// Spaces of at most this many policies are enumerated; larger ones are sampled.
    pub enumerate: usize,
    /// Random policies (through the budget wall) per proposal in a sampled space.
    pub candidates: usize,
    /// Mutations of each front member per proposal in a sampled space.
    pub mutations: usize,
    /// How a sampled space's candidates are drawn (an enumerated space needs neither).
    pub planner: Planner,
}

/// Where the model-based agent's candidates come from in a space too large to enumerate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Planner {
    /// A REINFORCE policy over the bit choices, trained on imagined episodes.
    Reinforce,
    /// Uniformly random policies.
    Uniform,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Nsga2Config {
    pub population: usize,
    /// Probability of mutating each gene of a child.
    pub mutation: f64,
    /// Probability that a child is a uniform crossover of two parents (else a copy of one).
    pub crossover: f64,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GreedyConfig {
    /// Resolution of the knapsack over its cost's bound (the experiment's first cost).
    pub buckets: usize,
    /// The last proposal's budget, as a fraction of the real one: proposals sweep from the
    /// budget down to this, each an exact knapsack optimum.
    pub sweep_to: f64,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExhaustiveConfig {
    /// The most policies (before the budget filter) the agent agrees to enumerate.
    #[serde(default = "default_limit")]
    pub limit: usize,
}

fn default_limit() -> usize {
    4096
}

impl AgentConfig {
    /// Reads and checks an agent file.
    pub fn load(path: &Path) -> Result<Self, AgentError> {
        let raw: RawAgentConfig = parse_toml(&read_text(path)?, path)?;
        raw.check(path)
    }

    pub fn name(&self) -> &'static str {
        match self {
            AgentConfig::Mbrl(_) => "mbrl",
            AgentConfig::Ddpg(_) => "ddpg",
            AgentConfig::Random => "random",
            AgentConfig::Nsga2(_) => "nsga2",
            AgentConfig::Greedy(_) => "greedy",
            AgentConfig::Exhaustive(_) => "exhaustive",
        }
    }
}

impl RawAgentConfig {
    /// Applies every field rule; the first broken one names `path`, the field and the value.
    pub fn check(self, path: &Path) -> Result<AgentConfig, AgentError> {
        Ok(match self {
            RawAgentConfig::Mbrl(c) => {
                non_negative(path, "kappa", c.kappa)?;
                positive_count(path, "enumerate", c.enumerate)?;
                positive_count(path, "candidates", c.candidates)?;
                AgentConfig::Mbrl(c)
            }
            RawAgentConfig::Ddpg(c) => {
                positive_count(path, "hidden", c.hidden)?;
                positive(path, "actor_lr", c.actor_lr)?;
                positive(path, "critic_lr", c.critic_lr)?;
                positive_count(path, "batch", c.batch)?;
                positive_count(path, "replay_episodes", c.replay_episodes)?;
                fraction(path, "tau", c.tau)?;
                fraction(path, "discount", c.discount)?;
                positive(path, "sigma", c.sigma)?;
                fraction(path, "sigma_decay", c.sigma_decay)?;
                fraction(path, "baseline_decay", c.baseline_decay)?;
                AgentConfig::Ddpg(c)
            }
            RawAgentConfig::Random => AgentConfig::Random,
            RawAgentConfig::Nsga2(c) => {
                positive_count(path, "population", c.population)?;
                fraction(path, "mutation", c.mutation)?;
                fraction(path, "crossover", c.crossover)?;
                AgentConfig::Nsga2(c)
            }
            RawAgentConfig::Greedy(c) => {
                positive_count(path, "buckets", c.buckets)?;
                fraction(path, "sweep_to", c.sweep_to)?;
                AgentConfig::Greedy(c)
            }
            RawAgentConfig::Exhaustive(c) => {
                positive_count(path, "limit", c.limit)?;
                AgentConfig::Exhaustive(c)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_agent_files_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("agents");
        for (f, name) in [
            ("mbrl.toml", "mbrl"),
            ("ddpg.toml", "ddpg"),
            ("random.toml", "random"),
            ("nsga2.toml", "nsga2"),
            ("greedy.toml", "greedy"),
            ("exhaustive.toml", "exhaustive"),
        ] {
            assert_eq!(AgentConfig::load(&dir.join(f)).unwrap().name(), name);
        }
    }

    #[test]
    fn bad_values_name_file_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.toml");
        std::fs::write(
            &p,
            "agent = \"nsga2\"\npopulation = 0\nmutation = 0.1\ncrossover = 0.9\n",
        )
        .unwrap();
        let e = AgentConfig::load(&p).unwrap_err().to_string();
        assert!(
            e.contains("a.toml") && e.contains("population") && e.contains('0'),
            "{e}"
        );
        std::fs::write(
            &p,
            "agent = \"nsga2\"\npopulation = 8\nmutation = 1.5\ncrossover = 0.9\n",
        )
        .unwrap();
        assert!(AgentConfig::load(&p)
            .unwrap_err()
            .to_string()
            .contains("mutation"));
        std::fs::write(&p, "agent = \"sac\"\n").unwrap();
        assert!(AgentConfig::load(&p)
            .unwrap_err()
            .to_string()
            .contains("sac"));
    }

    fn rule_of(text: &str) -> Option<crate::validate::Rule> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.toml");
        std::fs::write(&p, text).unwrap();
        match AgentConfig::load(&p) {
            Err(AgentError::Field(e)) => Some(e.rule),
            _ => None,
        }
    }

    const DDPG: &str = "agent = \"ddpg\"\nhidden = 32\nactor_lr = 1e-4\ncritic_lr = 1e-3\nbatch = 16\nreplay_episodes = 128\ntau = 0.01\ndiscount = 1.0\nwarmup = 2\nsigma = 0.5\nsigma_decay = 0.99\nbaseline_decay = 0.95\n";

    #[test]
    fn counts_must_be_positive() {
        use crate::validate::Rule;
        assert_eq!(
            rule_of(&DDPG.replace("hidden = 32", "hidden = 0")),
            Some(Rule::Positive)
        );
        assert_eq!(
            rule_of("agent = \"greedy\"\nbuckets = 0\nsweep_to = 0.6\n"),
            Some(Rule::Positive)
        );
    }

    #[test]
    fn learning_rates_must_be_positive() {
        use crate::validate::Rule;
        let text = DDPG.replace("actor_lr = 1e-4", "actor_lr = -1e-4");
        assert_eq!(rule_of(&text), Some(Rule::Positive));
    }

    #[test]
    fn learning_rates_must_be_finite() {
        use crate::validate::Rule;
        let text = DDPG.replace("critic_lr = 1e-3", "critic_lr = inf");
        assert_eq!(rule_of(&text), Some(Rule::Finite));
    }

    #[test]
    fn probabilities_and_decays_must_be_fractions() {
        use crate::validate::Rule;
        let text = DDPG.replace("sigma_decay = 0.99", "sigma_decay = 1.01");
        assert_eq!(rule_of(&text), Some(Rule::Fraction));
        assert_eq!(rule_of(DDPG), None, "the unchanged file is valid");
    }
}
