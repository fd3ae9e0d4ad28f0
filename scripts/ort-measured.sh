#!/usr/bin/env bash
# Predicted against measured latency on this host's ONNX Runtime, the numbers README's "How a
# policy is scored and priced" quotes:
#   1. `profiles calibrate --runtime onnxruntime`: this host's profile from ORT's per-layer
#      latency of the experiment's model at each container;
#   2. a search priced by that profile (random agent, a budget loose enough for every policy:
#      in ORT the narrow widths are the slow ones);
#   3. `bitsearch measure --front`: every feasible front policy rebuilt, exported and timed in
#      ORT; measured.csv and the median absolute prediction error.
# usage: scripts/ort-measured.sh [EXPERIMENT] [OUT] [EPISODES] [BATCH]
#   defaults: experiments/cnn6-fashion-small.toml runs/ort-measured 20 1
# Needs `bash scripts/install-ci-deps.sh` (ONNX Runtime) and `cargo build --release`.
# CACHE (default runs) is where the FP32 baseline is cached; a quiet machine gives steadier times.
set -euo pipefail
cd "$(dirname "$0")/.."
exp=${1:-experiments/cnn6-fashion-small.toml}
out=${2:-runs/ort-measured}
episodes=${3:-20}
batch=${4:-1}
cache=${CACHE:-runs}
bin=${BITSEARCH:-target/release/bitsearch}
mkdir -p "$out"
"$bin" profiles --experiment "$exp" calibrate --runtime onnxruntime \
    --out "$out/host-ort.toml" --batch "$batch" --repeats 100
"$bin" search --experiment "$exp" --profile "$out/host-ort.toml" --budget latency=8 \
    --agent random --episodes "$episodes" --cache "$cache" --out "$out" --quiet \
    --set front_test.enabled=false
"$bin" measure "$out/random-host-onnxruntime" --front --repeats 100 --cache "$cache"
