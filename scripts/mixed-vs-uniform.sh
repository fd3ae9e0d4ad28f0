#!/usr/bin/env bash
# Does the searched mixed policy beat the best uniform one at equal cost? For each latency budget
# (fractions of uniform 8/8 on the profile), agent and seed, one search for EPISODES episodes on
# EXPERIMENT, then `bitsearch compare` over each budget's runs: its "Mixed against uniform"
# table gives, per budget and agent, the best policy's accuracy and the best uniform policy's under the same
# budget, on validation (what the search ranked by) and on the test split (best-policy.json's
# re-scores: both fine-tuned with their own policy seed, so the uniform yardstick is the same
# number in every seed), with the margin's mean ± sd over seeds and whether it is within the
# split's standard error. The front's strong test re-score is skipped (`front_test.enabled =
# false`): this study reads best-policy.json only.
# Usage: scripts/mixed-vs-uniform.sh [OUT] [SEEDS] [EPISODES]
#   defaults: runs/mixed-vs-uniform "1 2 3 4 5" 60
#   EXPERIMENT (default experiments/cnn6-fashion-haq.toml), BUDGETS (default "0.5 0.3"),
#   AGENTS (default mbrl; several, such as "mbrl random nsga2", are compared per budget), PROFILE (default bitfusion), WORKERS (--workers, default 1),
#   CACHE (baseline and score cache, default runs), BITSEARCH (a built binary to use).
#   Run again, it resumes every unfinished search.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/mixed-vs-uniform}"
seeds="${2:-1 2 3 4 5}"
episodes="${3:-60}"
experiment="${EXPERIMENT:-experiments/cnn6-fashion-haq.toml}"
budgets="${BUDGETS:-0.5 0.3}"
agents="${AGENTS:-${AGENT:-mbrl}}"
profile="${PROFILE:-bitfusion}"
workers="${WORKERS:-1}"
cache="${CACHE:-runs}"
if [ -z "${BITSEARCH:-}" ]; then cargo build --release --quiet; fi
bs="${BITSEARCH:-./target/release/bitsearch}"
for budget in $budgets; do
    for agent in $agents; do for seed in $seeds; do
        dir="$out/latency-$budget/seed-$seed"
        resume=()
        if [ -f "$dir/$agent-$profile/episodes.csv" ]; then resume=(--resume); fi
        echo "== latency $budget, $agent, seed $seed -> $dir" >&2
        "$bs" search --experiment "$experiment" --profile "$profile" --agent "$agent" \
            --budget "latency=$budget" --episodes "$episodes" --seed "$seed" \
            --workers "$workers" --cache "$cache" --out "$dir" --quiet \
            --set front_test.enabled=false "${resume[@]}"
    done; done
done
for budget in $budgets; do
    runs=()
    for agent in $agents; do for seed in $seeds; do
        runs+=("$out/latency-$budget/seed-$seed/$agent-$profile")
    done; done
    echo "== latency budget $budget of uniform 8/8"
    "$bs" compare --out "$out/latency-$budget/compare" "${runs[@]}" \
        | awk '/^Mixed against uniform/ { on = 1 } /\.(csv|html|svg)$/ { on = 0 } on'
done
