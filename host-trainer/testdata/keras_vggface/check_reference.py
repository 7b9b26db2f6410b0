#!/usr/bin/env python3
"""Check reference_forward.py against onnxruntime, and the fixtures' layout.

    python check_reference.py [WEIGHTS.h5 ...] [--batch N] [--tol T] [--seed S]

With no file given, writes a notop and a top fixture (make_fixture.py, 8631 classes) to a
temporary directory and checks both. For each file:

1. Layout: root attributes (`layer_names` as fixed-length ASCII strings, `backend`,
   `keras_version`), one group per layer, `weight_names` resolving to float32 datasets
   of the published shapes, and the layers with weights in the order Keras' topological
   loader expects (spelled out independently below, not taken from make_fixture.py).
2. Numbers: builds the same network as an ONNX graph (NCHW; kernels HWIO -> OIHW;
   explicit TF "same" pads; BatchNormalization with epsilon 1e-3) straight from the HDF5
   file, runs it in onnxruntime (float32) and compares it with reference_forward.py
   (float64) on random preprocessed 224x224 inputs: features, and logits and
   probabilities for the top file. Error = max |ort - ref| / max |ref|.

Exits 1 if any check fails. Needs numpy, h5py, onnx, onnxruntime.
"""

import argparse
import os
import sys
import tempfile

import h5py
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_fixture  # noqa: E402  (only to write fixtures when none is given)
import reference_forward  # noqa: E402

EPS = 1e-3
STAGES = [(2, 3, 64), (3, 4, 128), (4, 6, 256), (5, 3, 512)]
BN = ["gamma", "beta", "moving_mean", "moving_variance"]


def expected_weighted_layers(top, classes):
    """[(layer, [(weight name, shape)])] in the order of keras-vggface's model.layers."""
    out = []

    def conv(name, k, cin, cout):
        out.append((name, [(f"{name}/kernel:0", (k, k, cin, cout))]))

    def bn(name, c):
        out.append((name, [(f"{name}/{w}:0", (c,)) for w in BN]))

    conv("conv1/7x7_s2", 7, 3, 64)
    bn("conv1/7x7_s2/bn", 64)
    cin = 64
    for stage, blocks, w in STAGES:
        for b in range(1, blocks + 1):
            p = f"conv{stage}_{b}"
            conv(p + "_1x1_reduce", 1, cin, w)
            bn(p + "_1x1_reduce/bn", w)
            conv(p + "_3x3", 3, w, w)
            bn(p + "_3x3/bn", w)
            conv(p + "_1x1_increase", 1, w, 4 * w)
            if b == 1:  # the two branches are interleaved by depth
                conv(p + "_1x1_proj", 1, cin, 4 * w)
            bn(p + "_1x1_increase/bn", 4 * w)
            if b == 1:
                bn(p + "_1x1_proj/bn", 4 * w)
            cin = 4 * w
    if top:
        out.append(("classifier", [("classifier/kernel:0", (2048, classes)),
                                   ("classifier/bias:0", (classes,))]))
    return out


def check_layout(path):
    """Returns (problems, top, classes)."""
    problems = []
    with h5py.File(path, "r") as f:
        root = f
        if "layer_names" not in f.attrs and "model_weights" in f:
            root = f["model_weights"]
        aid = root.attrs.get_id("layer_names")
        t = aid.get_type()
        if t.get_class() != h5py.h5t.STRING or t.is_variable_str() \
                or t.get_strpad() != h5py.h5t.STR_NULLPAD:
            problems.append("layer_names is not a fixed-length NULL-padded string array")
        for key, want in (("backend", "tensorflow"), ("keras_version", None)):
            if key not in root.attrs:
                problems.append(f"no root attribute {key}")
                continue
            v = root.attrs[key]
            v = v.decode() if isinstance(v, bytes) else str(v)
            if want and v != want:
                problems.append(f"{key} = {v!r}, want {want!r}")
        names = [n.decode() for n in root.attrs["layer_names"]]
        top = "classifier" in names
        classes = root["classifier"]["classifier/kernel:0"].shape[1] if top else 0
        want_layers = 176 if top else 174
        if len(names) != want_layers:
            problems.append(f"{len(names)} layer names, want {want_layers}")
        if len(set(names)) != len(names):
            problems.append("duplicate layer names")
        weighted = []
        for n in names:
            if n not in root:
                problems.append(f"no group for layer {n}")
                continue
            g = root[n]
            wn = g.attrs["weight_names"]
            if len(wn) == 0:
                if wn.dtype != np.float64 or wn.shape != (0,):
                    problems.append(f"{n}: empty weight_names is {wn.dtype} {wn.shape}")
                continue
            if g.attrs.get_id("weight_names").get_type().is_variable_str():
                problems.append(f"{n}: weight_names is variable-length")
            ws = []
            for w in (x.decode() for x in wn):
                if w not in g:
                    problems.append(f"{n}: weight {w} not found in its group")
                    continue
                ds = g[w]
                if ds.dtype != np.float32:
                    problems.append(f"{n}/{w}: dtype {ds.dtype}")
                ws.append((w, ds.shape))
            weighted.append((n, ws))
        want = expected_weighted_layers(top, classes)
        if [n for n, _ in weighted] != [n for n, _ in want]:
            problems.append("layers with weights are not in Keras' model.layers order")
        for (n, ws), (wn_, wws) in zip(weighted, want):
            if n == wn_ and ws != wws:
                problems.append(f"{n}: weights {ws}, want {wws}")
        # Nested groups: conv1/7x7_s2/bn lives inside conv1/7x7_s2.
        if "bn" not in root["conv1/7x7_s2"]:
            problems.append("conv1/7x7_s2/bn is not nested in conv1/7x7_s2")
    return problems, top, classes


def read_params(path):
    """{layer: {basename: float32 array}} read from the file, independently of reference_forward."""
    params = {}
    with h5py.File(path, "r") as f:
        root = f if "layer_names" in f.attrs else f["model_weights"]
        for n in (x.decode() for x in root.attrs["layer_names"]):
            g = root[n]
            for w in (x.decode() for x in g.attrs["weight_names"]):
                params.setdefault(n, {})[w.split("/")[-1].split(":")[0]] = \
                    np.asarray(g[w], dtype=np.float32)
    return params


def tf_same(size, k, s):
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2, out


def build_onnx(params, h, w):
    nodes, inits = [], []
    uid = [0]

    def fresh(prefix):
        uid[0] += 1
        return f"{prefix}_{uid[0]}"

    def const(name, arr):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    size = [h, w]

    def conv_bn(x, name, stride, same):
        k = params[name]["kernel"]  # HWIO
        kh, kw = k.shape[:2]
        if same:
            t, b, oh = tf_same(size[0], kh, stride)
            l, r, ow = tf_same(size[1], kw, stride)
        else:
            t = b = l = r = 0
            oh = (size[0] - kh) // stride + 1
            ow = (size[1] - kw) // stride + 1
        size[:] = [oh, ow]
        y = fresh("conv")
        nodes.append(helper.make_node(
            "Conv", [x, const(name + ":W", k.transpose(3, 2, 0, 1))], [y],
            kernel_shape=[kh, kw], strides=[stride, stride], pads=[t, l, b, r]))
        p = params[name + "/bn"]
        z = fresh("bn")
        nodes.append(helper.make_node(
            "BatchNormalization",
            [y] + [const(f"{name}/bn:{q}", p[q]) for q in BN], [z], epsilon=EPS))
        return z

    def op(kind, inputs, **attrs):
        y = fresh(kind.lower())
        nodes.append(helper.make_node(kind, inputs, [y], **attrs))
        return y

    x = op("Transpose", ["input"], perm=[0, 3, 1, 2])
    x = op("Relu", [conv_bn(x, "conv1/7x7_s2", 2, True)])
    x = op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2])
    size[:] = [(size[0] - 3) // 2 + 1, (size[1] - 3) // 2 + 1]
    for stage, blocks, _ in STAGES:
        for b in range(1, blocks + 1):
            p = f"conv{stage}_{b}"
            s = 2 if b == 1 and stage > 2 else 1
            entry = list(size)
            y = op("Relu", [conv_bn(x, p + "_1x1_reduce", s, False)])
            y = op("Relu", [conv_bn(y, p + "_3x3", 1, True)])
            y = conv_bn(y, p + "_1x1_increase", 1, False)
            if b == 1:
                after = list(size)
                size[:] = entry
                sc = conv_bn(x, p + "_1x1_proj", s, False)
                assert size == after
            else:
                sc = x
            x = op("Relu", [op("Add", [y, sc])])
    x = op("AveragePool", [x], kernel_shape=[7, 7], strides=[7, 7])
    nfeat = 2048 * ((size[0] - 7) // 7 + 1) * ((size[1] - 7) // 7 + 1)
    x = op("Transpose", [x], perm=[0, 2, 3, 1])  # flatten in Keras' NHWC order
    nodes.append(helper.make_node("Flatten", [x], ["features"], axis=1))
    outputs = [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", nfeat])]
    if "classifier" in params:
        c = params["classifier"]
        nodes.append(helper.make_node(
            "Gemm", ["features", const("classifier:kernel", c["kernel"]),
                     const("classifier:bias", c["bias"])], ["logits"]))
        nodes.append(helper.make_node("Softmax", ["logits"], ["probs"], axis=-1))
        classes = c["bias"].shape[0]
        outputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", classes])
                    for n in ("logits", "probs")]
    graph = helper.make_graph(
        nodes, "vggface_resnet50",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", h, w, 3])],
        outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def check_numbers(path, batch, seed, tol):
    rng = np.random.default_rng(seed)
    rgb = rng.uniform(0, 255, (batch, 224, 224, 3)).astype(np.float32)
    x = reference_forward.preprocess_v2(rgb)
    ref = reference_forward.forward(reference_forward.load_weights(path), x)
    model = build_onnx(read_params(path), 224, 224)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    got = dict(zip(names, sess.run(names, {"input": x})))
    ok = True
    for k in names:
        a, b = got[k].astype(np.float64), ref[k]
        if a.shape != b.shape:
            print(f"  {k}: shape {a.shape} vs reference {b.shape}  FAIL")
            ok = False
            continue
        d = np.abs(a - b).max()
        rel = d / np.abs(b).max()
        good = rel <= tol
        ok &= bool(good)
        print(f"  {k:8s} {str(b.shape):14s} max|ref| {np.abs(b).max():.4g}  max abs diff "
              f"{d:.3e}  rel {rel:.3e}  {'ok' if good else 'FAIL'}")
    return ok


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="*", help="HDF5 files (default: fresh notop + top fixtures)")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0, help="input seed (and fixture seed)")
    ap.add_argument("--tol", type=float, default=1e-4, help="max relative error")
    args = ap.parse_args(argv)
    tmp = None
    files = args.files
    if not files:
        tmp = tempfile.TemporaryDirectory(prefix="vggface_fixture_")
        files = [os.path.join(tmp.name, "notop.h5"), os.path.join(tmp.name, "top.h5")]
        make_fixture.write_fixture(files[0], include_top=False, seed=args.seed)
        make_fixture.write_fixture(files[1], include_top=True, seed=args.seed + 1)
    ok = True
    try:
        for path in files:
            problems, top, classes = check_layout(path)
            kind = f"top, {classes} classes" if top else "notop"
            print(f"{path} ({kind}, {os.path.getsize(path):,} bytes)")
            for p in problems:
                print(f"  layout: {p}")
            print(f"  layout {'ok' if not problems else 'FAIL'}")
            ok &= not problems
            ok &= check_numbers(path, args.batch, args.seed, args.tol)
    finally:
        if tmp:
            tmp.cleanup()
    print("all checks passed" if ok else "CHECK FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
