#!/usr/bin/env python3
"""Writes tests/data/minifloat/*.bin: f32 inputs and PyTorch's rounding of each to a minifloat
format, the reference that src/quant/minifloat.rs is checked against bit for bit.

Needs torch (2.1 or later, for the float8 dtypes) and numpy; CI does not run it, it reads the
committed files. Run from the repository root:

    python scripts/minifloat_fixture.py

Each file is a sequence of little-endian u32 pairs (input f32 bits, output f32 bits), where the
output is `x.to(dtype).float()` on the CPU. For every format the grid holds, with both signs:

* representable values of the format (all of them for the fp8 formats; for fp16 and bf16 the
  subnormals' two ends, the subnormal/normal boundary, the top binade's last codes and a stride
  through the rest, to keep the files small);
* for each such value and its upper neighbour: the midpoint (a tie, which round-half-to-even
  decides) and the f32 values one ulp below and above it;
* ±0, f32's smallest subnormal and smallest normal, and log-uniform random values (fixed seed);
* values just above the largest finite one that still round down to it.

Only in-range inputs are kept: an input is dropped when PyTorch's result is not finite (PyTorch
gives NaN for e4m3fn and inf for the others past the rounding edge, where bitsearch saturates to
the largest finite value; the Rust tests check saturation on their own). The script asserts that
every dropped input lies beyond the largest finite value.
"""

import os
import struct
import sys

import numpy as np
import torch

OUT = os.path.join("tests", "data", "minifloat")

# name -> (dtype, bits per code, fp8: every code, else the stride through the codes)
FORMATS = {
    "fp8_e4m3fn": (torch.float8_e4m3fn, 8),
    "fp8_e5m2": (torch.float8_e5m2, 8),
    "fp16": (torch.float16, 16),
    "bf16": (torch.bfloat16, 16),
}
STRIDE_16 = 61  # codes between sampled codes in the middle of fp16 and bf16
EDGE_16 = 64  # codes kept whole at each end of the subnormals and of the top binade
RANDOM = 400  # random inputs per format


def code_values(dtype, width):
    """The format's values of the positive codes, in code order (= value order), up to the
    first non-finite code."""
    if width == 8:
        codes = torch.arange(0, 128, dtype=torch.uint8)
    else:
        codes = torch.arange(0, 32768, dtype=torch.int16)
    values = codes.view(dtype).float().numpy()
    finite = np.isfinite(values)
    end = int(np.argmin(finite)) if not finite.all() else len(values)
    return values[:end]


def chosen_codes(values, width, man_bits):
    """Indices into `values` of the representable values the grid is built around."""
    n = len(values)
    if width == 8:
        return list(range(n))
    subnormal_end = 1 << man_bits  # first normal code
    keep = set(range(0, EDGE_16))
    keep |= set(range(subnormal_end - EDGE_16, subnormal_end + EDGE_16))
    keep |= set(range(n - EDGE_16, n))
    keep |= set(range(0, n, STRIDE_16))
    return sorted(k for k in keep if 0 <= k < n)


def grid(values, codes, rng):
    f32 = np.float32
    xs = []
    for k in codes:
        v = f32(values[k])
        xs.append(v)
        if k + 1 < len(values):
            hi = f32(values[k + 1])
            # The midpoint of two neighbours needs one more significand bit than the format
            # has, which f32 holds exactly for every format here.
            mid = f32((np.float64(v) + np.float64(hi)) / 2)
            assert np.float64(mid) == (np.float64(v) + np.float64(hi)) / 2
            xs += [mid, np.nextafter(mid, f32(0)), np.nextafter(mid, f32(np.inf))]
    top = np.float64(values[-1])
    ulp = top - np.float64(values[-2])
    # Inside the rounding edge above the largest finite value: PyTorch rounds these down to it.
    xs += [f32(top + ulp / 4), np.nextafter(f32(top + ulp / 2), f32(0))]
    xs += [f32(0.0), np.float32(2.0**-149), np.float32(2.0**-126)]
    smallest = np.log2(np.float64(values[1]) / 4)
    exps = rng.uniform(smallest, np.log2(top), RANDOM)
    xs += [f32(2.0**e) for e in exps]
    pos = np.array(xs, dtype=np.float32)
    both = np.concatenate([pos, -pos])
    # One entry per input, ordered by bits, so the file is deterministic.
    bits = np.unique(both.view(np.uint32))
    return bits.view(np.float32)


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20240531)
    man = {"fp8_e4m3fn": 3, "fp8_e5m2": 2, "fp16": 10, "bf16": 7}
    for name, (dtype, width) in FORMATS.items():
        values = code_values(dtype, width)
        xs = grid(values, chosen_codes(values, width, man[name]), rng)
        ys = torch.from_numpy(xs.copy()).to(dtype).float().numpy()
        keep = np.isfinite(ys)
        dropped = xs[~keep]
        assert (np.abs(dropped) > values[-1]).all(), (name, dropped)
        xs, ys = xs[keep], ys[keep]
        pairs = np.stack([xs.view(np.uint32), ys.view(np.uint32)], axis=1)
        path = os.path.join(OUT, name + ".bin")
        with open(path, "wb") as f:
            f.write(pairs.astype("<u4").tobytes())
        exact = int((pairs[:, 0] == pairs[:, 1]).sum())
        print(
            f"{name}: {len(xs)} inputs ({exact} representable, {len(xs) - exact} rounded; "
            f"{len(dropped)} beyond range dropped), max finite {values[-1]}, "
            f"{os.path.getsize(path)} bytes -> {path}",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
