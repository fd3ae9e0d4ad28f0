#!/bin/sh
# A CIFAR-10-format directory from the embedded MNIST digits (colored, padded to 32x32), for
# trying experiments/resnet20-cifar10.toml without the real CIFAR-10:
#   scripts/make-cifar-fixture.sh DIR [PER_BATCH] [TEST]
# then: bitsearch search --experiment experiments/resnet20-cifar10.toml --set data.source=cifar10:DIR
set -eu
[ $# -ge 1 ] || { echo "usage: $0 DIR [PER_BATCH] [TEST]" >&2; exit 2; }
exec cargo run --release --quiet --example cifar_fixture -- "$@"
