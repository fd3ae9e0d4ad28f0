#!/usr/bin/env python3
"""Times an ONNX model in ONNX Runtime on this host, whole and per node; `bitsearch measure` and
`bitsearch profiles calibrate --runtime onnxruntime` run it (the binary embeds this file).

    python3 scripts/ort_latency.py MODEL.onnx '{"batches": [1, 16], "repeats": 50, "threads": 2}'

Prints one JSON object: the ONNX Runtime version, the threads, and per batch size the median wall
time of `session.run` over `repeats` runs after `warmup` runs, and every node ORT ran with its
kernel (`op`, after ORT's graph optimizations, which fuse QuantizeLinear/DequantizeLinear
around a layer into integer kernels such as QLinearConv and QGemm where the pattern allows) and
its median time from ORT's profiler, in execution order.

The session is the one a deployment would use: all graph optimizations, the CPU execution
provider, `threads` intra-op threads, sequential execution. The whole-model time comes from a
session without profiling (the profiler adds its own cost to every node); the per-node times
from a second, profiled session, so their sum may differ from the whole-model time.
Needs `pip install onnxruntime numpy`.
"""
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort


def session(path, threads, profile_dir=None):
    o = ort.SessionOptions()
    o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    o.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    o.intra_op_num_threads = threads
    o.inter_op_num_threads = 1
    o.log_severity_level = 3
    if profile_dir is not None:
        o.enable_profiling = True
        o.profile_file_prefix = os.path.join(profile_dir, "ort")
    return ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])


def inputs(sess, batch):
    i = sess.get_inputs()[0]
    shape = [batch] + [d if isinstance(d, int) else 1 for d in i.shape[1:]]
    rng = np.random.default_rng(0)
    return {i.name: rng.random(shape, dtype=np.float32)}


def whole(path, batch, cfg):
    sess = session(path, cfg["threads"])
    feed = inputs(sess, batch)
    for _ in range(cfg["warmup"]):
        sess.run(None, feed)
    times = []
    for _ in range(cfg["repeats"]):
        start = time.perf_counter()
        sess.run(None, feed)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def per_node(path, batch, cfg):
    with tempfile.TemporaryDirectory() as d:
        sess = session(path, cfg["threads"], d)
        feed = inputs(sess, batch)
        for _ in range(cfg["warmup"]):
            sess.run(None, feed)
        runs = min(cfg["repeats"], 20)
        for _ in range(runs):
            sess.run(None, feed)
        with open(sess.end_profiling()) as f:
            events = json.load(f)
    order, ops, durs = [], {}, {}
    for e in events:
        name = e.get("name", "")
        if e.get("cat") != "Node" or not name.endswith("_kernel_time"):
            continue
        node = name[: -len("_kernel_time")]
        if node not in ops:
            order.append(node)
            ops[node] = e.get("args", {}).get("op_name", "")
            durs[node] = []
        durs[node].append(e["dur"])
    # The profiler records warm-up runs too: keep each node's last `runs` times.
    return [{"name": n, "op": ops[n], "s": statistics.median(durs[n][-runs:]) * 1e-6}
            for n in order]


def main():
    path, cfg = sys.argv[1], json.loads(sys.argv[2])
    cfg.setdefault("warmup", 10)
    out = {"onnxruntime": ort.__version__, "threads": cfg["threads"], "batches": []}
    for batch in cfg["batches"]:
        out["batches"].append({
            "batch": batch,
            "median_s": whole(path, batch, cfg),
            "repeats": cfg["repeats"],
            "nodes": per_node(path, batch, cfg),
        })
    print(json.dumps(out))


if __name__ == "__main__":
    main()
