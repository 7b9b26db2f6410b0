#!/usr/bin/env python3
"""Makes the real-frame benchmark set: 640x480 JPEG "camera frames" cut from the real photos
in .cache/photos (tests/photos/README.md: face_recognition's test images, Debian opencv-doc's
samples) and scikit-image's data, with faces of several sizes (about 40 to 250 px), two
frames with several faces, and frames with no face at all. `emotion-edge bench --frames-dir`
and `bench/fer_pipeline.py --frames` measure the same files.

    .venv/bin/python bench/make_frames.py OUT_DIR [--photos .cache/photos]

Writes OUT_DIR/frame-NN-<what>.jpg (quality 90) and OUT_DIR/frames.json (per frame: the photos
it was cut from and the number of frontal faces in it, counted by eye: the cameraman and the
basketball player seen from the side are not counted). Deterministic: the same
photos give the same bytes.
"""

import argparse
import json
import os
import sys

import numpy as np
from PIL import Image

W, H = 640, 480

# Face centre (x, y) and width in the original photo's pixels, measured by eye.
FACES = {
    "obama.jpg": (485, 230, 230),
    "obama2.jpg": (360, 400, 280),
    "obama3.jpg": (754, 428, 233),
    "biden.jpg": (573, 257, 220),
    "astronaut.png": (225, 120, 110),
}


def skimage_dir():
    import skimage

    return os.path.join(os.path.dirname(skimage.__file__), "data")


def load(photos, name):
    base = skimage_dir() if name.endswith(".png") and name in ("astronaut.png", "camera.png", "coffee.png") else photos
    return Image.open(os.path.join(base, name)).convert("RGB")


def window(img, cx, cy, win_w, up=0.4):
    """A 4:3 window win_w wide with (cx, cy) at the centre horizontally and `up` of the height
    from the top, shifted to stay inside the photo (and shrunk if the photo is smaller)."""
    win_w = min(win_w, img.width, img.height * 4 / 3)
    win_h = win_w * 3 / 4
    x0 = min(max(cx - win_w / 2, 0), img.width - win_w)
    y0 = min(max(cy - up * win_h, 0), img.height - win_h)
    return img.crop((round(x0), round(y0), round(x0 + win_w), round(y0 + win_h)))


def face_at(img, name, face_px, size=(W, H)):
    """The photo cut so its face is about face_px wide in a frame of `size`."""
    cx, cy, fw = FACES[name]
    win = window(img, cx, cy, fw * size[0] / face_px)
    return win.resize(size, Image.LANCZOS)


def fit(img, size=(W, H)):
    """The photo's largest centred 4:3 window, scaled to `size`."""
    return window(img, img.width / 2, img.height / 2, img.width, up=0.5).resize(size, Image.LANCZOS)


def grid(tiles, cols, rows):
    frame = Image.new("RGB", (W, H))
    tw, th = W // cols, H // rows
    for i, t in enumerate(tiles):
        frame.paste(t.resize((tw, th), Image.LANCZOS), ((i % cols) * tw, (i // cols) * th))
    return frame


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--photos", default=".cache/photos")
    args = ap.parse_args()
    p = lambda n: load(args.photos, n)  # noqa: E731
    portraits = ["obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg"]
    frames = [
        ("basketball1", ["basketball1.png"], 1, p("basketball1.png").resize((W, H))),
        ("basketball2", ["basketball2.png"], 1, p("basketball2.png").resize((W, H))),
        ("messi", ["messi5.jpg"], 1, fit(p("messi5.jpg"))),
        ("astronaut", ["astronaut.png"], 1, face_at(p("astronaut.png"), "astronaut.png", 150)),
        ("cameraman", ["camera.png"], 0, fit(p("camera.png"))),
    ]
    for name, px in [("obama.jpg", 240), ("obama2.jpg", 200), ("obama3.jpg", 110), ("biden.jpg", 90)]:
        frames.append((f"{name[:-4]}-{px}px", [name], 1, face_at(p(name), name, px)))
    small = fit(p("home.jpg"))
    for n, x in [("obama.jpg", 120), ("biden.jpg", 400)]:
        small.paste(face_at(p(n), n, 45, (160, 120)), (x, 300))
    frames.append(("two-45px-on-home", ["home.jpg", "obama.jpg", "biden.jpg"], 2, small))
    frames.append(
        ("four-people", portraits, 4,
         grid([face_at(p(n), n, 90, (320, 240)) for n in portraits], 2, 2)))
    frames.append(
        ("nine-tiles", portraits + ["astronaut.png"], 6,
         grid([face_at(p(n), n, 55, (213, 160)) for n in portraits + ["astronaut.png"]]
              + [fit(p(n), (213, 160)) for n in ["home.jpg", "fruits.jpg", "stuff.jpg", "building.jpg"]]
              + [face_at(p("obama2.jpg"), "obama2.jpg", 55, (213, 160))], 3, 3)))
    for name in ["home.jpg", "stuff.jpg", "coffee.png", "baboon.jpg"]:
        frames.append((f"no-face-{name.split('.')[0]}", [name], 0, fit(p(name))))

    os.makedirs(args.out, exist_ok=True)
    index = []
    for i, (what, sources, faces, img) in enumerate(frames):
        assert img.size == (W, H), (what, img.size)
        fname = f"frame-{i:02d}-{what}.jpg"
        img.save(os.path.join(args.out, fname), quality=90)
        index.append({"file": fname, "from": sources, "faces": faces})
    with open(os.path.join(args.out, "frames.json"), "w") as f:
        json.dump({"size": [W, H], "frames": index}, f, indent=1)
    print(f"{len(index)} frames, {sum(x['faces'] for x in index)} faces -> {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
