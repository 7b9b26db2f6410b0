#!/usr/bin/env python3
"""Optional: load the fixtures into the keras-vggface ResNet50 architecture with tf.keras.

    python check_tf_keras.py [WEIGHTS.h5 ...] [--batch N] [--tol T]

Needs TensorFlow with the Keras 2 API (checked with tensorflow-cpu 2.15.1 in a throwaway
virtualenv; Keras 3 refuses '/' in layer names) plus numpy and h5py. Not needed by the
fixtures or the reference; see README.md.

The architecture is rebuilt here layer by layer after keras_vggface/models.py (RESNET50,
resnet_conv_block, resnet_identity_block: same layer classes, names, arguments and call
order, BatchNormalization with Keras' default epsilon), with `weights=None`. Then, for each
file (default: fresh notop and top fixtures from make_fixture.py):

1. `model.layers` order equals the file's `layer_names` (names of layers Keras names
   itself compared by class, since a TF2 session numbers them from 0, not 1);
2. `model.load_weights(file)` -- Keras' topological loader, exactly what keras-vggface
   calls -- accepts the file, and afterwards every layer holds the arrays stored under its
   own name (so no two same-shaped layers were swapped);
3. `model.load_weights(file, by_name=True)` accepts it too;
4. tf.keras' own `save_weights(.h5)` of the loaded model writes the same datasets at the
   same paths with the same `weight_names` as the fixture;
5. tf.keras' outputs (avg_pool features; classifier probabilities, and logits with the
   softmax switched off) match reference_forward.py within --tol (relative to max |ref|).

Exits 1 if any check fails.
"""

import argparse
import os
import re
import sys
import tempfile

import h5py
import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf  # noqa: E402
from tensorflow.keras import layers as L  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_fixture  # noqa: E402
import reference_forward  # noqa: E402


def identity_block(x, filters, stage, block):
    f1, f2, f3 = filters
    p = f"conv{stage}_{block}"
    y = L.Conv2D(f1, (1, 1), use_bias=False, name=p + "_1x1_reduce")(x)
    y = L.BatchNormalization(axis=3, name=p + "_1x1_reduce/bn")(y)
    y = L.Activation("relu")(y)
    y = L.Conv2D(f2, 3, use_bias=False, padding="same", name=p + "_3x3")(y)
    y = L.BatchNormalization(axis=3, name=p + "_3x3/bn")(y)
    y = L.Activation("relu")(y)
    y = L.Conv2D(f3, (1, 1), use_bias=False, name=p + "_1x1_increase")(y)
    y = L.BatchNormalization(axis=3, name=p + "_1x1_increase/bn")(y)
    y = L.add([y, x])
    return L.Activation("relu")(y)


def conv_block(x, filters, stage, block, strides=(2, 2)):
    f1, f2, f3 = filters
    p = f"conv{stage}_{block}"
    y = L.Conv2D(f1, (1, 1), strides=strides, use_bias=False, name=p + "_1x1_reduce")(x)
    y = L.BatchNormalization(axis=3, name=p + "_1x1_reduce/bn")(y)
    y = L.Activation("relu")(y)
    y = L.Conv2D(f2, 3, padding="same", use_bias=False, name=p + "_3x3")(y)
    y = L.BatchNormalization(axis=3, name=p + "_3x3/bn")(y)
    y = L.Activation("relu")(y)
    y = L.Conv2D(f3, (1, 1), name=p + "_1x1_increase", use_bias=False)(y)
    y = L.BatchNormalization(axis=3, name=p + "_1x1_increase/bn")(y)
    s = L.Conv2D(f3, (1, 1), strides=strides, use_bias=False, name=p + "_1x1_proj")(x)
    s = L.BatchNormalization(axis=3, name=p + "_1x1_proj/bn")(s)
    y = L.add([y, s])
    return L.Activation("relu")(y)


def resnet50(include_top, classes):
    inp = L.Input(shape=(224, 224, 3))
    x = L.Conv2D(64, (7, 7), use_bias=False, strides=(2, 2), padding="same",
                 name="conv1/7x7_s2")(inp)
    x = L.BatchNormalization(axis=3, name="conv1/7x7_s2/bn")(x)
    x = L.Activation("relu")(x)
    x = L.MaxPooling2D((3, 3), strides=(2, 2))(x)
    for stage, blocks, w in [(2, 3, 64), (3, 4, 128), (4, 6, 256), (5, 3, 512)]:
        f = [w, w, 4 * w]
        x = conv_block(x, f, stage, 1, strides=(1, 1) if stage == 2 else (2, 2))
        for b in range(2, blocks + 1):
            x = identity_block(x, f, stage, b)
    x = L.AveragePooling2D((7, 7), name="avg_pool")(x)
    if include_top:
        x = L.Flatten()(x)
        x = L.Dense(classes, activation="softmax", name="classifier")(x)
    return tf.keras.Model(inp, x, name="vggface_resnet50")


AUTO = {"input": "InputLayer", "activation": "Activation", "max_pooling2d": "MaxPooling2D",
        "add": "Add", "flatten": "Flatten"}


def kind_or_name(name, cls=None):
    """A layer's explicit name, or its class if Keras named it (input_1, activation_7...)."""
    m = re.fullmatch(r"(input|activation|max_pooling2d|add|flatten)(_\d+)?", name)
    if m:
        return "<" + AUTO[m.group(1)] + ">"
    return name


def _s(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def file_layers(path):
    with h5py.File(path, "r") as f:
        names = [n.decode() for n in f.attrs["layer_names"]]
        weights = {}
        for n in names:
            wn = [w.decode() for w in f[n].attrs["weight_names"]]
            if wn:
                weights[n] = [(w, np.asarray(f[n][w])) for w in wn]
    return names, weights


def datasets(path):
    """{(layer, weight name): (shape, dtype)} for layers with weights."""
    out = {}
    with h5py.File(path, "r") as f:
        for n in (_s(x) for x in f.attrs["layer_names"]):
            for w in (_s(x) for x in f[n].attrs["weight_names"]):
                ds = f[n][w]
                out[(n, w)] = (ds.shape, ds.dtype, ds.name)
    return out


def check(path, batch, tol, tmpdir):
    ok = True

    def report(cond, what):
        nonlocal ok
        ok &= bool(cond)
        print(f"  {'ok  ' if cond else 'FAIL'} {what}")

    names, weights = file_layers(path)
    top = "classifier" in weights
    classes = weights["classifier"][1][1].shape[0] if top else 0
    model = resnet50(top, classes or 1)
    mine = [kind_or_name(layer.name) for layer in model.layers]
    theirs = [kind_or_name(n) for n in names]
    first = next((i for i, (a, b) in enumerate(zip(mine, theirs)) if a != b), None)
    report(mine == theirs, f"model.layers order = file layer_names ({len(names)} layers)"
           + ("" if first is None else f"; first difference at {first}: "
              f"{mine[first]} vs {theirs[first]}"))

    try:
        model.load_weights(path)
        report(True, "model.load_weights(file) (topological) accepted the file")
    except Exception as e:  # noqa: BLE001
        report(False, f"model.load_weights(file) raised {type(e).__name__}: {e}")
        return False
    mismatched = [n for n, ws in weights.items()
                  if not all(np.array_equal(a, b) for a, (_, b) in
                             zip(model.get_layer(n).get_weights(), ws))]
    report(not mismatched, "every layer holds the arrays stored under its own name"
           + (f" (not: {mismatched[:4]})" if mismatched else ""))
    try:
        model.load_weights(path, by_name=True)
        report(True, "model.load_weights(file, by_name=True) accepted the file")
    except Exception as e:  # noqa: BLE001
        report(False, f"load_weights(by_name=True) raised {type(e).__name__}: {e}")

    saved = os.path.join(tmpdir, "tf_saved.h5")
    model.save_weights(saved)
    a, b = datasets(path), datasets(saved)
    report(a == b, f"tf.keras save_weights writes the same {len(b)} datasets (paths, "
           "weight_names, shapes, dtypes)"
           + ("" if a == b else f"; only in fixture: {sorted(set(a) - set(b))[:3]}, "
              f"only in tf.keras': {sorted(set(b) - set(a))[:3]}"))
    with h5py.File(saved) as f:
        print(f"       (tf.keras wrote backend={f.attrs['backend']!r}, "
              f"keras_version={f.attrs['keras_version']!r})")

    rng = np.random.default_rng(0)
    x = reference_forward.preprocess_v2(rng.uniform(0, 255, (batch, 224, 224, 3)))
    ref = reference_forward.forward(reference_forward.load_weights(path), x)
    feat_model = tf.keras.Model(model.input, model.get_layer("avg_pool").output)
    got = {"features": feat_model(x, training=False).numpy().reshape(batch, -1)}
    if top:
        got["probs"] = model(x, training=False).numpy()
        clf = model.get_layer("classifier")
        clf.activation = tf.keras.activations.linear
        got["logits"] = model(x, training=False).numpy()
        clf.activation = tf.keras.activations.softmax
    for k, v in got.items():
        d = np.abs(v - ref[k]).max()
        rel = d / np.abs(ref[k]).max()
        report(rel <= tol, f"{k:8s} {str(v.shape):12s} tf.keras vs reference: max abs diff "
               f"{d:.3e}, rel {rel:.3e}")
    return ok


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="*")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--tol", type=float, default=1e-4)
    args = ap.parse_args(argv)
    print(f"tensorflow {tf.__version__}, h5py {h5py.__version__}")
    ok = True
    with tempfile.TemporaryDirectory(prefix="vggface_tf_") as tmp:
        files = args.files
        if not files:
            files = [os.path.join(tmp, "notop.h5"), os.path.join(tmp, "top.h5")]
            make_fixture.write_fixture(files[0], include_top=False, seed=0)
            make_fixture.write_fixture(files[1], include_top=True, seed=1)
        for path in files:
            print(path)
            ok &= check(path, args.batch, args.tol, tmp)
            tf.keras.backend.clear_session()
    print("all checks passed" if ok else "CHECK FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
