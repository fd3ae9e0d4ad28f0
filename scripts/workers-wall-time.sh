#!/usr/bin/env bash
# Does `--workers 2` reach a one-at-a-time search's hypervolume sooner on the wall clock? For
# each pair (seed P = 1..PAIRS), one search with `--workers 1` (the default threads) and one with
# `--workers 2`, each EPISODES long, every policy scored afresh (`--no-score-cache`; the FP32
# baseline is shared through CACHE), one after the other on an otherwise quiet machine. While a
# search runs, its episodes.csv's line count is sampled every second into RUN/timeline.csv
# (elapsed seconds since the search started, episodes logged). Then `bitsearch compare --at`
# every episode count gives each run's hypervolume of its first N episodes (the pair's two runs
# share one reference point), and per pair and objective set:
#   t1 = the wall time of the --workers 1 run's EPISODES episodes, H1 its hypervolume;
#   t2 = the wall time at which the --workers 2 run's first N episodes reach H1 (or "never");
#   ratio = t2 / t1, and the two runs' hypervolumes at equal episodes (EPISODES).
# The median ratio over pairs is printed last.
# Usage: scripts/workers-wall-time.sh [OUT] [PAIRS] [EPISODES]
#   defaults: runs/workers-wall-time 3 60
#   EXPERIMENT (default experiments/cnn6-fashion.toml), AGENT (default mbrl), PROFILE (default
#   bitfusion), CACHE (baseline cache, default runs), BITSEARCH (a built binary to use).
#   A pair whose two runs both finished is not run again; an unfinished run is started afresh.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/workers-wall-time}"
pairs="${2:-3}"
episodes="${3:-60}"
experiment="${EXPERIMENT:-experiments/cnn6-fashion.toml}"
agent="${AGENT:-mbrl}"
profile="${PROFILE:-bitfusion}"
cache="${CACHE:-runs}"
if [ -z "${BITSEARCH:-}" ]; then cargo build --release --quiet; fi
bs="${BITSEARCH:-./target/release/bitsearch}"

# run DIR WORKERS SEED: one timed search into DIR, sampled into DIR/$agent-$profile/timeline.csv.
run() {
    local dir=$1 workers=$2 seed=$3 run="$1/$agent-$profile"
    if [ -f "$run/best-policy.json" ] && [ -f "$run/timeline.csv" ]; then return; fi
    rm -rf "$dir"
    mkdir -p "$dir"
    local start=$SECONDS
    "$bs" search --experiment "$experiment" --profile "$profile" --agent "$agent" \
        --episodes "$episodes" --seed "$seed" --workers "$workers" --cache "$cache" \
        --no-score-cache --set front_test.enabled=false --quiet --out "$dir" \
        > "$dir/search.log" 2>&1 &
    local pid=$! samples="elapsed_s,episodes"
    while kill -0 "$pid" 2> /dev/null; do
        local lines=0
        [ -f "$run/episodes.csv" ] && lines=$(($(wc -l < "$run/episodes.csv") - 1))
        samples+=$'\n'"$((SECONDS - start)),$lines"
        sleep 1
    done
    wait "$pid"
    samples+=$'\n'"$((SECONDS - start)),$(($(wc -l < "$run/episodes.csv") - 1))"
    printf '%s\n' "$samples" > "$run/timeline.csv"
}

at=$(seq -s, 1 "$episodes")
for p in $(seq 1 "$pairs"); do
    for w in 1 2; do
        echo "== pair $p, --workers $w" >&2
        run "$out/pair-$p/workers-$w" "$w" "$p"
    done
    "$bs" compare --out "$out/pair-$p/compare" --at "$at" \
        "$out/pair-$p/workers-1/$agent-$profile" "$out/pair-$p/workers-2/$agent-$profile" \
        > /dev/null
done
python3 - "$out" "$pairs" "$episodes" << 'EOF'
import csv, glob, statistics, sys
out, pairs, episodes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ratios = {}
for p in range(1, pairs + 1):
    hv = {}
    for r in csv.DictReader(open(f"{out}/pair-{p}/compare/compare-at.csv")):
        w = 1 if "/workers-1/" in r["dir"] else 2
        hv[(w, r["objectives"], int(r["episodes"]))] = float(r["hv"])
    def timeline(w):
        path = glob.glob(f"{out}/pair-{p}/workers-{w}/*/timeline.csv")[0]
        return [(int(r["elapsed_s"]), int(r["episodes"])) for r in csv.DictReader(open(path))]
    t1_line, t2_line = timeline(1), timeline(2)
    t1 = next(t for t, n in t1_line if n >= episodes)
    for objectives in sorted({k[1] for k in hv}):
        h1 = hv[(1, objectives, episodes)]
        n2 = next((n for n in range(1, episodes + 1) if hv.get((2, objectives, n), -1) >= h1), None)
        t2 = None if n2 is None else next(t for t, n in t2_line if n >= n2)
        ratio = None if t2 is None else t2 / t1
        ratios.setdefault(objectives, []).append(ratio if ratio is not None else float("inf"))
        print(f"pair {p}, {objectives}: --workers 1 {episodes} episodes in {t1} s (HV {h1:.4g});"
              f" --workers 2 reaches it at episode {n2} after {t2} s, ratio"
              f" {'never' if ratio is None else f'{ratio:.2f}'}; HV at {episodes} episodes"
              f" {hv[(2, objectives, episodes)] / h1:.3f} of --workers 1's")
for objectives, rs in ratios.items():
    print(f"median wall-time ratio, {objectives}: {statistics.median(rs):.2f} over {len(rs)} pairs")
EOF
