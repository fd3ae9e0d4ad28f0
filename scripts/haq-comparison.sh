#!/usr/bin/env bash
# The search study of the README: on lenet5 / MNIST-10k under a latency budget of 50% of uniform
# 8/8 on `bitfusion`, every agent spends the same episode budget; the best policy of each (by
# reward on the validation split) is re-scored on the test split, next to uniform 4/4, 6/6 and
# 8/8 fine-tuned the same way (`bitsearch eval --finetune`). Then the device comparison (ddpg on
# bismo-edge and bismo-cloud) and ddpg/nsga2 with HAQ's accuracy-only reward. Prints markdown tables. Reuses finished runs (--resume replays them).
# Usage: scripts/haq-comparison.sh [EPISODES] [OUT]   (defaults 200, runs/haq)
set -euo pipefail
cd "$(dirname "$0")/.."
episodes="${1:-200}"
out="${2:-runs/haq}"
cargo build --release --quiet
bs=./target/release/bitsearch
for agent in ddpg random nsga2 greedy; do
    $bs search --quiet --resume --agent "$agent" --episodes "$episodes" --out "$out/agents" > /dev/null
done
$bs search --quiet --resume --agent ddpg --episodes "$episodes" --profile bismo-edge --profile bismo-cloud --out "$out/devices" > /dev/null
# HAQ's original reward (accuracy only), to separate the agent from the robustness term.
for agent in ddpg nsga2; do
    $bs search --quiet --resume --experiment experiments/lenet5-mnist-haq.toml --agent "$agent" --episodes "$episodes" --out "$out/accuracy-only" > /dev/null
done
for b in 4 6 8; do
    p="$b/$b,$b/$b,$b/$b,$b/$b,$b/$b"
    $bs eval --finetune --json --policy "$p" > "$out/uniform-$b.json"
    $bs cost --json --profile bitfusion --policy "$p" > "$out/uniform-$b-cost.json"
done
$bs compare "$out"/agents/*-bitfusion --out "$out/compare" > /dev/null
python3 - "$out" <<'PY'
import json, sys, glob, os
out = sys.argv[1]
def pct(x): return f"{100*x:.1f}%"
print("| policy | found by | test accuracy | test robust accuracy | latency (us) | energy (uJ) | latency vs 8/8 |")
print("|---|---|---|---|---|---|---|")
u8 = json.load(open(f"{out}/uniform-8-cost.json"))["uniform8"]["latency_s"]
for b in (8, 6, 4):
    e = json.load(open(f"{out}/uniform-{b}.json")); c = json.load(open(f"{out}/uniform-{b}-cost.json"))["policy"]
    print(f"| {e['policy']} | uniform (fine-tuned) | {pct(e['test_accuracy'])} | {pct(e['robust']['worst_case'])} | {c['latency_s']*1e6:.3f} | {c['energy_j']*1e6:.3f} | {c['latency_s']/u8:.2f}x |")
for agent in ("ddpg", "random", "nsga2", "greedy"):
    d = f"{out}/agents/{agent}-bitfusion"
    b = json.load(open(f"{d}/best-policy.json"))
    n = sum(1 for _ in open(f"{d}/episodes.csv")) - 1
    print(f"| {b['policy']} | {agent}, best of {n} (episode {b['episode']}) | {pct(b['test']['accuracy'])} | {pct(b['test']['robust_accuracy'])} | {b['latency_s']*1e6:.3f} | {b['energy_j']*1e6:.3f} | {b['latency_s']/u8:.2f}x |")
print()
print("| device | best policy (ddpg) | test accuracy | test robust accuracy | latency vs 8/8 | energy vs 8/8 |")
print("|---|---|---|---|---|---|")
for dev in ("bismo-edge", "bismo-cloud"):
    d = f"{out}/devices/ddpg-{dev}"
    b = json.load(open(f"{d}/best-policy.json")); cfg = json.load(open(f"{d}/config.json"))
    u = cfg["uniform8"]
    print(f"| {dev} | {b['policy']} | {pct(b['test']['accuracy'])} | {pct(b['test']['robust_accuracy'])} | {b['latency_s']/u['latency_s']:.2f}x | {b['energy_j']/u['energy_j']:.2f}x |")
print()
print("| reward: accuracy only | best policy | test accuracy | test robust accuracy | latency vs 8/8 | energy vs 8/8 |")
print("|---|---|---|---|---|---|")
for agent in ("ddpg", "nsga2"):
    d = f"{out}/accuracy-only/{agent}-bitfusion"
    b = json.load(open(f"{d}/best-policy.json")); u = json.load(open(f"{d}/config.json"))["uniform8"]
    print(f"| {agent} (episode {b['episode']}) | {b['policy']} | {pct(b['test']['accuracy'])} | {pct(b['test']['robust_accuracy'])} | {b['latency_s']/u['latency_s']:.2f}x | {b['energy_j']/u['energy_j']:.2f}x |")
PY
