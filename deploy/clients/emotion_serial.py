#!/usr/bin/env python3
"""Reads emotion-edge's serial wire protocol (version 1) on a PC or a Raspberry Pi.

The protocol is specified in the docs of emotion_shared::protocol (shared/src/protocol.rs).
Every line is `$EMO,1,<kind>,<fields...>*<CRC>\\r\\n`, at most 128 bytes, with a
CRC-16/CCITT-FALSE over the bytes between `$` and `*` (binascii.crc_hqx(payload, 0xFFFF)).

    python3 emotion_serial.py /dev/ttyUSB0            # print one JSON object per line
    python3 emotion_serial.py /dev/ttyUSB0 --count 50 # stop after 50 valid lines
    python3 emotion_serial.py --check-vectors shared/testdata/protocol/vectors.tsv

parse_line() needs only the standard library; reading a port needs pyserial.
"""

import argparse
import binascii
import json
import sys
import time

VERSION = 1
MAX_CONTENT = 126
LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FIELDS = {"F": 12, "N": 6, "S": 8}
HEX_UPPER = set("0123456789ABCDEF")


class ProtocolError(ValueError):
    """A line that is not valid protocol; `kind` names the failed check as in the spec."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind


def _number(text, limit, name):
    if not text.isdigit() or not text.isascii() or (len(text) > 1 and text[0] == "0"):
        raise ProtocolError("bad_number", f"{name} {text!r} is not a plain decimal number")
    value = int(text)
    if value > limit:
        raise ProtocolError("out_of_range", f"{name} {value} is above {limit}")
    return value


def parse_line(raw):
    """Decodes one line (bytes, with or without its line ending) into a dict."""
    if raw.endswith(b"\r\n"):
        raw = raw[:-2]
    elif raw.endswith(b"\n"):
        raw = raw[:-1]
    if len(raw) > MAX_CONTENT:
        raise ProtocolError("too_long", f"{len(raw)} bytes, at most {MAX_CONTENT}")
    if any(b < 0x20 or b > 0x7E for b in raw):
        raise ProtocolError("not_printable_ascii", "a byte outside printable ASCII")
    text = raw.decode("ascii")
    if not text.startswith("$"):
        raise ProtocolError("missing_start", "the line does not start with $")
    star = text.find("*")
    if star < 0:
        raise ProtocolError("missing_checksum", "no *CRC at the end")
    digits = text[star + 1:]
    if len(digits) != 4 or not set(digits) <= HEX_UPPER:
        raise ProtocolError("malformed_checksum", f"checksum {digits!r} is not 4 uppercase hex digits")
    payload = text[1:star]
    crc = binascii.crc_hqx(payload.encode("ascii"), 0xFFFF)
    if crc != int(digits, 16):
        raise ProtocolError("checksum_mismatch", f"checksum is {crc:04X}, the line says {digits}")
    fields = payload.split(",")
    if fields[0] != "EMO":
        raise ProtocolError("bad_prefix", f"prefix {fields[0]!r} is not EMO")
    version = _number(fields[1] if len(fields) > 1 else "", 2**32 - 1, "version")
    if version != VERSION:
        raise ProtocolError(
            "unsupported_version",
            f"unsupported protocol version {version}, this decoder speaks {VERSION}")
    kind = fields[2] if len(fields) > 2 else ""
    if kind not in FIELDS:
        raise ProtocolError("unknown_kind", f"unknown kind {kind!r}")
    if len(fields) != FIELDS[kind]:
        raise ProtocolError("field_count", f"{kind} lines have {FIELDS[kind]} fields, not {len(fields)}")
    msg = {"kind": kind,
           "seq": _number(fields[3], 2**32 - 1, "seq"),
           "t_ms": _number(fields[4], 2**32 - 1, "t_ms")}
    if kind == "F":
        msg["face_id"] = _number(fields[5], 2**32 - 1, "face_id")
        if fields[6] not in LABELS:
            raise ProtocolError("unknown_label", f"unknown label {fields[6]!r}")
        msg["label"] = fields[6]
        msg["conf"] = _number(fields[7], 1000, "conf")
        for name, value in zip("xywh", fields[8:12]):
            msg[name] = _number(value, 65535, name)
    elif kind == "N":
        msg["faces"] = _number(fields[5], 65535, "faces")
    else:
        level, code, note = fields[5], fields[6], fields[7]
        if level not in ("I", "W", "E"):
            raise ProtocolError("invalid_field", f"level {level!r} is not I, W or E")
        if not (1 <= len(code) <= 20) or any(c not in "abcdefghijklmnopqrstuvwxyz0123456789_" for c in code):
            raise ProtocolError("invalid_field", f"code {code!r} is not 1-20 of [a-z0-9_]")
        if not (1 <= len(note) <= 64) or "$" in note:
            raise ProtocolError("invalid_field", "text must be 1-64 printable characters without $ , *")
        msg.update(level=level, code=code, text=note)
    return msg


def check_vectors(path):
    """Checks parse_line against the shared test vectors; returns the number of failures."""
    failures = checked = 0
    header = None
    with open(path, encoding="ascii") as f:
        for row in f:
            if row.startswith("#"):
                continue
            cells = row.rstrip("\n").split("\t")
            if header is None:
                header = cells
                continue
            vec = dict(zip(header, cells))
            raw = bytes.fromhex(vec["line_hex"])
            checked += 1
            try:
                got = parse_line(raw)
            except ProtocolError as e:
                if vec["expect"] != e.kind:
                    failures += 1
                    print(f"FAIL {vec['line']}: got {e.kind}, want {vec['expect']}", file=sys.stderr)
                continue
            want = {k: vec[k] for k in ("kind", "seq", "t_ms", "face_id", "label", "conf",
                                         "x", "y", "w", "h", "faces", "level", "code", "text")
                    if vec[k] != "-"}
            if vec["kind"] == "S":
                want["text"] = vec["text"]  # a status text may itself be "-"
            have = {k: str(v) for k, v in got.items()}
            if vec["expect"] != "ok" or have != want:
                failures += 1
                print(f"FAIL {vec['line']}: got {have}, want {vec['expect']} {want}", file=sys.stderr)
    print(f"{checked - failures} passed, {failures} failed")
    return failures


def read_port(port, baud, count, idle_timeout):
    """Prints every valid line from `port` as JSON; bad lines go to stderr and are skipped."""
    import serial  # pyserial

    valid = 0
    last_data = time.monotonic()
    with serial.Serial(port, baud, timeout=0.2) as ser:
        print(json.dumps({"kind": "ready", "port": port}), flush=True)
        buf = b""
        while count == 0 or valid < count:
            chunk = ser.read(256)
            now = time.monotonic()
            if chunk:
                last_data = now
            elif idle_timeout and now - last_data > idle_timeout:
                print(f"no data for {idle_timeout} s", file=sys.stderr)
                return 1
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                start = line.rfind(b"$")
                if start < 0:
                    continue
                try:
                    msg = parse_line(line[start:] + b"\n")
                except ProtocolError as e:
                    print(f"skipped line ({e.kind}): {e}", file=sys.stderr)
                    continue
                print(json.dumps(msg), flush=True)
                valid += 1
                if count and valid >= count:
                    break
            if len(buf) > 4 * MAX_CONTENT:
                buf = buf[-MAX_CONTENT:]
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("port", nargs="?", help="serial device, e.g. /dev/ttyUSB0")
    ap.add_argument("--baud", type=int, default=115200)
    ap.add_argument("--count", type=int, default=0, help="stop after N valid lines (0: never)")
    ap.add_argument("--idle-timeout", type=float, default=0, help="give up after S silent seconds")
    ap.add_argument("--check-vectors", metavar="TSV", help="check the parser against test vectors")
    args = ap.parse_args()
    if args.check_vectors:
        return 1 if check_vectors(args.check_vectors) else 0
    if not args.port:
        ap.error("give a serial port or --check-vectors")
    return read_port(args.port, args.baud, args.count, args.idle_timeout)


if __name__ == "__main__":
    sys.exit(main())
