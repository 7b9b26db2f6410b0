#!/usr/bin/env python3
"""Generate the preprocessing test vectors with real PyTorch.

The expected tensors are computed here with torch ops only (torch.nn.functional.interpolate
for the resize), independently of the Rust implementation in shared/src/preprocess.rs, so
both the edge (Rust on `image` buffers) and the trainer (tch) can check themselves against
PyTorch. See README.md for the file format.

Usage (from this directory, with torch and numpy installed):

    python3 generate.py            # rewrites the *.json vectors
    python3 generate.py --check    # exits 1 if a file would change
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
TOLERANCE = 1e-4

COMPACT = {"scale": 1.0 / 255.0, "mean": [0.5], "std": [0.5]}
VGG_BGR = {"scale": 1.0, "mean": [91.4953, 103.8827, 131.0912], "std": [1.0, 1.0, 1.0]}
IMAGENET_RGB = {
    "scale": 1.0 / 255.0,
    "mean": [0.485, 0.456, 0.406],
    "std": [0.229, 0.224, 0.225],
}


def f32(x):
    """The float32 value a reader gets when it parses `x` into an f32."""
    return float(np.float32(x))


def spec(width, height, color, norm):
    return {
        "width": width,
        "height": height,
        "color": color,
        "resize": "bilinear",
        # Stored as the exact float32 values both implementations compute with.
        "scale": f32(norm["scale"]),
        "mean": [f32(v) for v in norm["mean"]],
        "std": [f32(v) for v in norm["std"]],
        "layout": "nchw",
    }


def preprocess_torch(sp, width, height, fmt, pixels):
    """The contract of shared/src/preprocess.rs, written with torch tensor ops."""
    channels = 1 if fmt == "grey" else 3
    hwc = torch.tensor(pixels, dtype=torch.uint8).reshape(height, width, channels)
    x = hwc.permute(2, 0, 1).to(torch.float32).unsqueeze(0)  # [1, C_in, H, W], 0..255

    # 1. colour conversion, in float32, no rounding
    color = sp["color"]
    if fmt == "grey" and color != "grey":
        x = x.expand(1, 3, height, width).contiguous()  # replicate
    elif fmt == "rgb" and color == "grey":
        r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
        x = 0.299 * r + 0.587 * g + 0.114 * b  # ITU-R BT.601 luma
    elif fmt == "rgb" and color == "bgr":
        x = x.flip(1).contiguous()

    # 2. resize: exactly F.interpolate bilinear, half-pixel centres, no antialiasing
    x = F.interpolate(
        x,
        size=(sp["height"], sp["width"]),
        mode="bilinear",
        align_corners=False,
        antialias=False,
    )

    # 3. normalisation per output channel
    c = x.shape[1]
    scale = torch.tensor(sp["scale"], dtype=torch.float32)
    mean = torch.tensor(sp["mean"], dtype=torch.float32).reshape(1, c, 1, 1)
    std = torch.tensor(sp["std"], dtype=torch.float32).reshape(1, c, 1, 1)
    x = (x * scale - mean) / std
    assert x.dtype == torch.float32
    return x


def pixels_for(rng, width, height, fmt, kind):
    channels = 1 if fmt == "grey" else 3
    n = width * height * channels
    if kind == "random":
        return rng.integers(0, 256, size=n, dtype=np.int64).tolist()
    if kind == "gradient":  # smooth face-like ramp plus a little noise, full 0..255 range
        ys, xs = np.mgrid[0:height, 0:width]
        base = (xs * 255.0 / max(width - 1, 1) * 0.6 + ys * 255.0 / max(height - 1, 1) * 0.4)
        base = np.repeat(base[:, :, None], channels, axis=2)
        base = base + rng.integers(-20, 21, size=base.shape)
        if channels == 3:
            base[:, :, 1] = 255 - base[:, :, 1]
        return np.clip(base, 0, 255).astype(np.int64).reshape(-1).tolist()
    if kind == "extremes":
        return rng.choice([0, 255], size=n).tolist()
    raise ValueError(kind)


# (file stem, description, input w, h, format, pixel kind, spec)
CASES = [
    ("grey_5x4_to_grey_3x3", "downscale, non-square input, compact grey normalisation",
     5, 4, "grey", "random", spec(3, 3, "grey", COMPACT)),
    ("rgb_4x6_to_bgr_7x5_vgg", "upscale width, shrink height, RGB->BGR, VGGFace2 means",
     4, 6, "rgb", "random", spec(7, 5, "bgr", VGG_BGR)),
    ("grey_48x48_to_rgb_8x8_imagenet", "6x downscale, grey replicated to 3 channels with "
     "per-channel ImageNet normalisation", 48, 48, "grey", "gradient",
     spec(8, 8, "rgb", IMAGENET_RGB)),
    ("rgb_10x7_to_grey_4x9", "RGB->grey BT.601 luma, shrink width, stretch height",
     10, 7, "rgb", "random", spec(4, 9, "grey", COMPACT)),
    ("grey_3x2_to_grey_9x8_upscale", "strong upscale: edge clamping on both axes",
     3, 2, "grey", "extremes", spec(9, 8, "grey", COMPACT)),
    ("rgb_6x6_to_rgb_6x3", "width unchanged (copied axis), height halved, RGB kept",
     6, 6, "rgb", "random", spec(6, 3, "rgb", IMAGENET_RGB)),
    ("grey_1x1_to_grey_4x4", "single pixel input", 1, 1, "grey", "random",
     spec(4, 4, "grey", COMPACT)),
    ("grey_48x48_identity", "FER2013 native size: no resize, only normalisation",
     48, 48, "grey", "gradient", spec(48, 48, "grey", COMPACT)),
    ("grey_37x53_to_grey_48x48", "odd-sized face crop to the FER2013 input size",
     37, 53, "grey", "gradient", spec(48, 48, "grey", COMPACT)),
    ("rgb_100x80_to_grey_48x48", "camera-sized RGB crop shrunk to a grey 48x48 model",
     100, 80, "rgb", "gradient", spec(48, 48, "grey", COMPACT)),
    ("rgb_64x60_to_bgr_13x17_vgg", "non-integer ratios on both axes, VGGFace2 BGR",
     64, 60, "rgb", "random", spec(13, 17, "bgr", VGG_BGR)),
    ("grey_7x7_to_bgr_32x32_vgg", "grey crop upscaled for a BGR model",
     7, 7, "grey", "random", spec(32, 32, "bgr", VGG_BGR)),
]


def to_json(vector):
    """One top-level key per line, each value on one line: readable, diffable, compact."""
    lines = [f"  {json.dumps(k)}: {json.dumps(v, separators=(', ', ': '))}"
             for k, v in vector.items()]
    return "{\n" + ",\n".join(lines) + "\n}\n"


def build(seed_base=2024):
    files = {}
    for i, (stem, description, w, h, fmt, kind, sp) in enumerate(CASES):
        rng = np.random.default_rng(seed_base + i)
        pixels = pixels_for(rng, w, h, fmt, kind)
        out = preprocess_torch(sp, w, h, fmt, pixels)
        vector = {
            "name": stem,
            "description": description,
            "generator": f"generate.py, torch {torch.__version__}",
            "spec": sp,
            "input": {"width": w, "height": h, "format": fmt, "pixels": pixels},
            "expected": {
                "shape": list(out.shape),
                # float(np.float32) is the exact value of each f32 as a decimal double
                "values": [float(v) for v in out.reshape(-1).numpy()],
            },
            "tolerance": TOLERANCE,
        }
        files[f"{stem}.json"] = to_json(vector)
    return files


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only compare with the files on disk")
    args = ap.parse_args()
    torch.set_num_threads(1)
    files = build()
    stale = [n for n, text in files.items()
             if not (HERE / n).exists() or (HERE / n).read_text() != text]
    if args.check:
        for n in stale:
            print(f"would change: {n}", file=sys.stderr)
        sys.exit(1 if stale else 0)
    for n, text in files.items():
        (HERE / n).write_text(text)
    print(f"wrote {len(files)} vectors ({len(stale)} changed) with torch {torch.__version__}")


if __name__ == "__main__":
    main()
