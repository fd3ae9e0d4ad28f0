//! Agent files (`agents/*.toml`): `agent = "ddpg" | "random" | "nsga2" | "greedy"` and that
//! agent's hyper-parameters, validated on load.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("{}: field `{field}` must be greater than zero, got {value}", path.display())]
    NotPositive {
        path: PathBuf,
        field: &'static str,
        value: f64,
    },
    #[error("{}: field `{field}` must be in [0, 1], got {value}", path.display())]
    NotAFraction {
        path: PathBuf,
        field: &'static str,
        value: f64,
    },
    #[error("the greedy agent needs per-layer sensitivities, measured before the search")]
    NoSensitivity,
    #[error(transparent)]
    Pareto(#[from] crate::pareto::ParetoError),
    #[error("tensor error in the agent: {0}")]
    Tensor(#[from] candle_core::Error),
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "agent", rename_all = "lowercase", deny_unknown_fields)]
pub enum AgentConfig {
    Ddpg(DdpgConfig),
    Random,
    Nsga2(Nsga2Config),
    Greedy(GreedyConfig),
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
    /// Moving-average weight of the reward baseline: b ← d·b + (1 − d)·r.
    pub baseline_decay: f64,
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
    /// Resolution of the knapsack over the primary budget resource.
    pub buckets: usize,
    /// The last proposal's budget, as a fraction of the real one: proposals sweep from the
    /// budget down to this, each an exact knapsack optimum.
    pub sweep_to: f64,
}

impl AgentConfig {
    pub fn load(path: &Path) -> Result<Self, AgentError> {
        let text = std::fs::read_to_string(path).map_err(|source| AgentError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let cfg: AgentConfig = toml::from_str(&text).map_err(|e| AgentError::Parse {
            path: path.to_path_buf(),
            source: Box::new(e),
        })?;
        cfg.check(path)?;
        Ok(cfg)
    }

    pub fn name(&self) -> &'static str {
        match self {
            AgentConfig::Ddpg(_) => "ddpg",
            AgentConfig::Random => "random",
            AgentConfig::Nsga2(_) => "nsga2",
            AgentConfig::Greedy(_) => "greedy",
        }
    }

    fn check(&self, path: &Path) -> Result<(), AgentError> {
        let pos = |field, v: f64| {
            if v > 0.0 && v.is_finite() {
                Ok(())
            } else {
                Err(AgentError::NotPositive {
                    path: path.to_path_buf(),
                    field,
                    value: v,
                })
            }
        };
        let frac = |field, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(AgentError::NotAFraction {
                    path: path.to_path_buf(),
                    field,
                    value: v,
                })
            }
        };
        match self {
            AgentConfig::Ddpg(c) => {
                pos("hidden", c.hidden as f64)?;
                pos("actor_lr", c.actor_lr)?;
                pos("critic_lr", c.critic_lr)?;
                pos("batch", c.batch as f64)?;
                pos("replay_episodes", c.replay_episodes as f64)?;
                frac("tau", c.tau)?;
                frac("discount", c.discount)?;
                pos("sigma", c.sigma)?;
                frac("sigma_decay", c.sigma_decay)?;
                frac("baseline_decay", c.baseline_decay)
            }
            AgentConfig::Random => Ok(()),
            AgentConfig::Nsga2(c) => {
                pos("population", c.population as f64)?;
                frac("mutation", c.mutation)?;
                frac("crossover", c.crossover)
            }
            AgentConfig::Greedy(c) => {
                pos("buckets", c.buckets as f64)?;
                frac("sweep_to", c.sweep_to)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_agent_files_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("agents");
        for (f, name) in [
            ("ddpg.toml", "ddpg"),
            ("random.toml", "random"),
            ("nsga2.toml", "nsga2"),
            ("greedy.toml", "greedy"),
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
}
