//! One synchronous batch of the search (`--workers N`): the agent proposes up to N policies,
//! each drawing from its episode's rng (`Agent::propose_batch`); the budget wall lowers their
//! bits; those the log does not hold yet are scored at once (a batch of one here, as always;
//! else each by a worker process, `pool`, but a cached score goes to no worker); their rows are
//! appended to episodes.csv in proposal order, each as soon as it and all before it are
//! scored; then the agent learns from every row, in the same order, with the same rngs. Each
//! proposal carries the fidelity it is scored at (full, or low when the agent took the low
//! fidelity), which its row logs and a replay checks.
//!
//! A resume runs the same batches over the logged rows (`logged`): the agent proposes (and
//! believes) exactly as it did, the proposals are checked against the log, and only the
//! policies without a line are scored. So the batches, and the file, are those of an
//! uninterrupted run, whatever moment the kill came at.

use std::time::Instant;

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::episode::{feedback, logged_outcome, record};
use super::pool::{outcome_of, Job, Pool};
use super::score::Scorer;
use super::spec::Run;
use super::SearchError;
use crate::agents::{Agent, Context, Proposal};
use crate::crashpoint::crash_point;
use crate::fidelity::Fidelity;
use crate::quant::Policy;
use crate::rundir::{work, Episode};
use crate::score::Outcome;

pub(super) struct Batch {
    /// The episode of its first proposal.
    first: usize,
    rngs: Vec<StdRng>,
    proposals: Vec<Proposal>,
    /// The proposals after the budget wall: what is scored and logged.
    policies: Vec<Policy>,
}

impl Batch {
    /// The fidelity proposal `i` is scored at.
    fn fidelity(&self, i: usize) -> Fidelity {
        self.proposals[i].fidelity
    }

    /// How many of the batch's proposals are scored at full fidelity.
    pub fn full(&self) -> usize {
        (0..self.len())
            .filter(|&i| self.fidelity(i).is_full())
            .count()
    }
}

/// How one pending policy of a batch gets its score.
enum Source {
    /// Known already (the cache), with the seconds it took to get.
    Ready(Outcome, f64),
    /// The same policy as the batch's i-th.
    Same(usize),
    /// A worker's reply a killed run left (on a resume).
    Kept(work::Reply),
    Worker(Job),
}

impl Batch {
    /// Up to `n` proposals from episode `first` on.
    pub fn propose(
        run: &Run,
        agent: &mut dyn Agent,
        ctx: &Context,
        first: usize,
        n: usize,
    ) -> Result<Self, SearchError> {
        let mut rngs: Vec<StdRng> = (first..first + n)
            .map(|k| StdRng::seed_from_u64(run.seed(k)))
            .collect();
        let mut proposals = agent.propose_batch(ctx, &mut rngs)?;
        if proposals.is_empty() {
            return Err(SearchError::EmptyBatch { episode: first });
        }
        proposals.truncate(n);
        rngs.truncate(proposals.len());
        let policies = (proposals.iter())
            .map(|p| {
                let mut policy = p.bits.clone();
                run.budget.wall(&run.space, &mut policy);
                policy
            })
            .collect();
        Ok(Batch {
            first,
            rngs,
            proposals,
            policies,
        })
    }

    pub fn len(&self) -> usize {
        self.proposals.len()
    }

    /// Checks the replayed proposals against the rows the log holds for them.
    pub fn replay(&self, run: &Run, logged: &[Episode]) -> Result<(), SearchError> {
        for (i, row) in logged.iter().enumerate() {
            let k = self.first + i;
            let fidelity = self.fidelity(i);
            if self.policies[i] != row.policy() || row.episode != k || fidelity != row.fidelity {
                return Err(SearchError::ReplayMismatch {
                    dir: run.log.dir.clone(),
                    episode: k,
                    replayed: format!("{} ({fidelity})", self.policies[i]),
                    logged: format!("{} ({})", row.policy, row.fidelity),
                });
            }
        }
        Ok(())
    }

    /// The batch's rows: the `logged` ones, then the rest scored and appended to episodes.csv
    /// in order. Here one by one without a pool; with one, all at once, and a failed worker
    /// stops the logging there (the rest run to the end, their replies kept for the resume)
    /// and is the error.
    pub fn score(
        &self,
        run: &Run,
        agent: &str,
        scorer: &Scorer,
        pool: Option<&Pool>,
        logged: &[Episode],
        start: Instant,
    ) -> Result<Vec<Episode>, SearchError> {
        let mut rows = logged.to_vec();
        let log = |rows: &mut Vec<Episode>, outcome: Outcome, seconds: f64| {
            let (i, policy) = (rows.len(), &self.policies[rows.len()]);
            let scored = scorer.scored(&run.space, policy, outcome);
            let scored_at = (policy, self.fidelity(i));
            let row = record(run, self.first + i, agent, scored_at, &scored, seconds);
            run.log.append("episodes.csv", &row)?;
            crash_point("episode-appended");
            rows.push(row);
            Ok::<(), SearchError>(())
        };
        let Some(pool) = pool else {
            for (i, policy) in self.policies.iter().enumerate().skip(logged.len()) {
                let outcome = scorer
                    .score_at(&run.space, policy, self.fidelity(i))?
                    .outcome;
                log(&mut rows, outcome, start.elapsed().as_secs_f64())?;
            }
            return Ok(rows);
        };
        let sources = self.sources(scorer, pool, logged.len(), start)?;
        let mut failure = None;
        for (i, source) in (logged.len()..).zip(sources) {
            let got = self.take(run, scorer, &rows, source, i);
            match (got, &failure) {
                (Ok((outcome, seconds)), None) => log(&mut rows, outcome, seconds)?,
                (Err(e), None) => failure = Some(e),
                (_, Some(_)) => {}
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        for k in self.first + logged.len()..self.first + self.len() {
            work::finish(&run.log.dir, k)?;
        }
        Ok(rows)
    }

    /// Where each pending policy's score comes from; every worker the batch needs is started
    /// before any is waited for.
    fn sources(
        &self,
        scorer: &Scorer,
        pool: &Pool,
        from: usize,
        start: Instant,
    ) -> Result<Vec<Source>, SearchError> {
        let mut sources = Vec::new();
        for i in from..self.len() {
            let (k, policy, fidelity) = (self.first + i, &self.policies[i], self.fidelity(i));
            let same =
                (from..i).find(|&j| &self.policies[j] == policy && self.fidelity(j) == fidelity);
            let cached = scorer.cached(policy, fidelity);
            let source = match (same, cached, pool.kept(k, policy)) {
                (Some(j), _, _) => Source::Same(j),
                (None, Some(o), _) => Source::Ready(o, start.elapsed().as_secs_f64()),
                (None, None, Some(reply)) => Source::Kept(reply),
                (None, None, None) => {
                    Source::Worker(pool.start(sources.len() + 1, k, policy, fidelity)?)
                }
            };
            sources.push(source);
        }
        Ok(sources)
    }

    /// The outcome of pending policy `i` and its seconds, waiting for its worker if it has one.
    fn take(
        &self,
        run: &Run,
        scorer: &Scorer,
        rows: &[Episode],
        source: Source,
        i: usize,
    ) -> Result<(Outcome, f64), SearchError> {
        let (k, policy) = (self.first + i, &self.policies[i]);
        let reply = match source {
            Source::Ready(outcome, seconds) => return Ok((outcome, seconds)),
            // Logged already: nothing after a failure is taken.
            Source::Same(j) => return Ok((logged_outcome(&rows[j]), 0.0)),
            Source::Kept(reply) => reply,
            Source::Worker(job) => job.wait()?,
        };
        let outcome = outcome_of(&run.log.dir, &reply, k, policy)?;
        scorer.remember(policy, self.fidelity(i), &outcome)?;
        Ok((outcome, reply.seconds))
    }

    /// The agent learns from the batch's rows, in proposal order, each with its episode's rng.
    pub fn learn(
        mut self,
        agent: &mut dyn Agent,
        ctx: &Context,
        rows: &[Episode],
        scorer: &Scorer,
    ) -> Result<(), SearchError> {
        let learned = self.proposals.iter().zip(&mut self.rngs).zip(rows);
        for ((proposal, rng), row) in learned {
            agent.learn(ctx, proposal, &feedback(row, scorer), rng)?;
        }
        Ok(())
    }
}
