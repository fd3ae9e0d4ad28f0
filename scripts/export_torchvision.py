#!/usr/bin/env python3
"""Exports torchvision's CNN families to ONNX with PyTorch's default exporter, and the logits
PyTorch computes on a fixed input, so bitsearch's import can be checked against PyTorch.

    python3 scripts/export_torchvision.py mini [OUT_DIR]   (default: tests/data/onnx/torchvision)
    python3 scripts/export_torchvision.py full OUT_DIR     (the named models; ~150 MB, not committed)

Environment: torch 2.15 with onnx and onnxscript, and torchvision 0.29.2 (it declares
torch >= 2.14, so it runs on 2.15: `pip install --no-deps torchvision==0.29.2 pillow`, or into
its own directory with `pip install --target DIR torchvision==0.29.2 pillow --no-deps` and
PYTHONPATH=DIR). The models are torchvision's own classes; nothing here re-writes them.

`mini` writes, for CI, one small member of each family built from torchvision's own classes
and blocks with small settings (each file and its .data under ~0.3 MB), for 3x32x32 images
and 10 classes:
- resnet-mini: torchvision's ResNet stem (7x7 conv stride 2, BN, ReLU, MaxPool(3, 2, 1)) and
  one BasicBlock per stage at 8, 16, 32 and 64 channels (torchvision's ResNet class fixes
  64..512 channels, 11 M parameters for resnet18);
- mobilenet_v2-mini: MobileNetV2(width_mult=0.5) with the first three rows of its setting;
- mobilenet_v3-mini: MobileNetV3 with three InvertedResidualConfig rows (SE + ReLU, SE +
  HardSwish, HardSwish) and last_channel 64;
- efficientnet-mini: EfficientNet with two MBConvConfig stages (SiLU, SE with SiLU and
  Sigmoid);
- squeezenet-mini: SqueezeNet 1_1 with its features cut to a stem, two ceil-mode pools and two
  Fire modules of 8 + 8 channels, and a 16-channel final conv;
- shufflenet-mini: ShuffleNetV2(stages_repeats=[2, 1, 1], stages_out_channels=[8, 16, 32,
  64, 64]) (Split, Concat, channel shuffle);
- densenet-mini: DenseNet(growth_rate=8, block_config=(2, 2, 2, 2), num_init_features=16,
  bn_size=2) (Concat, BatchNorm on concatenated features);
- regnet-mini: RegNet of BlockParams.from_init_params(depth=4, w_0=8, w_a=8, w_m=2,
  group_width=8, se_ratio=0.25) with a stem of 8 (grouped convs, SE with Sigmoid).

`full` writes the named models, num_classes=10 (the classifier is the only change), at their
own 3x224x224 input and at 3x32x32: resnet18, mobilenet_v2, mobilenet_v3_small,
efficientnet_b0, squeezenet1_1, shufflenet_v2_x0_5, densenet121, regnet_y_400mf; and resnet18
and mobilenet_v2 with the stem conv taking one channel, at 1x28x28 (Fashion-MNIST's images).

Weights: PyTorch's initialization under a fixed seed, then every BatchNorm's running
statistics and affine parameters drawn at random (as scripts/export_onnx.py does), so no
BatchNorm is the identity. Each model is exported on one image (batch fixed at 1; bitsearch
runs any batch) with `torch.onnx.export(model, (x,), path)`: NAME.onnx and NAME.onnx.data.
logits.json in OUT_DIR holds, per model, its input (C, H, W) and PyTorch's logits on a batch
of 2 fixed inputs, x[i] = (sin(0.37 * i) + 1) / 2 over the flattened batch.
"""

import json
import math
import os
import sys

import torch
import torch.nn as nn
import torchvision
from torchvision import models
from torchvision.models.efficientnet import MBConvConfig
from torchvision.models.mobilenetv3 import InvertedResidualConfig
from torchvision.models.regnet import BlockParams
from torchvision.models.resnet import BasicBlock
from torchvision.models.squeezenet import Fire


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


class ResNetMini(nn.Module):
    """torchvision's ResNet forward (stem, four stages, pool, fc) at 8..64 channels."""

    def __init__(self, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        stages, cin = [], 8
        for i, cout in enumerate([8, 16, 32, 64]):
            stride = 1 if i == 0 else 2
            down = None
            if stride != 1 or cin != cout:
                down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            stages.append(BasicBlock(cin, cout, stride, down))
            cin = cout
        self.layers = nn.Sequential(*stages)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(self.avgpool(self.layers(x)), 1))


def squeezenet_mini():
    m = models.squeezenet1_1(num_classes=10)
    m.features = nn.Sequential(
        nn.Conv2d(3, 16, 3, 2), nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2, ceil_mode=True), Fire(16, 4, 8, 8),
        nn.MaxPool2d(3, 2, ceil_mode=True), Fire(16, 4, 8, 8))
    m.classifier[1] = nn.Conv2d(16, 10, 1)
    return m


def mobilenet_v3_mini():
    rows = [InvertedResidualConfig(*r, 1, 1.0) for r in [
        (16, 3, 16, 16, True, "RE", 2),
        (16, 5, 48, 24, True, "HS", 2),
        (24, 3, 64, 24, False, "HS", 1),
    ]]
    return models.MobileNetV3(rows, last_channel=64, num_classes=10)


MINI = {
    "resnet-mini": lambda: ResNetMini(),
    "mobilenet_v2-mini": lambda: models.MobileNetV2(
        num_classes=10, width_mult=0.5,
        inverted_residual_setting=[[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 2, 2]]),
    "mobilenet_v3-mini": mobilenet_v3_mini,
    "efficientnet-mini": lambda: models.EfficientNet(
        [MBConvConfig(1, 3, 1, 16, 8, 1), MBConvConfig(4, 5, 2, 8, 16, 2)],
        dropout=0.2, num_classes=10, last_channel=64),
    "squeezenet-mini": squeezenet_mini,
    "shufflenet-mini": lambda: models.ShuffleNetV2([2, 1, 1], [8, 16, 32, 64, 64], num_classes=10),
    "densenet-mini": lambda: models.DenseNet(8, (2, 2, 2, 2), 16, bn_size=2, num_classes=10),
    "regnet-mini": lambda: models.RegNet(
        BlockParams.from_init_params(depth=4, w_0=8, w_a=8, w_m=2, group_width=8, se_ratio=0.25),
        num_classes=10, stem_width=8),
}

NAMED = ["resnet18", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0", "squeezenet1_1",
         "shufflenet_v2_x0_5", "densenet121", "regnet_y_400mf"]


def gray(model, name):
    """The same network whose stem conv takes one channel (Fashion-MNIST's gray images)."""
    if name == "resnet18":
        model.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    else:
        old = model.features[0][0]
        model.features[0][0] = nn.Conv2d(1, old.out_channels, 3, 2, 1, bias=False)
    return model


def export(name, model, shape, out, gen, table):
    randomize_batchnorm(model, gen)
    model.eval()
    x = fixed_input((2, *shape))
    with torch.no_grad():
        want = model(x).flatten().tolist()
    path = os.path.join(out, f"{name}.onnx")
    for old in (path, path + ".data"):
        if os.path.exists(old):
            os.remove(old)
    torch.onnx.export(model, (x[:1],), path)
    size = os.path.getsize(path) + (os.path.getsize(path + ".data") if os.path.exists(path + ".data") else 0)
    table[name] = {"input": list(shape), "logits": want}
    print(f"wrote {path} ({size} bytes)", flush=True)


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "mini"
    out = sys.argv[2] if len(sys.argv) > 2 else "tests/data/onnx/torchvision"
    os.makedirs(out, exist_ok=True)
    gen = torch.Generator().manual_seed(1)
    table = {}
    if mode == "mini":
        for i, (name, build) in enumerate(MINI.items()):
            torch.manual_seed(i)
            export(name, build(), (3, 32, 32), out, gen, table)
    elif mode == "full":
        for i, name in enumerate(NAMED):
            for shape in [(3, 224, 224), (3, 32, 32)]:
                torch.manual_seed(i)
                model = getattr(models, name)(num_classes=10)
                export(f"{name}-{shape[1]}", model, shape, out, gen, table)
            if name in ("resnet18", "mobilenet_v2"):
                torch.manual_seed(i)
                model = gray(getattr(models, name)(num_classes=10), name)
                export(f"{name}-28", model, (1, 28, 28), out, gen, table)
    else:
        sys.exit(f"unknown mode {mode!r}: mini or full")
    with open(os.path.join(out, "logits.json"), "w") as f:
        json.dump({"torch": torch.__version__, "torchvision": torchvision.__version__,
                   "input": "(sin(0.37 i) + 1) / 2", "models": table}, f)


if __name__ == "__main__":
    main()
