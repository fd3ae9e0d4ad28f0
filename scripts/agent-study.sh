#!/usr/bin/env bash
# The agent study of docs/results.md: every agent over 5 seeds on bitfusion, run as `bitsearch sweep`
# and measured with `bitsearch compare --at`, on
#  (a) the small declared space (experiments/agent-study/small.toml: {2,4,8} bits, w = a, 243
#      policies, 108 within the 50% latency budget on bitfusion), where the exhaustive agent scores
#      every feasible policy once, so each agent's hypervolume is a fraction of the true front's
#      (`--reference` the exhaustive run);
#  (b) the default full space (experiments/agent-study/full.toml: 2..8 bits, w and a apart, the
#      widths bitfusion prices like wider ones pruned: 2/4/8, 3^10 policies), hypervolume as a
#      fraction of the front of everything any run found (compare's default reference front: the
#      union of the compared runs);
#  (c) cnn6-small (experiments/agent-study/cnn6-small.toml): cnn6 on Fashion-MNIST in the tied
#      {2,4,8} space, 729 policies, 356 within the 50% latency budget: the hard setting, with its
#      own exhaustive front;
#  (d) cnn6 (experiments/agent-study/cnn6.toml): cnn6 on Fashion-MNIST in its full untied space,
#      hypervolume as a fraction of the union of every run's front (no exhaustive reference).
#  (e) resnet20 (experiments/agent-study/resnet20.toml): ResNet-20 on Fashion-MNIST in its full
#      untied space, 3^40 policies, likewise against the union. Its FP32 baseline trains for
#      about 36 minutes on 2 cores, and an episode then takes about a minute on one core (up to two where
#      the masking checks run the Square attack), so run it with the seeds "1 2 3", a few agents
#      (AGENTS="mbrl random nsga2") and JOBS=2.
# A space whose name ends in "small" gets an exhaustive reference run (OUT/exhaustive for small,
# OUT/SPACE-exhaustive for another).
# What compare --at computes: on accuracy x robust accuracy x latency and on accuracy x latency,
# over feasible scored policies (a policy flagged by a masking check is credited robust accuracy
# 0, as the search credits it), the hypervolume of each run's first N episodes against the worst
# value per objective over the reference front, divided by the reference front's; per agent, mean
# ± sd over seeds. Each run is EPISODES long and measured at its first N episodes for each N of AT:
# every agent's proposals depend only on its seed and what it has seen, so a prefix is a shorter
# run. Scores are shared through the score cache, so a policy is fine-tuned once for all agents
# and seeds. Writes the sweeps OUT/small, OUT/full and OUT/exhaustive, and OUT/small-compare,
# OUT/full-compare (compare.html, compare-at.csv per run, compare-agents.csv per agent, and
# charts/hv-at-episodes-*.svg, each agent's mean fraction at each N: pass a finer AT such as
# 10,20,...,200 for a smoother curve); prints the tables.
# Usage: scripts/agent-study.sh [OUT] [SEEDS] [EPISODES] [AT]
#   defaults: runs/agent-study "1 2 3 4 5" 200 30,60,200
#   AGENTS="mbrl ddpg random nsga2 greedy" overrides the agents; SPACES="small full" the spaces
#   (any of small, full, cnn6-small, cnn6, resnet20); WORKERS=N each search's batch size (`sweep --workers`:
#   N policies scored at once; DDPG cannot batch, so leave it out); CACHE=DIR the baseline and score cache (default runs); JOBS=K
#   cells at once (default: one per core); BITSEARCH=PATH a binary to use instead of building one.
#   Run again, it resumes every unfinished cell.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/agent-study}"
seeds="${2:-1 2 3 4 5}"
episodes="${3:-200}"
at="${4:-30,60,200}"
agents="${AGENTS:-mbrl ddpg random nsga2 greedy}"
spaces="${SPACES:-small full}"
cache="${CACHE:-runs}"
if [ -z "${BITSEARCH:-}" ]; then cargo build --release --quiet; fi
bs="${BITSEARCH:-./target/release/bitsearch}"
# `repeat --agent a b` prints `--agent a --agent b`
repeat() { local flag=$1; shift; for v in "$@"; do printf '%s %s ' "$flag" "$v"; done; }
sweep() { "$bs" sweep --quiet --resume --cache "$cache" ${JOBS:+--jobs "$JOBS"} "$@"; }
# The agents' sweeps only: the exhaustive reference is the same whatever the batch size.
agent_sweep() { sweep ${WORKERS:+--workers "$WORKERS"} "$@"; }
for space in $spaces; do
    experiment="experiments/agent-study/$space.toml"
    # shellcheck disable=SC2046 # the agents and seeds are words
    agent_sweep --experiment "$experiment" $(repeat --agent $agents) $(repeat --seed $seeds) \
        --episodes "$episodes" --out "$out/$space"
    reference=()
    if [[ "$space" == *small ]]; then
        exhaustive="$out/exhaustive"
        if [ "$space" != small ]; then exhaustive="$out/$space-exhaustive"; fi
        sweep --experiment "$experiment" --agent exhaustive --episodes 1000 --out "$exhaustive"
        reference=(--reference "$exhaustive")
    fi
    "$bs" compare "$out/$space" --at "$at" "${reference[@]}" --out "$out/$space-compare"
done
