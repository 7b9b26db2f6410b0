#!/usr/bin/env python3
"""Classifier latency with ONNX Runtime: the Python counterpart of the model-only numbers of
`emotion-edge bench`.

    python bench/onnxruntime_classifier.py MODEL.onnx [MODEL2.onnx ...] [--runs N] [--warmup W]

Each model runs on ONNX Runtime's CPUExecutionProvider with one intra-op and one inter-op
thread, sequential execution, full graph optimisation, batch 1, on seeded random inputs of the
model's input shape (dynamic dimensions set to 1). Only `session.run` is timed. Prints one JSON
object on stdout and a table on stderr:

    {"runtime": "onnxruntime", "version": "...", "threads": 1, "runs": N, "warmup": W,
     "models": [{"path": ..., "bytes": ..., "inputs": [...], "min_ms": ..., "median_ms": ...,
                 "p99_ms": ..., "mean_ms": ...}]}

min, median and p99 are nearest-rank over the timed runs, computed as emotion-edge computes
them (sorted; element n/2; element ceil(0.99 n) - 1).
"""

import argparse
import json
import math
import os
import platform
import sys
import time

import numpy as np
import onnxruntime as ort

ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
}


def summary_ms(samples_ns):
    """(min, median, p99) in milliseconds, nearest rank, as emotion-edge's `summary`."""
    d = sorted(samples_ns)
    n = len(d)
    p99 = min(max(math.ceil(n * 0.99), 1), n) - 1
    return d[0] / 1e6, d[n // 2] / 1e6, d[p99] / 1e6


def random_input(rng, shape, dtype):
    if np.issubdtype(dtype, np.floating):
        return rng.random(shape, dtype=np.float32).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)


def session(path, optimization):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = {
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    }[optimization]
    # With one thread there is nothing to spin for; keep it off so idle time is not burnt.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(path, sess_options=so, providers=["CPUExecutionProvider"])


def bench_model(path, runs, warmup, seed, optimization, pool):
    t0 = time.perf_counter()
    sess = session(path, optimization)
    load_ms = (time.perf_counter() - t0) * 1000
    rng = np.random.default_rng(seed)
    specs = []
    for i in sess.get_inputs():
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in i.shape]
        dtype = ORT_TYPES.get(i.type)
        if dtype is None:
            raise SystemExit(f"{path}: input {i.name} has unsupported type {i.type}")
        specs.append((i.name, shape, dtype, i.type))
    feeds = [
        {name: random_input(rng, shape, dtype) for name, shape, dtype, _ in specs}
        for _ in range(max(pool, 1))
    ]
    for k in range(warmup):
        sess.run(None, feeds[k % len(feeds)])
    samples = []
    for k in range(runs):
        feed = feeds[k % len(feeds)]
        t = time.perf_counter_ns()
        sess.run(None, feed)
        samples.append(time.perf_counter_ns() - t)
    mn, med, p99 = summary_ms(samples)
    return {
        "path": path,
        "bytes": os.path.getsize(path),
        "inputs": [{"name": n, "shape": s, "type": t} for n, s, _, t in specs],
        "outputs": [o.name for o in sess.get_outputs()],
        "load_ms": round(load_ms, 3),
        "min_ms": round(mn, 4),
        "median_ms": round(med, 4),
        "p99_ms": round(p99, 4),
        "mean_ms": round(sum(samples) / len(samples) / 1e6, 4),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", help="ONNX model files")
    ap.add_argument("--runs", type=int, default=1000, help="timed runs per model (1000)")
    ap.add_argument("--warmup", type=int, default=50, help="untimed runs first (50)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random inputs (0)")
    ap.add_argument("--pool", type=int, default=16,
                    help="distinct random inputs, used in turn (16)")
    ap.add_argument("--optimization", choices=["all", "extended", "basic", "none"],
                    default="all", help="ONNX Runtime graph optimisation level (all)")
    args = ap.parse_args()
    if args.runs < 1 or args.warmup < 0:
        ap.error("--runs must be at least 1 and --warmup at least 0")

    models = [bench_model(p, args.runs, args.warmup, args.seed, args.optimization, args.pool)
              for p in args.models]
    out = {
        "runtime": "onnxruntime",
        "version": ort.__version__,
        "provider": "CPUExecutionProvider",
        "threads": 1,
        "batch": 1,
        "optimization": args.optimization,
        "runs": args.runs,
        "warmup": args.warmup,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "models": models,
    }
    print(f"onnxruntime {ort.__version__}, CPUExecutionProvider, 1 thread, batch 1, "
          f"{args.runs} runs after {args.warmup} warm-up", file=sys.stderr)
    print(f"{'model':<40} {'bytes':>9} {'min ms':>8} {'median':>8} {'p99':>8}",
          file=sys.stderr)
    for m in models:
        name = m["path"] if len(m["path"]) <= 40 else "..." + m["path"][-37:]
        print(f"{name:<40} {m['bytes']:>9} {m['min_ms']:>8.3f} {m['median_ms']:>8.3f} "
              f"{m['p99_ms']:>8.3f}", file=sys.stderr)
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
