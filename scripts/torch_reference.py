#!/usr/bin/env python3
"""PyTorch reference for `bitsearch bench`: the same models, batches and operations, timed the
same way (median of N runs after one warm-up, time.perf_counter), printed as JSON lines with the
same figure names, so scripts/bench.sh can put the two side by side as ratios.

Needs only `pip install torch numpy`. Threads: 2 (set with --threads).

The PyTorch side takes the fastest eager path a PyTorch user would: the fused fake-quant kernels
(torch.fake_quantize_per_channel_affine for weights, symmetric per output channel with the scale
max|w_c| / n computed under no_grad, as bitsearch detaches it; fake_quantize_per_tensor_affine
for activations over [0, clip]), channels-last conv weights (`--nchw`: NCHW), fused AdamW,
inference_mode for forward-only passes, and torch.autograd.grad for input gradients. The forward
values are bitsearch's (src/quant/fake.rs); `--selftest` checks them against the unfused
`w + (q - w).detach()` formula, and `--fq unfused` times that formula instead. The fused kernels
always compute the gradient mask too, so on activations that fit in cache they need not be the
faster ones; bench.sh runs both and keeps the faster (BENCHMARKS.md has the measurement).

One difference in the backward pass: bitsearch's straight-through estimator is the identity
everywhere, while PyTorch's fused kernels zero the gradient of elements outside the quantization
range (activations below 0 or above the clip; weights never are, their scale covers the largest
one). The work per pass is the same, but the attacks' gradients differ, so which examples FGSM and
PGD break, and so how much PGD and Square then run, can differ from bitsearch's; so do the
fine-tune's, slightly (`--fq unfused` has bitsearch's estimator).

The models (lenet5 and cnn6, resnet20 and mobilenet with BatchNorm folded into each conv) are
in scripts/torch_models.py; the input standardization runs inside each after the first layer's
activation quantizer, as in src/model/exec.rs, so every model takes images in [0, 1]. `--arch
resnet20,mobilenet` times those two on CIFAR-shaped random images (3x32x32), as bench.sh times
bitsearch's on a CIFAR-10-format stand-in.

`--compile` also times the micro figures through torch.compile(model) (impl "torch.compile",
`--compile-mode` for another mode); the first call of each figure, which compiles (cold: inductor's
caches are off), is summed into the row "compile time (one-off)".

`--policy-dir DIR` scores one policy as a search episode does, from the files `bitsearch bench
--reference-dir DIR` writes (policy-bench.json, baseline.safetensors, data.safetensors): the
fine-tune, the validation accuracy and the attack suite with early exit (see score_policy). The
model is the experiment's (make_model: lenet5 and cnn6 as QNet, resnet20 as QResNet20 with every
BatchNorm folded, as bitsearch's fine-tune runs it), shaped by the data (1x28x28 or 3x32x32) and
the baseline's last layer (the classes); `--arch ''` runs the policy alone."""
import argparse, gzip, json, math, os, statistics, time

import numpy as np
import torch
import torch.nn.functional as F

import torch_models
from torch_models import (LAYER_NAMES, QNet, QResNet20, fq_act, fq_act_unfused, fq_weight, fq_weight_unfused,
                          load_bitsearch, make_model)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def load_idx(name):
    with gzip.open(os.path.join(ROOT, "data", "mnist-10k", name), "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


ST_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
             "I8": "i1", "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?"}


def read_safetensors(path):
    """{name: numpy array} from a safetensors file: an 8-byte little-endian header length, a JSON
    header of dtype / shape / data_offsets, then the raw little-endian data."""
    with open(path, "rb") as f:
        raw = f.read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        start, end = meta["data_offsets"]
        out[name] = np.frombuffer(raw[base + start : base + end], dtype=ST_DTYPES[meta["dtype"]]).reshape(meta["shape"]).copy()
    return out


def adamw(params, lr, weight_decay):
    # fused=True: one kernel for all parameters, the fastest CPU AdamW in PyTorch 2.x; the same
    # update as candle's AdamW (betas 0.9/0.999, eps 1e-8, decoupled weight decay).
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)


def input_grad(model, x, y):
    """∇x of the mean cross-entropy. autograd.grad with inputs=x runs only the backward nodes on a
    path to x, and each node computes only the outputs that path needs (ConvolutionBackward and
    MmBackward skip grad_weight; no AccumulateGrad runs), so whether the parameters have
    requires_grad does not change the cost: for lenet5 at batch 128 with the bench policy,
    the profiler counts 3 aten::mm in this backward (the three linears' input gradients) against 6
    for loss.backward(), and the time with and without requires_grad on the parameters is the
    same within noise."""
    x = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(model(x), y), x)
    return g


def timed(runs, f):
    first = time.perf_counter()
    f()
    first = (time.perf_counter() - first) * 1e3
    ms = []
    for _ in range(runs):
        t = time.perf_counter()
        f()
        ms.append((time.perf_counter() - t) * 1e3)
    return statistics.median(ms), min(ms), first


def bench_policy(arch):
    """src/bench/mod.rs's: 8/8 first and last, 4/4 and 2/4 next, 4/4 for the rest."""
    n = len(LAYER_NAMES[arch])
    return [(8, 8)] + [[(4, 4), (2, 4)][i] if i < 2 else (4, 4) for i in range(n - 2)] + [(8, 8)]


def bench(arch, data, runs, epochs, out, fq, compile_mode=None):
    """The micro figures of `bitsearch bench` (src/bench.rs): clips 1.0, the bench policy."""
    x_all, y_all, val_x, val_y, mean, std = data
    channels = 1
    if arch in ("resnet20", "mobilenet"):
        # CIFAR-shaped inputs, as bench.sh gives bitsearch (the time does not depend on the
        # pixel values).
        g = torch.Generator().manual_seed(0)
        x_all = torch.rand(1000, 3, 32, 32, generator=g)
        y_all = torch.randint(0, 10, (1000,), generator=g)
        channels, epochs = 3, 0
    if arch == "vit":
        epochs = 0  # its FP32 training is `bitsearch train` with experiments/vit-fashion.toml
    torch.manual_seed(0)
    model = make_model(arch, mean, std, fq, channels)
    run = model
    if compile_mode is not None:
        # dynamic=False: batch 128 and 1,000 each get their own static graph instead of one
        # dynamic-shape graph after the second size (dynamo's default).
        run = torch.compile(model, dynamic=False, **({} if compile_mode == "default" else {"mode": compile_mode}))
    opt = adamw(model.parameters(), 1e-3, 1e-2)  # candle's ParamsAdamW::default(), as src/bench.rs
    policy = bench_policy(arch)
    x128, y128, x1000 = x_all[:128], y_all[:128], x_all[:1000]

    def step(q, beta):
        model.set_quant(policy if q else None)
        # FP32 training normalizes by batch statistics; quantized passes fold the BNs.
        model.train_bn = not q
        loss = F.cross_entropy(run(x128), y128)
        if beta > 0:
            loss = loss + beta / 2 * model.penalty()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def fwd(q):
        model.set_quant(policy if q else None)
        model.train_bn = False
        with torch.inference_mode():
            run(x1000)

    def grad():
        model.set_quant(policy)
        model.train_bn = False
        input_grad(run, x128, y128)

    rows = [("fp32 train step, batch 128", timed(runs, lambda: step(False, 0.0))),
            ("quantized train step + Lipschitz, batch 128", timed(runs, lambda: step(True, 1e-2))),
            ("fp32 forward, 1000 images", timed(runs, lambda: fwd(False))),
            ("quantized forward, 1000 images", timed(runs, lambda: fwd(True))),
            ("input gradient (PGD step), batch 128", timed(runs, grad))]
    for name, (med, mn, _) in rows:
        out({"arch": arch, "name": name, "median_ms": med, "min_ms": mn, "runs": runs})
    if compile_mode is not None:
        ms = sum(first for _, (_, _, first) in rows)
        out({"arch": arch, "name": "compile time (one-off)", "median_ms": ms, "min_ms": ms, "runs": 1,
             "note": "sum of the first (compiling) call of each figure"})
        return
    if epochs:
        # As src/train/fp32.rs: AdamW (lr 1e-3, wd 1e-2), seeded shuffles, the partial last
        # batch kept, the loss read back each step, validation accuracy after each epoch.
        torch.manual_seed(0)
        model = QNet(arch, mean, std, fq)
        opt = adamw(model.parameters(), 1e-3, 1e-2)
        g = torch.Generator().manual_seed(0)
        t = time.perf_counter()
        for _ in range(epochs):
            perm = torch.randperm(len(x_all), generator=g)
            for i in range(0, len(x_all), 64):
                idx = perm[i : i + 64]
                loss = F.cross_entropy(model(x_all[idx]), y_all[idx])
                if not math.isfinite(loss.item()):
                    raise SystemExit("fp32 training diverged")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            accuracy(model, val_x, val_y)
        ms = (time.perf_counter() - t) * 1e3
        out({"arch": arch, "name": f"fp32 training, {epochs} epochs, batch 64", "median_ms": ms, "min_ms": ms, "runs": 1})


# ---- score one policy (src/search/score.rs) ----

def accuracy(model, x, y, chunk=500):
    """Top-1 accuracy over (x, y) in chunks of 500, as src/train/fp32.rs `accuracy`."""
    correct = 0
    with torch.inference_mode():
        for i in range(0, len(x), chunk):
            correct += int((model(x[i : i + chunk]).argmax(1) == y[i : i + chunk]).sum())
    return correct / max(len(x), 1)


def is_correct(model, x, y):
    with torch.inference_mode():
        return model(x).argmax(1) == y


def margins(model, x, y):
    """logit_y − max_{j≠y} logit_j per row."""
    with torch.inference_mode():
        logits = model(x)
        true = logits.gather(1, y[:, None]).squeeze(1)
        other = logits.scatter(1, y[:, None], float("-inf")).amax(1)
        return true - other


def lr_at(ft, step):
    """The rate at `step` (src/train/finetune.rs LrSchedule): `lr` throughout, or with schedule
    "cosine" lr · (1 + cos(π step / steps)) / 2."""
    lr, steps = float(ft["lr"]), int(ft["steps"])
    if ft.get("schedule", "constant") == "cosine":
        return lr * 0.5 * (1 + math.cos(math.pi * step / max(steps, 1)))
    return lr


def finetune(model, base_state, x, y, ft):
    """src/train/finetune.rs: from the baseline, AdamW on CE + beta/2 · penalty for `steps`
    seeded batches at the schedule's rate; a fresh shuffle whenever the next batch would run
    past the end. Returns the training examples passed."""
    if ft.get("schedule", "constant") not in ("constant", "cosine"):
        raise SystemExit(f"fine-tune schedule {ft['schedule']!r}: only constant and cosine are reproduced here")
    model.load_state_dict(base_state)
    with torch.no_grad():
        model.penalty()  # penalty_before, as the report does
    opt = adamw(model.parameters(), ft["lr"], ft["weight_decay"])
    g = torch.Generator().manual_seed(int(ft["seed"]))
    n, batch, beta = len(x), int(ft["batch"]), float(ft["beta"])
    order, cursor, examples = None, n, 0
    steps = int(ft["steps"])
    tail = max(steps // 10, 1)
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(ft, step)
        if cursor + batch > n:
            order, cursor = torch.randperm(n, generator=g), 0
        idx = order[cursor : cursor + batch]
        cursor += batch
        examples += len(idx)
        ce = F.cross_entropy(model(x[idx]), y[idx])
        loss = ce + beta / 2 * model.penalty() if beta > 0 else ce
        if not math.isfinite(loss.item()):
            raise SystemExit(f"fine-tune diverged at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step + tail >= steps:
            ce.item()
    with torch.no_grad():
        model.penalty()  # penalty_after
    return examples


def pgd(model, x, y, eps, steps, step_size, gen, noise=None):
    """src/robust/attack.rs: uniform start in the eps ball (or x + noise), `steps` signed-gradient
    steps, projected onto [x − eps, x + eps] ∩ [0, 1]."""
    lo, hi = (x - eps).clamp(0, 1), (x + eps).clamp(0, 1)
    if noise is None:
        noise = (torch.rand(x.shape, generator=gen) * 2 - 1) * eps
    adv = (x + noise).clamp(0, 1)
    for _ in range(steps):
        adv = torch.minimum(torch.maximum(adv + step_size * input_grad(model, adv, y).sign(), lo), hi)
    return adv


def p_schedule(p_init, i, n):
    it = int(i / max(n, 1) * 10_000)
    return p_init / 2 ** sum(it > c for c in (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000))


@torch.inference_mode()
def square(model, x, y, eps, queries, p_init, gen):
    """src/robust/square.rs, vectorized: vertical stripes of ±eps per (example, channel, column),
    then per query one random square per example still classified correctly (margin > 0),
    re-filled with ±eps per channel and kept if it lowers the margin. Returns (held, forwards)."""
    n, c, h, w = x.shape
    sign = lambda *shape: torch.randint(0, 2, shape, generator=gen).to(x.dtype) * 2 - 1
    adv = (x + eps * sign(n, c, 1, w)).clamp(0, 1)
    best = margins(model, adv, y)
    forwards = n
    rows, cols = torch.arange(h), torch.arange(w)
    for q in range(queries):
        act = (best > 0).nonzero().squeeze(1)
        k = act.numel()
        if k == 0:
            break
        # Rust's f32::round: halves away from zero (Python's round() goes to even)
        side = min(max(math.floor(math.sqrt(p_schedule(p_init, q, queries) * h * w) + 0.5), 1), max(min(h, w), 2) - 1)
        r0 = torch.randint(0, h - side + 1, (k, 1), generator=gen)
        c0 = torch.randint(0, w - side + 1, (k, 1), generator=gen)
        mask = (((rows >= r0) & (rows < r0 + side))[:, :, None] & ((cols >= c0) & (cols < c0 + side))[:, None, :])[:, None]
        cand = torch.where(mask, (x[act] + eps * sign(k, c, 1, 1)).clamp(0, 1), adv[act])
        m = margins(model, cand, y[act])
        forwards += k
        better = m < best[act]
        adv[act[better]] = cand[better]
        best[act[better]] = m[better]
    forwards += n
    return is_correct(model, adv, y), forwards


def suite(model, x, y, transfer, atk, gen, times, work):
    """The search's attack suite (src/robust/suite.rs) with early exit: (a) one clean forward;
    (b) one input gradient, its zero-gradient check, FGSM at every eps from that gradient; (c) a
    forward of each transfer set; (d) PGD at each eps only on the examples still standing there
    (clean-correct and not broken by FGSM at that eps; transfer does not count, so the masking check
    "PGD above transfer" keeps its meaning), each restart only on those every
    earlier restart left standing; (e) Square at each radius on the examples every attack there
    left standing. Fills times and work per phase: example passes through the model, forward
    or gradient, counted as bitsearch's src/robust/stage_cost.rs counts them (PGD: steps gradient passes
    and one forward per attacked example and restart; Square: its first and last forwards of
    every attacked example and one per query per example still standing), and returns
    (clean accuracy, worst case at the headline eps: the largest PGD eps)."""
    n = len(x)
    fgsm_eps, pgd_eps = [float(e) for e in atk["fgsm_eps"]], [float(e) for e in atk["pgd_eps"]]
    # a. clean, b. one input gradient, the zero-gradient check, FGSM at every eps from it
    t = time.perf_counter()
    clean = is_correct(model, x, y)
    g = input_grad(model, x, y)
    zero_grad = g.flatten(1).abs().amax(1) == 0
    hits = {}  # eps -> examples correct under every attack at eps so far
    sg = g.sign()
    for eps in fgsm_eps:
        hits[eps] = hits.get(eps, clean) & is_correct(model, (x + eps * sg).clamp(0, 1), y)
    before_transfer = {eps: h.clone() for eps, h in hits.items()}  # what PGD's early exit sees
    times["clean + gradient + fgsm"] = time.perf_counter() - t
    work["clean + gradient + fgsm"] = n * (2 + len(fgsm_eps))
    # c. transfer: PGD examples crafted once on the FP32 model
    t = time.perf_counter()
    for eps, adv in zip(pgd_eps, transfer):
        hits[eps] = hits.get(eps, clean) & is_correct(model, adv, y)
    times["transfer"] = time.perf_counter() - t
    work["transfer"] = n * len(transfer)
    # d. PGD on the examples still standing at its eps; each restart on those every earlier left
    t, passes = time.perf_counter(), 0
    steps, step_size = int(atk["pgd_steps"]), float(atk["step_size"])
    for eps in pgd_eps:
        stand = before_transfer.get(eps, clean).clone()
        for _ in range(max(int(atk.get("restarts", 1)), 1)):
            # as bitsearch: each restart draws the start for every example, attacked or not
            noise = (torch.rand(x.shape, generator=gen) * 2 - 1) * eps
            idx = stand.nonzero().squeeze(1)
            if idx.numel() == 0:
                continue
            adv = pgd(model, x[idx], y[idx], eps, steps, step_size, gen, noise[idx])
            passes += (steps + 1) * idx.numel()  # the gradient passes and the final forward
            stand[idx] = is_correct(model, adv, y[idx])
        hits[eps] = hits.get(eps, clean) & stand
    times["pgd"] = time.perf_counter() - t
    work["pgd"] = passes
    # e. Square at each radius on the examples every attack there left standing
    t, forwards = time.perf_counter(), 0
    radii = sorted(set(pgd_eps or fgsm_eps))
    queries = int(atk.get("square_queries", 0))
    for eps in radii:
        stand = hits.get(eps, clean)
        pick = torch.arange(n) if atk.get("square_scope", "survivors") == "all" else stand.nonzero().squeeze(1)
        if queries > 0 and pick.numel() > 0:
            held, f = square(model, x[pick], y[pick], eps, queries, float(atk.get("square_p_init", 0.1)), gen)
            forwards += f
            stand = stand.clone()
            stand[pick] &= held
        hits[eps] = stand
    times["square"] = time.perf_counter() - t
    work["square"] = forwards
    del zero_grad  # computed because the search computes it (the masking check)
    headline = max(pgd_eps) if pgd_eps else max(fgsm_eps, default=0.0)
    worst = hits.get(headline, clean)
    return int(clean.sum()) / n, int(worst.sum()) / n


def score_policy(pdir, out, fq, impl):
    """One policy scored as a search episode does: fine-tune from the baseline, validation
    accuracy, the attack suite; `runs` repetitions after one warm-up, medians per phase."""
    spec = json.load(open(os.path.join(pdir, "policy-bench.json")))
    arch = spec["arch"]
    base = read_safetensors(os.path.join(pdir, "baseline.safetensors"))
    data = {k: torch.from_numpy(v) for k, v in read_safetensors(os.path.join(pdir, "data.safetensors")).items()}
    f32 = lambda k: data[k].float().contiguous()
    i64 = lambda k: data[k].long().contiguous()
    train_x, train_y, val_x, val_y = f32("train_x"), i64("train_y"), f32("val_x"), i64("val_y")
    att_x, att_y = f32("attack_x"), i64("attack_y")
    transfer = [f32(f"transfer_{i}") for i in range(len(spec["attack"]["pgd_eps"])) if f"transfer_{i}" in data]
    norm = spec.get("input_norm") or {"mean": base["input.mean"].tolist(), "std": base["input.std"].tolist()}
    if arch not in LAYER_NAMES:
        raise SystemExit(f"{pdir}: arch {arch!r} has no PyTorch model here (one of {', '.join(LAYER_NAMES)})")
    # The shape of the model from its data and its last layer: 1x28x28 digits or clothes, or
    # 3x32x32 CIFAR images; as many classes as the last layer has rows.
    classes = base[f"{LAYER_NAMES[arch][-1]}.weight"].shape[0]
    model = make_model(arch, norm["mean"], norm["std"], fq, train_x.shape[1], classes)
    model.train_bn = False  # a fine-tune folds every BatchNorm with its frozen statistics
    load_bitsearch(model, arch, {**base, "input.mean": norm["mean"], "input.std": norm["std"]})
    state = {k: v.clone() for k, v in model.state_dict().items()}
    policy = [tuple(int(b) for b in layer.split("/")) for layer in spec["policy"].split(",")]
    model.set_quant(policy, spec["clips"])
    ft, atk = spec["finetune"], spec["attack"]
    runs = int(spec.get("runs", 3))
    names = ["fine-tune", "accuracy", "clean + gradient + fgsm", "transfer", "pgd", "square"]
    samples = {k: [] for k in ["total"] + names}
    work, result = {}, None
    for rep in range(runs + 1):
        times = {}
        t0 = time.perf_counter()
        work["fine-tune"] = finetune(model, state, train_x, train_y, ft)
        times["fine-tune"] = time.perf_counter() - t0
        t = time.perf_counter()
        acc = accuracy(model, val_x, val_y)
        times["accuracy"] = time.perf_counter() - t
        work["accuracy"] = len(val_x)
        gen = torch.Generator().manual_seed(int(atk.get("seed", 0)))
        clean, worst = suite(model, att_x, att_y, transfer, atk, gen, times, work)
        times["total"] = time.perf_counter() - t0
        result = {"accuracy": acc, "worst_case": worst, "clean": clean}
        if rep > 0:  # repetition 0 is the warm-up
            for k in samples:
                samples[k].append(times[k] * 1e3)
    work["total"] = sum(work[k] for k in names)
    label = {"total": "policy: total (fine-tune + accuracy + attacks)", **{k: f"policy: {k}" for k in names}}
    for k in ["total"] + names:
        out({"arch": arch, "name": label[k], "median_ms": statistics.median(samples[k]), "min_ms": min(samples[k]),
             "runs": runs, "work": work[k]})
    print(json.dumps({"impl": impl, "arch": arch, "policy": spec["policy"], "policy_result": result}), flush=True)


def selftest():
    """The fused kernels' forward equals the unfused formula; their gradients differ only where
    the fused kernel masks elements outside the range."""
    torch.manual_seed(1)
    for bits in range(2, 9):
        for shape in [(6, 1, 5, 5), (16, 6, 5, 5), (120, 256), (10, 84)]:
            w = (torch.randn(shape) * 0.2).requires_grad_(True)
            w[0].data.zero_()  # an all-zero channel stays zero
            a, b = fq_weight(w, bits), fq_weight_unfused(w, bits)
            assert torch.equal(a, b), (bits, shape, (a - b).abs().max())
            ga, = torch.autograd.grad((a * torch.arange(a.numel()).view(shape)).sum(), w)
            gb, = torch.autograd.grad((b * torch.arange(b.numel()).view(shape)).sum(), w)
            assert torch.equal(ga, gb), "weights are always inside the range: identity gradient"
        for clip in [0.37, 1.0, 4.2]:
            x = (torch.randn(1000, 6, 12, 12) * clip).requires_grad_(True)
            a, b = fq_act(x, bits, clip), fq_act_unfused(x, bits, clip)
            # Equal up to float32 rounding of level · step (the fused kernel multiplies by a float32
            # scale and 1 / scale); a tie x / step = k + 1/2 may round differently, one step apart.
            off = (a - b).abs() > 1e-6 * clip
            assert off.float().mean() < 1e-5 and (a - b).abs().max() <= clip / (2 ** bits - 1) * 1.0001, (bits, clip, off.sum())
            ga, = torch.autograd.grad(a.sum(), x)
            gb, = torch.autograd.grad(b.sum(), x)
            # the fused kernel passes the gradient where round(x / step) lies in [0, 2^a - 1]
            level = torch.round(x.detach() / (clip / (2 ** bits - 1)))
            inside = ((level >= 0) & (level <= 2 ** bits - 1)).float()
            assert torch.equal(gb, torch.ones_like(gb)), "unfused: identity gradient"
            assert (ga != inside).float().mean() < 1e-5, (bits, clip, (ga != inside).sum())
    nets = {"lenet5": lambda fq, cl: QNet("lenet5", 0.13, 0.31, fq, cl), "cnn6": lambda fq, cl: QNet("cnn6", 0.13, 0.31, fq, cl),
            "resnet20": lambda fq, cl: QResNet20(0.13, 0.31, fq, cl, channels=1)}
    for arch, net in nets.items():
        torch.manual_seed(0)
        m, u = net("fused", None), net("unfused", False)
        with torch.no_grad():
            for bn in getattr(m, "bns", []):  # statistics away from (0, 1), so the fold shows
                bn.running_mean.uniform_(-0.2, 0.2)
                bn.running_var.uniform_(0.5, 2.0)
                bn.weight.uniform_(0.5, 1.5)
        u.load_state_dict(m.state_dict())  # also: channels-last and NCHW give the same logits
        clips = [[1.0 + l] * 8 for l in range(len(LAYER_NAMES[arch]))]
        m.set_quant(bench_policy(arch), clips)
        u.set_quant(bench_policy(arch), clips)
        x = torch.rand(64, 1, 28, 28)
        with torch.no_grad():
            d = (m(x) - u(x)).abs().max().item()
        assert d < 1e-4, (arch, d)
    print("selftest: fused fake-quant forward equals the unfused formula", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--arch", default="lenet5,cnn6", help="architectures of the micro figures: lenet5, cnn6, resnet20, mobilenet, vit ('' for none)")
    ap.add_argument("--fq", choices=["fused", "unfused"], default="fused", help="fake-quantizer formulation")
    ap.add_argument("--compile", action="store_true", help="also time the micro figures through torch.compile")
    ap.add_argument("--compile-mode", default="default", help="torch.compile mode (default, max-autotune-no-cudagraphs, ...)")
    ap.add_argument("--policy-dir", help="score one policy from the files `bitsearch bench --reference-dir DIR` wrote")
    ap.add_argument("--nchw", action="store_true", help="keep the conv weights NCHW (default: channels-last, faster here)")
    ap.add_argument("--selftest", action="store_true", help="check the fused fake-quantizers against the unfused formula and exit")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch_models.CHANNELS_LAST = not args.nchw
    if args.selftest:
        selftest()
        return
    images = load_idx("train-images-idx3-ubyte.gz")[:8000].astype(np.float32) / 255.0
    labels = load_idx("train-labels-idx1-ubyte.gz")[:8000].astype(np.int64)
    x = torch.from_numpy(images).unsqueeze(1)
    y = torch.from_numpy(labels)
    train_x, train_y, val_x, val_y = x[:7000], y[:7000], x[7000:], y[7000:]
    data = (train_x, train_y, val_x, val_y, train_x.mean().item(), train_x.std(correction=0).item())
    impl = f"torch {torch.__version__.split('+')[0]}" + (" unfused-fq" if args.fq == "unfused" else "")
    out = lambda r: print(json.dumps({"impl": impl, "threads": args.threads, **r}), flush=True)
    archs = [a for a in args.arch.split(",") if a]
    for arch in archs:
        bench(arch, data, args.runs, args.epochs, out, args.fq)
    if args.compile:
        # Every figure of every arch is its own graph of QNet.forward (guards on the module, the
        # policy, grad mode and batch size): 10 in all, above dynamo's default limit of 8, past
        # which it silently runs eager.
        torch._dynamo.config.recompile_limit = 64
        # A cold compile, as a first run pays it: with inductor's on-disk caches (under
        # /tmp/torchinductor_$USER) a rerun times cache hits, 2 s instead of about a minute.
        from torch._inductor import config as inductor_config
        inductor_config.force_disable_caches = True
        cimpl = f"torch.compile {torch.__version__.split('+')[0]}" + ("" if args.compile_mode == "default" else f" {args.compile_mode}")
        cout = lambda r: print(json.dumps({"impl": cimpl, "threads": args.threads, **r}), flush=True)
        for arch in archs:
            bench(arch, data, args.runs, 0, cout, args.fq, args.compile_mode)
    if args.policy_dir:
        score_policy(args.policy_dir, out, args.fq, impl)
    try:
        import resource
        out({"arch": "-", "name": "peak memory (MiB)", "median_ms": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "min_ms": 0, "runs": 1})
    except ImportError:
        pass


if __name__ == "__main__":
    main()
