//! `ModelConfig`: the validated `[model]` table of an experiment — which network, and the seed of
//! its weight initialization — and the fresh model it builds.

use serde::Serialize;

use super::arch::Arch;
use super::net::{Model, ModelError};

#[derive(Debug, Clone, Serialize)]
pub struct ModelConfig {
    pub arch: Arch,
    /// Seed of the weight initialization.
    pub seed: u64,
}

impl ModelConfig {
    /// A freshly initialized model for inputs shaped (channels, height, width) and `classes`.
    pub fn init(&self, input: (usize, usize, usize), classes: usize) -> Result<Model, ModelError> {
        Model::new(self.arch, input, classes, self.seed)
    }
}
