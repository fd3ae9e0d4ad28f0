//! What an attack suite's stages cost: wall seconds and example passes through the model, per
//! stage. `bitsearch bench` prints them (where an episode's time goes), and the PyTorch reference
//! counts the same passes so the two sides' work can be compared.

use std::cell::Cell;
use std::time::Instant;

use candle_core::Tensor;
use serde::Serialize;

use super::attack::Classifier;
use super::RobustError;

/// The suite's stages, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The clean pass, the input gradient at the clean point and FGSM at every radius.
    CleanGradientFgsm,
    Transfer,
    Pgd,
    Square,
}

impl Stage {
    pub const ALL: [Stage; 4] = [
        Stage::CleanGradientFgsm,
        Stage::Transfer,
        Stage::Pgd,
        Stage::Square,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::CleanGradientFgsm => "clean + gradient + fgsm",
            Stage::Transfer => "transfer",
            Stage::Pgd => "pgd",
            Stage::Square => "square",
        }
    }
}

/// Seconds and example passes (rows through the model's forward, whether or not a backward
/// follows) of one stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct StageCost {
    pub seconds: f64,
    pub passes: usize,
}

/// The cost of every stage of one suite run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SuiteCost {
    stages: [StageCost; 4],
}

impl SuiteCost {
    pub fn get(&self, stage: Stage) -> StageCost {
        self.stages[stage as usize]
    }

    /// Runs `f` as part of `stage` on `clf` counted: adds its seconds and passes.
    pub(super) fn time<T>(
        &mut self,
        stage: Stage,
        clf: &Counted,
        f: impl FnOnce() -> Result<T, RobustError>,
    ) -> Result<T, RobustError> {
        let (start, before) = (Instant::now(), clf.passes.get());
        let out = f()?;
        let s = &mut self.stages[stage as usize];
        s.seconds += start.elapsed().as_secs_f64();
        s.passes += clf.passes.get() - before;
        Ok(out)
    }
}

/// A classifier that counts the rows it is asked to classify.
pub(super) struct Counted<'a> {
    inner: &'a dyn Classifier,
    passes: Cell<usize>,
}

impl<'a> Counted<'a> {
    pub(super) fn new(inner: &'a dyn Classifier) -> Self {
        Counted {
            inner,
            passes: Cell::new(0),
        }
    }
}

impl Classifier for Counted<'_> {
    fn logits(&self, x: &Tensor) -> Result<Tensor, RobustError> {
        self.passes.set(self.passes.get() + x.dim(0)?);
        self.inner.logits(x)
    }
}
