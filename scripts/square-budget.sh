#!/usr/bin/env bash
# Chooses the Square attack's query budget for the search by measurement: on the DQ study's
# policies (uniform 2/3/4/6/8 bits, Lipschitz beta 0 and 1e-2, fine-tuned for the study's
# steps), the per-example worst case at eps 0.1 over FGSM, PGD, transfer and Square on the
# gradient survivors, with Square at Q queries against Square at 1,000 (the full attack), on N test
# examples. A budget agrees when |worst(Q) - worst(1000)| is within one binomial standard error
# sqrt(p(1-p)/N) for every policy. Prints a markdown table; writes OUT/square-budget.csv.
# Usage: scripts/square-budget.sh [OUT] [EXAMPLES]   (defaults runs/square-budget, 500)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/square-budget}"
examples="${2:-500}"
mkdir -p "$out"
cargo build --release --quiet
bs=./target/release/bitsearch
steps=$(grep -E '^steps *=' experiments/lenet5-mnist.toml | sed -n 2p | sed 's/[^0-9]*\([0-9]*\).*/\1/')
for bits in 2 3 4 6 8; do
    p="$bits/$bits,$bits/$bits,$bits/$bits,$bits/$bits,$bits/$bits"
    for beta in 0.0 1e-2; do
        for q in 0 50 100 250 500 1000; do
            f="$out/b$bits-beta$beta-q$q.json"
            [ -s "$f" ] && continue
            $bs eval --quiet --finetune --json --policy "$p" \
                --set "finetune.steps=$steps" --set "finetune.lipschitz_beta=$beta" \
                --set "attack.examples=$examples" --set "attack.square_queries=$q" > "$f.tmp"
            mv "$f.tmp" "$f"
        done
    done
done
python3 - "$out" "$examples" <<'PY'
import json, math, sys, glob, os, re
out, n = sys.argv[1], int(sys.argv[2])
rows = {}
for f in glob.glob(os.path.join(out, "b*-beta*-q*.json")):
    m = re.match(r"b(\d+)-beta(.+)-q(\d+)\.json", os.path.basename(f))
    d = json.load(open(f))["robust"]
    worst = {w["eps"]: w["worst_case"] for w in d["by_eps"]}[0.1]
    rows.setdefault((int(m[1]), m[2]), {})[int(m[3])] = (worst, d["masking"]["gradient_free_gain"])
qs = sorted({q for r in rows.values() for q in r})
with open(os.path.join(out, "square-budget.csv"), "w") as f:
    f.write("bits,beta,queries,worst_case,gradient_free_gain\n")
    for (b, beta), r in sorted(rows.items()):
        for q in qs:
            f.write(f"{b},{beta},{q},{r[q][0]},{r[q][1]}\n")
print(f"Worst case at eps 0.1 (%), {n} test examples; Square on the gradient survivors at Q queries (0 = no Square)\n")
print("| bits | beta | " + " | ".join(f"Q={q}" for q in qs) + " | 1 s.e. at Q=1000 |")
print("|---|---|" + "---|" * (len(qs) + 1))
worst_gap = {q: 0.0 for q in qs}
for (b, beta), r in sorted(rows.items()):
    p = r[1000][0]
    se = math.sqrt(p * (1 - p) / n)
    for q in qs:
        worst_gap[q] = max(worst_gap[q], abs(r[q][0] - p) / se if se > 0 else 0.0)
    print(f"| {b} | {beta} | " + " | ".join(f"{100*r[q][0]:.1f}" for q in qs) + f" | {100*se:.1f} |")
print("\nLargest |worst(Q) - worst(1000)| over the policies, in standard errors: "
      + ", ".join(f"Q={q}: {worst_gap[q]:.2f}" for q in qs))
PY
