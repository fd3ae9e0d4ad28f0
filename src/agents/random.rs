//! Random search: uniform actions through the same budget wall as every other agent.

use rand::rngs::StdRng;
use rand::Rng;

use super::{actions_to_bits, Agent, AgentError, Context, Proposal};

pub struct RandomAgent;

impl Agent for RandomAgent {
    fn name(&self) -> &'static str {
        "random"
    }

    fn propose(&mut self, ctx: &Context, rng: &mut StdRng) -> Result<Proposal, AgentError> {
        let actions: Vec<f32> = (0..ctx.space.steps())
            .map(|_| rng.random::<f32>())
            .collect();
        Ok(Proposal {
            bits: actions_to_bits(ctx.space, &actions),
            actions,
            states: Vec::new(),
        })
    }

    fn summary(&self) -> serde_json::Value {
        serde_json::json!({ "agent": "random" })
    }
}
