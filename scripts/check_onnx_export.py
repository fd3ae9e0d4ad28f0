#!/usr/bin/env python3
"""Runs a bitsearch ONNX export in ONNX Runtime and compares it with bitsearch's own logits.

    python3 scripts/check_onnx_export.py DIR

DIR is what `bitsearch export` writes: model.onnx, and the check data check-input.npy (the test
batch), check-labels.npy and check-logits.npy (bitsearch's logits of its quantized model).
Prints one JSON line per ONNX Runtime configuration: top-1 agreement, the largest logit
difference, the share of examples whose logits agree within 1e-4, and both accuracies.
- "reference": graph optimizations off, so every node runs as the ONNX spec defines it;
- "float-bias": ORT's default optimizations except WeightBiasQuantization;
- "default": ORT's default optimizations. Since ORT 1.20 they include WeightBiasQuantization,
  which rounds the float bias of every Conv/Gemm between DequantizeLinear nodes to int32 codes
  at scale s_input x s_weight (what integer kernels take). bitsearch keeps biases in float, so
  at low bit widths (coarse scales) this one rewrite moves logits; with it disabled
  ("float-bias"), the optimized graph gives bitsearch's logits again.
Every format bitsearch exports runs on ORT's CPU provider (1.32 checked; opset 21 holds FLOAT8,
INT4 with blocked scales and 16-bit codes). Needs `pip install onnxruntime numpy`.
"""
import json
import os
import sys

import numpy as np
import onnxruntime as ort

d = sys.argv[1]
x = np.load(os.path.join(d, "check-input.npy"))
ours = np.load(os.path.join(d, "check-logits.npy"))
labels = np.load(os.path.join(d, "check-labels.npy"))
configs = [
    ("reference", ort.GraphOptimizationLevel.ORT_DISABLE_ALL, []),
    ("float-bias", ort.GraphOptimizationLevel.ORT_ENABLE_ALL, ["WeightBiasQuantization"]),
    ("default", ort.GraphOptimizationLevel.ORT_ENABLE_ALL, []),
]
for config, level, disabled in configs:
    options = ort.SessionOptions()
    options.graph_optimization_level = level
    sess = ort.InferenceSession(os.path.join(d, "model.onnx"), options,
                                providers=["CPUExecutionProvider"], disabled_optimizers=disabled)
    theirs = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    diff = np.abs(ours - theirs)
    print(json.dumps({
        "onnxruntime": ort.__version__,
        "config": config,
        "examples": int(x.shape[0]),
        "top1_agreement": float((ours.argmax(1) == theirs.argmax(1)).mean()),
        "max_logit_diff": float(diff.max()),
        # Examples whose logits all agree within 1e-4 of the largest |logit|: the rest moved
        # because an activation landed on the other side of a quantization step.
        "examples_within_1e-4": float((diff.max(1) <= 1e-4 * np.abs(ours).max()).mean()),
        "accuracy_bitsearch": float((ours.argmax(1) == labels).mean()),
        "accuracy_onnxruntime": float((theirs.argmax(1) == labels).mean()),
    }))
