#!/usr/bin/env python3
"""Runs a bitsearch ONNX export in ONNX Runtime and compares it with bitsearch's own logits.

    python3 scripts/check_onnx_export.py DIR     (DIR/model.onnx, DIR/check.json)

check.json holds the input batch, labels and bitsearch's logits. Prints one JSON line per
ONNX Runtime configuration: top-1 agreement, the largest logit difference, and both accuracies.
- "reference": graph optimizations off, so every node runs as the ONNX spec defines it;
- "default": ORT's default optimizations, which rewrite a QDQ graph (drop ReLUs before
  quantizers, move Q/DQ pairs across max-pools, fuse into integer kernels such as QGemm).
Needs `pip install onnxruntime numpy`.
"""
import json
import sys

import numpy as np
import onnxruntime as ort

d = sys.argv[1]
c = json.load(open(f"{d}/check.json"))
x = np.asarray(c["input"], dtype=np.float32).reshape(c["shape"])
ours = np.asarray(c["logits"], dtype=np.float32).reshape(x.shape[0], -1)
labels = np.asarray(c["labels"])
for config, level in [("reference", ort.GraphOptimizationLevel.ORT_DISABLE_ALL),
                      ("default", ort.GraphOptimizationLevel.ORT_ENABLE_ALL)]:
    options = ort.SessionOptions()
    options.graph_optimization_level = level
    sess = ort.InferenceSession(f"{d}/model.onnx", options, providers=["CPUExecutionProvider"])
    theirs = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    print(json.dumps({
        "onnxruntime": ort.__version__,
        "config": config,
        "examples": int(x.shape[0]),
        "top1_agreement": float((ours.argmax(1) == theirs.argmax(1)).mean()),
        "max_logit_diff": float(np.abs(ours - theirs).max()),
        # Examples whose logits all agree within 1e-4 of the largest |logit|: the rest moved
        # because an activation landed on the other side of a quantization step.
        "examples_within_1e-4": float((np.abs(ours - theirs).max(1) <= 1e-4 * np.abs(ours).max()).mean()),
        "accuracy_bitsearch": float((ours.argmax(1) == labels).mean()),
        "accuracy_onnxruntime": float((theirs.argmax(1) == labels).mean()),
    }))
