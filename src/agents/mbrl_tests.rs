//! Unit tests of the model-based agent on the synthetic problems with known fronts.

use std::collections::BTreeSet;

use super::*;
use crate::agents::synthetic::Front;
use crate::agents::RandomAgent;

fn mbrl(ctx: &Context) -> Mbrl {
    let cfg = MbrlConfig {
        init: 6,
        kappa: 1.0,
        enumerate: 4096,
        candidates: 300,
        mutations: 10,
        planner: Planner::Reinforce,
    };
    Mbrl::new(cfg, ctx)
}

fn distinct(policies: &[Policy]) -> usize {
    policies.iter().collect::<BTreeSet<_>>().len()
}

#[test]
fn learns_the_known_front_where_random_search_does_not() {
    let pb = Front::new(&[2, 4, 8], true);
    let (mut ours, mut random) = (Vec::new(), Vec::new());
    for seed in 1..=5 {
        let mut agent = mbrl(&pb.ctx());
        ours.push(pb.fraction(&pb.run(&mut agent, 60, seed, None), &pb.objectives));
        random.push(pb.fraction(&pb.run(&mut RandomAgent, 60, seed, None), &pb.objectives));
    }
    // 60 of the 108 feasible policies, 74 of which are on the front: the model must find
    // the ones that hold its volume; random search, by chance, does not.
    assert!(ours.iter().all(|&f| f >= 0.99), "mbrl: {ours:?}");
    let mean = random.iter().sum::<f64>() / 5.0;
    assert!(mean < 0.99, "random is as good: {random:?}");
}

#[test]
fn never_proposes_a_scored_policy_and_survives_failed_fine_tunes() {
    let small = Front::new(&[2, 4, 8], true);
    let mut agent = mbrl(&small.ctx());
    let n = agent.policies().unwrap();
    assert_eq!(n, 108, "every feasible policy of the small space");
    let all = small.run(&mut agent, n, 3, Some(3));
    assert_eq!(distinct(&all), n, "each feasible policy exactly once");
    let full = Front::new(&[2, 3, 4, 5, 6, 7, 8], false);
    let mut agent = mbrl(&full.ctx());
    assert_eq!(agent.policies(), None, "7^10 policies are sampled");
    let got = full.run(&mut agent, 40, 3, Some(2));
    assert_eq!(distinct(&got), 40, "{got:?}");
    assert_eq!(agent.failed, 20);
    assert!(got.iter().all(|b| full.budget.holds(&full.space.price(b))));
}

/// Guards ranking by the experiment's cost: on bismo-edge under a 70% energy budget (195
/// feasible tied {2, 4, 8} policies) the energy front (74 policies) and the latency front
/// differ, so an mbrl that ranked by latency whatever the experiment said would score the
/// same policies in both runs below and fail. Measured at 30 episodes, seeds 1–5: energy
/// front members scored 24, 27, 23, 25, 27 ranking by energy; 14, 20, 14, 18, 16 by latency.
#[test]
fn finds_the_energy_front_when_energy_is_the_budgeted_cost() {
    use crate::env::{BudgetConfig, Limit, Objectives};
    use crate::pareto::Objective;
    let cfg = BudgetConfig {
        energy: Some(Limit::Fraction(0.7)),
        ..BudgetConfig::default()
    };
    let mut pb = Front::on("bismo-edge", &[2, 4, 8], true, &cfg);
    let energy = pb.objectives.clone();
    assert_eq!(
        energy.list(),
        [
            Objective::Accuracy,
            Objective::RobustAccuracy,
            Objective::Energy
        ]
    );
    let all = feasible(&pb.space, &pb.budget);
    let points: Vec<Vec<f64>> = (all.iter())
        .map(|b| {
            let [acc, rob] = pb.scores(b);
            energy.point(acc, rob, &pb.space.price(b))
        })
        .collect();
    let front: BTreeSet<&Policy> = (non_dominated(&points, &energy.senses()).unwrap())
        .into_iter()
        .map(|i| &all[i])
        .collect();
    let (mut by_energy, mut by_latency) = (0, 0);
    for seed in 1..=5 {
        pb.objectives = energy.clone();
        let got = pb.run(&mut mbrl(&pb.ctx()), 30, seed, None);
        let e = got.iter().filter(|b| front.contains(b)).count();
        pb.objectives = Objectives::of(true, &[Objective::Latency]);
        let got = pb.run(&mut mbrl(&pb.ctx()), 30, seed, None);
        let l = got.iter().filter(|b| front.contains(b)).count();
        assert!(
            e > l,
            "seed {seed}: {e} energy-front policies ranking by energy, {l} by latency"
        );
        (by_energy, by_latency) = (by_energy + e, by_latency + l);
    }
    assert!(
        by_energy as f64 >= 1.3 * by_latency as f64,
        "{by_energy} vs {by_latency} energy-front policies over 5 seeds"
    );
}

/// The feedback of a uniform reference of the synthetic problem.
fn reference(pb: &Front, bits: u8) -> Feedback {
    let walled = Policy::uniform(5, Format::new(bits).unwrap());
    Feedback {
        reward: 0.0,
        price: pb.space.price(&walled),
        scores: Some(pb.scores(&walled)),
        walled,
        fidelity: crate::fidelity::Fidelity::Full,
    }
}

#[test]
fn references_are_data_and_front_members_but_not_episodes() {
    let pb = Front::new(&[2, 4, 8], true);
    let ctx = pb.ctx();
    let mut agent = mbrl(&ctx);
    for b in [2, 4, 8] {
        agent.observe_reference(&ctx, &reference(&pb, b)).unwrap();
    }
    // 2/2 and 4/4 meet the 50% latency budget; 8/8 does not.
    assert_eq!(
        agent.policies(),
        Some(106),
        "108 feasible, 2 already scored"
    );
    assert_eq!(agent.data.len(), 3, "all three teach the models");
    let front: Vec<String> = agent.front().iter().map(|p| p.bits.to_string()).collect();
    assert_eq!(front, ["2/2,2/2,2/2,2/2,2/2", "4/4,4/4,4/4,4/4,4/4"]);
    assert!(agent.warming_up(), "init counts the agent's own proposals");
    let all = pb.run(&mut agent, 200, 3, None);
    assert_eq!(all.len(), 106);
    assert_eq!(distinct(&all), 106, "each unscored feasible policy once");
    let references = [2, 4].map(|b| reference(&pb, b).walled);
    assert!(
        all.iter().all(|b| !references.contains(b)),
        "never proposed"
    );
}

#[test]
fn the_same_seed_and_feedback_give_the_same_proposals() {
    // A resume replays the log through `learn` and re-runs `propose` with the same rngs.
    let pb = Front::new(&[2, 3, 4, 5, 6, 7, 8], false);
    let one = pb.run(&mut mbrl(&pb.ctx()), 15, 9, Some(4));
    let two = pb.run(&mut mbrl(&pb.ctx()), 15, 9, Some(4));
    assert_eq!(one, two);
}

/// Guards the Kriging believer: within a batch no policy comes twice (a believed proposal
/// counts as scored) and none scored before, in the enumerated and the sampled space; the
/// beliefs are gone once the batch is proposed; a batch's first proposal is the one `propose`
/// makes from the same state (what lets a resume replay batches).
#[test]
fn a_batch_is_distinct_unscored_policies_and_its_first_is_the_lone_proposal() {
    use rand::SeedableRng;
    for pb in [
        Front::new(&[2, 4, 8], true),
        Front::new(&[2, 3, 4, 5, 6, 7, 8], false),
    ] {
        let batches = pb.run_batches(&mut mbrl(&pb.ctx()), 24, 5, 4);
        let all: Vec<Policy> = batches.iter().flatten().cloned().collect();
        let text: Vec<String> = all.iter().map(Policy::to_string).collect();
        assert!(batches.iter().all(|b| b.len() == 4), "{text:?}");
        assert_eq!(distinct(&all), 24, "{text:?}");
        // The same history, then one proposal alone: the fifth batch's first.
        let ctx = pb.ctx();
        let mut agent = mbrl(&ctx);
        pb.run_batches(&mut agent, 16, 5, 4);
        assert_eq!(agent.data.len(), 16, "no belief left behind");
        let mut rng = StdRng::seed_from_u64(5u64.wrapping_mul(1_000_003) + 16);
        let lone = agent.propose(&ctx, &mut rng).unwrap().bits;
        assert_eq!(lone, batches[4][0]);
    }
}

/// The batch costs the model little on the small space: a batch of 4 finds nearly all of the
/// front's volume in 60 episodes (one at a time finds at least 0.99 of it, the test above).
/// Measured, seeds 1–3: 0.999, 0.998, 0.987; with the batch's proposals not believed (each
/// planned on the same data, so mostly the same policy), 0.913, 0.903, 0.909.
#[test]
fn batches_of_four_still_find_the_known_front() {
    let pb = Front::new(&[2, 4, 8], true);
    let mut got = Vec::new();
    for seed in 1..=3 {
        let batches = pb.run_batches(&mut mbrl(&pb.ctx()), 60, seed, 4);
        let all: Vec<Policy> = batches.into_iter().flatten().collect();
        got.push(pb.fraction(&all, &pb.objectives));
    }
    assert!(got.iter().all(|&f| f >= 0.98), "batches of 4: {got:?}");
}

/// With the low fidelity offered: the warm-up is low scores, no policy is scored twice at one
/// fidelity, every full score goes to a policy not fully scored before, the same seed gives
/// the same proposals, and 40 full scores still hold most of the known front (low scores here
/// read 0.05 below the full accuracy, a bias the models must learn).
#[test]
fn with_two_fidelities_the_warm_up_is_cheap_and_no_score_repeats() {
    use crate::fidelity::Fidelity;
    use rand::SeedableRng;
    let pb = Front::new(&[2, 4, 8], true);
    let run = |seed: u64| {
        let ctx = pb.ctx();
        let mut agent = mbrl(&ctx);
        assert!(agent.offer_low_fidelity(0.25));
        let (mut out, mut full) = (Vec::new(), Vec::new());
        for k in 0..200 {
            if full.len() == 40 {
                break;
            }
            let mut rng = StdRng::seed_from_u64(seed * 1000 + k);
            let p = agent.propose(&ctx, &mut rng).unwrap();
            let [acc, rob] = pb.scores(&p.bits);
            let low = p.fidelity == Fidelity::Low;
            let f = Feedback {
                reward: 0.0,
                walled: p.bits.clone(),
                scores: Some([if low { acc - 0.05 } else { acc }, rob]),
                price: pb.space.price(&p.bits),
                fidelity: p.fidelity,
            };
            agent.learn(&ctx, &p, &f, &mut rng).unwrap();
            if !low {
                full.push(p.bits.clone());
            }
            out.push((p.bits, p.fidelity));
        }
        (out, full)
    };
    let (out, full) = run(3);
    assert!(out[..6].iter().all(|(_, f)| *f == Fidelity::Low), "{out:?}");
    assert_eq!(
        out.iter().collect::<BTreeSet<_>>().len(),
        out.len(),
        "a repeat"
    );
    assert_eq!(distinct(&full), full.len());
    assert_eq!(full.len(), 40, "{} proposals, none full enough", out.len());
    assert!(
        out.len() > 46,
        "the model screened nothing after its warm-up"
    );
    assert_eq!(run(3).0, out, "deterministic");
    let f = pb.fraction(&full, &pb.objectives);
    assert!(f >= 0.9, "40 full scores hold {f} of the front");
}

/// Per operand, how often its most frequent option occurs among `policies` (weight then
/// activation per layer).
fn most_repeated(policies: &[Policy]) -> Vec<usize> {
    let operands = policies[0].iter().count() * 2;
    (0..operands)
        .map(|j| {
            let mut counts = std::collections::BTreeMap::new();
            for p in policies {
                let l = &p.layers()[j / 2];
                *counts
                    .entry(if j % 2 == 0 { l.w } else { l.a })
                    .or_insert(0) += 1;
            }
            counts.into_values().max().unwrap_or(0)
        })
        .collect()
}

#[test]
fn the_warm_up_spreads_each_operand_over_its_options() {
    // The untied 2..8 space, 6 warm-up proposals: a random design takes some operand's option
    // 4 to 6 times in every seed of these; the space-filling one at most 3 times (the budget
    // wall lowers the largest layer's weights), and repeats less in sum.
    let full = Front::new(&[2, 3, 4, 5, 6, 7, 8], false);
    for seed in 1..=5 {
        let mut agent = mbrl(&full.ctx());
        let ours = full.run(&mut agent, 6, seed, None);
        let random = full.run(&mut RandomAgent, 6, seed, None);
        let (a, b) = (most_repeated(&ours), most_repeated(&random));
        let (sa, sb): (usize, usize) = (a.iter().sum(), b.iter().sum());
        assert!(sa < sb, "seed {seed}: design {a:?} against random {b:?}");
        assert!(a.iter().all(|&n| n <= 3), "seed {seed}: design {a:?}");
    }
}
