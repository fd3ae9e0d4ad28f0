//! HAQ's environment, apart from any agent: the search space (one step per layer and operand,
//! action → bits, every layer priced on the device, the state each step shows), the budgets and
//! the budget wall, and the objectives scored policies are ranked by. Agents and the search
//! loop both depend on it, never on each other.

mod budget;
mod error;
mod objectives;
mod prune;
mod space;
#[cfg(test)]
mod tests;

pub use crate::hardware::Price;
pub use budget::{Budget, BudgetConfig, Limit};
pub use error::EnvError;
pub use objectives::{cost_of, Objectives};
pub use space::{Operand, SearchSpace, STATE_DIM};
