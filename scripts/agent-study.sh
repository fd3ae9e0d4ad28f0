#!/usr/bin/env bash
# The agent study of the README: every agent over 5 seeds, on
#  (a) the small declared space (experiments/lenet5-mnist-small.toml: {2,4,8} bits, w = a, 243
#      policies, 108 within the 50% latency budget on bitfusion), where the exhaustive agent scores
#      every feasible policy once, so each agent's hypervolume is a fraction of the true front's;
#  (b) the default full space (lenet5-mnist.toml: 2..8 bits, w and a apart, 7^10 policies),
#      hypervolume as a fraction of the front of everything any run found, against one shared
#      reference point (the worst value per objective over all runs).
# Objectives: accuracy (max), robust accuracy (max; a policy flagged by a masking check is credited
# 0, as the search credits it), latency (min), over feasible scored policies; also accuracy x
# latency. Runs at 60 and 200 episodes (30 = the first 30 episodes of the 60-episode run; every
# agent's proposals depend only on its seed and what it has seen, so a prefix is a shorter run).
# Scores are shared through the score cache, so a policy is fine-tuned once for all agents and
# seeds. Prints markdown tables (mean ± sd over seeds), writes OUT/study.csv and OUT/hv-vs-episodes-*.svg.
# Usage: scripts/agent-study.sh [OUT] [SEEDS] [SMALL_EPISODES] [FULL_EPISODES]
#   defaults: runs/agent-study "1 2 3 4 5" "60 200" "60 200"
#   AGENTS="mbrl ddpg random nsga2 greedy" overrides the agents; CACHE=DIR the baseline and score
#   cache (default runs); BITSEARCH=PATH a binary to use instead of building one. An empty episode list skips that space, so two invocations with
#   different seeds can share the cores (the score cache takes concurrent appends).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/agent-study}"
seeds="${2:-1 2 3 4 5}"
small_episodes="${3-60 200}"
full_episodes="${4-60 200}"
agents="${AGENTS:-mbrl ddpg random nsga2 greedy}"
cache="${CACHE:-runs}"
if [ -z "${BITSEARCH:-}" ]; then cargo build --release --quiet; fi
bs="${BITSEARCH:-./target/release/bitsearch}"
# The study compares validation hypervolumes; the test-split re-score of each run's front
# (front-test.csv, minutes per run) is not part of it.
search() { "$bs" search --quiet --resume --cache "$cache" --set front_test.enabled=false "$@" > /dev/null; }
small=experiments/lenet5-mnist-small.toml
if [ -n "$small_episodes" ]; then
    search --experiment "$small" --agent exhaustive --episodes 1000 --out "$out/small/exhaustive"
fi
for e in $small_episodes; do
    for s in $seeds; do
        for a in $agents; do
            search --experiment "$small" --agent "$a" --seed "$s" --episodes "$e" --out "$out/small/$e-s$s"
        done
    done
done
for e in $full_episodes; do
    for s in $seeds; do
        for a in $agents; do
            search --agent "$a" --seed "$s" --episodes "$e" --out "$out/full/$e-s$s"
        done
    done
done
python3 scripts/study_tables.py "$out" "$agents" "$seeds" "$small_episodes" "$full_episodes"
