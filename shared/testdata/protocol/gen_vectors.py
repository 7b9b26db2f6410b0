#!/usr/bin/env python3
"""Writes vectors.tsv, the serial protocol's test vectors (see README.md in this folder).

Independent of the Rust code on purpose: lines and expected results are written here by hand
and checksums come from Python's binascii.crc_hqx (CRC-16/CCITT-FALSE with init 0xFFFF).
Run it from anywhere with `python3 gen_vectors.py`; it rewrites vectors.tsv beside itself.
Only the Python standard library is used.
"""

import binascii
import os

COLUMNS = [
    "expect", "line_hex", "kind", "seq", "t_ms", "face_id", "label", "conf",
    "x", "y", "w", "h", "faces", "level", "code", "text", "line", "note",
]
FIELD_COLUMNS = COLUMNS[2:16]
MAX_ROW = 1024


def crc(payload: bytes) -> str:
    return "%04X" % binascii.crc_hqx(payload, 0xFFFF)


def framed(payload: str, ending: bytes = b"\r\n") -> bytes:
    """`$payload*CRC` + ending, with the correct checksum."""
    p = payload.encode("latin-1")
    return b"$" + p + b"*" + crc(p).encode() + ending


def show(line: bytes) -> str:
    out = []
    for b in line:
        if b == 0x5C:
            out.append("\\\\")
        elif b == 0x0D:
            out.append("\\r")
        elif b == 0x0A:
            out.append("\\n")
        elif b == 0x09:
            out.append("\\t")
        elif 0x20 <= b <= 0x7E:
            out.append(chr(b))
        else:
            out.append("\\x%02x" % b)
    return "".join(out)


rows = []


def valid(line: bytes, note: str, **fields):
    kind = fields["kind"]
    need = {
        "F": ["seq", "t_ms", "face_id", "label", "conf", "x", "y", "w", "h"],
        "N": ["seq", "t_ms", "faces"],
        "S": ["seq", "t_ms", "level", "code", "text"],
    }[kind]
    assert sorted(need + ["kind"]) == sorted(fields), (note, fields)
    rows.append(("ok", line, fields, note))


def invalid(kind: str, line: bytes, note: str):
    rows.append((kind, line, {}, note))


def face(seq, t_ms, face_id, label, conf, x, y, w, h):
    return dict(kind="F", seq=seq, t_ms=t_ms, face_id=face_id, label=label, conf=conf,
                x=x, y=y, w=w, h=h)


def frame(seq, t_ms, faces):
    return dict(kind="N", seq=seq, t_ms=t_ms, faces=faces)


def status(seq, t_ms, level, code, text):
    return dict(kind="S", seq=seq, t_ms=t_ms, level=level, code=code, text=text)


# ---------------------------------------------------------------- valid lines
# The worked example of the spec.
valid(framed("EMO,1,S,0,0,I,start,emotion-edge started"), "spec example: runtime start",
      **status(0, 0, "I", "start", "emotion-edge started"))
valid(framed("EMO,1,F,1,1234,7,happy,873,120,64,96,96"), "spec example: a face",
      **face(1, 1234, 7, "happy", 873, 120, 64, 96, 96))
valid(framed("EMO,1,F,2,1234,9,sad,412,300,80,88,90"), "spec example: a second face",
      **face(2, 1234, 9, "sad", 412, 300, 80, 88, 90))
valid(framed("EMO,1,N,3,1234,2"), "spec example: end of a frame with two faces",
      **frame(3, 1234, 2))
valid(framed("EMO,1,N,4,1267,0"), "spec example: a frame without faces",
      **frame(4, 1267, 0))
valid(framed("EMO,1,S,5,5012,E,camera_lost,no frame for 2000 ms; retrying"),
      "spec example: an error status",
      **status(5, 5012, "E", "camera_lost", "no frame for 2000 ms; retrying"))
# Line endings.
valid(framed("EMO,1,N,3,1234,2", b"\n"), "bare LF ending is accepted", **frame(3, 1234, 2))
valid(framed("EMO,1,N,3,1234,2", b""), "a line given without its ending", **frame(3, 1234, 2))
# Every label.
for i, label in enumerate(["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]):
    valid(framed("EMO,1,F,%d,100,%d,%s,%d,10,20,30,40" % (10 + i, i, label, 500 + i)),
          "label %s (index %d)" % (label, i),
          **face(10 + i, 100, i, label, 500 + i, 10, 20, 30, 40))
# Boundaries.
valid(framed("EMO,1,F,0,0,0,neutral,0,0,0,0,0"), "smallest values",
      **face(0, 0, 0, "neutral", 0, 0, 0, 0, 0))
valid(framed("EMO,1,F,4294967295,4294967295,4294967295,surprise,1000,65535,65535,65535,65535"),
      "largest values: the longest F line (86 bytes)",
      **face(4294967295, 4294967295, 4294967295, "surprise", 1000, 65535, 65535, 65535, 65535))
valid(framed("EMO,1,N,4294967295,4294967295,65535"), "largest N values",
      **frame(4294967295, 4294967295, 65535))
valid(framed("EMO,1,N,0,7,1"), "seq wrapped around to 0", **frame(0, 7, 1))
LONG_CODE = "abcdefghij0123456789"
LONG_TEXT = "T" * 60 + "end."
valid(framed("EMO,1,S,4294967295,4294967295,W,%s,%s" % (LONG_CODE, LONG_TEXT)),
      "longest code (20) and text (64): the longest v1 line (125 bytes)",
      **status(4294967295, 4294967295, "W", LONG_CODE, LONG_TEXT))
valid(framed("EMO,1,S,8,900,W,model,-"), "text '-' (what an empty text becomes)",
      **status(8, 900, "W", "model", "-"))
ODD_TEXT = "say \"hi\" & 'bye' #1: 50% (a/b) [c] {d} <e> =?@\\^_|~ ;-)"
valid(framed("EMO,1,S,9,901,I,x_1,%s" % ODD_TEXT), "text with quotes, backslash and symbols",
      **status(9, 901, "I", "x_1", ODD_TEXT))
valid(framed("EMO,1,S,10,902,E,model_rejected,  spaces  "),
      "text with leading and trailing spaces",
      **status(10, 902, "E", "model_rejected", "  spaces  "))

# ---------------------------------------------------------------- invalid lines
GOOD = "EMO,1,F,1,1234,7,happy,873,120,64,96,96"
good = framed(GOOD)

# too_long: checked first, before anything else.
invalid("too_long", framed("EMO,1,S,0,0,I,x,%s" % ("y" * 105)),
        "127 bytes before the line ending (valid checksum)")
invalid("too_long", framed("EMO,1,S,0,0,I,x,%s" % ("y" * 105), b"\n"),
        "127 bytes before a bare LF: the limit is on the content, not on the ending")
invalid("too_long", b"$" + b"A" * 200 + b"\r\n", "200 bytes, no checksum")

# not_printable_ascii
invalid("not_printable_ascii", framed("EMO,1,S,0,0,I,x,tab\there"), "a tab in the text")
invalid("not_printable_ascii", framed("EMO,1,S,0,0,I,x,caf\xe9"), "a Latin-1 byte 0xE9")
invalid("not_printable_ascii", framed("EMO,1,N,3,1234,2\x00"), "a NUL byte")
invalid("not_printable_ascii", framed("EMO,1,N,3,1234,2", b"\r"), "bare CR ending")
invalid("not_printable_ascii", framed("EMO,1,N,3,1234,2", b"\r\r\n"), "CR CR LF ending")
invalid("not_printable_ascii", framed("EMO,1,N,3,1234,2", b"\n\n"), "two LF")
invalid("not_printable_ascii", b"\xff" + good, "a 0xFF byte before '$'")

# missing_start
invalid("missing_start", good[1:], "no '$'")
invalid("missing_start", b" " + good, "a space before '$'")
invalid("missing_start", b"\r\n", "an empty line with CRLF")

# missing_checksum
invalid("missing_checksum", b"$" + GOOD.encode() + b"\r\n", "no '*' and no checksum")
invalid("missing_checksum", b"$" + GOOD.encode() + b"0EC2\r\n", "checksum without '*'")

# malformed_checksum
invalid("malformed_checksum", good.replace(b"*0EC2", b"*0ec2"), "lowercase hex digits")
invalid("malformed_checksum", good.replace(b"*0EC2", b"*EC2"), "three digits")
invalid("malformed_checksum", good.replace(b"*0EC2", b"*00EC2"), "five digits")
invalid("malformed_checksum", good.replace(b"*0EC2", b"*"), "no digits")
invalid("malformed_checksum", good.replace(b"*0EC2", b"*0EC2 "), "a space after the digits")
invalid("malformed_checksum", good.replace(b"*0EC2", b"*0EC2*0EC2"), "two checksums")
invalid("malformed_checksum", framed("EMO,1,S,0,0,I,x,a*b"),
        "a '*' in the text: the first '*' starts the checksum")

# checksum_mismatch
invalid("checksum_mismatch", good.replace(b"*0EC2", b"*0EC3"), "checksum off by one")
invalid("checksum_mismatch", good.replace(b",873,", b",874,"), "confidence changed in transit")
invalid("checksum_mismatch", good.replace(b"happy", b"hbppy"), "one bit flipped in the label")
invalid("checksum_mismatch", good.replace(b"*0EC2", b"*0000"), "checksum 0000")

# bad_prefix
invalid("bad_prefix", framed("GPGGA,1,F,1,1234,7,happy,873,120,64,96,96"), "an NMEA talker")
invalid("bad_prefix", framed("emo,1,N,3,1234,2"), "lowercase 'emo'")
invalid("bad_prefix", framed("EMO 1,N,3,1234,2"), "no comma after EMO")

# version
invalid("unsupported_version", framed("EMO,2,N,3,1234,2"), "version 2")
invalid("unsupported_version", framed("EMO,2,Q,whatever,the,future,brings"),
        "version 2 with a layout v1 does not know: still unsupported_version")
invalid("unsupported_version", framed("EMO,0,N,3,1234,2"), "version 0")
invalid("unsupported_version", framed("EMO,10,N,3,1234,2"), "version 10")
invalid("bad_number", framed("EMO,01,N,3,1234,2"), "version with a leading zero")
invalid("bad_number", framed("EMO,v1,N,3,1234,2"), "version 'v1'")
invalid("bad_number", framed("EMO,,N,3,1234,2"), "empty version")
invalid("bad_number", framed("EMO"), "nothing after EMO")

# unknown_kind
invalid("unknown_kind", framed("EMO,1,X,3,1234,2"), "kind X")
invalid("unknown_kind", framed("EMO,1,n,3,1234,2"), "lowercase kind")
invalid("unknown_kind", framed("EMO,1,NN,3,1234,2"), "two letters")
invalid("unknown_kind", framed("EMO,1,,3,1234,2"), "empty kind")
invalid("unknown_kind", framed("EMO,1"), "no kind")

# field_count
invalid("field_count", framed("EMO,1,F,1,1234,7,happy,873,120,64,96"), "F with 11 fields")
invalid("field_count", framed("EMO,1,F,1,1234,7,happy,873,120,64,96,96,0"), "F with 13 fields")
invalid("field_count", framed("EMO,1,N,3,1234,2,"), "N with a trailing comma")
invalid("field_count", framed("EMO,1,N,3,1234"), "N with 5 fields")
invalid("field_count", framed("EMO,1,S,0,0,I,x,one, two"), "a comma in the text")
invalid("field_count", framed("EMO,1,S,0,0,I,start"), "S without text")

# bad_number
invalid("bad_number", framed("EMO,1,N,03,1234,2"), "seq with a leading zero")
invalid("bad_number", framed("EMO,1,N,+3,1234,2"), "seq with a plus sign")
invalid("bad_number", framed("EMO,1,N,-3,1234,2"), "negative seq")
invalid("bad_number", framed("EMO,1,N,,1234,2"), "empty seq")
invalid("bad_number", framed("EMO,1,N,3, 1234,2"), "space before t_ms")
invalid("bad_number", framed("EMO,1,N,3,1234,0x2"), "hex faces")
invalid("bad_number", framed("EMO,1,F,1,1234,7,happy,87.3,120,64,96,96"),
        "confidence as a decimal fraction")
invalid("bad_number", framed("EMO,1,F,1,1234,7,happy,873,120,64,96,"), "empty h")

# out_of_range
invalid("out_of_range", framed("EMO,1,N,4294967296,1234,2"), "seq 2^32")
invalid("out_of_range", framed("EMO,1,N,3,99999999999,2"), "t_ms above 2^32 - 1")
invalid("out_of_range", framed("EMO,1,N,3,1234,65536"), "faces 65536")
invalid("out_of_range", framed("EMO,1,F,1,1234,4294967296,happy,873,120,64,96,96"),
        "face_id 2^32")
invalid("out_of_range", framed("EMO,1,F,1,1234,7,happy,1001,120,64,96,96"), "confidence 1001")
invalid("out_of_range", framed("EMO,1,F,1,1234,7,happy,873,65536,64,96,96"), "x 65536")
invalid("out_of_range", framed("EMO,1,N,3,123456789012345678901234567890,2"),
        "t_ms with 30 digits")

# unknown_label
invalid("unknown_label", framed("EMO,1,F,1,1234,7,Happy,873,120,64,96,96"), "capitalised label")
invalid("unknown_label", framed("EMO,1,F,1,1234,7,happiness,873,120,64,96,96"),
        "an alias that only the label parser, not the protocol, accepts")
invalid("unknown_label", framed("EMO,1,F,1,1234,7,3,873,120,64,96,96"), "a class index")
invalid("unknown_label", framed("EMO,1,F,1,1234,7,contempt,873,120,64,96,96"),
        "an emotion FER2013 does not have")

# invalid_field (status level, code, text)
invalid("invalid_field", framed("EMO,1,S,0,0,X,start,hi"), "level X")
invalid("invalid_field", framed("EMO,1,S,0,0,i,start,hi"), "lowercase level")
invalid("invalid_field", framed("EMO,1,S,0,0,,start,hi"), "empty level")
invalid("invalid_field", framed("EMO,1,S,0,0,I,Start,hi"), "uppercase in code")
invalid("invalid_field", framed("EMO,1,S,0,0,I,camera-lost,hi"), "'-' in code")
invalid("invalid_field", framed("EMO,1,S,0,0,I,%s,hi" % ("a" * 21)), "code of 21 characters")
invalid("invalid_field", framed("EMO,1,S,0,0,I,,hi"), "empty code")
invalid("invalid_field", framed("EMO,1,S,0,0,I,start,"), "empty text")
invalid("invalid_field", framed("EMO,1,S,0,0,I,start,%s" % ("t" * 65)), "text of 65 characters")
invalid("invalid_field", framed("EMO,1,S,0,0,I,start,pay $5"), "'$' in the text")


def row_text(expect, line, fields, note):
    cells = [expect, line.hex()]
    for col in FIELD_COLUMNS:
        value = fields.get(col)
        cells.append("-" if value is None else str(value))
    cells += [show(line), note]
    for cell in cells:
        assert cell and "\t" not in cell and "\n" not in cell and "\r" not in cell, cells
    text = "\t".join(cells)
    assert len(text) < MAX_ROW, text
    return text


def main():
    out = [
        "# Test vectors for the emotion serial protocol, version 1. Written by gen_vectors.py;",
        "# see README.md. Tab-separated; '#' lines are comments; '-' means 'not applicable'.",
        "\t".join(COLUMNS),
    ]
    out += [row_text(*r) for r in rows]
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vectors.tsv")
    with open(path, "w", newline="\n", encoding="ascii") as f:
        f.write("\n".join(out) + "\n")
    print("wrote %d vectors to %s" % (len(rows), path))


if __name__ == "__main__":
    main()
