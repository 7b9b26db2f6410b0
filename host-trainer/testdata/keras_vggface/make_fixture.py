#!/usr/bin/env python3
"""Write a stand-in for keras-vggface's published ResNet50 (VGGFace2) weight files.

    python make_fixture.py OUT.h5 [--notop] [--seed N] [--classes N]

The file has the layout of the real ones and random (seeded) float32 values:

  rcmalli_vggface_tf_resnet50.h5        include_top=True, classifier 2048 -> 8631
  rcmalli_vggface_tf_notop_resnet50.h5  include_top=False (ends at avg_pool)

published as assets of the keras-vggface GitHub release v2.0
(https://github.com/rcmalli/keras-vggface/releases/download/v2.0/<name>, see
keras_vggface/utils.py RESNET50_WEIGHTS_PATH / RESNET50_WEIGHTS_PATH_NO_TOP).
keras-vggface fetches them with `get_file(name, url, cache_subdir='models/vggface')` and
passes no `file_hash`, so no md5/sha256 of the real files is published in its source; there
is none to document here.

What the layout is and where it comes from (see README.md for the full account):

* The files are *weights-only* files written by Keras 2 `Model.save_weights` (keras-vggface
  v2.0 was released with Keras 2.1.1 / TensorFlow 1.4, README "Library Versions"), read
  back by `model.load_weights(weights_path)` *without* `by_name`, i.e. Keras' topological
  loader: the k-th layer with weights in the file goes to the k-th layer with weights in
  the model, whatever its name. (keras-vggface issue #55: `load_model()` on the file fails
  because it has no `model_config`, as a weights-only file would.)
* Root attributes: `layer_names` (every layer of `model.layers`, in that order, weighted or
  not), `backend` = b"tensorflow", `keras_version`.
* One group per layer, named after the layer (a `/` in a name makes nested groups:
  `conv1/7x7_s2/bn` is the group `bn` inside the group `conv1/7x7_s2`), with attribute
  `weight_names` (the TF variable names, e.g. b"conv1/7x7_s2/kernel:0"), and one dataset
  per weight at `<layer group>/<weight name>`, e.g.
  `/conv1/7x7_s2/conv1/7x7_s2/kernel:0`. Layers without weights (input, activation,
  max pooling, add, avg_pool, flatten) have an empty `weight_names`.
* Attribute types as h5py 2.x wrote them for Keras: a list of bytes became a fixed-length,
  NULL-padded ASCII string array; a bare bytes value a variable-length ASCII string; the
  empty list an empty float64 array of shape (0,).
* Conv2D kernels HWIO (kh, kw, in, out), no bias (use_bias=False everywhere);
  BatchNormalization weights gamma, beta, moving_mean, moving_variance (epsilon 1e-3, the
  Keras default: keras-vggface passes no epsilon for ResNet50); Dense `classifier` kernel
  (2048, classes) and bias (classes,), softmax applied inside the Dense layer.
* `model.layers` order is Keras' order: by decreasing depth from the output, ties broken
  by depth-first traversal order from the output. In a block with a projection shortcut
  this interleaves the two branches: ..._1x1_increase, ..._1x1_proj,
  ..._1x1_increase/bn, ..._1x1_proj/bn, add_N. `keras_layer_order` below computes it.
* Auto-generated names are those of a fresh Keras 2.1 session: input_1, activation_1 ..
  activation_49, max_pooling2d_1, add_1 .. add_16, flatten_1 (top only). The real files'
  unnamed layers may carry other numbers (they depend on what the saving session built
  before); loaders must not depend on them.

Random values: He-scaled normal kernels; batch-norm statistics drawn so that every
parameter is distinguishable (beta and moving_mean nonzero, moving_variance log-uniform in
[0.05, 2] so that the epsilon matters at the 1e-3 level) with gamma proportional to
sqrt(moving_variance), so activations stay O(1) through the 50 layers. Same seed, same
file (bit for bit in the values).

Needs numpy and h5py only.
"""

import argparse
import sys
from collections import defaultdict

import h5py
import numpy as np

# (stage, blocks, bottleneck width); output width is 4x.
STAGES = [(2, 3, 64), (3, 4, 128), (4, 6, 256), (5, 3, 512)]
BN_WEIGHTS = ("gamma", "beta", "moving_mean", "moving_variance")
DEFAULT_CLASSES = 8631
# keras-vggface v2.0 README, "Library Versions": Keras v2.1.1, Tensorflow v1.4.
DEFAULT_KERAS_VERSION = "2.1.1"
# Preprocessed pixels (BGR minus the VGGFace2 means) spread over about +-128: conv1's
# random kernel is divided by this so that its output is O(1) like every other layer's.
INPUT_STD = 64.0

PUBLISHED = {
    True: "rcmalli_vggface_tf_resnet50.h5",
    False: "rcmalli_vggface_tf_notop_resnet50.h5",
}
RELEASE_URL = "https://github.com/rcmalli/keras-vggface/releases/download/v2.0/"


class Layer:
    """One Keras layer: name, class, inbound layer names, weights [(suffix, shape)]."""

    def __init__(self, name, kind, inputs, weights=(), **config):
        self.name = name
        self.kind = kind
        self.inputs = list(inputs)
        self.weights = list(weights)
        self.config = config


def build_layers(include_top=True, classes=DEFAULT_CLASSES, input_shape=(224, 224, 3)):
    """The keras-vggface RESNET50 graph: {name: Layer} and the output layer's name.

    Mirrors keras_vggface/models.py RESNET50 / resnet_conv_block / resnet_identity_block:
    the stride of a down-sampling block sits on its 1x1_reduce and 1x1_proj convolutions.
    """
    layers = {}
    uid = defaultdict(int)

    def auto(prefix):
        uid[prefix] += 1
        return f"{prefix}_{uid[prefix]}"

    def add(name, kind, inputs, weights=(), **config):
        assert name not in layers, name
        layers[name] = Layer(name, kind, inputs, weights, **config)
        return name

    def conv(name, x, cin, cout, k, stride=1, padding="valid"):
        return add(name, "Conv2D", [x], [("kernel:0", (k, k, cin, cout))],
                   kernel=k, stride=stride, padding=padding)

    def bn(name, x, c):
        return add(name, "BatchNormalization", [x], [(f"{w}:0", (c,)) for w in BN_WEIGHTS])

    def relu(x):
        return add(auto("activation"), "Activation", [x], activation="relu")

    x = add(auto("input"), "InputLayer", [], shape=tuple(input_shape))
    x = conv("conv1/7x7_s2", x, input_shape[2], 64, 7, 2, "same")
    x = bn("conv1/7x7_s2/bn", x, 64)
    x = relu(x)
    x = add(auto("max_pooling2d"), "MaxPooling2D", [x], pool=3, stride=2)
    cin = 64
    for stage, blocks, w in STAGES:
        for block in range(1, blocks + 1):
            p = f"conv{stage}_{block}"
            stride = 2 if block == 1 and stage > 2 else 1
            y = conv(f"{p}_1x1_reduce", x, cin, w, 1, stride)
            y = relu(bn(f"{p}_1x1_reduce/bn", y, w))
            y = conv(f"{p}_3x3", y, w, w, 3, 1, "same")
            y = relu(bn(f"{p}_3x3/bn", y, w))
            y = conv(f"{p}_1x1_increase", y, w, 4 * w, 1)
            y = bn(f"{p}_1x1_increase/bn", y, 4 * w)
            if block == 1:
                s = conv(f"{p}_1x1_proj", x, cin, 4 * w, 1, stride)
                s = bn(f"{p}_1x1_proj/bn", s, 4 * w)
            else:
                s = x
            x = relu(add(auto("add"), "Add", [y, s]))
            cin = 4 * w
    x = add("avg_pool", "AveragePooling2D", [x], pool=7, stride=7)
    if include_top:
        x = add(auto("flatten"), "Flatten", [x])
        x = add("classifier", "Dense", [x], [("kernel:0", (cin, classes)), ("bias:0", (classes,))],
                activation="softmax")
    return layers, x


def keras_layer_order(layers, output):
    """`Model.layers` order as Keras 2 computes it for a single-output functional model.

    Depth of a layer = longest path to the output; layers sorted by decreasing depth,
    ties by the order in which a depth-first walk from the output (inbound layers in call
    order) first reaches them.
    """
    index = {}
    finished = set()
    post_order = []

    def walk(name):
        if name in finished:
            return
        index.setdefault(name, len(index))
        for inbound in layers[name].inputs:
            walk(inbound)
        finished.add(name)
        post_order.append(name)

    walk(output)
    depth = {}
    for name in reversed(post_order):  # every consumer before its producers
        d = depth.setdefault(name, 0)
        for inbound in layers[name].inputs:
            depth[inbound] = max(depth.get(inbound, 0), d + 1)
    return sorted(post_order, key=lambda n: (-depth[n], index[n]))


def random_weights(layer, rng):
    """Random float32 values for one layer's weights, in `layer.weights` order."""
    if layer.kind == "Conv2D":
        (_, shape), = layer.weights
        kh, kw, cin, _ = shape
        std = np.sqrt(2.0 / (kh * kw * cin))
        if layer.name == "conv1/7x7_s2":
            std /= INPUT_STD
        return [(rng.standard_normal(shape) * std).astype(np.float32)]
    if layer.kind == "BatchNormalization":
        c = layer.weights[0][1][0]
        var = np.exp(rng.uniform(np.log(0.05), np.log(2.0), c))
        # Effective per-channel gain gamma / sqrt(var) around 0.8; smaller at the end of
        # a residual branch so that the 16 additions do not blow the activations up.
        gain = 0.35 if layer.name.endswith("_1x1_increase/bn") else 0.8
        gamma = gain * rng.uniform(0.7, 1.3, c) * np.sqrt(var)
        beta = rng.normal(0.0, 0.1, c)
        mean = rng.normal(0.0, 0.1, c)
        return [a.astype(np.float32) for a in (gamma, beta, mean, var)]
    if layer.kind == "Dense":
        (_, kshape), (_, bshape) = layer.weights
        kernel = rng.standard_normal(kshape) * (2.0 / np.sqrt(kshape[0]))
        bias = rng.normal(0.0, 0.1, bshape)
        return [kernel.astype(np.float32), bias.astype(np.float32)]
    assert not layer.weights, layer.kind
    return []


def fixed_ascii(strings):
    """A list of names as h5py 2.x stored a Python list of bytes: fixed-length 'S' array."""
    return np.array([s.encode("ascii") for s in strings], dtype=np.bytes_)


def write_fixture(path, include_top=True, seed=0, classes=DEFAULT_CLASSES,
                  keras_version=DEFAULT_KERAS_VERSION, model_weights_group=False):
    """Write the fixture; returns the layer order (names) written to `layer_names`."""
    layers, output = build_layers(include_top, classes)
    order = keras_layer_order(layers, output)
    rng = np.random.default_rng(seed)
    # HDF5 1.8-compatible objects, as 2017's h5py/HDF5 wrote them.
    with h5py.File(path, "w", libver=("earliest", "v108")) as f:
        root = f.create_group("model_weights") if model_weights_group else f
        root.attrs["layer_names"] = fixed_ascii(order)
        root.attrs["backend"] = b"tensorflow"  # variable-length ASCII string
        root.attrs["keras_version"] = keras_version.encode("ascii")
        for name in order:
            layer = layers[name]
            g = root.create_group(name)
            names = [f"{name}/{suffix}" for suffix, _ in layer.weights]
            # Empty list -> empty float64 array, exactly what numpy.asarray([]) gave Keras.
            g.attrs["weight_names"] = fixed_ascii(names) if names else np.asarray([])
            for wname, value in zip(names, random_weights(layer, rng)):
                ds = g.create_dataset(wname, value.shape, dtype=value.dtype)
                ds[...] = value
    return order


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="HDF5 file to write")
    ap.add_argument("--notop", action="store_true",
                    help="layout of rcmalli_vggface_tf_notop_resnet50.h5 (no flatten/classifier)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--classes", type=int, default=DEFAULT_CLASSES,
                    help="classifier width (8631 in the published file; smaller only for tests)")
    ap.add_argument("--keras-version", default=DEFAULT_KERAS_VERSION,
                    help="value of the keras_version attribute")
    ap.add_argument("--model-weights-group", action="store_true",
                    help="put everything under /model_weights, as Model.save does (the "
                         "published files do not; for testing a loader's fallback)")
    args = ap.parse_args(argv)
    if args.classes < 1:
        ap.error("--classes must be positive")
    order = write_fixture(args.out, include_top=not args.notop, seed=args.seed,
                          classes=args.classes, keras_version=args.keras_version,
                          model_weights_group=args.model_weights_group)
    layers, _ = build_layers(not args.notop, args.classes)
    weighted = [n for n in order if layers[n].weights]
    params = sum(int(np.prod(s)) for n in weighted for _, s in layers[n].weights)
    print(f"{args.out}: layout of {PUBLISHED[not args.notop]}, {len(order)} layers "
          f"({len(weighted)} with weights), {params:,} values, seed {args.seed}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
