#!/usr/bin/env bash
# Side-by-side benchmark: `bitsearch bench` and scripts/torch_reference.py on the same machine,
# in one run, 2 threads, median of repeated runs; prints each figure with the ratio
# bitsearch / PyTorch (below 1.0 = bitsearch faster). Needs `pip install torch numpy` for the
# reference column; without torch it prints bitsearch's figures alone.
# `bitsearch bench --reference-dir` writes the policy it scores ("score one policy": fine-tune,
# validation accuracy, attack suite) with its baseline and data, and the PyTorch script scores
# the same policy from them; those rows also show each side's work (examples passed; PGD:
# example-gradient passes; Square: example-forwards), which the robustness of each side's
# fine-tuned model changes.
# The PyTorch column is the faster of two eager paths per figure: PyTorch's fused fake-quant
# kernels (torch.fake_quantize_per_*_affine) and the unfused `x + (q - x).detach()` chain (the
# fused kernels measured slower on these small tensors); the `fq` column says which.
# "Score one policy" runs twice: on the default experiment (LeNet-5 on the embedded digits) and
# on experiments/resnet20-fashion.toml, ResNet-20 on Fashion-MNIST as its searches run (needs
# /usr/share/datasets/fashion-mnist, which scripts/install-ci-deps.sh installs; its FP32
# baseline trains once, 15 epochs, and is cached in runs/ like every baseline).
# Usage: scripts/bench.sh [RUNS]   (default 20)
#        COMPILE=1 scripts/bench.sh [RUNS]   also a torch.compile column (compiling takes minutes)
#        POLICY_RUNS=K scripts/bench.sh [RUNS]   K timed repetitions of each "score one policy"
#                                                (default: 5 for LeNet-5, 3 for ResNet-20, whose
#                                                episode is a long one)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-20}"
out="$(mktemp -d)"
cargo build --release --quiet
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%Y-%m-%d)"
ref_args=()
if ./target/release/bitsearch bench --help | grep -q -- '--reference-dir'; then
    mkdir -p "$out/ref"
    ref_args=(--reference-dir "$out/ref")
fi
CANDLE_NUM_THREADS=2 RAYON_NUM_THREADS=2 ./target/release/bitsearch bench --runs "$runs" --json \
    --policy-runs "${POLICY_RUNS:-5}" ${ref_args[@]+"${ref_args[@]}"} > "$out/bitsearch.jsonl"
# ResNet-20's and MobileNet's figures on CIFAR-shaped images: a CIFAR-10-format stand-in made
# from the embedded digits (scripts/make-cifar-fixture.sh); the times do not depend on the pixel
# values.
cargo run --release --quiet --example cifar_fixture -- "$out/cifar" 220 100 > /dev/null
CANDLE_NUM_THREADS=2 RAYON_NUM_THREADS=2 ./target/release/bitsearch bench --arch resnet20,mobilenet --runs "$runs" --json \
    --no-training --no-policy --experiment experiments/resnet20-cifar10.toml \
    --set "data.source=cifar10:$out/cifar" --set data.validation=100 | grep -v '"peak_memory_mib' >> "$out/bitsearch.jsonl"
# The zoo ViT's figures on the default experiment's 1x28x28 digits (7x7 patches, 16 tokens).
CANDLE_NUM_THREADS=2 RAYON_NUM_THREADS=2 ./target/release/bitsearch bench --arch vit --runs "$runs" --json \
    --no-training --no-policy | grep -v '"peak_memory_mib' >> "$out/bitsearch.jsonl"
# ResNet-20's "score one policy" on Fashion-MNIST, with its reference inputs in ref-resnet20.
fashion=/usr/share/datasets/fashion-mnist
if [ -d "$fashion" ]; then
    CANDLE_NUM_THREADS=2 RAYON_NUM_THREADS=2 ./target/release/bitsearch bench --policy-only --json \
        --policy-runs "${POLICY_RUNS:-3}" --experiment experiments/resnet20-fashion.toml \
        --reference-dir "$out/ref-resnet20" | grep -v '"peak_memory_mib' >> "$out/bitsearch.jsonl"
else
    echo "(no Fashion-MNIST in $fashion: no ResNet-20 \"score one policy\"; scripts/install-ci-deps.sh installs it)"
fi
if python3 -c "import torch" 2>/dev/null; then
    torch_args=(--threads 2 --runs "$runs")
    if [ -f "$out/ref/policy-bench.json" ]; then
        torch_args+=(--policy-dir "$out/ref")
    fi
    if [ "${COMPILE:-0}" = 1 ]; then
        torch_args+=(--compile)
    fi
    python3 scripts/torch_reference.py "${torch_args[@]}" --fq fused > "$out/torch.jsonl"
    unfused_args=(--threads 2 --runs "$runs" --fq unfused)
    if [ -f "$out/ref/policy-bench.json" ]; then
        unfused_args+=(--policy-dir "$out/ref")
    fi
    python3 scripts/torch_reference.py "${unfused_args[@]}" >> "$out/torch.jsonl"
    # ResNet-20 and MobileNet (3x32x32 random images) in processes of their own, so the
    # peak-memory row stays the LeNet-5/cnn6 run's.
    for fq in fused unfused; do
        python3 scripts/torch_reference.py --threads 2 --runs "$runs" --arch resnet20,mobilenet --epochs 0 --fq "$fq" \
            | grep -v '"peak memory' >> "$out/torch.jsonl"
        python3 scripts/torch_reference.py --threads 2 --runs "$runs" --arch vit --epochs 0 --fq "$fq" \
            | grep -v '"peak memory' >> "$out/torch.jsonl"
        if [ -f "$out/ref-resnet20/policy-bench.json" ]; then
            python3 scripts/torch_reference.py --threads 2 --arch '' --policy-dir "$out/ref-resnet20" --fq "$fq" \
                | grep -v '"peak memory' >> "$out/torch.jsonl"
        fi
    done
else
    echo "(torch not installed: no reference column)"
    : > "$out/torch.jsonl"
fi
python3 - "$out/bitsearch.jsonl" "$out/torch.jsonl" <<'PY'
import json, sys
lines = lambda path: [json.loads(l) for l in open(path) if l.strip().startswith("{")]
ours, theirs = lines(sys.argv[1]), lines(sys.argv[2])
results = [("bitsearch", r) for r in ours if "policy_result" in r] + [(r["impl"], r) for r in theirs if "policy_result" in r]
results.sort(key=lambda who_r: who_r[1].get("arch", ""))  # by arch, bitsearch first in each
rows = [r for r in theirs if "name" in r]
# Per figure, the faster of the fused and unfused eager paths.
eager = {}
for r in rows:
    key = (r["arch"], r["name"])
    if not r["impl"].startswith("torch.compile") and (key not in eager or r["median_ms"] < eager[key]["median_ms"]):
        eager[key] = r
comp = {(r["arch"], r["name"]): r for r in rows if r["impl"].startswith("torch.compile")}
impl = next(iter(eager.values()))["impl"].replace(" unfused-fq", "") if eager else "torch"
with_work = any("work" in r for r in ours + rows)
head = f"{'arch':<9} {'figure':<48} {'bitsearch ms':>13} {impl + ' ms':>16} {'ratio':>7} {'fq':>7}"
if comp:
    head += f" {'compile ms':>11} {'ratio':>7}"
if with_work:
    head += f" {'work bitsearch':>15} {'work torch':>11}"
print(head)
fmt = lambda t, k="median_ms": f"{t[k]:.2f}" if t else "-"
ratio = lambda r, t: f"{r['median_ms'] / t['median_ms']:.2f}" if t and t["median_ms"] > 0 else "-"
for r in ours:
    if "peak_memory_mib" in r:
        t = eager.get(("-", "peak memory (MiB)"))
        tm = f"{t['median_ms']:.0f} MiB" if t else "-"
        print(f"{'-':<9} {'peak memory':<48} {r['peak_memory_mib']:>9.0f} MiB {tm:>16}")
        continue
    if "name" not in r:
        continue
    key = (r["arch"], r["name"])
    t, c = eager.get(key), comp.get(key)
    fq = ("unfused" if "unfused" in t["impl"] else "fused") if t else "-"
    line = f"{r['arch']:<9} {r['name']:<48} {r['median_ms']:>13.2f} {fmt(t):>16} {ratio(r, t):>7} {fq:>7}"
    if comp:
        line += f" {fmt(c):>11} {ratio(r, c):>7}"
    if with_work and ("work" in r or (t and "work" in t)):
        line += f" {r.get('work', '-'):>15} {(t or {}).get('work', '-'):>11}"
    print(line)
for (arch, name), c in comp.items():
    if name == "compile time (one-off)":
        print(f"{arch:<9} {'torch.compile: ' + name:<48} {'-':>13} {'-':>16} {'-':>7} {c['median_ms']:>11.0f}")
for who, r in results:
    print(f"policy result ({r.get('arch', '-')}, {who}): {json.dumps(r['policy_result'])}")
PY
