#!/usr/bin/env python3
"""Independent forward pass of the published FER2013 mini-Xception (fer's emotion_model.hdf5).

numpy + h5py only (no TensorFlow, no Keras): the layer graph is read from the file's own
`model_config` (Keras 2 JSON) and run layer by layer with TensorFlow's arithmetic (NHWC,
`same` padding with the odd pixel at the bottom/right, batch norm epsilon from the config).

    reference_forward.py MODEL.hdf5 INPUTS.f32 N > logits.json

INPUTS.f32: N x 64 x 64 little-endian float32 (the model input, grey scaled to [-1, 1]).
Prints JSON {"logits": [[7 floats] * N], "probabilities": [[7 floats] * N]}: the logits are
the global average pooling's output (what Keras feeds to its final softmax).
"""
import json
import sys

import h5py
import numpy as np


def same_pad(n, k, s):
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def pad_hw(x, k, s, padding, value=0.0):
    if padding == "valid":
        return x
    t, b = same_pad(x.shape[1], k, s)
    l, r = same_pad(x.shape[2], k, s)
    return np.pad(x, ((0, 0), (t, b), (l, r), (0, 0)), constant_values=value)


def windows(x, k, s):
    """[N, H, W, C] -> [N, Ho, Wo, k, k, C] views."""
    n, h, w, c = x.shape
    ho, wo = (h - k) // s + 1, (w - k) // s + 1
    st = x.strides
    return np.lib.stride_tricks.as_strided(
        x, (n, ho, wo, k, k, c), (st[0], st[1] * s, st[2] * s, st[1], st[2], st[3]), writeable=False
    )


def conv(x, kernel, stride, padding):
    k = kernel.shape[0]
    x = pad_hw(x, k, stride, padding)
    return np.einsum("nhwijc,ijco->nhwo", windows(x, k, stride), kernel, optimize=True)


def depthwise(x, kernel, padding):
    k = kernel.shape[0]
    x = pad_hw(x, k, 1, padding)
    return np.einsum("nhwijc,ijc->nhwc", windows(x, k, 1), kernel[:, :, :, 0], optimize=True)


def forward(path, x):
    f = h5py.File(path, "r")
    cfg = json.loads(f.attrs["model_config"])
    mw = f["model_weights"]

    def weights(layer):
        g = mw[layer]
        return {n.decode().split("/")[-1].split(":")[0]: np.asarray(g[n], dtype=np.float64)
                for n in g.attrs["weight_names"]}

    acts = {}
    for layer in cfg["config"]["layers"]:
        kind, name, c = layer["class_name"], layer["name"], layer["config"]
        ins = [acts[i[0]] for i in layer["inbound_nodes"][0]] if layer["inbound_nodes"] else []
        if kind == "InputLayer":
            y = x
        elif kind == "Conv2D":
            w = weights(name)
            y = conv(ins[0], w["kernel"], c["strides"][0], c["padding"])
            if c["use_bias"]:
                y = y + w["bias"]
        elif kind == "SeparableConv2D":
            w = weights(name)
            y = depthwise(ins[0], w["depthwise_kernel"], c["padding"])
            y = np.einsum("nhwc,co->nhwo", y, w["pointwise_kernel"][0, 0], optimize=True)
        elif kind == "BatchNormalization":
            w = weights(name)
            y = (ins[0] - w["moving_mean"]) / np.sqrt(w["moving_variance"] + c["epsilon"])
            y = y * w["gamma"] + w["beta"]
        elif kind == "Activation" and c["activation"] == "relu":
            y = np.maximum(ins[0], 0.0)
        elif kind == "Activation" and c["activation"] == "softmax":
            y = ins[0]  # keep the logits; the softmax is applied below
        elif kind == "MaxPooling2D":
            k, s = c["pool_size"][0], c["strides"][0]
            y = windows(pad_hw(ins[0], k, s, c["padding"], -np.inf), k, s).max(axis=(3, 4))
        elif kind == "Add":
            y = ins[0] + ins[1]
        elif kind == "GlobalAveragePooling2D":
            y = ins[0].mean(axis=(1, 2))
        else:
            raise SystemExit(f"unsupported layer {name} ({kind})")
        acts[name] = y
    return y


def main():
    path, inputs, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    x = np.fromfile(inputs, dtype="<f4").astype(np.float64).reshape(n, 64, 64, 1)
    logits = forward(path, x)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = e / e.sum(axis=1, keepdims=True)
    json.dump({"logits": logits.tolist(), "probabilities": probs.tolist()}, sys.stdout)


if __name__ == "__main__":
    main()
