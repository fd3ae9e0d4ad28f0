//! The fidelity a policy is scored at: `full` (the experiment's fine-tune and attack suite) or
//! `low` (the same scorer with fewer fine-tune steps and fewer attacked examples, `[search]
//! fidelity = "multi"`). A low score is data for the agent only: episodes.csv logs it with its
//! fidelity, and every front, best policy and hypervolume is taken over full scores alone.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Fidelity {
    /// The experiment's whole recipe: what every front and best policy is made of.
    #[default]
    Full,
    /// The cheaper recipe of `[search] low_steps` and `low_examples`.
    Low,
}

impl Fidelity {
    /// Its name in files (episodes.csv's `fidelity` column, work requests).
    pub fn name(self) -> &'static str {
        match self {
            Fidelity::Full => "full",
            Fidelity::Low => "low",
        }
    }

    pub fn is_full(self) -> bool {
        self == Fidelity::Full
    }
}

impl fmt::Display for Fidelity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Not `full` or `low`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("expected `full` or `low`, got `{0}`")]
pub struct UnknownFidelity(pub String);

impl FromStr for Fidelity {
    type Err = UnknownFidelity;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "full" => Ok(Fidelity::Full),
            "low" => Ok(Fidelity::Low),
            other => Err(UnknownFidelity(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_anything_else_is_refused() {
        for f in [Fidelity::Full, Fidelity::Low] {
            assert_eq!(f.name().parse::<Fidelity>(), Ok(f));
        }
        assert!("Full".parse::<Fidelity>().is_err());
        assert!("".parse::<Fidelity>().is_err());
        assert_eq!(serde_json::to_string(&Fidelity::Low).unwrap(), "\"low\"");
    }
}
