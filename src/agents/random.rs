//! Random search: policies drawn uniformly from the space (each operand one of its options)
//! through the same budget wall as every other agent.

use rand::rngs::StdRng;

use super::{random_policy, Agent, AgentError, Context, Proposal};

pub struct RandomAgent;

impl Agent for RandomAgent {
    fn name(&self) -> &'static str {
        "random"
    }

    /// Its proposals do not depend on what it learns: a batch is the same proposals in a row.
    fn batches(&self) -> bool {
        true
    }

    fn propose(&mut self, ctx: &Context, rng: &mut StdRng) -> Result<Proposal, AgentError> {
        let bits = random_policy(ctx.space, rng);
        Ok(Proposal::from_bits(ctx.space, bits))
    }

    fn summary(&self) -> serde_json::Value {
        serde_json::json!({ "agent": "random" })
    }
}
