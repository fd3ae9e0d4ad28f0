#!/usr/bin/env bash
# Side-by-side benchmark: `bitsearch bench` and scripts/torch_reference.py on the same machine,
# in one run, 2 threads, median of repeated runs; prints each figure with the ratio
# bitsearch / PyTorch (below 1.0 = bitsearch faster). Needs `pip install torch numpy` for the
# reference column; without torch it prints bitsearch's figures alone.
# Usage: scripts/bench.sh [RUNS]   (default 20)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-20}"
out="$(mktemp -d)"
cargo build --release --quiet
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%Y-%m-%d)"
CANDLE_NUM_THREADS=2 RAYON_NUM_THREADS=2 ./target/release/bitsearch bench --runs "$runs" --json > "$out/bitsearch.jsonl"
if python3 -c "import torch" 2>/dev/null; then
    python3 scripts/torch_reference.py --threads 2 --runs "$runs" > "$out/torch.jsonl"
else
    echo "(torch not installed: no reference column)"
    : > "$out/torch.jsonl"
fi
python3 - "$out/bitsearch.jsonl" "$out/torch.jsonl" <<'PY'
import json, sys
ours = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ref = {(r["arch"], r["name"]): r for r in (json.loads(l) for l in open(sys.argv[2]) if l.strip())}
impl = next(iter(ref.values()))["impl"] if ref else "torch"
print(f"{'arch':<7} {'figure':<44} {'bitsearch ms':>13} {impl + ' ms':>16} {'ratio':>7}")
for r in ours:
    if "peak_memory_mib" in r:
        t = ref.get(("-", "peak memory (MiB)"))
        tm = f"{t['median_ms']:.0f} MiB" if t else "-"
        print(f"{'-':<7} {'peak memory':<44} {r['peak_memory_mib']:>9.0f} MiB {tm:>16}")
        continue
    t = ref.get((r["arch"], r["name"]))
    tm = f"{t['median_ms']:.2f}" if t else "-"
    ratio = f"{r['median_ms'] / t['median_ms']:.2f}" if t else "-"
    print(f"{r['arch']:<7} {r['name']:<44} {r['median_ms']:>13.2f} {tm:>16} {ratio:>7}")
PY
