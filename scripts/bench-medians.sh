#!/usr/bin/env bash
# BENCHMARKS.md's table: scripts/bench.sh run K times back to back, then per figure each side's
# median time over the runs and the median (and range) of the runs' ratios, as a Markdown table.
# Usage: scripts/bench-medians.sh [K] [RUNS]      (default 3 runs of `scripts/bench.sh 5`)
#        scripts/bench-medians.sh --from OUT...   (the table of bench.sh outputs saved before)
# Each run's full output is kept in OUTDIR (default runs/bench-medians, or BENCH_OUT).
# Needs PyTorch for the reference column (see scripts/bench.sh); run it on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
files=()
if [ "${1:-}" = "--from" ]; then
    shift
    files=("$@")
else
    k="${1:-3}"
    runs="${2:-5}"
    outdir="${BENCH_OUT:-runs/bench-medians}"
    mkdir -p "$outdir"
    for i in $(seq 1 "$k"); do
        echo "bench.sh run $i of $k ($(date -u +%H:%M) UTC)" >&2
        scripts/bench.sh "$runs" > "$outdir/run$i.txt"
        files+=("$outdir/run$i.txt")
    done
fi
python3 - "${files[@]}" <<'PY'
import re, statistics, sys
# A figure's row of bench.sh's table: arch, figure, bitsearch ms, PyTorch ms, ratio, fq, ...
row = re.compile(r"^(\S+)\s+(.+?)\s{2,}([\d.]+)(?: MiB)?\s+([\d.]+)(?: MiB)?\s+([\d.]+)\s+(\S+)")
figures, order = {}, []
for path in sys.argv[1:]:
    for line in open(path):
        m = row.match(line)
        if not m or line.startswith(("epoch", "machine")):
            continue
        key = (m.group(1), m.group(2).strip())
        if key not in figures:
            figures[key] = []
            order.append(key)
        figures[key].append(tuple(float(m.group(i)) for i in (3, 4, 5)))
print(f"| model | figure | bitsearch ms | PyTorch ms | ratio, median (range) of {len(sys.argv) - 1} |")
print("|---|---|---:|---:|---:|")
for key in order:
    v = figures[key]
    med = lambda i: statistics.median(x[i] for x in v)
    ratios = [x[2] for x in v]
    note = "" if len(v) == len(sys.argv) - 1 else f" ({len(v)} runs)"
    print(f"| {key[0]} | {key[1]} | {med(0):,.2f} | {med(1):,.2f} | {med(2):.2f} "
          f"({min(ratios):.2f}–{max(ratios):.2f}){note} |")
PY
