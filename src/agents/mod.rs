//! Search agents: one `Agent` trait; a model-based agent (`mbrl`, the default), DDPG (HAQ's), random search, NSGA-II, and a HAWQ-style
//! sensitivity + knapsack agent, and an exhaustive oracle over a small space, configured by `agents/*.toml`. Every agent proposes whole
//! policies and learns from their feedback, so all run in the same loop with the same episode
//! budget; DDPG walks the layers inside `propose`.
//!
//! What an agent optimizes comes from the experiment (`env::Objectives` in the `Context`):
//! mbrl's hypervolume axes and NSGA-II's objectives are exactly those, greedy trades accuracy
//! against their first cost; DDPG learns HAQ's scalar reward; random and exhaustive rank
//! nothing.

mod config;
mod ddpg;
mod exhaustive;
mod gp;
mod greedy;
mod mbrl;
mod nets;
mod nsga2;
#[cfg(test)]
mod offline;
mod planner;
mod random;
mod replay;
#[cfg(test)]
mod synthetic;

pub use config::{
    AgentConfig, AgentError, DdpgConfig, ExhaustiveConfig, GreedyConfig, MbrlConfig, Nsga2Config,
    Planner, RawAgentConfig,
};
pub use ddpg::Ddpg;
pub use exhaustive::Exhaustive;
pub use greedy::{Greedy, Sensitivity};
pub use mbrl::Mbrl;
pub use nsga2::Nsga2;
pub use random::RandomAgent;
pub use replay::{ReplayBuffer, Transition};

use rand::rngs::StdRng;

use crate::env::{Budget, Objectives, Operand, Price, SearchSpace, STATE_DIM};
use crate::fidelity::Fidelity;
use crate::pareto::Objective;
use crate::quant::{LayerBits, Policy};

/// What an agent sees of the problem.
pub struct Context<'a> {
    pub space: &'a SearchSpace,
    pub budget: &'a Budget,
    /// What scored policies are ranked by.
    pub objectives: &'a Objectives,
}

/// One proposed policy: an action in [0,1] per step (weight then activation per layer), the
/// policy they map to, and the states the agent saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    pub actions: Vec<f32>,
    pub bits: Policy,
    pub states: Vec<[f32; STATE_DIM]>,
    /// The fidelity to score it at: full, unless the agent took the low fidelity the search
    /// offered (`Agent::offer_low_fidelity`).
    pub fidelity: Fidelity,
}

impl Proposal {
    /// A proposal of whole policies (no per-step states): each action is its bin's centre.
    pub fn from_bits(space: &SearchSpace, bits: Policy) -> Self {
        let actions = bits
            .iter()
            .flat_map(|b| {
                [
                    space.bits_to_action(b.w, Operand::Weight),
                    space.bits_to_action(b.a, Operand::Activation),
                ]
            })
            .collect();
        Proposal {
            actions,
            bits,
            states: Vec::new(),
            fidelity: Fidelity::Full,
        }
    }

    /// The same proposal, to be scored at `fidelity`.
    pub fn at(self, fidelity: Fidelity) -> Self {
        Proposal { fidelity, ..self }
    }
}

/// A policy's validation loss with only quantization applied (no fine-tune); the search gives
/// it to `Agent::prepare`. Its error is the search's, carried through as `AgentError::Probe`.
pub type Probe<'a> = dyn Fn(&Policy) -> Result<f64, Box<dyn std::error::Error + Send + Sync>> + 'a;

/// Something an agent measured before the search, kept in the run directory as `file`.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    pub file: &'static str,
    pub json: serde_json::Value,
}

/// The scored outcome of a proposal.
#[derive(Debug, Clone, PartialEq)]
pub struct Feedback {
    pub reward: f64,
    /// The policy after the budget wall (what was trained and priced).
    pub walled: Policy,
    /// (accuracy, credited robust accuracy); None when the fine-tune failed.
    pub scores: Option<[f64; 2]>,
    /// The walled policy's price on the device.
    pub price: Price,
    /// The fidelity it was scored at (full for every reference).
    pub fidelity: Fidelity,
}

impl Feedback {
    /// The policy's point on `objectives`; None when the fine-tune failed.
    pub fn point(&self, objectives: &Objectives) -> Option<Vec<f64>> {
        (self.scores).map(|[acc, rob]| objectives.point(acc, rob, &self.price))
    }
}

pub trait Agent {
    fn name(&self) -> &'static str;
    /// Measures what the agent needs before its first proposal (greedy: per-operand
    /// sensitivities, probed through `probe`); most agents need nothing.
    fn prepare(
        &mut self,
        _ctx: &Context,
        _probe: &Probe,
    ) -> Result<Option<Measurement>, AgentError> {
        Ok(None)
    }
    /// How many policies the agent has to propose, when that is finite (the exhaustive
    /// oracle): the search ends after that many episodes.
    fn policies(&self) -> Option<usize> {
        None
    }
    fn propose(&mut self, ctx: &Context, rng: &mut StdRng) -> Result<Proposal, AgentError>;
    /// The search may score policies at a low fidelity costing `cost` of a full score (`[search]
    /// fidelity = "multi"`), called once before the references; returns whether the agent will
    /// propose any. The default declines: the agent's every proposal is scored at full fidelity.
    fn offer_low_fidelity(&mut self, _cost: f64) -> bool {
        false
    }
    /// Whether `propose_batch` may be asked for more than one proposal (the search's
    /// `--workers`): false for an agent that must learn from each episode before its next
    /// proposal (DDPG), which the search then refuses to run with several workers.
    fn batches(&self) -> bool {
        false
    }
    /// Proposes up to `rngs.len()` policies to be scored together and learned in order (a
    /// synchronous batch); the i-th draws its randomness from `rngs[i]`, its episode's rng,
    /// which `learn` then continues. The i-th proposal may depend on the ones before it in the
    /// batch, never on those after, so a batch's first proposal is what `propose` would give.
    /// At least one proposal; fewer than asked only where the algorithm has a boundary there
    /// (the end of an NSGA-II generation).
    ///
    /// The default proposes one after another with no learning in between: right for a batch
    /// of one, and for agents whose proposals do not depend on what they learn (random,
    /// greedy, exhaustive), which say so with `batches`. An agent that learns between
    /// proposals overrides it (mbrl fantasizes the pending outcomes) or keeps `batches` false.
    fn propose_batch(
        &mut self,
        ctx: &Context,
        rngs: &mut [StdRng],
    ) -> Result<Vec<Proposal>, AgentError> {
        if rngs.len() > 1 && !self.batches() {
            return Err(AgentError::Sequential {
                agent: self.name(),
                batch: rngs.len(),
            });
        }
        rngs.iter_mut().map(|rng| self.propose(ctx, rng)).collect()
    }
    /// Takes in a policy scored before the search (a uniform reference of the run), as data
    /// that is not an episode: the search calls it for each in a fixed order, after `prepare`
    /// and before the first proposal, on a fresh run and on a resume alike. Agents without a
    /// use for it keep the default.
    fn observe_reference(
        &mut self,
        _ctx: &Context,
        _reference: &Feedback,
    ) -> Result<(), AgentError> {
        Ok(())
    }
    /// Learns from a scored proposal; agents that only propose (random, greedy) keep the default.
    fn learn(
        &mut self,
        _ctx: &Context,
        _proposal: &Proposal,
        _feedback: &Feedback,
        _rng: &mut StdRng,
    ) -> Result<(), AgentError> {
        Ok(())
    }
    /// A JSON summary of the agent's state, for a person (agent.json); a resume does not read
    /// it, it replays the log.
    fn summary(&self) -> serde_json::Value;
}

/// A policy drawn uniformly from the space: each operand (each layer when tied) one of its
/// options, drawn weight then activation per layer.
pub fn random_policy(space: &SearchSpace, rng: &mut StdRng) -> Policy {
    use rand::Rng;
    let mut pick = |l: usize, op: Operand| {
        let v = space.options(l, op);
        v[rng.random_range(0..v.len())]
    };
    (0..space.layers.len())
        .map(|l| {
            let w = pick(l, Operand::Weight);
            space.run_layer(l, LayerBits::new(w, pick(l, Operand::Activation)))
        })
        .collect()
}

/// What each agent ranked by before its objectives came from the experiment: a run whose
/// config.json records no `objectives` resumes with these (mbrl: accuracy × robust accuracy ×
/// latency; NSGA-II: accuracy, robust accuracy, latency, energy; the others as `resolved`,
/// which greedy's first budgeted cost already was).
pub fn former_objectives(cfg: &AgentConfig, resolved: &Objectives) -> Objectives {
    match cfg {
        AgentConfig::Mbrl(_) => Objectives::of(true, &[Objective::Latency]),
        AgentConfig::Nsga2(_) => Objectives::of(true, &[Objective::Latency, Objective::Energy]),
        _ => resolved.clone(),
    }
}

/// Builds the agent a config describes (greedy still needs its `prepare`).
pub fn build(cfg: &AgentConfig, ctx: &Context, seed: u64) -> Result<Box<dyn Agent>, AgentError> {
    Ok(match cfg {
        AgentConfig::Mbrl(c) => Box::new(Mbrl::new(c.clone(), ctx)),
        AgentConfig::Random => Box::new(RandomAgent),
        AgentConfig::Ddpg(c) => Box::new(Ddpg::new(c.clone(), ctx.space, seed)?),
        AgentConfig::Nsga2(c) => Box::new(Nsga2::new(c.clone(), ctx)),
        AgentConfig::Greedy(c) => Box::new(Greedy::new(c.clone())),
        AgentConfig::Exhaustive(c) => Box::new(Exhaustive::new(c, ctx)?),
    })
}
