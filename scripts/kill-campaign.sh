#!/usr/bin/env bash
# The kill -9 campaign: runs a short search once uninterrupted (the reference), then runs the same
# search again and kills it with SIGKILL at N moments, resuming with --resume after each, until N
# kills have landed. A kill is either timed (a random delay within the reference run's wall time:
# start-up, scoring, writing, the end) or a named crash point (src/crashpoint.rs) the binary
# SIGKILLs itself at: after an episode's line, between pareto.csv and agent.json, halfway through
# an episode's append, between a temporary file and its rename, and inside the log repair (armed
# right after a kill that cut a line, so there is a line to repair). When a run completes, it must
# equal the reference: episodes.csv, references.csv, pareto.csv and front-test.csv (timing column
# aside), agent.json, best-policy.json and report.html identical, no temporary file left;
# then the next round starts in a fresh directory.
# With WORKERS=2 every run scores its batches in two worker processes (`--workers 2`), a kill
# reaches the workers too, and a crash point fires after a worker's reply is read (mid-batch).
# Usage: scripts/kill-campaign.sh [N] [WORK]   (defaults 20 and a new temp dir)
#   BITSEARCH=path/to/bitsearch (default: target/release/bitsearch, built if missing);
#   EPISODES (default 8); WORKERS (default 1); CAMPAIGN_SEED (default random; printed so a
#   failure can be replayed).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
n="${1:-20}"
work="${2:-$(mktemp -d)}"
episodes="${EPISODES:-8}"
workers="${WORKERS:-1}"
seed="${CAMPAIGN_SEED:-$RANDOM}"
# A 64-bit LCG (Knuth's MMIX constants; bash arithmetic wraps), high bits out: bash's own $RANDOM
# has a weak low bit. `rand M` sets r to a number in [0, M).
state=$seed
rand() {
    state=$(( state * 6364136223846793005 + 1442695040888963407 ))
    r=$(( ((state >> 33) & 0x7fffffff) % $1 ))
}
bs="${BITSEARCH:-$root/target/release/bitsearch}"
if [ ! -x "$bs" ]; then (cd "$root" && cargo build --release --quiet); fi
bs="$(cd "$(dirname "$bs")" && pwd)/$(basename "$bs")"
# The fine-tune's float reductions depend on the thread count: the reference and the killed runs
# must use the same.
export RAYON_NUM_THREADS="${RAYON_NUM_THREADS:-2}"
mkdir -p "$work"
cd "$work"
echo "kill campaign: N=$n, $episodes episodes, $workers workers, CAMPAIGN_SEED=$seed, in $work"

cat > exp.toml <<'EOF'
name = "kill-campaign"
[data]
source = "embedded:mnist-10k"
validation = 300
[model]
arch = "mlp"
[train]
epochs = 1
batch = 64
lr = 1e-3
[finetune]
steps = 10
batch = 64
[attack]
fgsm_eps = [0.1]
pgd_eps = [0.1]
pgd_steps = 3
examples = 40
square_queries = 20
[front_test]
eps = [0.1]
restarts = 1
square_queries = 20
examples = 40
[budget]
latency = 0.5
[search]
attack_examples = 40
references = true
EOF

# One search of the campaign into OUT, with its own FP32/score cache CACHE. `exec`, so that a
# search started with `&` has the binary's own pid in $! (a kill must reach the search itself).
search() {
    local out=$1 cache=$2
    exec "$bs" search --experiment exp.toml --episodes "$episodes" --seed 3 --cache "$cache" \
        --out "$out" --quiet --resume --workers "$workers"
}

start=$(date +%s%N)
(search reference cache-reference) > reference.log 2>&1 || { cat reference.log; exit 1; }
ms=$(( ($(date +%s%N) - start) / 1000000 ))
ref=$(echo reference/*/)
echo "reference run: ${ms} ms"

# Lines of a run CSV without the last (timing) column.
untimed() { sed 's/,[^,]*$//' "$1"; }

check() {
    local dir=$1
    for f in episodes.csv references.csv pareto.csv front-test.csv; do
        cmp -s <(untimed "$ref/$f") <(untimed "$dir/$f") || { echo "FAIL: $dir/$f differs"; diff <(untimed "$ref/$f") <(untimed "$dir/$f") | head; return 1; }
    done
    for f in agent.json best-policy.json report.html; do
        cmp -s "$ref/$f" "$dir/$f" || { echo "FAIL: $dir/$f differs from the reference"; return 1; }
    done
    local litter
    litter=$(find "$dir" -name '*.tmp-*')
    [ -z "$litter" ] || { echo "FAIL: temporary files left: $litter"; return 1; }
    [ ! -e "$dir/work" ] || { echo "FAIL: $dir/work is left"; return 1; }
}

points=(episode-appended pareto-written mid-append atomic-rename)
if [ "$workers" -gt 1 ]; then points+=(worker-replied); fi
kills=0 round=1 attempts=0 repair=0
declare -A landed=()
out="round-$round"
while [ "$kills" -lt "$n" ]; do
    attempts=$((attempts + 1))
    [ "$attempts" -le $((20 * n + 20)) ] || { echo "FAIL: $attempts attempts for $kills kills"; exit 1; }
    if [ "$repair" = 1 ]; then
        how="log-repair"
    else
        rand 2
        if [ "$r" = 0 ]; then
            rand $((ms + 1))
            how="timed:$r"
        else
            rand ${#points[@]}
            point=${points[$r]}
            rand 3
            how="$point:$((1 + r))"
        fi
    fi
    repair=0
    log="$out.attempt-$attempts.log"
    case "$how" in
        timed:*)
            delay=${how#timed:}
            search "$out" cache-campaign > "$log" 2>&1 &
            pid=$!
            sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
            kill -9 "$pid" 2>/dev/null || true
            status=0; wait "$pid" || status=$?
            ;;
        *)
            status=0
            (BITSEARCH_CRASH_AT="$how" search "$out" cache-campaign) > "$log" 2>&1 || status=$?
            ;;
    esac
    case "$status" in
        137)
            kills=$((kills + 1))
            landed[${how%%:*}]=$(( ${landed[${how%%:*}]:-0} + 1 ))
            echo "kill $kills/$n: $how (round $round)"
            # A kill halfway through an append leaves a cut line: the next resume repairs it.
            if [[ "$how" == mid-append* ]]; then repair=1; fi
            ;;
        0)
            check "$out"/*/ || exit 1
            echo "round $round complete and equal to the reference ($how did not land)"
            round=$((round + 1))
            out="round-$round"
            # Each round scores afresh (its kills then land inside fine-tunes, and the score
            # cache is written under them too); the FP32 baseline is kept.
            rm -rf cache-campaign/baselines/*/scores
            ;;
        *)
            echo "FAIL: attempt $attempts ($how) exited with status $status:"; cat "$log"; exit 1
            ;;
    esac
done
# Finish the last round without a kill and check it.
(search "$out" cache-campaign) > "$out.final.log" 2>&1 || { cat "$out.final.log"; exit 1; }
check "$out"/*/ || exit 1
echo -n "kill campaign passed: $kills/$n kills survived over $round rounds ($attempts attempts); kills by kind:"
for k in "${!landed[@]}"; do echo -n " $k=${landed[$k]}"; done
echo
