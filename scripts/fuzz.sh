#!/usr/bin/env bash
# Runs every fuzz harness of tests/fuzz.rs for SECONDS seconds each (default 60), JOBS processes
# at a time (default: the number of cores; each process runs its harnesses one after the other,
# as the allocation tracker is per process), each harness looping batches of cases with fresh
# seeds until its time is up; then prints per
# harness the cases run (and how many the reader accepted), the panics found and the largest
# single allocation of a case. Exits non-zero on any failure: a panic (proptest's minimal input is
# in the log), an allocation above the limit, a case that hangs (the watchdog aborts, naming the
# harness and the input).
# Usage: scripts/fuzz.sh [SECONDS]
#   BITSEARCH_FUZZ_SEED=N repeats a run (default: a fresh seed, printed); LOG=FILE keeps the
#   whole output (default: a temporary file, printed on failure).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [[ "$seconds" -eq 0 ]]; then
    echo "usage: scripts/fuzz.sh [SECONDS]  (SECONDS per harness, a positive whole number)" >&2
    exit 2
fi
seed="${BITSEARCH_FUZZ_SEED:-$(( (RANDOM << 15) | RANDOM ))}"
log="${LOG:-$(mktemp)}"

echo "fuzz: ${seconds} s per harness, BITSEARCH_FUZZ_SEED=${seed}, log ${log}"
cargo build --release --test fuzz --quiet
jobs="${JOBS:-$(nproc)}"
harnesses=($(cargo test --release --quiet --test fuzz -- fuzz_ --list 2>/dev/null | sed -n 's/: test$//p'))
echo "fuzz: ${#harnesses[@]} harnesses, ${jobs} at a time"
status=0
pids=()
for ((j = 0; j < jobs; j++)); do
    group=()
    for ((i = j; i < ${#harnesses[@]}; i += jobs)); do group+=("${harnesses[$i]}"); done
    [[ ${#group[@]} -gt 0 ]] || continue
    BITSEARCH_FUZZ_SECONDS="$seconds" BITSEARCH_FUZZ_SEED="$((seed + j))" \
        cargo test --release --quiet --test fuzz -- "${group[@]}" --exact --test-threads=1 \
        --nocapture >"$log.$j" 2>&1 &
    pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
cat "$log".* >"$log"
rm -f "$log".*

printf '%-16s %10s %10s %8s %20s\n' harness cases accepted panics "largest allocation"
# Lines of the form: fuzz NAME: N cases (M accepted), 0 panics, largest allocation B bytes, T s
# (cargo's progress dots may precede them).
sed -nE 's/^.*fuzz ([a-z0-9-]+): ([0-9]+) cases \(([0-9]+) accepted\), ([0-9]+) panics, largest allocation ([0-9]+) bytes.*/\1 \2 \3 \4 \5/p' "$log" |
    while read -r name cases accepted panics bytes; do
        printf '%-16s %10s %10s %8s %14s bytes\n' "$name" "$cases" "$accepted" "$panics" "$bytes"
    done
grep -oE 'fuzz [a-z0-9-]+: FAILED.*' "$log" || true
grep -E '^test result:' "$log" || true

if [[ "$status" -ne 0 ]]; then
    echo "fuzz: FAILED (exit ${status}); the end of ${log}:" >&2
    tail -n 60 "$log" >&2
    exit "$status"
fi
echo "fuzz: every harness passed"
