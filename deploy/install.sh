#!/bin/sh
# Installs emotion-edge as a systemd service on a Raspberry Pi or Jetson (Debian-family
# systems with systemd). Run as root on the device, from the deploy/ folder or anywhere:
#
#   sudo ./install.sh --binary ./emotion-edge --public-key ./bundle.pub [--bundle DIR]
#
# Safe to run again (to update the binary or the unit): it never overwrites an existing
# /etc/emotion-edge/config.toml, and it restarts the service at the end.
#
# With --root DIR it installs into a staging tree instead (an image, or the tests in
# deploy/check): files go under DIR, and what would be done on the live system (users,
# groups, systemctl, udev) is only printed.

set -eu

usage() {
    cat <<'EOF'
Usage: install.sh [options]

Installs emotion-edge: binary, systemd unit, configuration, public key, model store.

  --binary PATH      the emotion-edge binary for this device (default: ./emotion-edge,
                     or the installed one if there is no ./emotion-edge)
  --config PATH      configuration to install as /etc/emotion-edge/config.toml
                     (default: config.example.toml next to this script); an existing
                     config.toml is never overwritten: the new one goes to config.toml.new
  --public-key PATH  public key bundles must be signed with (`ed25519-pub <hex>`, the
                     .pub file of `emotion-train keygen`), installed as
                     /etc/emotion-edge/bundle.pub; required unless one is installed
  --bundle DIR       a model bundle to install: it becomes the running model if there is
                     none yet, otherwise it is dropped into the model store's inbox
  --detector FILE    a BlazeFace face detector (face_detection_short_range.onnx or
                     face_detection_full_range.onnx, written on the workstation by
                     `emotion-train convert-detector`), installed into
                     /usr/local/share/emotion-edge where cameras use it by default; its sha256
                     must be one of detectors.sha256 next to this script (repeatable)
  --root DIR         install into the staging tree DIR instead of / (no users, groups,
                     systemctl or udev changes on this machine: they are printed)
  --no-start         enable the service but do not (re)start it
  -h, --help         this help
EOF
}

die() {
    printf 'install.sh: error: %s\n' "$*" >&2
    exit 1
}

say() {
    printf '%s\n' "$*"
}

here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)

binary=
config=$here/config.example.toml
unit_src=$here/emotion-edge.service
public_key=
bundle=
detectors=
root=/
start=yes

need_value() {
    [ "$2" -ge 2 ] || die "$1 needs a value (see --help)"
}

while [ $# -gt 0 ]; do
    case $1 in
        --binary) need_value "$1" $#; binary=$2; shift 2 ;;
        --binary=*) binary=${1#*=}; shift ;;
        --config) need_value "$1" $#; config=$2; shift 2 ;;
        --config=*) config=${1#*=}; shift ;;
        --public-key) need_value "$1" $#; public_key=$2; shift 2 ;;
        --public-key=*) public_key=${1#*=}; shift ;;
        --bundle) need_value "$1" $#; bundle=$2; shift 2 ;;
        --bundle=*) bundle=${1#*=}; shift ;;
        --detector) need_value "$1" $#; detectors="$detectors
$2"; shift 2 ;;
        --detector=*) detectors="$detectors
${1#*=}"; shift ;;
        --root) need_value "$1" $#; root=$2; shift 2 ;;
        --root=*) root=${1#*=}; shift ;;
        --no-start) start=no; shift ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done

# Where things go (on the device; under $root when staging).
USER_NAME=emotion-edge
BIN=/usr/local/bin/emotion-edge
ETC=/etc/emotion-edge
CONFIG=$ETC/config.toml
KEY=$ETC/bundle.pub
UNIT=/etc/systemd/system/emotion-edge.service
UDEV_RULE=/etc/udev/rules.d/60-emotion-edge.rules
STATE=/var/lib/emotion-edge
MODELS=$STATE/models
SHARE=/usr/local/share/emotion-edge
GROUPS_NEEDED="video dialout i2c"

# --root: "" for the live system, otherwise an absolute staging directory.
[ -d "$root" ] || die "--root $root is not a directory"
root=$(CDPATH='' cd -- "$root" && pwd)
if [ "$root" = / ]; then
    root=
fi
if [ -z "$root" ]; then
    live=yes
else
    live=no
fi

# What the staged mode prints instead of doing.
would() {
    say "  (staged: on the device this would run: $*)"
}

# ---- checks before anything changes ----------------------------------------------------

# Without --binary: ./emotion-edge, or else the one installed (to re-run for a bundle or a
# new unit without copying the binary again).
if [ -z "$binary" ]; then
    binary=./emotion-edge
    if [ ! -f "$binary" ] && [ -f "$root$BIN" ]; then
        binary=$root$BIN
    fi
fi
[ -f "$binary" ] || die "binary $binary not found (pass --binary PATH)"
[ -f "$config" ] || die "configuration $config not found (pass --config PATH)"
[ -f "$unit_src" ] || die "unit file $unit_src not found (install.sh must stay next to it)"
if [ -n "$bundle" ]; then
    [ -d "$bundle" ] || die "bundle $bundle is not a folder"
    if [ ! -f "$bundle/manifest.json" ] || [ ! -f "$bundle/model.onnx" ]; then
        die "bundle $bundle has no manifest.json and model.onnx: not a model bundle"
    fi
    [ -f "$bundle/manifest.sig" ] ||
        say "warning: $bundle has no manifest.sig: it is unsigned and will be refused unless model.allow_unsigned = true"
fi

# A public key file: exactly one `ed25519-pub <64 hex> [comment]` line besides blank and
# '#' lines (emotion_shared::bundle); never a secret key.
check_public_key() {
    lines=$(grep -v -E '^[[:space:]]*(#|$)' "$1" || true)
    case $lines in
        *ed25519-secret*)
            die "$1 is a SECRET key: install the .pub file next to it, and keep the secret key off the device" ;;
    esac
    if [ "$(printf '%s\n' "$lines" | grep -c .)" -ne 1 ] ||
        ! printf '%s\n' "$lines" | grep -q -E '^[[:space:]]*ed25519-pub[[:space:]][0-9A-Fa-f]{64}([[:space:]].*)?$'; then
        die "$1 is not a public key file (one line: ed25519-pub <64 hex digits>)"
    fi
}

# A detector must be one of the converted MediaPipe models the runtime trusts (the same
# pinned hashes are built into emotion-edge), under its own file name.
detector_names=
check_detector() {
    [ -f "$1" ] || die "detector $1 not found"
    [ -f "$here/detectors.sha256" ] || die "$here/detectors.sha256 is missing (it ships with install.sh)"
    sum=$(sha256sum "$1" | cut -d' ' -f1)
    name=$(awk -v s="$sum" '$1 == s { print $2 }' "$here/detectors.sha256")
    [ -n "$name" ] || die "detector $1 (sha256 $sum) is none of the models in detectors.sha256: convert MediaPipe's model with emotion-train convert-detector"
    detector_names="$detector_names $name"
}
old_ifs=$IFS
IFS='
'
for d in $detectors; do
    [ -n "$d" ] && check_detector "$d"
done
IFS=$old_ifs

if [ -n "$public_key" ]; then
    [ -f "$public_key" ] || die "public key $public_key not found"
    check_public_key "$public_key"
elif [ ! -f "$root$KEY" ]; then
    die "no public key installed at $KEY yet: pass --public-key PATH (the .pub file of emotion-train keygen)"
fi

if [ "$live" = yes ]; then
    [ "$(id -u)" -eq 0 ] || die "run as root (sudo $0 ...), or pass --root DIR to stage"
    command -v systemctl >/dev/null 2>&1 || die "systemctl not found: this needs a systemd system"
    [ -x "$binary" ] || die "$binary is not executable (chmod +x $binary)"
    # A binary for another architecture (an x86-64 build copied to a Pi) fails here, not
    # in a restart loop of the service.
    "$binary" --version >/dev/null 2>&1 ||
        die "$binary does not run on this machine ($(uname -m)); was it built for another architecture?"
fi

if [ "$live" = yes ]; then
    say "Installing emotion-edge on this system"
else
    say "Installing emotion-edge into the staging tree $root"
fi

# ---- user and groups ---------------------------------------------------------------------

if [ "$live" = yes ]; then
    for g in $GROUPS_NEEDED; do
        if ! getent group "$g" >/dev/null; then
            groupadd --system "$g"
            say "created group $g"
        fi
    done
    if ! getent group "$USER_NAME" >/dev/null; then
        groupadd --system "$USER_NAME"
        say "created group $USER_NAME"
    fi
    if getent passwd "$USER_NAME" >/dev/null; then
        usermod --append --groups video,dialout,i2c "$USER_NAME"
        say "user $USER_NAME exists (groups: $(id -nG "$USER_NAME"))"
    else
        nologin=/usr/sbin/nologin
        [ -x "$nologin" ] || nologin=/sbin/nologin
        [ -x "$nologin" ] || nologin=/bin/false
        useradd --system --gid "$USER_NAME" --groups video,dialout,i2c \
            --home-dir "$STATE" --no-create-home --shell "$nologin" \
            --comment "emotion-edge service" "$USER_NAME"
        say "created system user $USER_NAME (groups: $(id -nG "$USER_NAME"))"
    fi
else
    say "user and groups: not touched in a staged install"
    for g in $GROUPS_NEEDED; do
        would "getent group $g || groupadd --system $g"
    done
    would "useradd --system --gid $USER_NAME --groups video,dialout,i2c --home-dir $STATE --no-create-home --shell /usr/sbin/nologin $USER_NAME"
fi

# ---- files -------------------------------------------------------------------------------

# install_file MODE SRC DEST: copies SRC to DEST unless DEST already has the same content.
install_file() {
    if [ -f "$3" ] && cmp -s "$2" "$3"; then
        say "unchanged   ${3#"$root"}"
    else
        install -D -m "$1" "$2" "$3"
        say "installed   ${3#"$root"}"
    fi
}

install_file 0755 "$binary" "$root$BIN"
install_file 0644 "$unit_src" "$root$UNIT"
install -d -m 0755 "$root$ETC"

if [ -f "$root$CONFIG" ]; then
    if cmp -s "$config" "$root$CONFIG"; then
        say "unchanged   $CONFIG"
    else
        install -m 0644 "$config" "$root$CONFIG.new"
        say "kept        $CONFIG (it exists; not overwritten)"
        say "installed   $CONFIG.new: compare with  diff $CONFIG $CONFIG.new"
    fi
else
    install -m 0644 "$config" "$root$CONFIG"
    say "installed   $CONFIG"
fi

if [ -n "$public_key" ]; then
    if [ -f "$root$KEY" ] && ! cmp -s "$public_key" "$root$KEY"; then
        cp -p "$root$KEY" "$root$KEY.old"
        say "warning: replacing the public key; the old one is saved as $KEY.old."
        say "         Bundles signed with the old key (also the running one) will be refused."
    fi
    install_file 0644 "$public_key" "$root$KEY"
fi

# BlazeFace detectors, under the name the runtime looks for (checked above).
IFS='
'
for d in $detectors; do
    [ -n "$d" ] || continue
    sum=$(sha256sum "$d" | cut -d' ' -f1)
    name=$(awk -v s="$sum" '$1 == s { print $2 }' "$here/detectors.sha256")
    install_file 0644 "$d" "$root$SHARE/$name"
done
IFS=$old_ifs

# /dev/i2c-* belong to group i2c on Raspberry Pi OS already; elsewhere (Jetson, plain
# Debian) they are root-only without a rule like this one.
udev_tmp=$(mktemp)
trap 'rm -f "$udev_tmp"' EXIT
cat >"$udev_tmp" <<'EOF'
# Installed by emotion-edge's install.sh: I2C buses (the OLED display) for group i2c.
SUBSYSTEM=="i2c-dev", GROUP="i2c", MODE="0660"
EOF
if [ -f "$root$UDEV_RULE" ] && cmp -s "$udev_tmp" "$root$UDEV_RULE"; then
    say "unchanged   $UDEV_RULE"
else
    install -D -m 0644 "$udev_tmp" "$root$UDEV_RULE"
    say "installed   $UDEV_RULE"
    if [ "$live" = yes ]; then
        if command -v udevadm >/dev/null 2>&1; then
            udevadm control --reload-rules || true
            udevadm trigger --subsystem-match=i2c-dev || true
        fi
    else
        would "udevadm control --reload-rules && udevadm trigger --subsystem-match=i2c-dev"
    fi
fi

# ---- model store -------------------------------------------------------------------------

for d in "$STATE" "$MODELS" "$MODELS/inbox" "$MODELS/current" "$MODELS/previous" "$MODELS/rejected"; do
    install -d -m 0755 "$root$d"
done

# has_model DIR: DIR holds a bundle (the runtime verifies it when it starts).
has_model() {
    [ -f "$1/manifest.json" ] && [ -f "$1/model.onnx" ]
}

# copy_bundle SRC DEST: copies the bundle folder SRC to the new folder DEST.
copy_bundle() {
    mkdir -m 0755 "$2"
    cp -R "$1/." "$2/"
}

if [ -n "$bundle" ]; then
    if [ "$live" = yes ]; then
        # The same check the service makes before it runs a model.
        "$root$BIN" verify --public-key "$root$KEY" "$bundle" ||
            die "bundle $bundle did not verify with $KEY: not installed"
    else
        say "bundle: not verified in a staged install (emotion-edge verify --public-key $KEY $bundle on the device)"
    fi
    current=$root$MODELS/current
    inbox=$root$MODELS/inbox
    waiting=
    for d in "$inbox"/*/; do
        if [ -f "${d}manifest.json" ] && cmp -s "$bundle/manifest.json" "${d}manifest.json"; then
            waiting=${d%/}
        fi
    done
    if has_model "$current" && cmp -s "$bundle/manifest.json" "$current/manifest.json"; then
        say "unchanged   $MODELS/current (the bundle is the installed model)"
    elif [ -n "$waiting" ]; then
        say "unchanged   ${waiting#"$root"} (the bundle is already waiting in the inbox)"
    elif has_model "$current"; then
        # A live update: the service verifies it and swaps it in. A hidden name while
        # copying, so that the service never sees half a bundle.
        name=$(basename -- "$bundle")-$(date +%Y%m%d%H%M%S)
        if [ -e "$inbox/$name" ]; then
            name=$name-$$
        fi
        rm -rf "$inbox/.$name.copying"
        copy_bundle "$bundle" "$inbox/.$name.copying"
        if [ "$live" = yes ]; then
            chown -R "$USER_NAME:$USER_NAME" "$inbox/.$name.copying"
        fi
        mv "$inbox/.$name.copying" "$inbox/$name"
        say "installed   $MODELS/inbox/$name (the service swaps it in once it has verified it)"
    else
        # No model yet: the service only starts from current/, so it goes there.
        tmp=$root$MODELS/.current.copying
        rm -rf "$tmp"
        copy_bundle "$bundle" "$tmp"
        if [ -n "$(ls -A "$current")" ]; then
            mv "$current" "$root$MODELS/rejected/current-unusable-$(date +%Y%m%d%H%M%S)"
        else
            rmdir "$current"
        fi
        mv "$tmp" "$current"
        say "installed   $MODELS/current (the first model)"
    fi
fi

if [ "$live" = yes ]; then
    chown -R "$USER_NAME:$USER_NAME" "$STATE"
else
    would "chown -R $USER_NAME:$USER_NAME $STATE"
fi

# ---- systemd -----------------------------------------------------------------------------

if has_model "$root$MODELS/current"; then
    model_ready=yes
else
    model_ready=no
fi

if [ "$live" = yes ]; then
    systemctl daemon-reload
    systemctl enable emotion-edge.service
    if [ "$start" = no ]; then
        say "not (re)started (--no-start): sudo systemctl restart emotion-edge"
    elif [ "$model_ready" = no ]; then
        say "not started: there is no model in $MODELS/current yet."
        say "  Install one with: sudo $0 --bundle DIR   (then it starts)"
    else
        systemctl restart emotion-edge.service
        say "started:   systemctl status emotion-edge"
        say "logs:      journalctl -u emotion-edge -f"
    fi
else
    would "systemctl daemon-reload"
    would "systemctl enable emotion-edge.service"
    if [ "$start" = yes ] && [ "$model_ready" = yes ]; then
        would "systemctl restart emotion-edge.service"
    fi
fi
say "done."
