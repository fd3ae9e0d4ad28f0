#!/usr/bin/env bash
# What candle's zero-filled gradient slots cost the cnn6 FP32 training step (BENCHMARKS.md,
# "candle's gradient slots"). candle 0.11's backward adds every gradient into a
# slot it first fills with zeros (GradStore::or_insert, then add); the open upstream pull
# requests huggingface/candle#3578 and #3822 store the first gradient directly instead. This
# script builds `examples/train_step` twice from HEAD, once against candle-core 0.11.1 as
# published and once against a temporary copy patched that way (the call sites that add a
# plain gradient; the first gradient stored `contiguous()`, as #3822 does), then times the cnn6
# FP32 step at 2 threads, unpatched and patched alternately. Nothing in the repository changes:
# the copy, a worktree and its build live in a temporary directory, removed at the end.
# Usage: scripts/measure-grad-slots.sh [PAIRS]   (default 4; the builds take a few minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
pairs="${1:-4}"
work="$(mktemp -d)"
trap 'git worktree remove --force "$work/tree" 2>/dev/null || true; rm -rf "$work"' EXIT
cargo fetch --quiet
src="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/candle-core-0.11.1 | head -1)"
cp -r "$src" "$work/candle-core"
python3 - "$work/candle-core/src/backprop.rs" <<'EOF'
import re, sys
path = sys.argv[1]
s = open(path).read()
site = re.compile(r'let sum_grad = grads\.or_insert\(([\w.]+)\)\?;\s*'
                  r'\*sum_grad = sum_grad\.add\(&(\w+)\)\?;?')
s, n = site.subn(lambda m: f'grads.accumulate({m.group(1)}, {m.group(2)})?;', s)
helper = """    fn accumulate(&mut self, tensor: &Tensor, grad: Tensor) -> Result<()> {
        match self.0.entry(tensor.id()) {
            Entry::Occupied(mut e) => {
                let s = e.get().add(&grad)?;
                *e.get_mut() = s;
            }
            Entry::Vacant(e) => {
                e.insert(grad.contiguous()?);
            }
        }
        Ok(())
    }

    fn or_insert(&mut self, tensor: &Tensor) -> Result<&mut Tensor> {"""
s = s.replace("    fn or_insert(&mut self, tensor: &Tensor) -> Result<&mut Tensor> {", helper, 1)
open(path, "w").write(s)
print(f"candle-core patched: {n} gradient sites store their first gradient directly")
EOF
git worktree add --quiet --detach "$work/tree" HEAD
printf '\n[patch.crates-io]\ncandle-core = { path = "%s" }\n' "$work/candle-core" \
    >> "$work/tree/Cargo.toml"
cargo build --release --quiet --example train_step
(cd "$work/tree" && CARGO_TARGET_DIR="$work/target" cargo build --release --quiet \
    --example train_step)
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u)"
for _ in $(seq "$pairs"); do
    for side in unpatched patched; do
        exe=target/release/examples/train_step
        [ "$side" = patched ] && exe="$work/target/release/examples/train_step"
        echo "$side: $(CANDLE_NUM_THREADS=2 RAYON_NUM_THREADS=2 "$exe" cnn6 40)"
    done
done
