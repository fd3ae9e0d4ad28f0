#!/usr/bin/env bash
# FP32 baselines on Fashion-MNIST, bitsearch beside PyTorch: for each experiment, `bitsearch
# train` (or its cached baseline), then scripts/torch_train.py trains the same recipe in PyTorch
# (skipped if torch does not import) and checks bitsearch's weights in the PyTorch model. Prints
# a table: both test accuracies, their difference (bitsearch - PyTorch, in points), bitsearch's
# weights scored by the PyTorch model (equal to bitsearch's figure if the networks are the same),
# and the published figure for that kind of network.
# Usage: scripts/fashion-baselines.sh [--out DIR] [EXPERIMENT.toml ...]
#   default experiments: experiments/{lenet5,cnn6,resnet20,mobilenet}-fashion.toml that exist;
#   --out: the run directory whose baselines/ cache bitsearch trains into or reuses (default runs).
#   PYTHON: the Python with torch (default python3); THREADS: threads of each side (default 2);
#   BITSEARCH: a built binary to use (default: `cargo build --release`, then target/release's);
#   TORCH_TRAIN_ARGS: more arguments of torch_train.py (e.g. "--limit 2000 --epochs 1" for a
#   smoke test of the PyTorch side); SEEDS: seeds to train each experiment at, both sides
#   (default: the experiment's own; seed S sets data.seed, model.seed and train.seed to S:
#   another draw of the split, the initial weights and the shuffles). With more than one seed
#   the table adds each experiment's mean and sample standard deviation over them.
# Published figures: the submitted benchmarks in the data set's README (Zalando's table, not
# re-run by its authors; /usr/share/doc/dataset-fashion-mnist/README.md.gz). It has no LeNet-5
# and no ResNet-20 row: lenet5 shows n/a, resnet20 ResNet18's figure; all rows are 28x28 inputs.
set -euo pipefail
out=runs
experiments=()
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out="$(realpath -m "$2")"; shift 2 ;;
        --out=*) out="$(realpath -m "${1#--out=}")"; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) experiments+=("$(realpath -m "$1")"); shift ;;
    esac
done
cd "$(dirname "$0")/.."
if [ ${#experiments[@]} -eq 0 ]; then
    for a in lenet5 cnn6 resnet20 mobilenet; do
        if [ -f "experiments/$a-fashion.toml" ]; then
            experiments+=("experiments/$a-fashion.toml")
        fi
    done
fi
py="${PYTHON:-python3}"
threads="${THREADS:-2}"
bin="${BITSEARCH:-}"
if [ -z "$bin" ]; then
    cargo build --release --quiet
    bin=./target/release/bitsearch
fi
torch=0
if "$py" -c "import torch" 2>/dev/null; then
    torch=1
else
    echo "(torch does not import in $py: no PyTorch column; set PYTHON)" >&2
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
results="$tmp/results.jsonl"
for exp in "${experiments[@]}"; do
    for seed in ${SEEDS:-own}; do
        echo "== $exp, seed $seed" >&2
        sets=()
        if [ "$seed" != own ]; then
            sets=(--set "data.seed=$seed" --set "model.seed=$seed" --set "train.seed=$seed")
        fi
        CANDLE_NUM_THREADS="$threads" RAYON_NUM_THREADS="$threads" \
            "$bin" train --experiment "$exp" --out "$out" --quiet ${sets[@]+"${sets[@]}"} > "$tmp/train.log"
        cat "$tmp/train.log" >&2
        dir="$(sed -n 's/^saved in //p' "$tmp/train.log" | tail -n 1)"
        if [ -z "$dir" ] || [ ! -f "$dir/metrics.json" ]; then
            echo "$exp: no 'saved in DIR' line with a metrics.json from bitsearch train" >&2
            exit 1
        fi
        torch_json=null
        if [ "$torch" = 1 ]; then
            # shellcheck disable=SC2086 # TORCH_TRAIN_ARGS is a list of arguments
            torch_json="$("$py" scripts/torch_train.py "$dir" --threads "$threads" ${TORCH_TRAIN_ARGS:-} | tail -n 1)"
        fi
        printf '{"experiment": "%s", "seed": "%s", "dir": "%s", "torch": %s}\n' \
            "$(basename "$exp" .toml)" "$seed" "$dir" "$torch_json" >> "$results"
    done
done
python3 - "$results" <<'PY'
import json, os, statistics, sys
# The README's nearest rows, per architecture; None when it has no such network.
published = {"lenet5": None,
             "cnn6": "87.6-93.9 (2-3 conv CNNs)",
             "resnet20": "94.9 (ResNet18, augmented)",
             "mobilenet": "95.0 (MobileNet, h-flips)"}
pct = lambda v: "-" if v is None else f"{100 * v:.2f}"
print(f"{'experiment':<20} {'seed':>5} {'bitsearch test %':>16} {'PyTorch test %':>14} {'difference':>10} "
      f"{'bitsearch weights in PyTorch %':>30}  published test %")
runs = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    cfg = json.load(open(os.path.join(r["dir"], "config.json")))
    ours = json.load(open(os.path.join(r["dir"], "metrics.json")))["test_accuracy"]
    t = r["torch"] or {}
    theirs = t.get("torch_test_accuracy")
    diff = "-" if theirs is None else f"{100 * (ours - theirs):+.2f}"
    note = " (--limit: not comparable)" if t.get("limit") else ""
    # The experiment asked for: a cached baseline keeps the name of the first experiment
    # that trained it with the same recipe.
    name = r.get('experiment', cfg.get('name', '?'))
    print(f"{name:<20} {r.get('seed', '-'):>5} {pct(ours):>16} {pct(theirs):>14} {diff:>10} "
          f"{pct(t.get('bitsearch_weights_torch_test_accuracy')):>30}  "
          f"{published.get(cfg['model'].get('arch')) or 'n/a'}{note}")
    runs.setdefault(name, []).append((ours, theirs))
spread = lambda v: f"{100 * statistics.mean(v):.2f} ± {100 * statistics.stdev(v):.2f}"
for name, rows in runs.items():
    if len(rows) > 1:
        ours = [o for o, _ in rows]
        theirs = [t for _, t in rows if t is not None]
        both = f", PyTorch {spread(theirs)}" if len(theirs) > 1 else ""
        print(f"{name}: mean ± sd over {len(rows)} seeds: bitsearch {spread(ours)}{both}")
print("difference: bitsearch - PyTorch, in points; published: the Fashion-MNIST README's submitted "
      "benchmarks (2-3 conv CNNs: 87.6-93.9 with and without augmentation; MobileNet and ResNet18 "
      "trained with flips)")
PY
