#!/usr/bin/env bash
# Chooses the Square attack's query budget for the search by measurement: on the DQ study's
# policies (uniform 2/3/4/6/8 bits, Lipschitz beta 0 and 1e-2, fine-tuned for the study's
# steps), the per-example worst case at eps 0.1 over FGSM, PGD, transfer and Square on the
# gradient survivors, with Square at Q queries against Square at 1,000 (the full attack), on N test
# examples. A budget agrees when it flags the same policies as 1,000 queries (the search credits a
# flagged policy no robustness) and |worst(Q) - worst(1000)| is within one binomial standard error
# sqrt(p(1-p)/N) on every policy left unflagged. Prints a markdown table; writes
# OUT/square-budget.csv. Run with RAYON_NUM_THREADS fixed: the fine-tune depends on the thread count.
# Usage: scripts/square-budget.sh [OUT] [EXAMPLES]   (defaults runs/square-budget, 500);
#   QUERIES="0 100 250 1000" sets the budgets tried (0 = gradient attacks only; 1000 must be one).
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
        for q in ${QUERIES:-0 100 250 1000}; do
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
    m_ = d["masking"]
    flagged = m_["above_gradient_free"] or m_["eps_rise"] or m_["above_transfer"] or m_["zero_grad_fraction"] > 0
    rows.setdefault((int(m[1]), m[2]), {})[int(m[3])] = (worst, m_["gradient_free_gain"], flagged)
qs = sorted({q for r in rows.values() for q in r})
with open(os.path.join(out, "square-budget.csv"), "w") as f:
    f.write("bits,beta,queries,worst_case,gradient_free_gain,flagged\n")
    for (b, beta), r in sorted(rows.items()):
        for q in qs:
            f.write(f"{b},{beta},{q},{r[q][0]},{r[q][1]},{r[q][2]}\n")
print(f"Worst case at eps 0.1 (%), {n} test examples; Square on the gradient survivors at Q queries (0 = no Square); * = flagged by the gradient-free check\n")
print("| bits | beta | " + " | ".join(f"Q={q}" for q in qs) + " | 1 s.e. at Q=1000 |")
print("|---|---|" + "---|" * (len(qs) + 1))
gap = {q: 0.0 for q in qs}
same_flags = {q: True for q in qs}
for (b, beta), r in sorted(rows.items()):
    p, full_flag = r[1000][0], r[1000][2]
    se = math.sqrt(p * (1 - p) / n)
    for q in qs:
        same_flags[q] &= r[q][2] == full_flag
        if not full_flag:
            gap[q] = max(gap[q], abs(r[q][0] - p) / se if se > 0 else 0.0)
    cell = lambda q: f"{100*r[q][0]:.1f}" + ("*" if r[q][2] else "")
    print(f"| {b} | {beta} | " + " | ".join(cell(q) for q in qs) + f" | {100*se:.1f} |")
print("\nPer Q: the largest |worst(Q) - worst(1000)| over the policies Q=1000 leaves unflagged, in standard"
      " errors, and whether Q flags the same policies as Q=1000 (a flagged policy is credited no robustness,"
      " so its exact number does not reach the search):")
for q in qs:
    print(f"  Q={q}: {gap[q]:.2f} s.e.; same flags: {'yes' if same_flags[q] else 'no'}")
PY
