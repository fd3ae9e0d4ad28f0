#!/usr/bin/env python3
"""Exports PyTorch models to ONNX for bitsearch's importer, with the logits PyTorch computes
on a fixed input, so a test can check the import against PyTorch itself.

    python3 scripts/export_onnx.py [OUT_DIR]      (default: tests/data/onnx)

Needs `pip install torch onnx onnxscript`. Every model's logits go to logits.json, on a batch of
2 fixed inputs, x[i] = (sin(0.37 * i) + 1) / 2 over the flattened batch (bitsearch's test
builds the same).

With PyTorch's default exporter, `torch.onnx.export(model, (x,), path)` (dynamo=True, opset 20
in torch 2.15, its graph optimizer on, `external_data=True`): the file holds the graph, and
NAME.onnx.data beside it every initializer of 256 bytes or more (onnx_ir's save threshold;
smaller biases and shape constants stay inside). The optimizer folds BatchNorm into the convs
and the batch-size arithmetic into constant Reshape targets:
- lenet-dynamo.onnx (+ .data): LeNet-5's layers as below with a narrower classifier (fc 32, 16,
  10, to keep the fixture small), exported on one image, so the input is fixed at batch 1 and
  the flatten is a Reshape to (1, 256);
- lenet-dynamo-batch.onnx (+ .data): the same with `dynamic_shapes` marking the batch dim, so
  the flatten is a Reshape to (-1, 256);
- resnet8-dynamo.onnx (+ .data): a small CIFAR ResNet (a stem conv of 8 channels, one basic
  block per stage at 8, 16 and 32 channels with projection shortcuts, `x.mean((2, 3))` as the
  pool, which exports as ReduceMean over axes (2, 3), fc 10) for 3x32x32, batch fixed at 1;
- resnet8-dynamo-batch.onnx (+ .data): the same with a dynamic batch and `optimize=False`, the
  graph as the exporter translates it before optimizing: BatchNormalization nodes, conv biases
  built by Shape, Expand and CastLike, and the classifier's flatten target computed at run
  time from the input's shape (Shape, Squeeze, Reshape, Concat), which bitsearch folds with
  the batch size kept free.

With the TorchScript exporter (`dynamo=False`, deprecated in PyTorch 2.9, at opset 13, weights
inside the file), as older PyTorch wrote by default:
- lenet5.onnx: LeNet-5 as bitsearch's zoo has it (conv 6 k5, pool, conv 16 k5, pool, fc 120,
  84, 10) for 1x28x28 inputs;
- resnet20.onnx: He et al.'s CIFAR ResNet-20 for 3x32x32, with BatchNorm and projection
  shortcuts (option B: a 1x1 conv and BN where a block changes size, as torchvision's ResNets
  do). The zoo's resnet20 uses the paper's parameter-free option A instead, but PyTorch exports
  its zero-padding as a shape-computation subgraph (Shape, ConstantOfShape, Concat, Transpose,
  Cast, Pad), not as model ops;
- resnet20-a.onnx: the ResNet-20 with the paper's option-A shortcuts, exported as PyTorch's
  users do (constant folding on, the default, which also folds BatchNorm into the convs): the
  shortcut's padding arrives as Slice, Slice, Pad, with the pads computed by a small constant
  subgraph (ConstantOfShape, Concat, Reshape, Slice, Transpose, Cast) that the importer folds;
- lenet5-trained.onnx: the same LeNet-5 trained in PyTorch (Adam 1e-3, batch 64, 3 epochs,
  seed 0) on the embedded MNIST-10k training images (data/mnist-10k, pixels in [0, 1], no
  standardization), the user's own trained model for tests/onnx_export.rs's import → search →
  export → ONNX Runtime test. Note that bitsearch carves its validation split out of these same
  training images, as it would out of any user's: the model has seen them.

Weights are PyTorch's default initialization under a fixed seed; the BatchNorm layers get
random running statistics and affine parameters, so the importer's BatchNorm handling is
exercised (at initialization they would be the identity). The TorchScript exports run in eval
mode without constant folding (but for resnet20-a), so BatchNormalization nodes stay in the
graph.
"""

import gzip
import json
import math
import os
import sys

import numpy as np

import torch
import torch.nn as nn
import torch.nn.functional as F


class LeNet5(nn.Module):
    def __init__(self, fc1=120, fc2=84):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 6, 5), nn.Conv2d(6, 16, 5)
        self.fc1, self.fc2, self.fc3 = nn.Linear(256, fc1), nn.Linear(fc1, fc2), nn.Linear(fc2, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class Block(nn.Module):
    """A basic block; a stride or width change takes a projection shortcut (1x1 conv + BN)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = nn.Identity()
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.short(x))


class ShortcutA(nn.Module):
    """Option A: every stride-th row and column, zero channels on both sides (He et al. 2016)."""

    def __init__(self, pad):
        super().__init__()
        self.pad = pad

    def forward(self, x):
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad), "constant", 0)


class ResNet20(nn.Module):
    def __init__(self, classes=10, option="B"):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        blocks, cin = [], 16
        for stage, cout in enumerate([16, 32, 64]):
            for b in range(3):
                blocks.append(Block(cin, cout, 2 if stage > 0 and b == 0 else 1))
                if option == "A" and cin != cout:
                    blocks[-1].short = ShortcutA((cout - cin) // 2)
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = self.blocks(F.relu(self.bn(self.conv(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class ResNet8(nn.Module):
    """A small CIFAR ResNet: a stem conv, one basic block per stage, the mean over (H, W)."""

    def __init__(self, classes=10):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.blocks = nn.Sequential(Block(8, 8, 1), Block(8, 16, 2), Block(16, 32, 2))
        self.fc = nn.Linear(32, classes)

    def forward(self, x):
        x = self.blocks(F.relu(self.bn(self.conv(x))))
        return self.fc(x.mean((2, 3)))


def fixed_input(shape):
    n = math.prod(shape)
    x = [(math.sin(0.37 * i) + 1.0) / 2.0 for i in range(n)]
    return torch.tensor(x, dtype=torch.float32).reshape(shape)


def randomize_batchnorm(model, gen):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=gen) * 0.2)
            m.running_var.copy_(torch.rand(c, generator=gen) * 1.5 + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(c, generator=gen) * 0.1)


def read_idx(path):
    """An IDX file (gzip): big-endian dims after a 4-byte magic whose last byte is the rank."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    rank = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


def mnist10k(split):
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "mnist-10k")
    images = read_idx(os.path.join(root, f"{split}-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(root, f"{split}-labels-idx1-ubyte.gz"))
    x = torch.tensor(images, dtype=torch.float32).unsqueeze(1) / 255.0
    return x, torch.tensor(labels, dtype=torch.long)


def trained_lenet5(out):
    torch.manual_seed(0)
    x, y = mnist10k("train")
    model = LeNet5()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(3):
        order = torch.randperm(len(y))
        for i in range(0, len(y), 64):
            idx = order[i:i + 64]
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    model.eval()
    xt, yt = mnist10k("t10k")
    with torch.no_grad():
        acc = (model(xt).argmax(1) == yt).float().mean().item()
    path = os.path.join(out, "lenet5-trained.onnx")
    torch.onnx.export(model, (xt[:1],), path, dynamo=False, opset_version=13,
                      do_constant_folding=False, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    print(f"wrote {path} ({os.path.getsize(path)} bytes; PyTorch test accuracy {acc:.4f})")


def export_dynamo(out, gen, logits):
    """The default exporter's fixtures: each model with a fixed batch of 1 and a dynamic batch."""
    torch.manual_seed(2)
    for name, model, shape in [
        ("lenet", LeNet5(fc1=32, fc2=16), (2, 1, 28, 28)),
        ("resnet8", ResNet8(), (2, 3, 32, 32)),
    ]:
        randomize_batchnorm(model, gen)
        model.eval()
        x = fixed_input(shape)
        with torch.no_grad():
            want = model(x).flatten().tolist()
        batch = {"dynamic_shapes": ({0: torch.export.Dim("batch")},)}
        if name == "resnet8":
            batch["optimize"] = False
        for suffix, args, options in [("", (x[:1],), {}), ("-batch", (x,), batch)]:
            path = os.path.join(out, f"{name}-dynamo{suffix}.onnx")
            for old in (path, path + ".data"):
                if os.path.exists(old):
                    os.remove(old)
            torch.onnx.export(model, args, path, **options)
            logits[f"{name}-dynamo{suffix}"] = want
            size = os.path.getsize(path) + os.path.getsize(path + ".data")
            print(f"wrote {path} and {path}.data ({size} bytes)")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/data/onnx"
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    logits = {}
    for name, model, shape in [
        ("lenet5", LeNet5(), (2, 1, 28, 28)),
        ("resnet20", ResNet20(), (2, 3, 32, 32)),
        ("resnet20-a", ResNet20(option="A"), (2, 3, 32, 32)),
    ]:
        randomize_batchnorm(model, gen)
        model.eval()
        x = fixed_input(shape)
        with torch.no_grad():
            logits[name] = model(x).flatten().tolist()
        path = os.path.join(out, f"{name}.onnx")
        torch.onnx.export(
            model,
            (x,),
            path,
            dynamo=False,
            opset_version=13,
            do_constant_folding=name.endswith("-a"),
            training=torch.onnx.TrainingMode.PRESERVE,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        )
        print(f"wrote {path} ({os.path.getsize(path)} bytes)")
    export_dynamo(out, gen, logits)
    with open(os.path.join(out, "logits.json"), "w") as f:
        json.dump({"torch": torch.__version__, "input": "(sin(0.37 i) + 1) / 2", "logits": logits}, f)
    trained_lenet5(out)


if __name__ == "__main__":
    main()
