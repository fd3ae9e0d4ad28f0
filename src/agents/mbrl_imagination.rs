//! mbrl's imagination: the learned models of the scores (Gaussian processes over the policy
//! and, with two fidelities, the fidelity) and the hypervolume gain an imagined full-fidelity
//! episode adds to the front of the full scores.

use super::{Fidelity, Mbrl};
use crate::agents::gp::Gp;
use crate::agents::{AgentError, Context};
use crate::pareto::{dominates, hypervolume_gain, Sense};
use crate::quant::Policy;

/// The learned model and the front an imagined episode is rewarded against.
pub(super) struct Imagination<'a> {
    ctx: &'a Context<'a>,
    agent: &'a Mbrl,
    pub acc: Gp,
    /// None when robust accuracy is not an objective.
    pub rob: Option<Gp>,
    kappa: f64,
    senses: Vec<Sense>,
    front: Vec<Vec<f64>>,
    reference: Vec<f64>,
}

impl<'a> Imagination<'a> {
    pub fn new(
        ctx: &'a Context<'a>,
        agent: &'a Mbrl,
        candidates: &[Policy],
    ) -> Result<Option<Self>, AgentError> {
        let data = &agent.data;
        let column = |k: usize| data.iter().map(|d| d.values[k]).collect::<Vec<f64>>();
        let Some((acc, rob)) = fit_models(ctx, agent) else {
            return Ok(None);
        };
        let scores = ctx.objectives.scores();
        // Below every observed score by a tenth of their range; above every cost seen or
        // proposable.
        let mut reference: Vec<f64> = (0..scores).map(|k| below(&column(k))).collect();
        let costs: Vec<Vec<f64>> = (candidates.iter())
            .map(|b| ctx.objectives.cost_point(&ctx.space.price(b)))
            .collect();
        for k in scores..ctx.objectives.len() {
            let worst = (costs.iter().map(|c| c[k - scores]))
                .chain(column(k))
                .fold(f64::NEG_INFINITY, f64::max);
            reference.push(worst * (1.0 + 1e-6));
        }
        Ok(Some(Imagination {
            ctx,
            agent,
            acc,
            rob,
            kappa: agent.cfg.kappa,
            senses: ctx.objectives.senses(),
            front: agent.front().iter().map(|d| d.values.clone()).collect(),
            reference,
        }))
    }

    /// r(x): the fraction of the full fidelity's variance at `bits` a low score would remove,
    /// averaged over the learned scores.
    pub fn told_by_low(&self, bits: &Policy) -> f64 {
        let full = self.agent.input(self.ctx.space, bits, Fidelity::Full);
        let low = self.agent.input(self.ctx.space, bits, Fidelity::Low);
        let acc = self.acc.variance_reduction(&full, &low);
        match &self.rob {
            Some(rob) => (acc + rob.variance_reduction(&full, &low)) / 2.0,
            None => acc,
        }
    }

    /// An imagined full-fidelity episode's reward: the hypervolume its optimistic point adds
    /// to the front, and the summed uncertainty of the models (the tie-break).
    pub fn reward(&self, bits: &Policy) -> Result<(f64, f64), AgentError> {
        let x = self.agent.input(self.ctx.space, bits, Fidelity::Full);
        let k = self.kappa;
        let (ma, sa) = self.acc.predict(&x);
        let mut point = vec![ma + k * sa];
        let mut sd = sa;
        if let Some(rob) = &self.rob {
            let (mr, sr) = rob.predict(&x);
            point.push(mr + k * sr);
            sd += sr;
        }
        point.extend(self.ctx.objectives.cost_point(&self.ctx.space.price(bits)));
        // Late in a search most candidates are dominated: skip their hypervolume.
        if self
            .front
            .iter()
            .any(|f| f == &point || dominates(f, &point, &self.senses))
        {
            return Ok((0.0, sd));
        }
        let gain = hypervolume_gain(&self.front, &point, &self.senses, &self.reference)?;
        Ok((gain, sd))
    }
}

/// The models of the learned scores on the agent's data (both fidelities): accuracy, and
/// robust accuracy when it is an objective; None while either cannot be fitted.
pub(super) fn fit_models(ctx: &Context, agent: &Mbrl) -> Option<(Gp, Option<Gp>)> {
    let data = &agent.data;
    let x: Vec<Vec<f64>> = (data.iter())
        .map(|d| agent.input(ctx.space, &d.bits, d.fidelity))
        .collect();
    let column = |k: usize| data.iter().map(|d| d.values[k]).collect::<Vec<f64>>();
    let acc = Gp::fit(&x, &column(0))?;
    let rob = match ctx.objectives.scores() > 1 {
        true => Some(Gp::fit(&x, &column(1))?),
        false => None,
    };
    Some((acc, rob))
}

/// A reference value below every observed one, by a tenth of their range.
fn below(values: &[f64]) -> f64 {
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    lo - 0.1 * (hi - lo) - 1e-6
}
