#!/usr/bin/env bash
# Chooses an experiment's per-policy fine-tune by measurement on the validation split (the
# search's split and attack suite, `eval --split validation`): each policy quantized from the
# cached FP32 baseline and fine-tuned with each learning rate, schedule, Lipschitz beta and step count,
# then its validation accuracy and its worst case over the suite at each search radius. A
# recipe is enough when more steps or another rate no longer raise accuracy by more than the
# split's standard error, sqrt(p(1-p)/N). Prints a markdown table; keeps each run's JSON in OUT.
# Usage: scripts/finetune-budget.sh EXPERIMENT [OUT]   (OUT defaults to runs/finetune-budget/NAME)
#   POLICIES="..." (space-separated policies; default uniform 2, 4 and 8 bits),
#   LRS="5e-4 2e-4 1e-4 5e-5", SCHEDULES="constant cosine", BETAS="1e-2 0.0", STEPS="200",
#   JOBS=1 (runs at once),
#   CACHE=runs (where the FP32 baseline is cached), BITSEARCH (default target/release/bitsearch).
set -euo pipefail
cd "$(dirname "$0")/.."
exp="${1:?usage: scripts/finetune-budget.sh EXPERIMENT [OUT]}"
name=$(basename "$exp" .toml)
out="${2:-runs/finetune-budget/$name}"
mkdir -p "$out"
if [ -z "${BITSEARCH:-}" ]; then
    cargo build --release --quiet
    BITSEARCH=./target/release/bitsearch
fi
# The layer count, from the error a one-layer policy gets (no baseline is trained for it).
layers=$("$BITSEARCH" eval --experiment "$exp" --cache "${CACHE:-runs}" --policy 8/8 --quiet 2>&1 \
    | sed -n "s/.* has \([0-9]*\) quantizable layers.*/\1/p" | head -1 || true)
uniform() { local p="$1/$1"; for _ in $(seq 2 "${layers:-1}"); do p="$p,$1/$1"; done; echo "$p"; }
policies="${POLICIES:-$(uniform 2) $(uniform 4) $(uniform 8)}"
run() { # policy lr schedule beta steps
    local f="$out/$(echo "$1" | tr '/,' '-_')-lr$2-$3-beta$4-steps$5.json"
    [ -s "$f" ] && return 0
    "$BITSEARCH" eval --experiment "$exp" --cache "${CACHE:-runs}" --policy "$1" --finetune \
        --split validation --json --quiet --set "finetune.lr=$2" --set "finetune.schedule=\"$3\"" \
        --set "finetune.lipschitz_beta=$4" --set "finetune.steps=$5" > "$f.tmp"
    mv "$f.tmp" "$f"
}
jobs=()
for p in $policies; do for lr in ${LRS:-5e-4 2e-4 1e-4 5e-5}; do
    for sched in ${SCHEDULES:-constant cosine}; do for beta in ${BETAS:-1e-2 0.0}; do
        for steps in ${STEPS:-200}; do jobs+=("$p $lr $sched $beta $steps"); done
    done; done
done; done
export -f run; export BITSEARCH out exp CACHE
printf '%s\n' "${jobs[@]}" | xargs -P "${JOBS:-1}" -L 1 bash -c 'run "$@"' _
python3 - "$out" <<'PY'
import glob, json, math, os, re, sys
rows = []
for f in sorted(glob.glob(os.path.join(sys.argv[1], "*.json"))):
    d = json.load(open(f))
    ft = d["finetune"] or {}
    m = re.search(r"-lr(.+?)-([a-z]+)-beta(.+)-steps(\d+)\.json$", os.path.basename(f))
    lr, sched, beta, steps = m.groups()
    worst = "; ".join(f"{w['eps']:g}: {100 * w['worst_case']:.1f}" for w in d["robust"]["by_eps"])
    rows.append((d["policy"], float(lr), sched, float(beta), int(steps),
                 d["validation_accuracy"], d["validation_examples"], worst))
rows.sort(key=lambda r: (r[0], r[4], r[2], -r[1], -r[3]))
print("| policy | lr | schedule | beta | steps | validation accuracy % (± s.e.) | worst case % by eps |")
print("|---|---|---|---|---|---|---|")
for p, lr, sched, beta, steps, acc, n, worst in rows:
    se = 100 * math.sqrt(acc * (1 - acc) / n)
    print(f"| {p} | {lr:g} | {sched} | {beta:g} | {steps} | {100 * acc:.2f} (± {se:.2f}) | {worst} |")
PY
