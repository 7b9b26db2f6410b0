#!/usr/bin/env python3
"""Reference forward pass of keras-vggface's ResNet50 (VGGFace2), numpy only.

    python reference_forward.py WEIGHTS.h5 INPUT.npy OUT.npz [--raw-rgb] [--blocks]
                                [--float32]

WEIGHTS.h5 is one of the published files (rcmalli_vggface_tf[_notop]_resnet50.h5) or a
fixture from make_fixture.py; it is read with h5py directly, each layer found by its name
through the file's `layer_names` / `weight_names` attributes (so the auto-generated names
of weightless layers do not matter). A file written by `Model.save` (weights under
/model_weights) is read too.

INPUT.npy: float (N, H, W, 3), NHWC as Keras takes it, already preprocessed with
`preprocess_v2` (BGR, mean-subtracted). With --raw-rgb it is RGB in [0, 255] and
`preprocess_v2` is applied here. 224x224 for the top file (Flatten feeds a 2048-wide Dense).

OUT.npz (float32):
  features  (N, 2048 * h * w)  avg_pool output, flattened in NHWC order (N, 2048 at 224x224)
  logits    (N, classes)       top file only: classifier before its softmax
  probs     (N, classes)       top file only: softmax(logits), what Keras' model outputs
  block/<name>                 with --blocks: NHWC output of conv1 (after the max pool)
                               and of every bottleneck block conv2_1 .. conv5_3

The network, as keras_vggface/models.py builds it with the TensorFlow backend:
  conv1/7x7_s2 (7x7, stride 2, TF "same" padding: 2 before, 3 after at 224) -> bn -> relu
  -> 3x3 max pool, stride 2, "valid"
  -> bottleneck blocks (stages 2..5 with 3, 4, 6, 3 blocks; widths 64, 128, 256, 512):
     y = relu(bn(conv 1x1_reduce, stride s)); y = relu(bn(conv 3x3, "same"));
     y = bn(conv 1x1_increase); shortcut = bn(conv 1x1_proj, stride s) in block 1, else x;
     x = relu(y + shortcut); s = 2 in block 1 of stages 3-5, else 1
  -> avg_pool 7x7, stride 7, "valid" -> Flatten -> Dense classifier (softmax)
  Convolutions have no bias; batch norm (inference) uses epsilon 1e-3, Keras' default.

Computed in float64 (use --float32 for a float32 pass); 224x224, batch 2, in about a
second or two on two cores. Needs numpy and h5py only.
"""

import argparse
import sys

import h5py
import numpy as np

EPS = 1e-3  # keras.layers.BatchNormalization default; keras-vggface's ResNet50 sets none
# keras_vggface/utils.py preprocess_input(version=2): B, G, R means of VGGFace2.
VGGFACE2_BGR_MEAN = (91.4953, 103.8827, 131.0912)
STAGES = [(2, 3, 64), (3, 4, 128), (4, 6, 256), (5, 3, 512)]


def preprocess_v2(x):
    """keras_vggface.utils.preprocess_input(x, version=2), channels_last.

    x: float array (..., H, W, 3), RGB, values 0..255 (as `image.img_to_array` gives).
    Returns a new array: channels reversed to BGR, then the VGGFace2 means
    [91.4953, 103.8827, 131.0912] subtracted from B, G, R. No scaling.
    """
    x = np.array(x, dtype=np.float32, copy=True)
    x = x[..., ::-1].copy()
    x -= np.asarray(VGGFACE2_BGR_MEAN, dtype=np.float32)
    return x


def _text(v):
    return v.decode("utf8") if isinstance(v, bytes) else str(v)


def load_weights(path):
    """{layer name: {weight basename: array}}, e.g. w['conv1/7x7_s2/bn']['moving_mean']."""
    out = {}
    with h5py.File(path, "r") as f:
        root = f
        if "layer_names" not in f.attrs and "model_weights" in f:
            root = f["model_weights"]
        for lname in (_text(n) for n in root.attrs["layer_names"]):
            g = root[lname]
            weights = {}
            for wname in (_text(n) for n in g.attrs["weight_names"]):
                base = wname.rsplit("/", 1)[-1].split(":")[0]
                weights[base] = np.asarray(g[wname], dtype=np.float64)
            if weights:
                out[lname] = weights
    return out


def _pad_same(size, k, stride):
    out = -(-size // stride)
    total = max((out - 1) * stride + k - size, 0)
    return total // 2, total - total // 2


def conv2d(x, kernel, stride=1, same=False):
    """NHWC convolution with an HWIO kernel (TF semantics), via im2col + matmul."""
    kh, kw, cin, cout = kernel.shape
    n, h, w, c = x.shape
    assert c == cin, (x.shape, kernel.shape)
    if same:
        (pt, pb), (pl, pr) = _pad_same(h, kh, stride), _pad_same(w, kw, stride)
        if pt or pb or pl or pr:
            x = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    if kh == 1 and kw == 1:
        cols = x[:, ::stride, ::stride, :]
        ho, wo = cols.shape[1:3]
        cols = cols.reshape(-1, cin)
    else:
        win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))
        win = win[:, ::stride, ::stride]  # (n, ho, wo, cin, kh, kw)
        ho, wo = win.shape[1:3]
        cols = win.transpose(0, 1, 2, 4, 5, 3).reshape(-1, kh * kw * cin)
    y = cols @ kernel.reshape(-1, cout).astype(x.dtype, copy=False)
    return y.reshape(n, ho, wo, cout)


def batch_norm(x, p, eps=None):
    eps = EPS if eps is None else eps
    scale = p["gamma"] / np.sqrt(p["moving_variance"] + eps)
    shift = p["beta"] - p["moving_mean"] * scale
    return x * scale.astype(x.dtype) + shift.astype(x.dtype)


def pool(x, k, stride, op):
    """'valid' pooling, NHWC."""
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))
    win = win[:, ::stride, ::stride]
    return win.max(axis=(-2, -1)) if op == "max" else win.mean(axis=(-2, -1))


def softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def forward(weights, x, dtype=np.float64, blocks=False):
    """Run the network on preprocessed NHWC `x`; returns a dict as saved to OUT.npz."""
    x = np.asarray(x, dtype=dtype)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"input must be (N, H, W, 3), got {x.shape}")
    relu = lambda t: np.maximum(t, 0)

    def conv_bn(t, name, stride=1, same=False):
        t = conv2d(t, weights[name]["kernel"].astype(dtype), stride, same)
        return batch_norm(t, weights[name + "/bn"])

    out = {}
    x = relu(conv_bn(x, "conv1/7x7_s2", 2, same=True))
    x = pool(x, 3, 2, "max")
    if blocks:
        out["block/conv1"] = x
    for stage, nblocks, _ in STAGES:
        for b in range(1, nblocks + 1):
            p = f"conv{stage}_{b}"
            s = 2 if b == 1 and stage > 2 else 1
            y = relu(conv_bn(x, p + "_1x1_reduce", s))
            y = relu(conv_bn(y, p + "_3x3", 1, same=True))
            y = conv_bn(y, p + "_1x1_increase")
            shortcut = conv_bn(x, p + "_1x1_proj", s) if b == 1 else x
            x = relu(y + shortcut)
            if blocks:
                out["block/" + p] = x
    x = pool(x, 7, 7, "avg")
    features = x.reshape(x.shape[0], -1)
    out["features"] = features
    if "classifier" in weights:
        kernel, bias = weights["classifier"]["kernel"], weights["classifier"]["bias"]
        if kernel.shape[0] != features.shape[1]:
            raise ValueError(f"classifier takes {kernel.shape[0]} features, avg_pool gives "
                             f"{features.shape[1]} (the top model needs 224x224 input)")
        logits = features @ kernel.astype(dtype) + bias.astype(dtype)
        out["logits"] = logits
        out["probs"] = softmax(logits)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("weights", help="keras-vggface ResNet50 HDF5 weights (or a fixture)")
    ap.add_argument("input", help=".npy, float (N, H, W, 3) NHWC, preprocessed")
    ap.add_argument("out", help=".npz to write")
    ap.add_argument("--raw-rgb", action="store_true",
                    help="input is RGB 0..255: apply preprocess_v2 first")
    ap.add_argument("--blocks", action="store_true", help="also save every block's output")
    ap.add_argument("--float32", action="store_true", help="compute in float32, not float64")
    args = ap.parse_args(argv)
    x = np.load(args.input)
    if args.raw_rgb:
        x = preprocess_v2(x)
    out = forward(load_weights(args.weights), x,
                  np.float32 if args.float32 else np.float64, blocks=args.blocks)
    np.savez(args.out, **{k: v.astype(np.float32) for k, v in out.items()})
    print(f"{args.out}: " + ", ".join(f"{k} {v.shape}" for k, v in out.items()
                                      if not k.startswith("block/")), file=sys.stderr)


if __name__ == "__main__":
    main()
