#!/usr/bin/env python3
"""Does aligning the face crop on the eyes keep the emotion on tilted faces? For each real
photo with a face (tests/photos/faces.json), the photo upright and rotated by +15, -15, +30
and -30 degrees goes through `emotion-edge classify` with BlazeFace, once with the aligned crop
(`--align true`: the face box turned by the eye line's angle) and once with the box as it is
(`--align false`); for each rotation and setting: is the face's top class the upright photo's?

    .venv/bin/python bench/alignment_rotation.py --edge target/release/emotion-edge \
        --bundle starter/bundle-fp32 --allow-unsigned --blazeface-model blazeface-short.onnx

The bundle is the published FER2013 mini-Xception (`emotion-train starter`). Rotations are
about the photo's centre, counter-clockwise positive, on a canvas grown to hold the whole photo
(black outside), bilinear (Pillow). The face of a rotated photo is the detection nearest to the
rotated centre of the hand-drawn box, within half the box's size; a photo whose face BlazeFace
does not find upright is left out, a rotation where it is not found counts as "not found".
The reference is the upright photo's top class under the same setting (both settings are
printed; they differ only when the upright face is itself tilted).

Needs numpy and Pillow (the project's .venv has both). Prints a Markdown table and a summary,
and writes --json.
"""

import argparse
import glob
import json
import math
import os
import subprocess
import sys

from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ANGLES = [15, -15, 30, -30]


def skimage_data_dir():
    found = sorted(glob.glob(os.path.join(ROOT, ".venv/lib/python3*/site-packages/skimage/data")))
    if not found:
        sys.exit("scikit-image's data folder not found in .venv: pass --skimage-data")
    return found[-1]


def rotate(img, degrees):
    """`img` rotated counter-clockwise about its centre, canvas grown, and a function mapping
    original pixel coordinates to rotated ones."""
    w, h = img.size
    out = img.rotate(degrees, resample=Image.BILINEAR, expand=True, fillcolor=(0, 0, 0))
    nw, nh = out.size
    a = math.radians(degrees)
    c, s = math.cos(a), math.sin(a)

    def move(x, y):
        dx, dy = x - w / 2.0, y - h / 2.0
        # Counter-clockwise on screen (y down): x' = c dx + s dy, y' = -s dx + c dy.
        return nw / 2.0 + c * dx + s * dy, nh / 2.0 - s * dx + c * dy

    return out, move


def classify(args, paths, align):
    cmd = [args.edge, "classify", "--bundle", args.bundle, "--detector", "blazeface",
           "--blazeface-variant", args.blazeface_variant, "--min-face", str(args.min_face),
           "--align", "true" if align else "false"]
    if args.blazeface_model:
        cmd += ["--blazeface-model", args.blazeface_model]
    cmd += ["--allow-unsigned"] if args.allow_unsigned else []
    cmd += ["--public-key", args.public_key] if args.public_key else []
    run = subprocess.run(cmd + paths, capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"{' '.join(cmd)} ... failed:\n{run.stderr[-3000:]}")
    out = {}
    for line in run.stdout.splitlines():
        r = json.loads(line)
        out[r["image"]] = r.get("faces", [])
    return out


def face_at(faces, cx, cy, size):
    """The detection whose centre is nearest to (cx, cy), if within size / 2."""
    best = None
    for f in faces:
        b = f["bbox"]
        d = math.hypot(b["x"] + b["w"] / 2.0 - cx, b["y"] + b["h"] / 2.0 - cy)
        if d <= size / 2.0 and (best is None or d < best[0]):
            best = (d, f)
    return best[1] if best else None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--edge", default=os.path.join(ROOT, "target/release/emotion-edge"))
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--public-key")
    ap.add_argument("--allow-unsigned", action="store_true")
    ap.add_argument("--blazeface-model")
    ap.add_argument("--blazeface-variant", default="short", choices=["short", "full"])
    ap.add_argument("--min-face", type=int, default=20)
    ap.add_argument("--faces", default=os.path.join(ROOT, "tests/photos/faces.json"))
    ap.add_argument("--photos", default=os.path.join(ROOT, ".cache/photos"))
    ap.add_argument("--skimage-data")
    ap.add_argument("--work", default="/tmp/emotion-alignment-rotation")
    ap.add_argument("--json", default="/tmp/emotion-alignment-rotation/results.json")
    args = ap.parse_args()

    skdata = args.skimage_data or skimage_data_dir()
    with open(args.faces) as f:
        spec = json.load(f)["images"]
    os.makedirs(args.work, exist_ok=True)
    cases = []  # (photo, angle, path, face centre, face size)
    for name, entry in sorted(spec.items()):
        for box in entry["faces"]:
            folder = args.photos if entry["source"] == "photos" else skdata
            img = Image.open(os.path.join(folder, name)).convert("RGB")
            x, y, w, h = box
            for angle in [0] + ANGLES:
                out, move = rotate(img, angle) if angle else (img, lambda a, b: (a, b))
                p = os.path.join(args.work, f"{os.path.splitext(name)[0]}_{angle:+d}.png")
                out.save(p)
                cx, cy = move(x + w / 2.0, y + h / 2.0)
                cases.append((name, angle, p, cx, cy, max(w, h)))

    paths = sorted({c[2] for c in cases})
    found = {align: classify(args, paths, align) for align in (False, True)}
    labels = {}
    for name, angle, p, cx, cy, size in cases:
        for align in (False, True):
            f = face_at(found[align][p], cx, cy, size)
            labels[(name, angle, align)] = (f["label"], f["confidence"], f["probabilities"]) if f else None

    photos = sorted({c[0] for c in cases})
    head = "| photo | upright (box / aligned) | " + " | ".join(f"{a:+d}° box / aligned" for a in ANGLES) + " |"
    print(head)
    print("|---|---|" + "---|" * len(ANGLES))
    agree = {(a, al): 0 for a in ANGLES for al in (False, True)}
    # The probability the rotated face gets for the upright top class (0 when not found).
    kept = {(a, al): [] for a in ANGLES for al in (False, True)}
    missing = {a: 0 for a in ANGLES}
    used = 0
    rows = []
    for name in photos:
        ref = {al: labels[(name, 0, al)] for al in (False, True)}
        if ref[False] is None or ref[True] is None:
            print(f"| {name} | not found | " + " | ".join("-" for _ in ANGLES) + " |")
            continue
        used += 1

        def cell(v, reference):
            if v is None:
                return "not found"
            mark = "" if v[0] == reference[0] else " ✗"
            return f"{v[0]} {v[1]:.2f}{mark}"

        cells = []
        for a in ANGLES:
            off, on = labels[(name, a, False)], labels[(name, a, True)]
            if off is None or on is None:
                missing[a] += 1
            agree[(a, False)] += int(off is not None and off[0] == ref[False][0])
            agree[(a, True)] += int(on is not None and on[0] == ref[True][0])
            kept[(a, False)].append(off[2][ref[False][0]] if off else 0.0)
            kept[(a, True)].append(on[2][ref[True][0]] if on else 0.0)
            cells.append(f"{cell(off, ref[False])} / {cell(on, ref[True])}")
        up = f"{ref[False][0]} {ref[False][1]:.2f} / {ref[True][0]} {ref[True][1]:.2f}"
        print(f"| {name} | {up} | " + " | ".join(cells) + " |")
        rows.append({"photo": name, **{f"{a:+d}": [labels[(name, a, al)][:2] if labels[(name, a, al)] else None
                                                   for al in (False, True)]
                                       for a in [0] + ANGLES}})
    print()
    print("| crop | " + " | ".join(f"{a:+d}°" for a in ANGLES) + " | all |")
    print("|---|" + "---|" * (len(ANGLES) + 1))
    for al, what in ((False, "box as it is"), (True, "aligned on the eyes")):
        n = sum(agree[(a, al)] for a in ANGLES)
        print(f"| {what} | " + " | ".join(f"{agree[(a, al)]}/{used}" for a in ANGLES)
              + f" | {n}/{used * len(ANGLES)} |")
    print()
    print("| crop: mean probability of the upright top class | " + " | ".join(f"{a:+d}°" for a in ANGLES) + " | all |")
    print("|---|" + "---|" * (len(ANGLES) + 1))
    for al, what in ((False, "box as it is"), (True, "aligned on the eyes")):
        allv = [v for a in ANGLES for v in kept[(a, al)]]
        print(f"| {what} | " + " | ".join(f"{sum(kept[(a, al)]) / max(1, used):.2f}" for a in ANGLES)
              + f" | {sum(allv) / max(1, len(allv)):.2f} |")
    print(f"\nsame top class as upright, of {used} photos whose face BlazeFace finds upright "
          f"(not found when rotated: {', '.join(f'{a:+d}°: {missing[a]}' for a in ANGLES)})")
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"rows": rows, "agree": {f"{a:+d} {'aligned' if al else 'box'}": v
                                           for (a, al), v in agree.items()}}, f, indent=1)


if __name__ == "__main__":
    main()
