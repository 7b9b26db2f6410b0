#!/usr/bin/env python3
"""Face detection quality on real photos: emotion-edge's detectors (BlazeFace short and full
range, SeetaFace) and OpenCV's Haar cascade with the PyPI `fer` package's settings, against
the hand-drawn boxes of tests/photos/faces.json, on the photos and on scaled, rotated and
darkened copies of them.

    bench/setup-python-baselines           # or any venv with opencv-python-headless and numpy
    /tmp/emotion-bench-venv/bin/python bench/detection_quality.py \
        --edge target/release/emotion-edge --bundle starter/bundle-fp32 --allow-unsigned \
        --blazeface-short blazeface-short.onnx --blazeface-full blazeface-full.onnx

Photos: tests/photos/faces.json names them; `photos` ones are read from --photos
(.cache/photos, fetched by tests/photos/fetch_photos.sh), `skimage` ones from scikit-image's
data folder (--skimage-data; found in .venv when not given).

Variants (made here, written as PNG under --work): the photo itself; scaled by 0.5 and 0.25
(cv2.INTER_AREA); rotated by +15, -15, +30 and -30 degrees about the photo's centre
(counter-clockwise positive, the canvas grown to hold the whole photo, black outside); darkened
by gamma 2 (v' = 255 (v/255)^2) and by x0.4 brightness. A ground-truth box of a rotated photo
is the same-sized box around its rotated centre (the face's own extent, not the bounding box of
the rotated rectangle).

Detectors:
  haar            cv2.CascadeClassifier(haarcascade_frontalface_default.xml).detectMultiScale
                  on the grey image, scaleFactor 1.1, minNeighbors 5, minSize 50x50,
                  CASCADE_SCALE_IMAGE: exactly fer.FER.find_faces with fer's defaults
  seeta           emotion-edge classify --detector seeta
  blazeface-short emotion-edge classify --detector blazeface --blazeface-variant short
  blazeface-full  emotion-edge classify --detector blazeface --blazeface-variant full
The emotion-edge detectors run with --min-face (default 40, the product's default).

Scoring per image: detections and ground-truth faces are paired greedily by IoU (highest
first, IoU >= --iou, default 0.3: the detectors draw boxes of different shapes, Haar's are
larger squares); an unpaired face is missed; an unpaired detection whose centre lies in an
`ignore` region is dropped, any other is a false positive. Mean IoU is over the paired faces.

Prints two Markdown tables (the photos; every variant) and writes --json.
"""

import argparse
import glob
import json
import math
import os
import subprocess
import sys

import cv2
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARIANTS = ["photo", "x0.5", "x0.25", "rot+15", "rot-15", "rot+30", "rot-30", "gamma2", "bright0.4"]
DETECTORS = ["blazeface-short", "blazeface-full", "seeta", "haar"]


def skimage_data_dir():
    """scikit-image's data folder in the project's .venv."""
    found = sorted(glob.glob(os.path.join(ROOT, ".venv/lib/python3*/site-packages/skimage/data")))
    if not found:
        sys.exit("scikit-image's data folder not found in .venv: pass --skimage-data")
    return found[-1]


def load_truth(path, photos, skdata):
    """{name: (image path, faces, ignore)} from faces.json."""
    with open(path) as f:
        spec = json.load(f)["images"]
    out = {}
    for name, entry in spec.items():
        folder = photos if entry["source"] == "photos" else skdata
        p = os.path.join(folder, name)
        if not os.path.exists(p):
            sys.exit(f"{p} is missing (tests/photos/fetch_photos.sh fetches the photos)")
        out[name] = (p, entry["faces"], entry.get("ignore", []))
    return out


def rotate(img, degrees):
    """`img` rotated counter-clockwise about its centre on a canvas that holds all of it, and
    the 2x3 matrix that maps original to rotated coordinates."""
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), degrees, 1.0)
    c, s = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(math.ceil(w * c + h * s)), int(math.ceil(w * s + h * c))
    m[0, 2] += nw / 2.0 - w / 2.0
    m[1, 2] += nh / 2.0 - h / 2.0
    out = cv2.warpAffine(img, m, (nw, nh), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
    return out, m


def variant(img, boxes_list, name):
    """The variant `name` of `img` (BGR) and each list of boxes moved with it."""
    if name == "photo":
        return img, boxes_list
    if name.startswith("x"):
        f = float(name[1:])
        h, w = img.shape[:2]
        out = cv2.resize(img, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
        return out, [[[v * f for v in b] for b in boxes] for boxes in boxes_list]
    if name.startswith("rot"):
        out, m = rotate(img, float(name[3:]))
        moved = []
        for boxes in boxes_list:
            nb = []
            for x, y, bw, bh in boxes:
                cx, cy = x + bw / 2.0, y + bh / 2.0
                nx = m[0, 0] * cx + m[0, 1] * cy + m[0, 2]
                ny = m[1, 0] * cx + m[1, 1] * cy + m[1, 2]
                nb.append([nx - bw / 2.0, ny - bh / 2.0, bw, bh])
            moved.append(nb)
        return out, moved
    if name == "gamma2":
        lut = np.array([round(255.0 * (v / 255.0) ** 2.0) for v in range(256)], dtype=np.uint8)
        return cv2.LUT(img, lut), boxes_list
    if name == "bright0.4":
        return np.clip(np.rint(img.astype(np.float32) * 0.4), 0, 255).astype(np.uint8), boxes_list
    raise ValueError(name)


def make_variants(truth, work):
    """Writes every variant of every photo to work/VARIANT/NAME.png; returns
    {(variant, name): (path, faces, ignore)}."""
    cases = {}
    for name, (path, faces, ignore) in truth.items():
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if img is None:
            sys.exit(f"cannot read {path}")
        for v in VARIANTS:
            out, (vf, vi) = variant(img, [faces, ignore], v)
            d = os.path.join(work, v)
            os.makedirs(d, exist_ok=True)
            p = os.path.join(d, os.path.splitext(name)[0] + ".png")
            cv2.imwrite(p, out)
            cases[(v, name)] = (p, vf, vi)
    return cases


def haar_detect(paths):
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    if cascade.empty():
        sys.exit("OpenCV's haarcascade_frontalface_default.xml did not load")
    out = {}
    for p in paths:
        grey = cv2.cvtColor(cv2.imread(p, cv2.IMREAD_COLOR), cv2.COLOR_BGR2GRAY)
        faces = cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5,
                                         flags=cv2.CASCADE_SCALE_IMAGE, minSize=(50, 50))
        out[p] = [[int(v) for v in f] for f in faces]
    return out


def edge_detect(args, detector, paths):
    """Boxes from `emotion-edge classify` (one JSON line per image)."""
    cmd = [args.edge, "classify", "--bundle", args.bundle, "--min-face", str(args.min_face)]
    cmd += ["--allow-unsigned"] if args.allow_unsigned else []
    cmd += ["--public-key", args.public_key] if args.public_key else []
    if detector == "seeta":
        cmd += ["--detector", "seeta"]
    else:
        v = detector.split("-")[1]
        model = args.blazeface_short if v == "short" else args.blazeface_full
        if not model:
            sys.exit(f"--blazeface-{v} is needed for {detector}")
        cmd += ["--detector", "blazeface", "--blazeface-variant", v, "--blazeface-model", model]
    run = subprocess.run(cmd + list(paths), capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"{' '.join(cmd[:12])} ... failed:\n{run.stderr[-3000:]}")
    out = {}
    for line in run.stdout.splitlines():
        r = json.loads(line)
        out[r["image"]] = [[f["bbox"][k] for k in ("x", "y", "w", "h")] for f in r.get("faces", [])]
    return out


def iou(a, b):
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax1, bx1) - max(a[0], b[0]))
    ih = max(0.0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def score(dets, faces, ignore, threshold):
    """(found, missed, false positives, IoUs of the pairs)."""
    pairs = sorted(((iou(d, f), i, j) for i, d in enumerate(dets) for j, f in enumerate(faces)),
                   reverse=True)
    used_d, used_f, ious = set(), set(), []
    for v, i, j in pairs:
        if v < threshold:
            break
        if i in used_d or j in used_f:
            continue
        used_d.add(i)
        used_f.add(j)
        ious.append(v)
    fp = 0
    for i, d in enumerate(dets):
        if i in used_d:
            continue
        cx, cy = d[0] + d[2] / 2.0, d[1] + d[3] / 2.0
        if not any(r[0] <= cx <= r[0] + r[2] and r[1] <= cy <= r[1] + r[3] for r in ignore):
            fp += 1
    return len(used_f), len(faces) - len(used_f), fp, ious


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--edge", default=os.path.join(ROOT, "target/release/emotion-edge"))
    ap.add_argument("--bundle", required=True, help="any model bundle (classify needs one)")
    ap.add_argument("--public-key")
    ap.add_argument("--allow-unsigned", action="store_true")
    ap.add_argument("--blazeface-short", help="emotion-train convert-detector's short-range ONNX")
    ap.add_argument("--blazeface-full", help="emotion-train convert-detector's full-range ONNX")
    ap.add_argument("--detectors", default=",".join(DETECTORS))
    ap.add_argument("--min-face", type=int, default=40)
    ap.add_argument("--iou", type=float, default=0.3)
    ap.add_argument("--faces", default=os.path.join(ROOT, "tests/photos/faces.json"))
    ap.add_argument("--photos", default=os.path.join(ROOT, ".cache/photos"))
    ap.add_argument("--skimage-data")
    ap.add_argument("--work", default="/tmp/emotion-detection-quality")
    ap.add_argument("--json", default="/tmp/emotion-detection-quality/results.json")
    args = ap.parse_args()

    truth = load_truth(args.faces, args.photos, args.skimage_data or skimage_data_dir())
    cases = make_variants(truth, args.work)
    paths = sorted({p for p, _, _ in cases.values()})
    detectors = [d.strip() for d in args.detectors.split(",") if d.strip()]

    results = {}
    for det in detectors:
        found = haar_detect(paths) if det == "haar" else edge_detect(args, det, paths)
        for (v, name), (p, faces, ignore) in cases.items():
            dets = found.get(p)
            if dets is None:
                sys.exit(f"{det}: no result for {p}")
            f, m, fp, ious = score(dets, faces, ignore, args.iou)
            results[(det, v, name)] = {"found": f, "missed": m, "fp": fp, "ious": ious,
                                      "faces": len(faces), "detections": dets}

    def total(det, variants, with_faces=None):
        t = {"found": 0, "missed": 0, "fp": 0, "ious": [], "faces": 0}
        for (d, v, name), r in results.items():
            if d != det or v not in variants:
                continue
            if with_faces is not None and (r["faces"] > 0) != with_faces:
                continue
            for k in ("found", "missed", "fp", "faces"):
                t[k] += r[k]
            t["ious"] += r["ious"]
        return t

    n_face = sum(1 for _, (p, f, i) in truth.items() if f)
    n_empty = len(truth) - n_face
    print(f"Photos: {len(truth)} ({n_face} with {sum(len(f) for _, f, _ in truth.values())} faces, "
          f"{n_empty} without); pairs at IoU >= {args.iou}; emotion-edge --min-face {args.min_face}\n")
    print("| detector | faces found | missed | false positives on the photos without faces "
          "| other false positives | mean IoU | all variants: found | all variants: false positives |")
    print("|---|---|---|---|---|---|---|---|")
    for det in detectors:
        a = total(det, ["photo"], True)
        e = total(det, ["photo"], False)
        t = total(det, VARIANTS)
        miou = np.mean(a["ious"]) if a["ious"] else float("nan")
        print(f"| {det} | {a['found']}/{a['faces']} | {a['missed']} | {e['fp']} ({n_empty} photos) "
              f"| {a['fp']} | {miou:.2f} | {t['found']}/{t['faces']} | {t['fp']} |")
    print()
    print("Variants: faces found / faces, then false positives (all photos); mean IoU of the found\n")
    print("| detector | " + " | ".join(VARIANTS) + " |")
    print("|---|" + "---|" * len(VARIANTS))
    for det in detectors:
        cells = []
        for v in VARIANTS:
            t = total(det, [v])
            miou = f"{np.mean(t['ious']):.2f}" if t["ious"] else "-"
            cells.append(f"{t['found']}/{t['faces']}, {t['fp']} fp, {miou}")
        print(f"| {det} | " + " | ".join(cells) + " |")

    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"settings": {"iou": args.iou, "min_face": args.min_face},
                   "results": [dict(detector=d, variant=v, image=n, **r)
                               for (d, v, n), r in sorted(results.items())]}, f, indent=1)
    print(f"\nper image: {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
