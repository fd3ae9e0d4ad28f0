#!/usr/bin/env bash
# bitsearch's analytic BISMO profiles against HAQ's published simulator table (docs/haq-table.md):
# imports the table as a profile (OUT/haq-bismo.toml + .csv, HAQ's own cycles driving `cost`),
# prices HAQ's published policy on it, holds bismo-cloud and bismo-edge against the table
# unfitted and with their rates fitted on the even layers (OUT/agreement.csv: every layer and
# (w, a), both sides), and checks the table against a tile-level model of BISMO
# (scripts/haq_tile_model.py). Needs no data set: the model is the zoo's mobilenetv2 at 224x224
# with HAQ's 1000-class fc.
# Usage: scripts/haq-table.sh [OUT]     default OUT: runs/haq-table
#   BITSEARCH (a built binary to use), SEED (random policies, default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/haq-table}"
seed="${SEED:-1}"
if [ -z "${BITSEARCH:-}" ]; then cargo build --release --quiet; fi
bs="${BITSEARCH:-./target/release/bitsearch}"
table=tests/data/haq/qmobilenetv2_imagenet100_batch16_latency_table.npy
policy=tests/data/haq/haq-mobilenetv2-0.6.policy
model=(--arch mobilenetv2 --input 3,224,224 --classes 1000)
mkdir -p "$out"

echo "== HAQ's table as a profile"
"$bs" profiles import "${model[@]}" --table "$table" --base bismo-cloud --batch 16 \
    --out "$out/haq-bismo.toml"
"$bs" cost "${model[@]}" --profile "$out/haq-bismo.toml" --policy "$(cat "$policy")" | tail -1

echo "== bismo-cloud and bismo-edge against it; fit on the even layers, tested on the odd"
"$bs" profiles agreement "${model[@]}" --table "$table" \
    --profile bismo-cloud --profile bismo-edge --policy-file "$policy" \
    --random 3 --seed "$seed" --fit even --csv "$out/agreement.csv"

echo "== the table against a tile-level model of BISMO (nothing fitted)"
python3 scripts/haq_tile_model.py "$table"
