#!/usr/bin/env python3
"""How HAQ's BISMO cycle table is built, checked against a tile-level model with no fitted number.

docs/haq-table.md explains why bitsearch's roofline disagrees with HAQ's table; this script backs
the explanation: the table follows BISMO's tiles. For a layer as a matmul of M = batch * out_h *
out_w rows, K = in_ch * k * k and N = out_ch, on a 16 x 16 array of 256-bit binary dot products,
with one activation row (up to 256 bits of one bit-plane) fed per cycle:

    compute = ceil(M/16) * ceil(K/256) * ceil(N/16) * w * a     (tiles, each w*a bit-plane pairs)
    fetch   = M * ceil(K/256) * a                               (activation rows, per bit-plane)
    weights = ceil(K * N * w / 256)                             (weights streamed 256 bits a cycle)
    cycles  = max(compute, fetch, weights)                      (conv, 1x1 conv, fc)
    cycles  = C * ceil(M/16) * a                                (depthwise: channel by channel)

Reads the committed table with the standard library only (no NumPy) and prints the rms of
ln(model / table) over every (layer, w, a), per layer kind, and each layer's ratio at 8/8 and 2/2.

    python3 scripts/haq_tile_model.py [TABLE.npy]
"""

import math
import struct
import sys
from pathlib import Path

TABLE = (Path(__file__).resolve().parent.parent / "tests/data/haq"
         / "qmobilenetv2_imagenet100_batch16_latency_table.npy")
BATCH = 16
# MobileNetV2 (Sandler et al. 2018, Table 2): expand ratio, output channels, blocks, first stride.
STAGES = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
          (6, 160, 3, 2), (6, 320, 1, 1)]


def read_table(path):
    """The int64 [layers, 8, 8] array as a flat tuple and its shape (version 1.0 .npy)."""
    data = Path(path).read_bytes()
    header_len = struct.unpack("<H", data[8:10])[0]
    header = data[10:10 + header_len].decode()
    assert "'<i8'" in header and "False" in header, header
    shape = tuple(int(d) for d in header.split("(")[1].split(")")[0].split(",") if d.strip())
    values = struct.unpack(f"<{math.prod(shape)}q", data[10 + header_len:])
    return values, shape


def layers(classes=1000):
    """(name, kind, in_ch, out_ch, kernel, out_hw) of the 53 quantizable layers, in order."""
    out = [("conv", "conv", 3, 32, 3, 112)]
    channels, hw, block = 32, 112, 0
    for t, c, n, s in STAGES:
        for i in range(n):
            block += 1
            stride = s if i == 0 else 1
            hidden = channels * t
            if t != 1:
                out.append((f"b{block}.expand", "pw", channels, hidden, 1, hw))
            hw //= stride
            out.append((f"b{block}.dw", "dw", hidden, hidden, 3, hw))
            out.append((f"b{block}.project", "pw", hidden, c, 1, hw))
            channels = c
    out.append(("last", "pw", 320, 1280, 1, 7))
    out.append(("fc", "fc", 1280, classes, 1, 1))
    return out


def tile_cycles(layer, w, a):
    _, kind, c_in, c_out, k, hw = layer
    m = BATCH * hw * hw
    if kind == "dw":
        return c_out * math.ceil(m / 16) * a
    kk = c_in * k * k
    compute = math.ceil(m / 16) * math.ceil(kk / 256) * math.ceil(c_out / 16) * w * a
    fetch = m * math.ceil(kk / 256) * a
    weights = math.ceil(kk * c_out * w / 256)
    return max(compute, fetch, weights)


def main():
    values, shape = read_table(sys.argv[1] if len(sys.argv) > 1 else TABLE)
    net = layers()
    assert shape == (len(net), 8, 8), shape
    table = lambda l, w, a: values[(l * 8 + w - 1) * 8 + a - 1]
    errors = {}
    for l, layer in enumerate(net):
        for w in range(1, 9):
            for a in range(1, 9):
                e = math.log(tile_cycles(layer, w, a) / table(l, w, a))
                errors.setdefault(layer[1], []).append(e)
    rms = lambda es: math.sqrt(sum(e * e for e in es) / len(es))
    every = [e for es in errors.values() for e in es]
    print(f"rms ln(tile model / table) over {len(every)} entries: {rms(every):.3f}")
    for kind, es in errors.items():
        print(f"  {kind:<5} {len(es) // 64:>3} layers: {rms(es):.3f}")
    print("layer          kind  table 8/8   model/table 8/8   model/table 2/2")
    for l, layer in enumerate(net):
        ratio = lambda b: tile_cycles(layer, b, b) / table(l, b, b)
        print(f"{layer[0]:<14} {layer[1]:<5} {table(l, 8, 8):>9}   {ratio(8):>15.3f}"
              f"   {ratio(2):>15.3f}")


if __name__ == "__main__":
    main()
