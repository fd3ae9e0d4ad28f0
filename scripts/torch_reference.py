#!/usr/bin/env python3
"""PyTorch reference for `bitsearch bench`: the same models, batches and operations, timed the
same way (median of N runs after one warm-up), printed as JSON lines with the same figure names,
so scripts/bench.sh can put the two side by side as ratios.

Needs only `pip install torch numpy`. Threads: 2 (set with --threads)."""
import argparse, gzip, json, os, statistics, time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def load_idx(name):
    with gzip.open(os.path.join(ROOT, "data", "mnist-10k", name), "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def fq_weight(w, bits):
    """Symmetric per-output-channel fake quantizer with a straight-through estimator."""
    if bits >= 32:
        return w
    n = 2 ** (bits - 1) - 1
    m = w.detach().abs().flatten(1).max(1).values.clamp_min(1e-12)
    s = (m / n).view(-1, *([1] * (w.dim() - 1)))
    q = torch.clamp(torch.round(w / s), -n, n) * s
    return w + (q - w).detach()


def fq_act(x, bits, clip=1.0):
    """Unsigned activation fake quantizer over [0, clip] with a straight-through estimator."""
    if bits >= 32:
        return x
    step = clip / (2 ** bits - 1)
    q = torch.round(x.clamp(0, clip) / step) * step
    return x + (q - x).detach()


class QNet(nn.Module):
    def __init__(self, arch):
        super().__init__()
        if arch == "lenet5":
            self.layers = nn.ModuleList([nn.Conv2d(1, 6, 5), nn.Conv2d(6, 16, 5), nn.Linear(256, 120), nn.Linear(120, 84), nn.Linear(84, 10)])
            self.pool_after = {0, 1}
        else:  # cnn6
            self.layers = nn.ModuleList([nn.Conv2d(1, 16, 3, padding=1), nn.Conv2d(16, 16, 3, padding=1), nn.Conv2d(16, 32, 3, padding=1),
                                         nn.Conv2d(32, 32, 3, padding=1), nn.Linear(32 * 7 * 7, 128), nn.Linear(128, 10)])
            self.pool_after = {1, 3}
        self.policy = None  # list of (w, a) or None for FP32

    def forward(self, x):
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            if isinstance(layer, nn.Linear) and x.dim() > 2:
                x = x.flatten(1)
            if self.policy is not None:
                wb, ab = self.policy[i]
                x = fq_act(x, ab)
                w = fq_weight(layer.weight, wb)
            else:
                w = layer.weight
            x = F.conv2d(x, w, layer.bias, layer.stride, layer.padding) if isinstance(layer, nn.Conv2d) else F.linear(x, w, layer.bias)
            if i < last:
                x = F.relu(x)
            if i in self.pool_after:
                x = F.max_pool2d(x, 2)
        return x

    def penalty(self):
        total = 0.0
        for layer in self.layers:
            w = layer.weight.flatten(1)
            total = total + ((w @ w.t() - torch.eye(w.shape[0])) ** 2).sum()
        return total


def timed(runs, f):
    f()
    ms = []
    for _ in range(runs):
        t = time.perf_counter()
        f()
        ms.append((time.perf_counter() - t) * 1e3)
    return statistics.median(ms), min(ms)


def bench(arch, x_all, y_all, runs, epochs, out):
    torch.manual_seed(0)
    model = QNet(arch)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    policy = [(8, 8), (4, 4), (2, 4), (4, 4), (8, 8)] if arch == "lenet5" else [(8, 8), (4, 4), (2, 4), (4, 4), (4, 4), (8, 8)]
    x128, y128, x1000 = x_all[:128], y_all[:128], x_all[:1000]

    def step(q, beta):
        model.policy = policy if q else None
        loss = F.cross_entropy(model(x128), y128)
        if beta > 0:
            loss = loss + beta / 2 * model.penalty()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def fwd(q):
        model.policy = policy if q else None
        with torch.no_grad():
            model(x1000)

    def input_grad():
        model.policy = policy
        x = x128.clone().requires_grad_(True)
        loss = F.cross_entropy(model(x), y128)
        torch.autograd.grad(loss, x)

    rows = [("fp32 train step, batch 128", timed(runs, lambda: step(False, 0.0))),
            ("quantized train step + Lipschitz, batch 128", timed(runs, lambda: step(True, 1e-2))),
            ("fp32 forward, 1000 images", timed(runs, lambda: fwd(False))),
            ("quantized forward, 1000 images", timed(runs, lambda: fwd(True))),
            ("input gradient (PGD step), batch 128", timed(runs, input_grad))]
    for name, (med, mn) in rows:
        out({"arch": arch, "name": name, "median_ms": med, "min_ms": mn, "runs": runs})
    if epochs:
        torch.manual_seed(0)
        model = QNet(arch)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        g = torch.Generator().manual_seed(0)
        t = time.perf_counter()
        for _ in range(epochs):
            perm = torch.randperm(len(x_all), generator=g)
            for i in range(0, len(x_all), 64):
                idx = perm[i : i + 64]
                loss = F.cross_entropy(model(x_all[idx]), y_all[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        ms = (time.perf_counter() - t) * 1e3
        out({"arch": arch, "name": f"fp32 training, {epochs} epochs, batch 64", "median_ms": ms, "min_ms": ms, "runs": 1})


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--arch", default="lenet5,cnn6")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    images = load_idx("train-images-idx3-ubyte.gz")[:7000].astype(np.float32) / 255.0
    labels = load_idx("train-labels-idx1-ubyte.gz")[:7000].astype(np.int64)
    x = torch.from_numpy(images).unsqueeze(1)
    x = (x - x.mean()) / x.std()
    y = torch.from_numpy(labels)
    out = lambda r: print(json.dumps({"impl": f"torch {torch.__version__}", "threads": args.threads, **r}), flush=True)
    for arch in args.arch.split(","):
        bench(arch, x, y, args.runs, args.epochs, out)
    try:
        import resource
        out({"arch": "-", "name": "peak memory (MiB)", "median_ms": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "min_ms": 0, "runs": 1})
    except ImportError:
        pass


if __name__ == "__main__":
    main()
