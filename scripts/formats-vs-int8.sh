#!/usr/bin/env bash
# Uniform number formats against uniform int8 on LeNet-5, each fine-tuned as a search scores a
# policy (`bitsearch eval --finetune`, the experiment's recipe) and scored on the test split, over
# fine-tune seeds: the check that a float format (fp8e4m3, fp8e5m2, fp16, bf16) or group-wise int4
# weights cost no more accuracy than int8 where they should not.
# Usage: scripts/formats-vs-int8.sh [EXPERIMENT] [SEEDS] [FORMATS]
#   defaults: experiments/lenet5-mnist.toml "0 1 2" "8/8 fp8e4m3/fp8e4m3 fp8e5m2/fp8e5m2 fp16/fp16 bf16/bf16 int4g32/8"
#   BITSEARCH=PATH a binary to use instead of building one; CACHE=DIR the baseline cache (runs).
# Prints one line per format: its test accuracies per seed, their mean and sd, and the mean
# difference to the first format's.
set -euo pipefail
cd "$(dirname "$0")/.."
experiment="${1:-experiments/lenet5-mnist.toml}"
seeds="${2:-0 1 2}"
formats="${3:-8/8 fp8e4m3/fp8e4m3 fp8e5m2/fp8e5m2 fp16/fp16 bf16/bf16 int4g32/8}"
if [ -z "${BITSEARCH:-}" ]; then cargo build --release --quiet; fi
bs="${BITSEARCH:-./target/release/bitsearch}"
layers=$("$bs" eval --experiment "$experiment" --out "${CACHE:-runs}" --policy 8/8 --no-attack --quiet 2>&1 \
    | sed -n 's/.*model [^ ]* has \([0-9]*\) quantizable layers.*/\1/p' || true)
layers="${layers:?could not read how many quantizable layers the model has}"
results=$(mktemp)
for f in $formats; do
    policy=$(printf "$f,%.0s" $(seq "$layers")); policy="${policy%,}"
    for s in $seeds; do
        acc=$("$bs" eval --experiment "$experiment" --out "${CACHE:-runs}" --policy "$policy" \
            --finetune --no-attack --quiet --json --set "finetune.seed=$s" \
            | python3 -c 'import json,sys; print(json.load(sys.stdin)["test_accuracy"])')
        echo "$f $s $acc" >> "$results"
    done
done
python3 - "$results" <<'PY'
import statistics as st, sys, collections
rows = collections.OrderedDict()
for line in open(sys.argv[1]):
    f, s, a = line.split()
    rows.setdefault(f, []).append(100 * float(a))
first = next(iter(rows.values()))
for f, accs in rows.items():
    sd = st.stdev(accs) if len(accs) > 1 else 0.0
    diff = st.mean(accs) - st.mean(first)
    print(f"{f:>18}  {' '.join(f'{a:.2f}' for a in accs)}  mean {st.mean(accs):.2f} ± {sd:.2f}  vs first {diff:+.2f}")
PY
rm -f "$results"
