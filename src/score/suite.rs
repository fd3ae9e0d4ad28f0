//! An attack suite bound to its examples: the first `n` examples of a split, the transfer
//! examples crafted once on the FP32 baseline, the attack settings and the coverage. Every
//! policy a command scores meets the same examples.

use candle_core::{Device, Tensor};

use super::ScoreError;
use crate::data::Split;
use crate::model::Model;
use crate::quant::Quantizer;
use crate::robust::{
    fp32_transfer, run_suite, AttackConfig, Coverage, QuantizedModel, SuiteReport, TransferSet,
};
use crate::train::TrainError;

pub struct Suite<'a> {
    cfg: &'a AttackConfig,
    x: Tensor,
    y: Tensor,
    transfer: Option<TransferSet>,
    coverage: Coverage,
}

impl<'a> Suite<'a> {
    /// `cfg` on the first `n` examples of `split`, with its transfer examples crafted on `base`.
    pub fn new(
        base: &Model,
        split: &Split,
        n: usize,
        cfg: &'a AttackConfig,
        coverage: Coverage,
    ) -> Result<Self, ScoreError> {
        let (x, y) = split.first(n, &Device::Cpu).map_err(TrainError::from)?;
        let transfer = fp32_transfer(base, &x, &y, cfg)?;
        Ok(Suite {
            cfg,
            x,
            y,
            transfer,
            coverage,
        })
    }

    /// The attacked examples and their labels.
    pub fn examples(&self) -> (&Tensor, &Tensor) {
        (&self.x, &self.y)
    }

    /// The transfer examples (None when `[attack] transfer` is off).
    pub fn transfer(&self) -> Option<&TransferSet> {
        self.transfer.as_ref()
    }

    pub fn config(&self) -> &AttackConfig {
        self.cfg
    }

    /// Runs the suite on `model` through `q` (None: the FP32 model).
    pub fn run(&self, model: &Model, q: Option<&Quantizer>) -> Result<SuiteReport, ScoreError> {
        Ok(run_suite(
            &QuantizedModel { model, q },
            &self.x,
            &self.y,
            self.cfg,
            self.transfer.as_ref(),
            self.coverage,
        )?)
    }
}
