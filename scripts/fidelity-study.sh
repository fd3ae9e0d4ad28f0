#!/usr/bin/env bash
# Does scoring cheaply first (`[search] fidelity = "multi"`) reach a full-fidelity search's
# hypervolume sooner on the wall clock? For each seed S = 1..SEEDS, one `mbrl` search with every
# policy scored fully and one with two fidelities, each EPISODES full-fidelity episodes long,
# every policy scored afresh (`--no-score-cache`; the FP32 baseline is shared through CACHE), one
# after the other. Wall time is the running sum of episodes.csv's `seconds` column (each
# episode's proposal and scoring; the same clock for both runs; baseline and references aside).
# Then `bitsearch compare --at` every episode count gives each run's hypervolume of its first N
# full-fidelity episodes as a fraction of the reference front, and per seed and objective set:
#   t_full = the full run's wall time for EPISODES episodes, H its hypervolume fraction;
#   t_multi = the wall time at which the multi run's first N full episodes reach H (or never);
#   ratio = t_multi / t_full; the multi run's fraction at the wall time t_full; both fractions
#   at equal (full) episodes, EPISODES/2 and EPISODES.
# The median ratio over seeds is printed last.
# Usage: scripts/fidelity-study.sh [OUT] [SEEDS] [EPISODES]
#   defaults: runs/fidelity-study 3 60
#   EXPERIMENT (default experiments/lenet5-mnist-small.toml), PROFILE (default bitfusion),
#   REFERENCE: the run or sweep whose front is the reference (default: an exhaustive run of the
#   experiment into OUT/exhaustive, right for a small space; `union` for compare's default, the
#   front of everything the compared runs found, for a space too large to enumerate),
#   LOW: extra `--set` flags for the low fidelity (e.g. "search.low.steps=0.5 search.low.cost=0.5"),
#   CACHE (baseline cache, default runs), BITSEARCH (a built binary to use),
#   FIRST_SEED (default 1: seeds FIRST_SEED..FIRST_SEED+SEEDS-1), PARALLEL=1 to run a seed's two
#   searches at the same time (on a machine shared with other jobs both then meet the same load).
#   cnn6 on Fashion-MNIST: EXPERIMENT=experiments/cnn6-fashion.toml REFERENCE=union, or
#   EXPERIMENT=experiments/cnn6-fashion-small.toml (an exhaustive reference of 729 policies).
#   A finished run is not run again; an unfinished one is started afresh. SUMMARY_ONLY=1 runs
#   nothing and summarizes the runs there are, finished or not, at the episodes both runs of a
#   seed have logged (at most EPISODES).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/fidelity-study}"
seeds="${2:-3}"
episodes="${3:-60}"
experiment="${EXPERIMENT:-experiments/lenet5-mnist-small.toml}"
profile="${PROFILE:-bitfusion}"
cache="${CACHE:-runs}"
reference="${REFERENCE:-}"
if [ -z "${BITSEARCH:-}" ]; then cargo build --release --quiet; fi
bs="${BITSEARCH:-./target/release/bitsearch}"

low_sets=()
for s in ${LOW:-}; do low_sets+=(--set "$s"); done

# run DIR SEED FIDELITY [AGENT]: one search into DIR.
run() {
    local dir=$1 seed=$2 fidelity=$3 agent=${4:-mbrl} extra=()
    if [ -f "$dir/$agent-$profile/best-policy.json" ] || [ "${SUMMARY_ONLY:-0}" = 1 ]; then
        return
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    if [ "$fidelity" = multi ]; then extra=(--set search.fidelity=multi "${low_sets[@]}"); fi
    "$bs" search --experiment "$experiment" --profile "$profile" --agent "$agent" \
        --episodes "$episodes" --seed "$seed" --cache "$cache" --no-score-cache \
        --set front_test.enabled=false "${extra[@]}" --quiet --out "$dir" \
        > "$dir/search.log" 2>&1
}

if [ -z "$reference" ] && [ "${SUMMARY_ONLY:-0}" != 1 ]; then
    echo "== the exhaustive reference" >&2
    if [ ! -f "$out/exhaustive/exhaustive-$profile/best-policy.json" ]; then
        mkdir -p "$out/exhaustive"
        "$bs" search --experiment "$experiment" --profile "$profile" --agent exhaustive \
            --episodes 100000 --cache "$cache" --set front_test.enabled=false --quiet \
            --out "$out/exhaustive" > "$out/exhaustive/search.log" 2>&1
    fi
fi
reference="${reference:-$out/exhaustive/exhaustive-$profile}"
ref_flag=()
if [ "$reference" != union ]; then ref_flag=(--reference "$reference"); fi

at=$(seq -s, 1 "$episodes")
first="${FIRST_SEED:-1}"
for s in $(seq "$first" $((first + seeds - 1))); do
    for f in full multi; do
        echo "== seed $s, fidelity $f" >&2
        if [ "${PARALLEL:-0}" = 1 ]; then run "$out/seed-$s/$f" "$s" "$f" & else run "$out/seed-$s/$f" "$s" "$f"; fi
    done
    wait
    "$bs" compare --out "$out/seed-$s/compare" --at "$at" "${ref_flag[@]}" \
        "$out/seed-$s/full/mbrl-$profile" "$out/seed-$s/multi/mbrl-$profile" > /dev/null
done
python3 - "$out" "$first" "$seeds" "$episodes" "$profile" << 'EOF'
import csv, statistics, sys
out, first, seeds, episodes, profile = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
ratios, low_rows = {}, []
for s in range(first, first + seeds):
    frac = {}
    for r in csv.DictReader(open(f"{out}/seed-{s}/compare/compare-at.csv")):
        f = "multi" if "/multi/" in r["dir"] else "full"
        if r["hv_fraction"]:
            frac[(f, r["objectives"], int(r["episodes"]))] = float(r["hv_fraction"])
    # clock[f][n] = the wall time when the n-th full-fidelity row was logged (n = 1..).
    clock = {}
    for f in ("full", "multi"):
        t, times, lows = 0.0, [0.0], 0
        for r in csv.DictReader(open(f"{out}/seed-{s}/{f}/mbrl-{profile}/episodes.csv")):
            t += float(r["seconds"])
            if r.get("fidelity", "full") == "full":
                times.append(t)
            else:
                lows += 1
        clock[f] = times
        if f == "multi":
            low_rows.append(lows)
            full_s = [float(r["seconds"]) for r in csv.DictReader(open(
                f"{out}/seed-{s}/{f}/mbrl-{profile}/episodes.csv")) if r.get("fidelity") == "full"]
            low_s = [float(r["seconds"]) for r in csv.DictReader(open(
                f"{out}/seed-{s}/{f}/mbrl-{profile}/episodes.csv")) if r.get("fidelity") == "low"]
            if full_s and low_s:
                print(f"seed {s}: a low score took {statistics.mean(low_s) / statistics.mean(full_s):.2f}"
                      f" of a full one's seconds (mean of {len(low_s)} and {len(full_s)})")
    # Unfinished runs: compare at the full episodes both have logged.
    e = min(episodes, len(clock["full"]) - 1, len(clock["multi"]) - 1)
    t_full = clock["full"][e]
    for objectives in sorted({k[1] for k in frac}):
        h = frac[("full", objectives, e)]
        n = next((n for n in range(1, len(clock["multi"]))
                  if frac.get(("multi", objectives, n), -1) >= h), None)
        t_multi = None if n is None else clock["multi"][n]
        ratio = float("inf") if t_multi is None else t_multi / t_full
        ratios.setdefault(objectives, []).append(ratio)
        at_t = max((n for n in range(1, len(clock["multi"])) if clock["multi"][n] <= t_full),
                   default=None)
        h_at_t = frac.get(("multi", objectives, at_t)) if at_t else None
        half = e // 2
        print(f"seed {s}, {objectives}: full {e} episodes in {t_full:.1f} s (HV fraction"
              f" {h:.3f}; {frac[('full', objectives, half)]:.3f} at {half}); multi"
              f" ({low_rows[-1]} low scores) {clock['multi'][e]:.1f} s, HV fraction"
              f" {frac[('multi', objectives, e)]:.3f} ({frac[('multi', objectives, half)]:.3f}"
              f" at {half}); reaches the full run's at full episode {n} after"
              f" {'never' if t_multi is None else f'{t_multi:.1f} s'}, ratio"
              f" {'never' if t_multi is None else f'{ratio:.2f}'}; at {t_full:.1f} s multi holds"
              f" {'-' if h_at_t is None else f'{h_at_t:.3f}'}")
for objectives, rs in ratios.items():
    print(f"median wall-time ratio (multi / full), {objectives}: {statistics.median(rs):.2f}"
          f" over {len(rs)} seeds")
EOF
