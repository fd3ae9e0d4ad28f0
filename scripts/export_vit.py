#!/usr/bin/env python3
"""Exports a small vision transformer to ONNX with PyTorch's default exporter, and the logits
PyTorch computes on a fixed input, so bitsearch's import of a ViT can be checked against PyTorch.

    python3 scripts/export_vit.py [OUT_DIR]   (default: tests/data/onnx/vit)

Environment: torch 2.15 with onnx and onnxscript. The ViT is written here in plain PyTorch, the
way timm and the tutorials write one: a patch embedding (Conv2d with kernel = stride = patch,
flatten(2).transpose(1, 2)), a class token (expanded and concatenated) and a learned position
embedding, pre-norm blocks of LayerNorm, one qkv Linear split into q, k, v, heads by reshape and
permute, softmax(q kᵀ · scale) v, a projection, LayerNorm, an MLP with the exact GELU, and the
head on the class token after a final LayerNorm. It is bitsearch's zoo `vit` at a smaller size
(dim 32, 2 heads, 2 blocks) for 1x28x28 images (7x7 patches) and 10 classes.

Weights: PyTorch's initialization under a fixed seed, the class token, position embedding and
every LayerNorm's γ and β then drawn at random, so none is the identity. Exported on one image
(batch fixed at 1; bitsearch runs any batch) with `torch.onnx.export(model, (x,), path)`:
vit-mini.onnx (and vit-mini.onnx.data when the exporter writes one). logits.json holds its input
(C, H, W) and PyTorch's logits on a batch of 2 fixed inputs, x[i] = (sin(0.37 * i) + 1) / 2 over
the flattened batch.
"""

import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, dim, heads, ratio):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.fc1, self.fc2 = nn.Linear(dim, ratio * dim), nn.Linear(ratio * dim, dim)
        self.heads = heads

    def forward(self, x):
        n, t, d = x.shape
        h = self.heads
        q, k, v = self.qkv(self.ln1(x)).reshape(n, t, 3, h, d // h).permute(2, 0, 3, 1, 4)
        a = (q @ k.transpose(-2, -1) * (d // h) ** -0.5).softmax(dim=-1)
        x = x + self.proj((a @ v).transpose(1, 2).reshape(n, t, d))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class ViT(nn.Module):
    def __init__(self, channels=1, size=28, patch=7, dim=32, heads=2, depth=2, ratio=2, classes=10):
        super().__init__()
        self.patch = nn.Conv2d(channels, dim, patch, stride=patch)
        tokens = (size // patch) ** 2
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.zeros(1, tokens + 1, dim))
        self.blocks = nn.ModuleList([Block(dim, heads, ratio) for _ in range(depth)])
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, classes)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        for b in self.blocks:
            x = b(x)
        return self.head(self.norm(x)[:, 0])


def fixed_input(shape):
    n = math.prod(shape)
    x = [(math.sin(0.37 * i) + 1.0) / 2.0 for i in range(n)]
    return torch.tensor(x, dtype=torch.float32).reshape(shape)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/data/onnx/vit"
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    model = ViT()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        model.cls.normal_(0, 0.5, generator=gen)
        model.pos.normal_(0, 0.5, generator=gen)
        for m in model.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.uniform_(-0.5, 0.5, generator=gen)
    model.eval()
    shape = (1, 28, 28)
    x = fixed_input((2, *shape))
    with torch.no_grad():
        want = model(x).flatten().tolist()
    path = os.path.join(out, "vit-mini.onnx")
    for old in (path, path + ".data"):
        if os.path.exists(old):
            os.remove(old)
    torch.onnx.export(model, (x[:1],), path)
    with open(os.path.join(out, "logits.json"), "w") as f:
        json.dump({"torch": torch.__version__, "input": "(sin(0.37 i) + 1) / 2",
                   "models": {"vit-mini": {"input": list(shape), "logits": want}}}, f)
    print(f"wrote {path}", flush=True)


if __name__ == "__main__":
    main()
