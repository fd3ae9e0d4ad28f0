#!/usr/bin/env bash
# Two full-size torchvision models end to end on Fashion-MNIST: mobilenet_v2 and resnet18 with
# their stem conv taking one channel (1x28x28), exported by `scripts/export_torchvision.py full
# DIR`, trained one epoch from their random weights (`[model] train = true`), searched for a
# few episodes and exported to QDQ ONNX, which ONNX Runtime then runs
# (scripts/check_onnx_export.py).
#
#     scripts/torchvision-e2e.sh DIR [EPISODES]
#
# DIR holds resnet18-28.onnx and mobilenet_v2-28.onnx (+ .data); the experiment files, run
# directories and exports are written there. Needs Fashion-MNIST in
# /usr/share/datasets/fashion-mnist (`apt-get install dataset-fashion-mnist`), a release build
# (BITSEARCH names another binary) and python3 with onnxruntime and numpy.
set -euo pipefail
DIR=$(cd "${1:?usage: scripts/torchvision-e2e.sh DIR [EPISODES]}" && pwd)
EPISODES=${2:-4}
REPO=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BITSEARCH:-$REPO/target/release/bitsearch}
for m in mobilenet_v2-28 resnet18-28; do
  exp="$DIR/$m-fashion.toml"
  # The Fashion-MNIST standard (lenet5-fashion.toml) cut to a short run: one epoch of
  # training, 30 fine-tune steps per policy, PGD-5 on 100 examples, no front re-scoring.
  cat > "$exp" <<TOML
extends = "$REPO/experiments/lenet5-fashion.toml"
name = "$m-fashion"
[model]
onnx = "$m.onnx"
train = true
[train]
epochs = 1
[finetune]
steps = 30
[attack]
pgd_steps = 5
square_queries = 0
examples = 100
[front_test]
enabled = false
[search]
episodes = $EPISODES
attack_examples = 100
references = false
TOML
  out="$DIR/runs-$m"
  rm -rf "$out" "$DIR/export-$m"
  /usr/bin/time -f "$m search: %e s" "$BIN" search --experiment "$exp" --out "$out" --quiet
  /usr/bin/time -f "$m export: %e s" "$BIN" export "$out/mbrl-bitfusion" --out "$DIR/export-$m" --quiet
  python3 "$REPO/scripts/check_onnx_export.py" "$DIR/export-$m"
done
