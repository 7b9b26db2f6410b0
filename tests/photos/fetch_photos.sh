#!/usr/bin/env bash
# Fetch the real photographs the detector, alignment and benchmark code is measured on, from
# two registry packages, into DIR (default: ./photos), each file checked against a pinned
# sha256 (see tests/photos/README.md for every file's origin and licence):
#
#   - PyPI face_recognition 1.3.0 (sdist, MIT): tests/test_images/*.jpg
#   - Debian bookworm opencv-doc 4.6.0+dfsg-12 (Apache-2.0 / BSD-3-Clause): samples data
#
# scikit-image's photos (astronaut, camera, coffee, rocket, chelsea) are used straight from
# the scikit-image wheel in .venv and are not copied.
#
#   fetch_photos.sh [DIR]
#
# Idempotent: when every photo is there with its hash nothing is downloaded. Prints DIR.
# Set PYTHON= to choose the interpreter that runs pip.
set -euo pipefail

DIR="${1:-photos}"
PY="${PYTHON:-python3}"
SDIST=face_recognition-1.3.0.tar.gz
SDIST_SHA=5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec
DEB=opencv-doc_4.6.0+dfsg-12_all.deb
DEB_SHA=4b12681df35878207ac7097dc66184b2ae552e4bf4ddd2af04a0f03ed0b8682a

# name sha256 (face_recognition's test images)
FR=(
    "obama.jpg 0930e3aa8cae5920329c0c8cbc6a2ab70f47b0e67b432875beaa95cbf7e741f6"
    "obama2.jpg a7efcc907375274796f39646510704aa86672d59f6d5469d69af3c85590976a6"
    "obama3.jpg 76ac6bf97c36dc2da0ad16a537d6a5ac1b10f48d49aac29a0cca9a17cdbc3ca3"
    "biden.jpg 3c17508bb91554c637a2eabddfae790e5bb1caba93130814fc2ac50be9760c4c"
    "obama_partial_face.jpg c2d1f09e7ef3042352b41e41286e6eb0522f64f88308be13886991b95db52117"
)
# name sha256 (OpenCV's sample data)
CV=(
    "messi5.jpg 1d570e49654e84c7a943918537bd9e5e1ef82920152e147c834006e235be97c9"
    "basketball1.png ba06f6701f7260998b430c39b6557f775497e6ce7b1a74f0b7ea6af371bf54a6"
    "basketball2.png b3047772e0dc6c9d83c26f64894ca1a897f799f855c5574ac24b2ef934c2978e"
    "baboon.jpg 1a1dd18d78eec44420af3b0b7f08ee3d41c982916cae3ce203d7ff35d754cc0f"
    "fruits.jpg 9c031d80a1c52da5eca790db896baffec6a7e52bf786cdb7bbfca5c7f880e6a1"
    "home.jpg 23b8cf46a1965d0ec33459b875aed43187802834db49e0daa9fa2cc842e9d8d2"
    "stuff.jpg 21cd00afbdd0727f445dd91c0a09633e6345ed5b05a3d2355453a1f3c314c6c5"
    "building.jpg 742a1baad62ac82e91e718e77eedf7e85c2eddc4badfb8c87c6cbc86c45a8b07"
)

mkdir -p "$DIR"
have() { [[ -f "$DIR/$1" ]] && echo "$2  $DIR/$1" | sha256sum -c --status; }
all_there() {
    local entry
    for entry in "$@"; do
        # shellcheck disable=SC2086
        have $entry || return 1
    done
}
check() {
    local entry
    for entry in "$@"; do
        read -r name sha <<<"$entry"
        echo "$sha  $DIR/$name" | sha256sum -c --quiet
    done
}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

if ! all_there "${FR[@]}"; then
    "$PY" -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
        face_recognition==1.3.0 -d "$scratch" >&2
    echo "$SDIST_SHA  $scratch/$SDIST" | sha256sum -c --quiet
    for entry in "${FR[@]}"; do
        name=${entry%% *}
        tar -xzf "$scratch/$SDIST" -C "$scratch" "face_recognition-1.3.0/tests/test_images/$name"
        cp "$scratch/face_recognition-1.3.0/tests/test_images/$name" "$DIR/$name"
    done
    check "${FR[@]}"
fi

if ! all_there "${CV[@]}"; then
    # apt-get download needs no root; it writes into the current folder.
    (cd "$scratch" && apt-get download -q opencv-doc=4.6.0+dfsg-12 >&2 2>/dev/null) ||
        { echo "fetch_photos.sh: apt-get download opencv-doc=4.6.0+dfsg-12 failed (Debian bookworm's package index is needed)" >&2; exit 1; }
    echo "$DEB_SHA  $scratch/$DEB" | sha256sum -c --quiet
    dpkg-deb -x "$scratch/$DEB" "$scratch/deb"
    for entry in "${CV[@]}"; do
        name=${entry%% *}
        cp "$scratch/deb/usr/share/doc/opencv-doc/examples/data/$name" "$DIR/$name"
    done
    check "${CV[@]}"
fi
echo "$DIR"
