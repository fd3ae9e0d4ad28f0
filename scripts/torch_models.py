"""The models of bitsearch's zoo (src/model/arch.rs) in PyTorch, as bitsearch runs them, for
scripts/torch_reference.py (speed) and scripts/torch_train.py (FP32 accuracy): QNet (lenet5,
cnn6), QResNet20, QMobileNet and QViT, with bitsearch's fake quantizers (src/quant/fake.rs, and
src/quant/signed.rs for the ViT's signed inputs).

Every model takes images in [0, 1] and standardizes them inside, after the first layer's
activation quantizer, as src/model/exec.rs does. The BatchNorm networks (QResNet20, QMobileNet)
normalize by batch statistics while `train_bn` is set (FP32 training, `Model::forward_train`);
every other pass folds each BN into its conv with the running statistics (src/model/bn.rs).
A fresh model's weights and biases are U(−1/√fan_in, 1/√fan_in), PyTorch's default init and
bitsearch's (src/model/net.rs), drawn from another generator."""
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# Each quantizable layer's name in a bitsearch model.safetensors (`{name}.weight`, `.bias`).
LAYER_NAMES = {"lenet5": ["conv1", "conv2", "fc1", "fc2", "fc3"],
               "cnn6": ["conv1", "conv2", "conv3", "conv4", "fc1", "fc2"],
               "resnet20": ["conv"] + [f"s{s}b{b}.conv{c}" for s in (1, 2, 3) for b in (1, 2, 3) for c in (1, 2)] + ["fc"],
               "mobilenet": ["conv"] + [f"b{b}.{k}" for b in range(1, 6) for k in ("dw", "pw")] + ["fc"],
               "vit": ["patch"] + [f"b{b}.{k}" for b in range(1, 4) for k in ("qkv", "proj", "fc1", "fc2")] + ["head"]}
FULL = 32
CHANNELS_LAST = True  # torch_reference.py --nchw turns it off

# ---- fake quantizers (src/quant/fake.rs) ----

def fq_weight_unfused(w, bits):
    """Symmetric per-output-channel fake quantizer, straight-through: the unfused formulation."""
    if bits >= FULL:
        return w
    if bits == 1:  # sign(w) · mean|w_c|: there is no symmetric 1-bit grid with zero
        m = w.detach().abs().flatten(1).mean(1).view(-1, *([1] * (w.dim() - 1)))
        return w + (torch.sign(w.detach()) * m - w).detach()
    n = 2 ** (bits - 1) - 1
    m = w.detach().abs().flatten(1).max(1).values.clamp_min(1e-12)
    s = (m / n).view(-1, *([1] * (w.dim() - 1)))
    q = torch.clamp(torch.round(w / s), -n, n) * s
    return w + (q - w).detach()


def fq_act_unfused(x, bits, clip=1.0):
    """Unsigned activation fake quantizer over [0, clip], straight-through: the unfused formulation."""
    if bits >= FULL:
        return x
    if not (clip > 0 and math.isfinite(clip)):
        return x - x.detach()  # zero forward, identity backward (src/quant/fake.rs)
    step = clip / (2 ** bits - 1)
    q = torch.round(x.clamp(0, clip) / step) * step
    return x + (q - x).detach()


_ZERO_POINTS = {}


def fq_weight(w, bits):
    """The fused per-channel kernel: scale max|w_c| / n (detached), zero point 0, range [-n, n]."""
    if bits >= FULL or bits == 1:
        return fq_weight_unfused(w, bits)
    n = 2 ** (bits - 1) - 1
    with torch.no_grad():
        scale = w.abs().flatten(1).amax(1).clamp_min(1e-12) / n
    zp = _ZERO_POINTS.get(w.shape[0])
    if zp is None:
        zp = _ZERO_POINTS[w.shape[0]] = torch.zeros(w.shape[0], dtype=torch.int32)
    return torch.fake_quantize_per_channel_affine(w, scale, zp, 0, -n, n)


def fq_act(x, bits, clip=1.0):
    """The fused per-tensor kernel: scale clip / (2^a - 1), zero point 0, range [0, 2^a - 1]."""
    if bits >= FULL or not (clip > 0 and math.isfinite(clip)):
        return fq_act_unfused(x, bits, clip)
    levels = 2 ** bits - 1
    return torch.fake_quantize_per_tensor_affine(x, clip / levels, 0, 0, levels)


FQ = {"fused": (fq_weight, fq_act), "unfused": (fq_weight_unfused, fq_act_unfused)}


def signed_levels(bits):
    """Steps a side of the signed grid (src/quant/signed.rs): 2^(a-1) - 1, ternary at 1 bit."""
    return 2 ** max(bits - 1, 1) - 1


def fq_signed_unfused(x, bits, clip=1.0):
    """Signed activation fake quantizer over [-clip, clip], L steps a side, straight-through."""
    if bits >= FULL:
        return x
    if not (clip > 0 and math.isfinite(clip)):
        return x - x.detach()
    step = clip / signed_levels(bits)
    q = torch.round(x.clamp(-clip, clip) / step) * step
    return x + (q - x).detach()


def fq_signed(x, bits, clip=1.0):
    """The fused per-tensor kernel of the signed grid: zero point 0, range [-L, L]."""
    if bits >= FULL or not (clip > 0 and math.isfinite(clip)):
        return fq_signed_unfused(x, bits, clip)
    levels = signed_levels(bits)
    return torch.fake_quantize_per_tensor_affine(x, clip / levels, 0, -levels, levels)


FQ_SIGNED = {"fused": fq_signed, "unfused": fq_signed_unfused}


class QNet(nn.Module):
    """conv: relu(conv(q_a(x), q_w(W)) + b), linear: relu(q_a(x) @ q_w(W)ᵀ + b), no ReLU after the
    last layer; the input standardization after the first layer's activation quantizer."""

    def __init__(self, arch, mean=0.0, std=1.0, fq="fused", channels_last=None):
        super().__init__()
        if arch == "lenet5":
            self.layers = nn.ModuleList([nn.Conv2d(1, 6, 5), nn.Conv2d(6, 16, 5), nn.Linear(256, 120), nn.Linear(120, 84), nn.Linear(84, 10)])
            self.pool_after = (0, 1)
        elif arch == "cnn6":
            self.layers = nn.ModuleList([nn.Conv2d(1, 16, 3, padding=1), nn.Conv2d(16, 16, 3, padding=1), nn.Conv2d(16, 32, 3, padding=1),
                                         nn.Conv2d(32, 32, 3, padding=1), nn.Linear(32 * 7 * 7, 128), nn.Linear(128, 10)])
            self.pool_after = (1, 3)
        else:
            raise SystemExit(f"unknown arch {arch!r} (lenet5, cnn6, resnet20, mobilenet or vit)")
        shape = (1, -1, 1, 1)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).reshape(shape))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).reshape(shape))
        self.fq_w, self.fq_a = FQ[fq]
        self.eyes = [torch.eye(l.weight.shape[0]) for l in self.layers]
        self.quant = None  # None for FP32, else a tuple of (w bits, a bits, clip) per layer
        if (CHANNELS_LAST if channels_last is None else channels_last):
            # NHWC conv weights make oneDNN run the convs, pools and ReLUs channels-last, PyTorch's
            # advice for CNNs on CPU and the faster layout here (BENCHMARKS.md). A 1-channel image
            # is already channels-last, so the inputs need no conversion.
            self.to(memory_format=torch.channels_last)

    def set_quant(self, policy, clips=None):
        """policy: [(w, a)] per layer (32 = full precision); clips[l][a - 1]: layer l's clip at a bits."""
        if policy is None:
            self.quant = None
        else:
            self.quant = tuple((w, a, float(clips[i][a - 1]) if clips is not None and a < FULL else 1.0)
                               for i, (w, a) in enumerate(policy))

    def forward(self, x):
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            if isinstance(layer, nn.Linear) and x.dim() > 2:
                x = x.flatten(1)
            if self.quant is not None:
                wb, ab, clip = self.quant[i]
                x = self.fq_a(x, ab, clip)
                w = self.fq_w(layer.weight, wb)
            else:
                w = layer.weight
            if i == 0:
                x = (x - self.mean) / self.std
            x = F.conv2d(x, w, layer.bias, layer.stride, layer.padding) if isinstance(layer, nn.Conv2d) else F.linear(x, w, layer.bias)
            if i < last:
                x = F.relu(x)
            if i in self.pool_after:
                x = F.max_pool2d(x, 2)
        return x

    def penalty(self):
        """Σ_l ||W_l W_lᵀ − I||_F², conv weights flattened to c_out × (c_in·k·k) (src/train/penalty.rs)."""
        total = 0.0
        for layer, eye in zip(self.layers, self.eyes):
            w = layer.weight.flatten(1)
            total = total + ((w @ w.t() - eye) ** 2).sum()
        return total


class FoldedBNNet(nn.Module):
    """The part QResNet20 and QMobileNet share: convs each followed by a BatchNorm, a global
    average pool and one fc. As bitsearch runs them: FP32 training (`train_bn`) uses the batch
    statistics; every other pass folds each BN into its conv with the running statistics
    (w·γ/σ, β − μ·γ/σ) and fake-quantizes the folded weight, the fold written in autograd ops
    so a fine-tune trains w, γ and β (src/model/bn.rs). BN: eps 1e-5, momentum 0.1, PyTorch's
    defaults and bitsearch's."""

    def setup(self, convs, classes, mean, std, fq, channels_last):
        self.convs = nn.ModuleList(convs)
        self.bns = nn.ModuleList([nn.BatchNorm2d(c.out_channels) for c in convs])
        self.fc = nn.Linear(convs[-1].out_channels, classes)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1))
        self.fq_w, self.fq_a = FQ[fq]
        self.eyes = [torch.eye(c.out_channels) for c in convs] + [torch.eye(classes)]
        self.quant, self.train_bn = None, False
        if (CHANNELS_LAST if channels_last is None else channels_last):
            self.to(memory_format=torch.channels_last)

    set_quant = QNet.set_quant

    def folded(self, i):
        conv, bn = self.convs[i], self.bns[i]
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        return conv.weight * scale.reshape(-1, 1, 1, 1), (conv.bias - bn.running_mean) * scale + bn.bias

    def conv(self, i, x):
        """Conv i and its BN, before the activation; the input standardized at the first."""
        conv = self.convs[i]
        if self.train_bn:
            w, b = conv.weight, conv.bias
        else:
            w, b = self.folded(i)
            if self.quant is not None:
                wb, ab, clip = self.quant[i]
                x, w = self.fq_a(x, ab, clip), self.fq_w(w, wb)
        if i == 0:
            x = (x - self.mean) / self.std
        y = F.conv2d(x, w, b, conv.stride, conv.padding, 1, conv.groups)
        return self.bns[i](y) if self.train_bn else y

    def head(self, x):
        """Global average pool, flatten, fc (the logits)."""
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        w = self.fc.weight
        if self.quant is not None:
            wb, ab, clip = self.quant[-1]
            x, w = self.fq_a(x, ab, clip), self.fq_w(w, wb)
        return F.linear(x, w, self.fc.bias)

    def penalty(self):
        """Σ_l ||W_l W_lᵀ − I||_F² over the folded conv weights and the fc's (src/train/penalty.rs
        on `Model::weights`)."""
        total = 0.0
        for w, eye in zip([self.folded(i)[0] for i in range(len(self.convs))] + [self.fc.weight], self.eyes):
            w = w.flatten(1)
            total = total + ((w @ w.t() - eye) ** 2).sum()
        return total


class QResNet20(FoldedBNNet):
    """The zoo's resnet20 (src/model/arch.rs `cifar_resnet`): a 3x3 conv (16), three stages of
    three basic blocks (16, 32, 64 channels; the 2nd and 3rd start at stride 2 with the option-A
    shortcut: every 2nd row and column, channels zero-padded half before and half after, as
    src/model/exec.rs `shortcut_a`), GAP, fc: 19 convs with BatchNorm and one fc. On 28x28
    inputs the stages run at 28, 14 and 7 pixels."""

    def __init__(self, mean=0.0, std=1.0, fq="fused", channels_last=None, channels=3, classes=10):
        super().__init__()
        convs, self.blocks = [nn.Conv2d(channels, 16, 3, 1, 1)], []
        cin = 16
        for stage, cout in enumerate([16, 32, 64]):
            for b in range(3):
                stride = 2 if stage > 0 and b == 0 else 1
                self.blocks.append((len(convs), stride, (cout - cin) // 2 if stride != 1 or cin != cout else None))
                convs += [nn.Conv2d(cin, cout, 3, stride, 1), nn.Conv2d(cout, cout, 3, 1, 1)]
                cin = cout
        self.setup(convs, classes, mean, std, fq, channels_last)

    def forward(self, x):
        x = F.relu(self.conv(0, x))
        for first, stride, pad in self.blocks:
            out = self.conv(first + 1, F.relu(self.conv(first, x)))
            short = x if pad is None else F.pad(x[:, :, ::stride, ::stride], (0, 0, 0, 0, pad, pad))
            x = F.relu(out + short)
        return self.head(x)


class QMobileNet(FoldedBNNet):
    """The zoo's mobilenet (src/model/arch.rs `mobilenet`): a 3x3 conv (16), five
    depthwise-separable blocks (a 3x3 depthwise conv at the block's stride, then a 1x1 conv) with
    (out, stride) = (32, 1), (64, 2), (64, 1), (128, 2), (128, 1), each conv with BatchNorm and
    ReLU6, GAP, fc: 11 convs and one fc."""

    def __init__(self, mean=0.0, std=1.0, fq="fused", channels_last=None, channels=3, classes=10):
        super().__init__()
        convs, cin = [nn.Conv2d(channels, 16, 3, 1, 1)], 16
        for cout, stride in [(32, 1), (64, 2), (64, 1), (128, 2), (128, 1)]:
            convs += [nn.Conv2d(cin, cin, 3, stride, 1, groups=cin), nn.Conv2d(cin, cout, 1)]
            cin = cout
        self.setup(convs, classes, mean, std, fq, channels_last)

    def forward(self, x):
        for i in range(len(self.convs)):
            x = F.relu6(self.conv(i, x))
        return self.head(x)


class QViT(nn.Module):
    """The zoo's vit (src/model/vit.rs): 7x7 patches on 28x28 (a conv, its pixels as tokens), a
    class token and a position embedding, three pre-norm blocks (LayerNorm, one qkv linear, 4
    heads, proj; LayerNorm, fc1, exact GELU, fc2) of 64 features, LayerNorm, the head on the
    class token. Every linear layer after the patch conv reads signed activations."""

    def __init__(self, mean=0.0, std=1.0, fq="fused", channels=1, classes=10, size=28, dim=64, heads=4, depth=3, ratio=2):
        super().__init__()
        patch = -(-size // 4)
        self.patch = nn.Conv2d(channels, dim, patch, stride=patch)
        tokens = (size // patch) ** 2
        self.cls = nn.Parameter(torch.randn(dim) * 0.02)
        self.pos = nn.Parameter(torch.randn(tokens + 1, dim) * 0.02)
        block = lambda: nn.ModuleDict({"ln1": nn.LayerNorm(dim), "qkv": nn.Linear(dim, 3 * dim), "proj": nn.Linear(dim, dim),
                                       "ln2": nn.LayerNorm(dim), "fc1": nn.Linear(dim, ratio * dim), "fc2": nn.Linear(ratio * dim, dim)})
        self.blocks = nn.ModuleList([block() for _ in range(depth)])
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, classes)
        self.layers = [self.patch] + [b[k] for b in self.blocks for k in ("qkv", "proj", "fc1", "fc2")] + [self.head]
        self.heads, self.dim = heads, dim
        shape = (1, -1, 1, 1)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).reshape(shape))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).reshape(shape))
        self.fq_w, self.fq_a = FQ[fq]
        self.fq_s = FQ_SIGNED[fq]
        self.eyes = [torch.eye(l.weight.shape[0]) for l in self.layers]
        self.quant = None
        self.train_bn = False  # no BatchNorm; torch_reference.py sets it on every model

    set_quant = QNet.set_quant
    penalty = QNet.penalty

    def layer(self, i, x):
        layer = self.layers[i]
        w = layer.weight
        if self.quant is not None:
            wb, ab, clip = self.quant[i]
            x = (self.fq_a if i == 0 else self.fq_s)(x, ab, clip)
            w = self.fq_w(w, wb)
        if i == 0:
            x = (x - self.mean) / self.std
            return F.conv2d(x, w, layer.bias, layer.stride)
        return F.linear(x, w, layer.bias)

    def forward(self, x):
        x = self.layer(0, x).flatten(2).transpose(1, 2)
        n, t, d = x.shape
        x = torch.cat([self.cls.expand(n, 1, d), x], 1) + self.pos
        h, dh = self.heads, d // self.heads
        for b, blk in enumerate(self.blocks):
            i = 1 + 4 * b
            q, k, v = self.layer(i, blk["ln1"](x)).split(d, -1)
            q, k, v = (z.reshape(n, t + 1, h, dh).transpose(1, 2) for z in (q, k, v))
            a = (q @ k.transpose(-2, -1) * dh ** -0.5).softmax(-1)
            x = x + self.layer(i + 1, (a @ v).transpose(1, 2).reshape(n, t + 1, d))
            x = x + self.layer(i + 3, F.gelu(self.layer(i + 2, blk["ln2"](x))))
        return self.layer(len(self.layers) - 1, self.norm(x)[:, 0])


def make_model(arch, mean, std, fq="fused", channels=1, classes=10):
    """The zoo's `arch` for inputs of `channels` channels (QNet's lenet5 and cnn6: 1x28x28)."""
    if arch not in LAYER_NAMES:
        raise SystemExit(f"unknown arch {arch!r} (lenet5, cnn6, resnet20, mobilenet or vit)")
    if arch == "resnet20":
        return QResNet20(mean, std, fq, channels=channels, classes=classes)
    if arch == "mobilenet":
        return QMobileNet(mean, std, fq, channels=channels, classes=classes)
    if arch == "vit":
        return QViT(mean, std, fq, channels=channels, classes=classes)
    if channels != 1 or classes != 10:
        raise SystemExit(f"{arch} is built here for 1x28x28 inputs and 10 classes only, not {channels} channels and {classes} classes")
    return QNet(arch, mean, std, fq)


def load_bitsearch(model, arch, tensors):
    """Fills `model` from a bitsearch model.safetensors read as {name: array} (src/model/net.rs
    `save`): every layer's `{name}.weight` and `.bias`, its BatchNorm's `.bn.weight`, `.bn.bias`,
    `.bn.running_mean` and `.bn.running_var`, and the input standardization `input.mean`/`.std`."""
    if isinstance(model, QNet):
        slots = [(layer, None) for layer in model.layers]
    else:
        slots = list(zip(model.convs, model.bns)) + [(model.fc, None)]
    names = LAYER_NAMES[arch]
    if len(names) != len(slots):
        raise SystemExit(f"{arch}: {len(names)} layer names for {len(slots)} layers")
    pairs = [("input.mean", model.mean), ("input.std", model.std)]
    for name, (layer, bn) in zip(names, slots):
        pairs += [(f"{name}.weight", layer.weight), (f"{name}.bias", layer.bias)]
        if bn is not None:
            pairs += [(f"{name}.bn.{k}", getattr(bn, k)) for k in ("weight", "bias", "running_mean", "running_var")]
    with torch.no_grad():
        for key, dst in pairs:
            if key not in tensors:
                raise SystemExit(f"{key}: missing from the bitsearch weights (not a {arch} model?)")
            src = torch.from_numpy(np.asarray(tensors[key], dtype=np.float32))
            if src.numel() != dst.numel():
                raise SystemExit(f"{key}: {list(src.shape)} in the bitsearch weights, {list(dst.shape)} in the {arch} model")
            dst.copy_(src.reshape(dst.shape))
