#!/usr/bin/env python3
"""Trains a bitsearch FP32 baseline's recipe in PyTorch and compares the test accuracies.

    torch_train.py BASELINE_DIR [--threads 2] [--seed S] [--limit N] [--epochs E]

BASELINE_DIR is what `bitsearch train` writes (OUT/baselines/<arch>-<hash>/): its config.json
gives the recipe, its metrics.json bitsearch's accuracies. Prints the learning curve beside
bitsearch's on stderr and one JSON line on stdout: {arch, experiment, torch_test_accuracy,
bitsearch_test_accuracy, difference_points (bitsearch − PyTorch, in points), seconds, ...}.

The same recipe as src/train/fp32.rs and src/data/mod.rs:
- the network: the zoo's `model.arch` from scripts/torch_models.py (FP32; the BatchNorm networks
  normalize by batch statistics in training, momentum 0.1, eps 1e-5, and evaluate with the
  running statistics folded into each conv);
- the data: `data.source` (`idx:DIR`, IDX files raw or .gz, or `embedded:mnist-10k`), pixels
  byte / 255 in [0, 1]; `train.augment` (src/data/augment.rs): each training image shifted by
  dy, dx drawn uniformly from −shift..=shift with zeros moved in, and mirrored left to right with
  probability 1/2, a fresh draw per example and step; `data.validation` images carved from the training set
  by a shuffle seeded with `data.seed`; the test set untouched;
- input standardization (x − mean) / std with the training split's per-channel mean and
  (population) std, inside the model after the first layer (src/data/mod.rs `input_norm`);
- mean cross-entropy; AdamW(lr, weight_decay) with betas (0.9, 0.999), eps 1e-8 (candle's
  AdamW), decoupled decay on every parameter (biases and BN γ, β too, as bitsearch passes all
  of them); `train.schedule`: a constant lr, or "cosine", lr·(1 + cos(π t / T))/2 at step t of
  all the epochs' T steps, set before each step; `train.batch` with the partial last batch kept; the
  training set reshuffled every epoch from a generator seeded with `train.seed`;
  `train.epochs` epochs, the final weights (no best-epoch pick); accuracy in chunks of 500.

What still differs (so the two runs are the same recipe, not the same numbers):
- the random draws: the validation split (NumPy's PCG64 permutation here, Rust's StdRng shuffle
  in bitsearch, so a different 5,000 images are held out), the per-epoch shuffles
  (torch.randperm), the augmentation's moves and the initial weights (PyTorch's default init, U(−1/√fan_in, 1/√fan_in)
  for weights and biases, the distribution bitsearch draws from, with another generator);
- float rounding: oneDNN's convolutions and PyTorch's fused AdamW against bitsearch's kernels.

As a check that the two networks are the same, bitsearch's own model.safetensors is also loaded
into the PyTorch model and scored on the test set (`bitsearch_weights_torch_test_accuracy`,
which should equal bitsearch_test_accuracy up to a few ties).

`--limit N` keeps the first N images of each split and `--epochs E` overrides the epochs: a smoke
test of the model code, not a comparison. `--seed S` draws the split, init and shuffles from seed
S instead of the config's."""
import argparse, gzip, json, math, os, sys, time

import numpy as np
import torch
import torch.nn.functional as F

from torch_models import load_bitsearch, make_model
from torch_reference import ROOT, accuracy, adamw, read_safetensors

CLASSES = 10  # bitsearch's IDX class count (src/data/source.rs)


def read_idx(path):
    """An IDX array (gzip or raw): magic 0x0000 0x08 ndim, big-endian dims, u8 data."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if raw[:3] != b"\x00\x00\x08":
        raise SystemExit(f"{path}: not an unsigned-byte IDX file (magic {raw[:4].hex()})")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def read_pair(d, prefix):
    """{prefix}-images-idx3-ubyte[.gz] as (N, C, H, W) u8 and its labels, as src/data/source.rs."""
    def find(stem):
        for name in (stem + ".gz", stem):
            if os.path.exists(os.path.join(d, name)):
                return os.path.join(d, name)
        raise SystemExit(f"{os.path.join(d, stem)}: file not found (expected in this dataset directory)")
    images = read_idx(find(f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(find(f"{prefix}-labels-idx1-ubyte")).astype(np.int64)
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4 or len(images) != len(labels):
        raise SystemExit(f"{d}: {prefix} images {images.shape} and labels {labels.shape} do not pair up")
    return images, labels


def idx_dir(source):
    """The IDX directory of a bitsearch data source."""
    if source == "embedded:mnist-10k":
        return os.path.join(ROOT, "data", "mnist-10k")
    kind, _, path = source.partition(":")
    if kind != "idx":
        raise SystemExit(f"data.source {source!r}: torch_train.py reads IDX directories (idx:DIR) only")
    return path if os.path.isabs(path) or os.path.isdir(path) else os.path.join(ROOT, path)


def load_data(cfg, limit):
    """Train / validation / test as bitsearch splits them (another shuffle RNG), and the input norm."""
    d = idx_dir(cfg["data"]["source"])
    (x, y), (test_x, test_y) = read_pair(d, "train"), read_pair(d, "t10k")
    validation = int(cfg["data"]["validation"])
    if validation >= len(x):
        raise SystemExit(f"data.validation {validation} leaves no training data out of {len(x)} images")
    order = np.random.default_rng(int(cfg["data"]["seed"])).permutation(len(x))
    val_idx, train_idx = order[:validation], order[validation:]
    if limit:
        train_idx, val_idx = train_idx[:limit], val_idx[:limit]
        test_x, test_y = test_x[:limit], test_y[:limit]
    train_x = x[train_idx]
    # input_norm: float64 sums of the f32 pixel values byte / 255 per channel, the population
    # std, at least 1e-6; from each channel's byte histogram
    value = (np.arange(256, dtype=np.float32) / np.float32(255)).astype(np.float64)
    mean, std = [], []
    for c in range(train_x.shape[1]):
        hist = np.bincount(train_x[:, c].ravel(), minlength=256).astype(np.float64)
        n, m = hist.sum(), (hist * value).sum() / hist.sum()
        mean.append(float(np.float32(m)))
        std.append(max(float(np.float32(np.sqrt(max((hist * value ** 2).sum() / n - m * m, 0.0)))), 1e-6))
    t = lambda a: torch.from_numpy(np.array(a))  # a writable, contiguous copy
    pixels = lambda a: t(a).float() / 255.0
    return (t(train_x), t(y[train_idx])), (pixels(x[val_idx]), t(y[val_idx])), (pixels(test_x), t(test_y)), mean, std


def augment(x, shift, flip, g):
    """src/data/augment.rs: output (y, x) reads source (y + dy, x' + dx), x' = x mirrored when
    flipped, 0 outside: a crop at offset (shift + dy, shift + dx) of the zero-padded image."""
    n, _, h, w = x.shape
    if flip:
        mirror = torch.rand(n, generator=g) < 0.5
        x = torch.where(mirror[:, None, None, None], x.flip(3), x)
    if shift:
        padded = F.pad(x, (shift, shift, shift, shift))
        offsets = torch.randint(0, 2 * shift + 1, (n, 2), generator=g).tolist()
        x = torch.stack([padded[i, :, oy : oy + h, ox : ox + w] for i, (oy, ox) in enumerate(offsets)])
    return x


def train(model, data, tcfg, epochs, curve):
    """src/train/fp32.rs `train_fp32`; returns the seconds it took (validation included)."""
    (x, y), (val_x, val_y) = data
    batch = int(tcfg["batch"])
    lr = float(tcfg["lr"])
    opt = adamw(model.parameters(), lr, float(tcfg["weight_decay"]))
    # src/train/finetune.rs `LrSchedule::at`; bitsearch's config.json leaves out a constant one.
    schedule = tcfg.get("schedule", "constant")
    if schedule not in ("constant", "cosine"):
        raise SystemExit(f"train.schedule {schedule!r}: torch_train.py knows constant and cosine")
    per_epoch = (len(x) + batch - 1) // batch
    total = epochs * per_epoch
    g = torch.Generator().manual_seed(int(tcfg["seed"]))
    aug = tcfg.get("augment", {})
    unknown = set(aug) - {"shift", "flip"}
    if unknown:
        raise SystemExit(f"train.augment: torch_train.py knows shift and flip, not {sorted(unknown)}")
    shift, flip = int(aug.get("shift", 0)), bool(aug.get("flip", False))
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train_bn = True
        perm = torch.randperm(len(x), generator=g)
        loss_sum, steps = 0.0, 0
        for i in range(0, len(x), batch):
            if schedule == "cosine":
                t = (epoch - 1) * per_epoch + steps
                for group in opt.param_groups:
                    group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * t / max(total, 1)))
            idx = perm[i : i + batch]
            images = x[idx].float() / 255.0
            if shift or flip:
                images = augment(images, shift, flip, g)
            loss = F.cross_entropy(model(images), y[idx])
            value = loss.item()
            if not np.isfinite(value):
                raise SystemExit(f"training diverged at epoch {epoch}, step {steps}: loss is {value}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum, steps = loss_sum + value, steps + 1
        model.train_bn = False
        val = accuracy(model, val_x, val_y)
        theirs = curve.get(epoch)
        beside = f"   bitsearch: loss {theirs['train_loss']:.4f}  val accuracy {100 * theirs['val_accuracy']:.2f}%" if theirs else ""
        print(f"epoch {epoch:>2}: loss {loss_sum / max(steps, 1):.4f}  val accuracy {100 * val:.2f}%{beside}", file=sys.stderr, flush=True)
    return time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("baseline", metavar="BASELINE_DIR", help="a directory `bitsearch train` wrote (OUT/baselines/<arch>-<hash>)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0, help="keep the first N images of each split (a smoke test)")
    ap.add_argument("--epochs", type=int, help="override train.epochs (a smoke test)")
    ap.add_argument("--seed", type=int, help="override data.seed, model.seed and train.seed (another draw of the same "
                    "recipe: the spread over seeds says how far apart two runs of it fall)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    path = os.path.join(args.baseline, "config.json")
    if not os.path.exists(path):
        raise SystemExit(f"no config.json in {args.baseline}: give a directory `bitsearch train` wrote (it prints 'saved in DIR')")
    cfg = json.load(open(path))
    if args.seed is not None:
        for section in ("data", "model", "train"):
            cfg[section]["seed"] = args.seed
    arch = cfg["model"].get("arch")
    if arch is None:
        raise SystemExit(f"{path}: model.arch is missing (an imported model?): torch_train.py trains zoo networks only")
    metrics_path = os.path.join(args.baseline, "metrics.json")
    metrics = json.load(open(metrics_path)) if os.path.exists(metrics_path) else {}
    curve = {e["epoch"]: e for e in metrics.get("epochs", [])}
    train_split, val_split, (test_x, test_y), mean, std = load_data(cfg, args.limit)
    channels = train_split[0].shape[1]
    epochs = int(cfg["train"]["epochs"]) if args.epochs is None else args.epochs
    print(f"{cfg.get('name', '?')}: {arch} on {cfg['data']['source']} ({len(train_split[0])} train / {len(val_split[0])} "
          f"validation / {len(test_x)} test), {epochs} epochs, batch {cfg['train']['batch']}, AdamW lr {cfg['train']['lr']}, "
          f"torch {torch.__version__.split('+')[0]}, {args.threads} threads", file=sys.stderr, flush=True)

    torch.manual_seed(int(cfg["model"]["seed"]))
    model = make_model(arch, mean, std, "fused", channels, CLASSES)
    seconds = train(model, (train_split, val_split), cfg["train"], epochs, curve)
    model.train_bn = False
    val, test = accuracy(model, *val_split), accuracy(model, test_x, test_y)

    same = None
    weights = os.path.join(args.baseline, "model.safetensors")
    if os.path.exists(weights):
        theirs = make_model(arch, mean, std, "fused", channels, CLASSES)
        load_bitsearch(theirs, arch, read_safetensors(weights))
        theirs.train_bn = False
        same = accuracy(theirs, test_x, test_y)

    ours_test = metrics.get("test_accuracy")
    result = {"arch": arch, "experiment": cfg.get("name"), "torch_test_accuracy": test,
              "bitsearch_test_accuracy": ours_test,
              "difference_points": None if ours_test is None else round(100 * (ours_test - test), 2),
              "torch_val_accuracy": val, "bitsearch_val_accuracy": metrics.get("val_accuracy"),
              "bitsearch_weights_torch_test_accuracy": same,
              "seconds": round(seconds, 1), "bitsearch_seconds": metrics.get("train_seconds"),
              "epochs": epochs, "threads": args.threads}
    if args.limit:
        result["limit"] = args.limit
    if args.seed is not None:
        result["seed"] = args.seed
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
