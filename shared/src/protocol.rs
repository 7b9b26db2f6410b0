//! The serial wire protocol, version 1: how the edge runtime reports the emotions it sees, one
//! short ASCII line at a time, to a microcontroller (Arduino, ESP32) or a PC.
//!
//! This module doc is the specification. The Rust types below implement it: [`Message`]
//! ([`Message::encode`], [`Message::decode`]) for one line and [`StreamDecoder`] for a byte stream
//! as read from a serial port. Test vectors that every implementation (this one, the Python
//! client, C parsers) checks against live in `shared/testdata/protocol/vectors.tsv`.
//!
//! # Goals
//!
//! - A human can read it in a terminal (`picocom`, the Arduino serial monitor).
//! - A microcontroller can parse it with a few lines of C: split on commas with `strtok`, read
//!   numbers with `strtoul`. No floating point, no field wider than 32 bits, no escaping.
//! - Corrupted, cut or interleaved lines are detected (a checksum on every line) and a reader
//!   resynchronises at the next line on its own.
//! - Versioned, so that the format can change without silently confusing old clients.
//!
//! The protocol is one-way (runtime to client) and does not fix the serial settings (baud
//! rate, ...): those are the runtime's configuration. As a budget: at 115200 baud 8N1 a link
//! carries about 11 500 bytes a second; an `F` line is at most 86 bytes (typically about 50),
//! an `N` line at most 43 (typically about 25). So 30 frames a second with three faces each
//! take about 5 300 bytes a second; at 9600 baud (960 bytes a second) only a few lines a second
//! fit, and the runtime has to send fewer.
//!
//! # Framing
//!
//! Every line is
//!
//! ```text
//! $EMO,<version>,<kind>,<field>,<field>,...*<CRC>\r\n
//! ```
//!
//! - `$` starts a line and appears nowhere else. A reader that sees `$` starts a new line,
//!   whatever it was doing.
//! - `EMO` names the protocol; `<version>` is `1` (see [Versioning](#versioning)); `<kind>` is one
//!   letter: `F` (face), `N` (end of frame) or `S` (status).
//! - Fields are separated by `,` and are never empty. No field contains `,`, `*` or `$`.
//! - `*` ends the fields; it is followed by exactly four **uppercase** hexadecimal digits, the
//!   CRC (see [Checksum](#checksum)), and the line ending.
//! - The line ending is `\r\n` (CR LF). Readers also accept a bare `\n`.
//! - Only printable ASCII (bytes `0x20` to `0x7E`) appears between `$` and the line ending.
//! - A line is at most [`MAX_LINE_LEN`] = 128 bytes including `\r\n`, so at most 126 bytes from
//!   `$` to the last checksum digit: a 128-byte buffer always holds a line. The encoder never
//!   writes a longer line (the longest possible v1 line is 125 bytes); decoders reject longer
//!   ones.
//! - Numbers are unsigned decimal: digits only, no sign, no spaces, no leading zeros (`0` is
//!   written `0`, never `00`). There is therefore exactly one way to write each message, and
//!   decoding then re-encoding a valid line gives back the same bytes.
//!
//! Every line carries the same first two fields after the kind:
//!
//! | field  | type | meaning |
//! |--------|------|---------|
//! | `seq`  | u32, 0..=4294967295 | line counter: 0 for the first line the runtime sends after it starts, then +1 for every line of any kind, wrapping from 4294967295 to 0. A gap means lines were lost; a drop to 0 with an `S` `start` line means the runtime restarted. |
//! | `t_ms` | u32, 0..=4294967295 | the runtime's monotonic clock in milliseconds since it started, modulo 2³² (it wraps after 49.7 days; compute durations with wrapping subtraction, `(uint32_t)(b - a)` in C, like Arduino's `millis()`). For `F` and `N` lines: when the frame was captured, the same for all lines of one frame. For `S` lines: when the line was made. |
//!
//! # Line kinds
//!
//! Field positions count from 0 at `EMO`, as `strtok` hands them out.
//!
//! ## `F`: one face (12 fields)
//!
//! ```text
//! $EMO,1,F,<seq>,<t_ms>,<face_id>,<label>,<conf>,<x>,<y>,<w>,<h>*<CRC>
//! ```
//!
//! | # | field     | type | meaning |
//! |---|-----------|------|---------|
//! | 3 | `seq`     | u32  | line counter (above) |
//! | 4 | `t_ms`    | u32  | capture time of the frame (above) |
//! | 5 | `face_id` | u32  | the face's track id: stays the same while the runtime follows that face from frame to frame; a new face gets a new id. Ids restart when the runtime restarts. |
//! | 6 | `label`   | text | the emotion, one of `angry`, `disgust`, `fear`, `happy`, `sad`, `surprise`, `neutral` (lowercase, exactly these; see [`Emotion`]) |
//! | 7 | `conf`    | 0..=1000 | the runtime's confidence in `label`, in permille: `873` means 0.873 |
//! | 8 | `x`       | u16  | left edge of the face box, in pixels of the source frame (not of the model input), from the left |
//! | 9 | `y`       | u16  | top edge, in pixels from the top |
//! | 10 | `w`      | u16  | width in pixels |
//! | 11 | `h`      | u16  | height in pixels |
//!
//! ## `N`: end of frame (6 fields)
//!
//! ```text
//! $EMO,1,N,<seq>,<t_ms>,<faces>*<CRC>
//! ```
//!
//! | # | field   | type | meaning |
//! |---|---------|------|---------|
//! | 3 | `seq`   | u32  | line counter |
//! | 4 | `t_ms`  | u32  | capture time of the frame, the same as its `F` lines |
//! | 5 | `faces` | u16  | how many `F` lines this frame had; they come right before this line |
//!
//! The runtime sends one `N` line for every frame it processes, after that frame's `F` lines,
//! also when it found no face (`faces` = 0). So a client knows that a frame is complete, that
//! nobody is in view, and the frame rate (from the `t_ms` of consecutive `N` lines).
//!
//! ## `S`: status (8 fields)
//!
//! ```text
//! $EMO,1,S,<seq>,<t_ms>,<level>,<code>,<text>*<CRC>
//! ```
//!
//! | # | field   | type | meaning |
//! |---|---------|------|---------|
//! | 3 | `seq`   | u32  | line counter |
//! | 4 | `t_ms`  | u32  | when the line was made |
//! | 5 | `level` | `I`, `W` or `E` | information, warning, error ([`Level`]) |
//! | 6 | `code`  | 1 to 20 characters from `a`-`z`, `0`-`9`, `_` ([`MAX_CODE_LEN`]) | what happened, for programs: e.g. `start` (the runtime started: `seq` and `t_ms` begin again), `model` (a model was loaded), `model_rejected`, `camera_lost` |
//! | 7 | `text`  | 1 to 64 printable ASCII characters except `,` `*` `$` ([`MAX_TEXT_LEN`]) | what happened, for people; may contain spaces |
//!
//! The set of codes is open: the runtime may add codes without a new protocol version, so a
//! client acts on the codes it knows and treats the others by their level. The encoder
//! sanitises instead of failing ([`sanitize_code`], [`sanitize_text`]): in a code, uppercase
//! letters become lowercase and other characters `_`; in a text, `,` becomes `;` and any other
//! character that may not appear becomes `?`; an over-long text is cut and ends in `...`; an
//! empty code becomes `unknown`, an empty text `-`.
//!
//! # Checksum
//!
//! CRC-16/CCITT-FALSE: polynomial `0x1021`, initial value `0xFFFF`, input and output not
//! reflected, no final XOR (check value: `"123456789"` gives `29B1`). It is computed over the
//! bytes strictly between `$` and `*` (so it starts with `EMO,`) and written as four uppercase
//! hexadecimal digits. It detects every error confined to 16 consecutive bits, so every
//! single corrupted byte. In Rust it is [`crc16`]; in Python `binascii.crc_hqx(payload, 0xFFFF)`;
//! in C:
//!
//! ```c
//! #include <stddef.h>
//! #include <stdint.h>
//!
//! /* CRC-16/CCITT-FALSE over n bytes: poly 0x1021, init 0xFFFF, no reflection, no final XOR. */
//! uint16_t emo_crc16(const char *p, size_t n)
//! {
//!     uint16_t crc = 0xFFFF;
//!     while (n--) {
//!         crc ^= (uint16_t)((uint8_t)*p++) << 8;
//!         for (int i = 0; i < 8; i++)
//!             crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
//!     }
//!     return crc;
//! }
//! ```
//!
//! # Worked example
//!
//! The runtime starts, sees two faces in a frame captured at 1234 ms, then a frame with nobody,
//! then loses its camera:
//!
//! ```text
//! $EMO,1,S,0,0,I,start,emotion-edge started*AB3A
//! $EMO,1,F,1,1234,7,happy,873,120,64,96,96*0EC2
//! $EMO,1,F,2,1234,9,sad,412,300,80,88,90*DAC1
//! $EMO,1,N,3,1234,2*5410
//! $EMO,1,N,4,1267,0*565F
//! $EMO,1,S,5,5012,E,camera_lost,no frame for 2000 ms; retrying*6B0B
//! ```
//!
//! (each line followed by `\r\n`). Face 7 is happy with confidence 0.873, its box's top left
//! corner is at (120, 64) and it is 96 by 96 pixels. The same in Rust:
//!
//! ```
//! use emotion_shared::Emotion;
//! use emotion_shared::protocol::{BoundingBox, FaceReport, Level, Message};
//!
//! let face = |face_id, label, confidence_permille, (x, y, w, h)| FaceReport {
//!     face_id,
//!     label,
//!     confidence_permille,
//!     bbox: BoundingBox { x, y, w, h },
//! };
//! let messages = [
//!     Message::status(0, 0, Level::Info, "start", "emotion-edge started"),
//!     Message::face(1, 1234, face(7, Emotion::Happy, 873, (120, 64, 96, 96))),
//!     Message::face(2, 1234, face(9, Emotion::Sad, 412, (300, 80, 88, 90))),
//!     Message::frame(3, 1234, 2),
//!     Message::frame(4, 1267, 0),
//!     Message::status(5, 5012, Level::Error, "camera_lost", "no frame for 2000 ms; retrying"),
//! ];
//! let lines = [
//!     "$EMO,1,S,0,0,I,start,emotion-edge started*AB3A\r\n",
//!     "$EMO,1,F,1,1234,7,happy,873,120,64,96,96*0EC2\r\n",
//!     "$EMO,1,F,2,1234,9,sad,412,300,80,88,90*DAC1\r\n",
//!     "$EMO,1,N,3,1234,2*5410\r\n",
//!     "$EMO,1,N,4,1267,0*565F\r\n",
//!     "$EMO,1,S,5,5012,E,camera_lost,no frame for 2000 ms; retrying*6B0B\r\n",
//! ];
//! for (message, line) in messages.iter().zip(lines) {
//!     assert_eq!(message.encode(), line);
//!     assert_eq!(&Message::decode(line.as_bytes())?, message);
//! }
//! # Ok::<(), emotion_shared::protocol::ProtocolError>(())
//! ```
//!
//! # Reading lines in C
//!
//! A reader keeps a buffer of 128 bytes, starts a line at every `$`, ignores bytes between a
//! line ending and the next `$`, and drops a line that has no line ending within the buffer:
//!
//! ```c
//! static char buf[128];
//! static size_t len;                    /* 0: waiting for '$' */
//!
//! void emo_feed(char c)                 /* call with every received byte */
//! {
//!     if (c == '$') len = 0;            /* '$' always starts a new line */
//!     else if (len == 0) return;        /* noise between lines */
//!     if (c == '\n') {
//!         if (buf[len - 1] == '\r') len--;
//!         buf[len] = '\0';
//!         len = 0;
//!         struct emo_face f;
//!         if (emo_parse_face(buf, &f) == 0) { /* use f */ }
//!         return;
//!     }
//!     if (len == sizeof buf - 1) { len = 0; return; }   /* too long: drop it */
//!     buf[len++] = c;
//! }
//! ```
//!
//! and parses an `F` line with `strtok` and `strtoul` (all numbers fit in an `unsigned long`,
//! which is 32 bits on AVR too):
//!
//! ```c
//! #include <stdint.h>
//! #include <stdlib.h>
//! #include <string.h>
//!
//! struct emo_face {
//!     uint32_t seq, t_ms, face_id;
//!     char label[9];                      /* "surprise" is the longest */
//!     uint16_t conf, x, y, w, h;          /* conf in permille */
//! };
//!
//! /* line: from '$' to the last checksum digit, NUL-terminated; it is cut up in place.
//!    Returns 0 for a valid F line, < 0 otherwise. */
//! int emo_parse_face(char *line, struct emo_face *f)
//! {
//!     char *star = strchr(line, '*'), *end, *tok[12];
//!     int n = 0;
//!     if (line[0] != '$' || star == NULL || strlen(star) != 5) return -1;
//!     unsigned long crc = strtoul(star + 1, &end, 16);
//!     if (*end != '\0' || crc != emo_crc16(line + 1, (size_t)(star - line - 1))) return -2;
//!     *star = '\0';
//!     for (char *t = strtok(line + 1, ","); t != NULL; t = strtok(NULL, ",")) {
//!         if (n == 12) return -3;                     /* too many fields */
//!         tok[n++] = t;
//!     }
//!     if (n < 3 || strcmp(tok[0], "EMO") != 0) return -3;
//!     if (strcmp(tok[1], "1") != 0) return -4;      /* another version: skip the line */
//!     if (strcmp(tok[2], "F") != 0) return -5;      /* another kind */
//!     if (n != 12 || strlen(tok[6]) >= sizeof f->label) return -3;
//!     f->seq     = strtoul(tok[3], NULL, 10);
//!     f->t_ms    = strtoul(tok[4], NULL, 10);
//!     f->face_id = strtoul(tok[5], NULL, 10);
//!     strcpy(f->label, tok[6]);
//!     f->conf = (uint16_t)strtoul(tok[7], NULL, 10);
//!     f->x    = (uint16_t)strtoul(tok[8], NULL, 10);
//!     f->y    = (uint16_t)strtoul(tok[9], NULL, 10);
//!     f->w    = (uint16_t)strtoul(tok[10], NULL, 10);
//!     f->h    = (uint16_t)strtoul(tok[11], NULL, 10);
//!     return 0;
//! }
//! ```
//!
//! This is the minimum: it relies on the checksum and, unlike the reference decoder (below),
//! does not check that numbers are digits only, in range and without leading zeros, that the
//! checksum's hex digits are uppercase, or that the label is one of the seven: compare
//! `f->label` with the names you act on.
//!
//! # Decoding rules
//!
//! [`Message::decode`] is strict: a line is valid only if it is exactly what the encoder would
//! write. It checks, in this order, and reports the first failure (the names in brackets are
//! [`ProtocolError::kind`], used in the test vectors):
//!
//! 1. Remove one line ending: `\r\n` or `\n` (a line may also come without one).
//! 2. At most 126 bytes remain (`too_long`).
//! 3. They are all printable ASCII, `0x20` to `0x7E` (`not_printable_ascii`).
//! 4. The first is `$` (`missing_start`).
//! 5. There is a `*` (`missing_checksum`); after the first `*` come exactly four uppercase
//!    hexadecimal digits and nothing else (`malformed_checksum`).
//! 6. The CRC of the bytes between `$` and `*` equals those digits (`checksum_mismatch`).
//! 7. Split those bytes on `,`. The first field is `EMO` (`bad_prefix`).
//! 8. The second field, the version, is a number (`bad_number`) and is `1`
//!    (`unsupported_version`).
//! 9. The third field is `F`, `N` or `S` (`unknown_kind`).
//! 10. The line has as many fields as its kind needs: 12, 6 or 8 (`field_count`).
//! 11. Each remaining field, left to right, is well formed: numbers without sign or leading
//!     zeros (`bad_number`) and in range (`out_of_range`), a known lowercase label
//!     (`unknown_label`), a valid level, code or text (`invalid_field`).
//!
//! [`StreamDecoder`] adds errors for what happens between lines: bytes that are not part of a
//! line (`garbage`), a line cut off by the next `$` (`interrupted`) and a line with no line
//! ending within 128 bytes (`overrun`).
//!
//! # Versioning
//!
//! - The envelope never changes: `$EMO,<version>,` at the start, `*`, four hex digits of
//!   CRC-16/CCITT-FALSE over the bytes between `$` and `*`, `\r\n`, at most 128 bytes. So every
//!   decoder, of any version, can check any line's integrity and read its version.
//! - Version 1 is frozen: its kinds and fields are as written here. Any change to the fields
//!   of a kind, or a new kind, makes a new version, `2`. (New status *codes* are not a change.)
//! - A runtime speaks exactly one version for a whole session, chosen in its configuration.
//!   When version 2 comes, the runtime learns to speak both and keeps version 1 as its default
//!   until the clients in use have learnt version 2. A client learns which version it is
//!   given from the version field of every line, whose position never changes.
//! - A decoder that meets a line with a valid checksum but a version it does not speak
//!   reports `unsupported protocol version 2, this decoder speaks 1`
//!   ([`ProtocolError::UnsupportedVersion`]) and does not guess at the fields. Clients should
//!   skip such lines (and tell the user once, not for every line), not treat them as noise.
//!
//! # Advice for clients
//!
//! - Check the checksum before looking at any field; drop lines that fail any check. Never act
//!   on part of a line.
//! - Resynchronise on `$`: a new `$` discards the line in progress. Bound the line buffer to 128
//!   bytes and drop a line that overruns it.
//! - Expect to lose lines (noise, a full UART buffer, plugging in mid-stream): a gap in `seq`
//!   tells how many. A frame's `F` lines are complete when its `N` line arrives and the number
//!   of `F` lines seen with that `t_ms` equals `faces`.
//! - Use timeouts: if no `N` line arrives for a second or so, the runtime or the link is down;
//!   show "no data" rather than the last emotion forever. Forget a `face_id` that has not been
//!   reported for a few frames.
//! - An `S` line with code `start` means the runtime (re)started: `seq`, `t_ms` and face ids
//!   begin again.
//! - Lines of an unsupported version or unknown kind are not errors of the link: skip them.
//!
//! # Test vectors
//!
//! `shared/testdata/protocol/vectors.tsv` lists valid lines with their decoded fields and
//! invalid lines with the [`ProtocolError::kind`] a strict decoder reports; its `README.md`
//! describes the format. The tests of this module check every vector.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::labels::Emotion;

/// The protocol version this module speaks and writes.
pub const VERSION: u32 = 1;

/// The longest line allowed, in bytes, including the line ending `\r\n`.
pub const MAX_LINE_LEN: usize = 128;

/// The longest line allowed from `$` to the last checksum digit, without the line ending.
pub const MAX_CONTENT_LEN: usize = MAX_LINE_LEN - 2;

/// The longest status code ([`Status::code`]), in characters.
pub const MAX_CODE_LEN: usize = 20;

/// The longest status text ([`Status::text`]), in characters.
pub const MAX_TEXT_LEN: usize = 64;

/// The largest confidence in permille: 1000 means 1.0.
pub const MAX_PERMILLE: u16 = 1000;

/// The protocol name, the first field of every line.
const TALKER: &str = "EMO";

/// What [`sanitize_code`] makes of an empty code.
const EMPTY_CODE: &str = "unknown";

/// What [`sanitize_text`] makes of an empty text.
const EMPTY_TEXT: &str = "-";

/// How [`sanitize_text`] marks a text it had to cut.
const ELLIPSIS: &str = "...";

/// CRC-16/CCITT-FALSE (polynomial `0x1021`, initial value `0xFFFF`, not reflected, no final
/// XOR) of `data`: the protocol's line checksum, computed over the bytes between `$` and `*`.
///
/// ```
/// use emotion_shared::protocol::crc16;
/// assert_eq!(crc16(b"123456789"), 0x29B1);
/// assert_eq!(crc16(b"EMO,1,N,3,1234,2"), 0x5410);
/// ```
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// A probability (0.0..=1.0) as the protocol's integer permille, rounded to the nearest and
/// clamped to 0..=1000; NaN gives 0.
///
/// ```
/// use emotion_shared::protocol::permille;
/// assert_eq!(permille(0.8734), 873);
/// assert_eq!(permille(1.7), 1000);
/// assert_eq!(permille(f32::NAN), 0);
/// ```
pub fn permille(probability: f32) -> u16 {
    if probability.is_nan() {
        return 0;
    }
    let scaled = (probability.clamp(0.0, 1.0) * f32::from(MAX_PERMILLE)).round();
    // In 0.0..=1000.0 after the clamp, so the conversion is exact.
    (scaled as u16).min(MAX_PERMILLE)
}

/// A status code as it goes on the wire: ASCII letters lowercased, every other character that
/// is not `a`-`z`, `0`-`9` or `_` replaced by `_`, cut to [`MAX_CODE_LEN`] characters; an empty
/// code becomes `unknown`. Sanitising twice changes nothing.
///
/// ```
/// use emotion_shared::protocol::sanitize_code;
/// assert_eq!(sanitize_code("Camera-Lost"), "camera_lost");
/// assert_eq!(sanitize_code(""), "unknown");
/// ```
pub fn sanitize_code(code: &str) -> String {
    let out: String = code
        .chars()
        .take(MAX_CODE_LEN)
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '_' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '_',
        })
        .collect();
    if out.is_empty() {
        EMPTY_CODE.to_string()
    } else {
        out
    }
}

/// A status text as it goes on the wire: `,` becomes `;`, any other character that is not
/// printable ASCII or is `*` or `$` becomes `?`; a text longer than [`MAX_TEXT_LEN`] characters
/// is cut and ends in `...`; an empty text becomes `-`. Sanitising twice changes nothing.
///
/// ```
/// use emotion_shared::protocol::sanitize_text;
/// assert_eq!(sanitize_text("model a.onnx, rejected: bad *sig*"), "model a.onnx; rejected: bad ?sig?");
/// assert_eq!(sanitize_text("caf\u{e9}\n"), "caf??");
/// assert_eq!(sanitize_text(&"x".repeat(100)).len(), 64);
/// ```
pub fn sanitize_text(text: &str) -> String {
    let map = |c: char| match c {
        ',' => ';',
        '*' | '$' => '?',
        ' '..='~' => c,
        _ => '?',
    };
    let len = text.chars().count();
    if len == 0 {
        return EMPTY_TEXT.to_string();
    }
    if len <= MAX_TEXT_LEN {
        return text.chars().map(map).collect();
    }
    let mut out: String = text
        .chars()
        .take(MAX_TEXT_LEN - ELLIPSIS.len())
        .map(map)
        .collect();
    out.push_str(ELLIPSIS);
    out
}

/// One line of the protocol: the fields every line has, and what its kind adds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Message {
    /// Line counter: 0 for the runtime's first line, +1 for every line, wrapping.
    pub seq: u32,
    /// Milliseconds since the runtime started, modulo 2³²: capture time of the frame for
    /// [`Body::Face`] and [`Body::Frame`], time of the event for [`Body::Status`].
    pub t_ms: u32,
    /// What the line says.
    pub body: Body,
}

/// The kind-specific part of a [`Message`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Body {
    /// `F`: one face of a frame.
    Face(FaceReport),
    /// `N`: the end of a frame.
    Frame(FrameSummary),
    /// `S`: a status report.
    Status(Status),
}

/// The three kinds of line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Kind {
    /// `F`: one face.
    Face,
    /// `N`: end of frame.
    Frame,
    /// `S`: status.
    Status,
}

impl Kind {
    /// All kinds.
    pub const ALL: [Kind; 3] = [Kind::Face, Kind::Frame, Kind::Status];

    /// The kind's letter on the wire: `F`, `N` or `S`.
    pub fn letter(self) -> char {
        match self {
            Kind::Face => 'F',
            Kind::Frame => 'N',
            Kind::Status => 'S',
        }
    }

    /// The kind written as `letter`, if any.
    pub fn from_letter(letter: char) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.letter() == letter)
    }

    /// How many comma-separated fields a line of this kind has, counting `EMO`, the version
    /// and the kind: 12, 6 or 8.
    pub fn field_count(self) -> usize {
        match self {
            Kind::Face => 12,
            Kind::Frame => 6,
            Kind::Status => 8,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.letter())
    }
}

/// The body of an `F` line: one detected face and its emotion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FaceReport {
    /// Track id, stable while the runtime follows this face.
    pub face_id: u32,
    /// The emotion.
    pub label: Emotion,
    /// Confidence in `label`, in permille, 0..=[`MAX_PERMILLE`]; the encoder clamps larger
    /// values to 1000. See [`permille`] to convert a probability.
    pub confidence_permille: u16,
    /// The face's box in pixels of the source frame.
    pub bbox: BoundingBox,
}

impl FaceReport {
    /// The confidence as a probability, 0.0..=1.0.
    pub fn confidence(&self) -> f32 {
        f32::from(self.confidence_permille.min(MAX_PERMILLE)) / f32::from(MAX_PERMILLE)
    }
}

/// A face box in pixels of the source frame: top-left corner, width and height.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct BoundingBox {
    /// Left edge, pixels from the left.
    pub x: u16,
    /// Top edge, pixels from the top.
    pub y: u16,
    /// Width in pixels.
    pub w: u16,
    /// Height in pixels.
    pub h: u16,
}

/// The body of an `N` line: the end of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct FrameSummary {
    /// How many `F` lines the frame had, sent right before this line.
    pub faces: u16,
}

/// How serious a status report is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Level {
    /// `I`: for information.
    Info,
    /// `W`: something is wrong but the runtime goes on.
    Warning,
    /// `E`: the runtime cannot do its work (no camera, no model).
    Error,
}

impl Level {
    /// All levels.
    pub const ALL: [Level; 3] = [Level::Info, Level::Warning, Level::Error];

    /// The level's letter on the wire: `I`, `W` or `E`.
    pub fn letter(self) -> char {
        match self {
            Level::Info => 'I',
            Level::Warning => 'W',
            Level::Error => 'E',
        }
    }

    /// The level written as `letter`, if any.
    pub fn from_letter(letter: char) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.letter() == letter)
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.letter())
    }
}

/// The body of an `S` line: something happened in the runtime.
///
/// The fields are public; [`Message::encode`] sanitises `code` and `text` (see
/// [`sanitize_code`], [`sanitize_text`]). [`Status::new`] sanitises at once, so that the value
/// you hold is the one a client decodes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Status {
    /// How serious it is.
    pub level: Level,
    /// What happened, for programs: 1 to [`MAX_CODE_LEN`] characters from `a`-`z`, `0`-`9`, `_`.
    pub code: String,
    /// What happened, for people: 1 to [`MAX_TEXT_LEN`] printable ASCII characters other than
    /// `,`, `*` and `$`.
    pub text: String,
}

impl Status {
    /// A status with `code` and `text` sanitised for the wire.
    pub fn new(level: Level, code: &str, text: &str) -> Status {
        Status {
            level,
            code: sanitize_code(code),
            text: sanitize_text(text),
        }
    }
}

impl Message {
    /// An `F` line.
    pub fn face(seq: u32, t_ms: u32, face: FaceReport) -> Message {
        Message {
            seq,
            t_ms,
            body: Body::Face(face),
        }
    }

    /// An `N` line: the end of a frame that had `faces` `F` lines.
    pub fn frame(seq: u32, t_ms: u32, faces: u16) -> Message {
        Message {
            seq,
            t_ms,
            body: Body::Frame(FrameSummary { faces }),
        }
    }

    /// An `S` line, with `code` and `text` sanitised (see [`Status::new`]).
    pub fn status(seq: u32, t_ms: u32, level: Level, code: &str, text: &str) -> Message {
        Message {
            seq,
            t_ms,
            body: Body::Status(Status::new(level, code, text)),
        }
    }

    /// The line's kind.
    pub fn kind(&self) -> Kind {
        match self.body {
            Body::Face(_) => Kind::Face,
            Body::Frame(_) => Kind::Frame,
            Body::Status(_) => Kind::Status,
        }
    }

    /// The message as a client will decode it: confidence clamped to 1000, status code and
    /// text sanitised. `Message::decode(m.encode().as_bytes())` is `Ok(m.normalized())` for
    /// every `m`.
    pub fn normalized(&self) -> Message {
        let mut m = self.clone();
        match &mut m.body {
            Body::Face(face) => {
                face.confidence_permille = face.confidence_permille.min(MAX_PERMILLE);
            }
            Body::Frame(_) => {}
            Body::Status(status) => {
                status.code = sanitize_code(&status.code);
                status.text = sanitize_text(&status.text);
            }
        }
        m
    }

    /// The line for this message, ending in `\r\n`: at most [`MAX_LINE_LEN`] bytes of
    /// printable ASCII, whatever the message holds (see [`Message::normalized`]).
    ///
    /// ```
    /// use emotion_shared::protocol::Message;
    /// assert_eq!(Message::frame(3, 1234, 2).encode(), "$EMO,1,N,3,1234,2*5410\r\n");
    /// ```
    pub fn encode(&self) -> String {
        let Message { seq, t_ms, body } = self;
        let kind = self.kind();
        let payload = match body {
            Body::Face(face) => {
                let BoundingBox { x, y, w, h } = face.bbox;
                format!(
                    "{TALKER},{VERSION},{kind},{seq},{t_ms},{},{},{},{x},{y},{w},{h}",
                    face.face_id,
                    face.label.name(),
                    face.confidence_permille.min(MAX_PERMILLE),
                )
            }
            Body::Frame(frame) => {
                format!("{TALKER},{VERSION},{kind},{seq},{t_ms},{}", frame.faces)
            }
            Body::Status(status) => format!(
                "{TALKER},{VERSION},{kind},{seq},{t_ms},{},{},{}",
                status.level,
                sanitize_code(&status.code),
                sanitize_text(&status.text),
            ),
        };
        let line = format!("${payload}*{:04X}\r\n", crc16(payload.as_bytes()));
        debug_assert!(line.len() <= MAX_LINE_LEN, "{line:?} is too long");
        line
    }

    /// Decodes one line, with or without its line ending (`\r\n` or `\n`), strictly: see
    /// [Decoding rules](self#decoding-rules) for what is checked, in which order.
    ///
    /// ```
    /// use emotion_shared::protocol::{Message, ProtocolError};
    /// let m = Message::decode(b"$EMO,1,N,3,1234,2*5410\r\n")?;
    /// assert_eq!(m, Message::frame(3, 1234, 2));
    ///
    /// let err = Message::decode(b"$EMO,2,N,3,1234,2*518F").unwrap_err();
    /// assert_eq!(err.to_string(), "unsupported protocol version 2, this decoder speaks 1");
    /// let err = Message::decode(b"$EMO,1,N,3,1234,3*5410").unwrap_err();
    /// assert_eq!(err, ProtocolError::ChecksumMismatch { expected: 0x4431, found: 0x5410 });
    /// # Ok::<(), ProtocolError>(())
    /// ```
    pub fn decode(line: &[u8]) -> Result<Message, ProtocolError> {
        let content = strip_line_ending(line);
        if content.len() > MAX_CONTENT_LEN {
            return Err(ProtocolError::TooLong { len: content.len() });
        }
        if let Some((offset, &byte)) = content.iter().enumerate().find(|&(_, &b)| !is_printable(b))
        {
            return Err(ProtocolError::NotPrintableAscii { offset, byte });
        }
        let Some(rest) = content.strip_prefix(b"$") else {
            return Err(ProtocolError::MissingStart);
        };
        let Some(star) = rest.iter().position(|&b| b == b'*') else {
            return Err(ProtocolError::MissingChecksum);
        };
        let (payload, checksum) = rest.split_at(star);
        let checksum = checksum.get(1..).unwrap_or_default();
        let found = parse_checksum(checksum).ok_or_else(|| ProtocolError::MalformedChecksum {
            found: String::from_utf8_lossy(checksum).into_owned(),
        })?;
        let expected = crc16(payload);
        if expected != found {
            return Err(ProtocolError::ChecksumMismatch { expected, found });
        }
        // All printable ASCII (checked above), hence UTF-8.
        let payload =
            std::str::from_utf8(payload).map_err(|e| ProtocolError::NotPrintableAscii {
                offset: 1 + e.valid_up_to(),
                byte: payload.get(e.valid_up_to()).copied().unwrap_or_default(),
            })?;
        decode_fields(payload)
    }
}

impl FromStr for Message {
    type Err = ProtocolError;

    /// [`Message::decode`] of the string's bytes.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Message::decode(s.as_bytes())
    }
}

/// `line` without one trailing `\r\n` or `\n`.
fn strip_line_ending(line: &[u8]) -> &[u8] {
    if let Some(content) = line.strip_suffix(b"\r\n") {
        content
    } else if let Some(content) = line.strip_suffix(b"\n") {
        content
    } else {
        line
    }
}

/// Printable ASCII, 0x20..=0x7E.
fn is_printable(byte: u8) -> bool {
    (0x20..=0x7E).contains(&byte)
}

/// Exactly four uppercase hex digits.
fn parse_checksum(field: &[u8]) -> Option<u16> {
    if field.len() != 4 {
        return None;
    }
    field.iter().try_fold(0u16, |acc, &b| {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'A'..=b'F' => b - b'A' + 10,
            _ => return None,
        };
        Some((acc << 4) | u16::from(digit))
    })
}

/// Decodes the checked text between `$` and `*`.
fn decode_fields(payload: &str) -> Result<Message, ProtocolError> {
    let fields: Vec<&str> = payload.split(',').collect();
    let field = |i: usize| fields.get(i).copied().unwrap_or_default();

    let talker = field(0);
    if talker != TALKER {
        return Err(ProtocolError::BadPrefix {
            found: talker.to_string(),
        });
    }
    let version = field(1);
    if !is_canonical_number(version) {
        return Err(ProtocolError::BadNumber {
            field: "version",
            value: version.to_string(),
        });
    }
    if version != "1" {
        return Err(ProtocolError::UnsupportedVersion {
            found: version.to_string(),
        });
    }
    let kind_field = field(2);
    let mut letters = kind_field.chars();
    let kind = match (letters.next(), letters.next()) {
        (Some(letter), None) => Kind::from_letter(letter),
        _ => None,
    }
    .ok_or_else(|| ProtocolError::UnknownKind {
        found: kind_field.to_string(),
    })?;
    if fields.len() != kind.field_count() {
        return Err(ProtocolError::FieldCount {
            kind: kind.letter(),
            expected: kind.field_count(),
            found: fields.len(),
        });
    }

    let seq = number("seq", field(3), u32::MAX)?;
    let t_ms = number("t_ms", field(4), u32::MAX)?;
    let body = match kind {
        Kind::Face => {
            let face_id = number("face_id", field(5), u32::MAX)?;
            let label_field = field(6);
            let label = Emotion::ALL
                .into_iter()
                .find(|e| e.name() == label_field)
                .ok_or_else(|| ProtocolError::UnknownLabel {
                    found: label_field.to_string(),
                })?;
            let confidence_permille = number("conf", field(7), MAX_PERMILLE)?;
            let bbox = BoundingBox {
                x: number("x", field(8), u16::MAX)?,
                y: number("y", field(9), u16::MAX)?,
                w: number("w", field(10), u16::MAX)?,
                h: number("h", field(11), u16::MAX)?,
            };
            Body::Face(FaceReport {
                face_id,
                label,
                confidence_permille,
                bbox,
            })
        }
        Kind::Frame => Body::Frame(FrameSummary {
            faces: number("faces", field(5), u16::MAX)?,
        }),
        Kind::Status => {
            let level_field = field(5);
            let mut letters = level_field.chars();
            let level = match (letters.next(), letters.next()) {
                (Some(letter), None) => Level::from_letter(letter),
                _ => None,
            }
            .ok_or_else(|| ProtocolError::InvalidField {
                field: "level",
                value: level_field.to_string(),
                expected: "I, W or E",
            })?;
            let code = field(6);
            if code.is_empty()
                || code.len() > MAX_CODE_LEN
                || !code
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                return Err(ProtocolError::InvalidField {
                    field: "code",
                    value: code.to_string(),
                    expected: "1 to 20 characters from a-z, 0-9 and _",
                });
            }
            let text = field(7);
            if text.is_empty()
                || text.len() > MAX_TEXT_LEN
                || !text
                    .bytes()
                    .all(|b| is_printable(b) && !matches!(b, b',' | b'*' | b'$'))
            {
                return Err(ProtocolError::InvalidField {
                    field: "text",
                    value: text.to_string(),
                    expected: "1 to 64 printable ASCII characters other than , * and $",
                });
            }
            Body::Status(Status {
                level,
                code: code.to_string(),
                text: text.to_string(),
            })
        }
    };
    Ok(Message { seq, t_ms, body })
}

/// Digits only, no leading zero unless the number is 0.
fn is_canonical_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'))
}

/// Parses the canonical decimal number `value` of field `field`, at most `max`.
fn number<T>(field: &'static str, value: &str, max: T) -> Result<T, ProtocolError>
where
    T: Copy + Into<u64> + TryFrom<u64>,
{
    if !is_canonical_number(value) {
        return Err(ProtocolError::BadNumber {
            field,
            value: value.to_string(),
        });
    }
    let out_of_range = || ProtocolError::OutOfRange {
        field,
        value: value.to_string(),
        max: max.into(),
    };
    let n: u64 = value.parse().map_err(|_| out_of_range())?;
    if n > max.into() {
        return Err(out_of_range());
    }
    T::try_from(n).map_err(|_| out_of_range())
}

/// Why a line (or a stretch of a byte stream) is not a valid message.
///
/// [`ProtocolError::kind`] gives a stable short name for each variant, as used in the test
/// vectors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// More than [`MAX_CONTENT_LEN`] bytes before the line ending.
    #[error(
        "line too long: {len} bytes before the line ending, at most 126 are allowed (128 with \"\\r\\n\")"
    )]
    TooLong {
        /// Bytes before the line ending.
        len: usize,
    },
    /// A byte that is not printable ASCII (`0x20`..=`0x7E`) before the line ending.
    #[error("byte 0x{byte:02X} at offset {offset} is not printable ASCII")]
    NotPrintableAscii {
        /// Offset in the line, 0 being where `$` should be.
        offset: usize,
        /// The byte.
        byte: u8,
    },
    /// The line does not start with `$`.
    #[error("line does not start with '$'")]
    MissingStart,
    /// No `*` before the checksum.
    #[error("no checksum: the line has no '*'")]
    MissingChecksum,
    /// What follows the first `*` is not exactly four uppercase hex digits.
    #[error("malformed checksum {found:?}: expected 4 uppercase hex digits after '*'")]
    MalformedChecksum {
        /// What follows the first `*`.
        found: String,
    },
    /// The checksum does not match the line's content.
    #[error(
        "checksum mismatch: the line's content gives {expected:04X}, the line says {found:04X}"
    )]
    ChecksumMismatch {
        /// The CRC of the bytes between `$` and `*`.
        expected: u16,
        /// The CRC written in the line.
        found: u16,
    },
    /// The first field is not `EMO`.
    #[error("not an EMO line: the first field is {found:?}, expected \"EMO\"")]
    BadPrefix {
        /// The first field.
        found: String,
    },
    /// A well-formed version other than [`VERSION`].
    #[error("unsupported protocol version {found}, this decoder speaks 1")]
    UnsupportedVersion {
        /// The version field.
        found: String,
    },
    /// The kind field is not `F`, `N` or `S`.
    #[error("unknown line kind {found:?}: expected F, N or S")]
    UnknownKind {
        /// The kind field.
        found: String,
    },
    /// The line has the wrong number of fields for its kind.
    #[error(
        "an {kind} line has {expected} comma-separated fields between '$' and '*', this one has {found}"
    )]
    FieldCount {
        /// The kind letter.
        kind: char,
        /// Fields this kind has.
        expected: usize,
        /// Fields the line has.
        found: usize,
    },
    /// A number field that is not digits only, or has a leading zero.
    #[error(
        "field {field} is {value:?}, not a decimal number (digits only, no sign, no leading zeros)"
    )]
    BadNumber {
        /// The field's name.
        field: &'static str,
        /// The field.
        value: String,
    },
    /// A number field larger than its maximum.
    #[error("field {field} is {value}, larger than its maximum {max}")]
    OutOfRange {
        /// The field's name.
        field: &'static str,
        /// The field.
        value: String,
        /// The largest allowed value.
        max: u64,
    },
    /// A label that is not one of the seven lowercase emotion names.
    #[error(
        "unknown emotion label {found:?}: expected one of angry, disgust, fear, happy, sad, surprise, neutral"
    )]
    UnknownLabel {
        /// The label field.
        found: String,
    },
    /// A malformed level, code or text in a status line.
    #[error("field {field} is {value:?}, expected {expected}")]
    InvalidField {
        /// The field's name.
        field: &'static str,
        /// The field.
        value: String,
        /// What it should be.
        expected: &'static str,
    },
    /// [`StreamDecoder`]: bytes outside any line (between a line ending and the next `$`,
    /// line endings not counted).
    #[error("skipped {len} bytes that are not part of any line")]
    Garbage {
        /// How many bytes were skipped.
        len: usize,
    },
    /// [`StreamDecoder`]: a line was cut off by the `$` of the next one.
    #[error("line cut off after {len} bytes by the start of another ('$')")]
    Interrupted {
        /// How many bytes of the cut line had arrived.
        len: usize,
    },
    /// [`StreamDecoder`]: no line ending within [`MAX_LINE_LEN`] bytes of a `$`.
    #[error(
        "no line ending within 128 bytes of '$': line dropped, skipping to the next line ending or '$'"
    )]
    Overrun,
}

impl ProtocolError {
    /// A stable short name for the error: `too_long`, `not_printable_ascii`, `missing_start`,
    /// `missing_checksum`, `malformed_checksum`, `checksum_mismatch`, `bad_prefix`,
    /// `unsupported_version`, `unknown_kind`, `field_count`, `bad_number`, `out_of_range`,
    /// `unknown_label`, `invalid_field`, `garbage`, `interrupted` or `overrun`.
    pub fn kind(&self) -> &'static str {
        match self {
            ProtocolError::TooLong { .. } => "too_long",
            ProtocolError::NotPrintableAscii { .. } => "not_printable_ascii",
            ProtocolError::MissingStart => "missing_start",
            ProtocolError::MissingChecksum => "missing_checksum",
            ProtocolError::MalformedChecksum { .. } => "malformed_checksum",
            ProtocolError::ChecksumMismatch { .. } => "checksum_mismatch",
            ProtocolError::BadPrefix { .. } => "bad_prefix",
            ProtocolError::UnsupportedVersion { .. } => "unsupported_version",
            ProtocolError::UnknownKind { .. } => "unknown_kind",
            ProtocolError::FieldCount { .. } => "field_count",
            ProtocolError::BadNumber { .. } => "bad_number",
            ProtocolError::OutOfRange { .. } => "out_of_range",
            ProtocolError::UnknownLabel { .. } => "unknown_label",
            ProtocolError::InvalidField { .. } => "invalid_field",
            ProtocolError::Garbage { .. } => "garbage",
            ProtocolError::Interrupted { .. } => "interrupted",
            ProtocolError::Overrun => "overrun",
        }
    }
}

/// The longest stretch [`StreamDecoder`] buffers: a line without its `\n`.
const STREAM_BUF_LEN: usize = MAX_LINE_LEN - 1;

/// Where [`StreamDecoder`] is between bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StreamState {
    /// Waiting for `$`; counting skipped bytes.
    Hunting,
    /// In a line that started with `$`.
    InLine,
    /// A line overran the buffer: skipping to the next `\n` or `$`.
    Overrun,
}

/// Splits a byte stream, as read from a serial port in chunks of any size, into decoded lines.
///
/// Each `$` starts a line; each `\n` ends one, which is then decoded with [`Message::decode`].
/// Bytes outside lines, lines cut off by the next `$` and lines with no line ending within
/// [`MAX_LINE_LEN`] bytes are reported as errors ([`ProtocolError::Garbage`],
/// [`ProtocolError::Interrupted`], [`ProtocolError::Overrun`]) and the decoder carries on with
/// the next line. It never panics and holds at most 127 bytes, whatever it is fed.
///
/// ```
/// use emotion_shared::protocol::{Message, ProtocolError, StreamDecoder};
///
/// let mut decoder = StreamDecoder::new();
/// let mut out = decoder.feed(b"\x00noise$EMO,1,N,3,12");
/// out.extend(decoder.feed(b"34,2*5410\r\n$EMO,1,N,4,1267,0*565F\r"));
/// out.extend(decoder.feed(b"\n"));
/// assert_eq!(
///     out,
///     vec![
///         Err(ProtocolError::Garbage { len: 6 }),
///         Ok(Message::frame(3, 1234, 2)),
///         Ok(Message::frame(4, 1267, 0)),
///     ]
/// );
/// ```
#[derive(Debug, Clone)]
pub struct StreamDecoder {
    buf: [u8; STREAM_BUF_LEN],
    len: usize,
    state: StreamState,
    skipped: usize,
}

impl Default for StreamDecoder {
    fn default() -> Self {
        StreamDecoder::new()
    }
}

impl StreamDecoder {
    /// A decoder waiting for the first `$`.
    pub fn new() -> StreamDecoder {
        StreamDecoder {
            buf: [0; STREAM_BUF_LEN],
            len: 0,
            state: StreamState::Hunting,
            skipped: 0,
        }
    }

    /// Feeds one byte; returns a result when the byte completes a line or reveals an error.
    pub fn push(&mut self, byte: u8) -> Option<Result<Message, ProtocolError>> {
        match (byte, self.state) {
            (b'$', state) => {
                let out = match state {
                    StreamState::Hunting => self.take_garbage(),
                    StreamState::InLine => Some(Err(ProtocolError::Interrupted { len: self.len })),
                    StreamState::Overrun => None,
                };
                self.skipped = 0;
                self.buf[0] = b'$';
                self.len = 1;
                self.state = StreamState::InLine;
                out
            }
            (b'\n', StreamState::Hunting) => self.take_garbage(),
            (b'\n', StreamState::InLine) => {
                let out = self.decode_buffer();
                self.len = 0;
                self.state = StreamState::Hunting;
                Some(out)
            }
            (b'\n', StreamState::Overrun) => {
                self.state = StreamState::Hunting;
                None
            }
            (b'\r', StreamState::Hunting) => None,
            (_, StreamState::Hunting) => {
                self.skipped = self.skipped.saturating_add(1);
                None
            }
            (_, StreamState::InLine) => {
                if let Some(slot) = self.buf.get_mut(self.len) {
                    *slot = byte;
                    self.len += 1;
                    None
                } else {
                    self.len = 0;
                    self.state = StreamState::Overrun;
                    Some(Err(ProtocolError::Overrun))
                }
            }
            (_, StreamState::Overrun) => None,
        }
    }

    /// Feeds a chunk of bytes; returns the results it completes, in order.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Result<Message, ProtocolError>> {
        bytes.iter().filter_map(|&b| self.push(b)).collect()
    }

    /// Ends the stream: decodes a last line that has no line ending, or reports skipped bytes,
    /// and resets the decoder.
    pub fn finish(&mut self) -> Option<Result<Message, ProtocolError>> {
        let out = match self.state {
            StreamState::Hunting => self.take_garbage(),
            StreamState::InLine => Some(self.decode_buffer()),
            StreamState::Overrun => None,
        };
        *self = StreamDecoder::new();
        out
    }

    /// How many bytes of an unfinished line the decoder holds (never more than 127).
    pub fn buffered(&self) -> usize {
        self.len
    }

    /// Reports and forgets skipped bytes, if any.
    fn take_garbage(&mut self) -> Option<Result<Message, ProtocolError>> {
        let len = std::mem::take(&mut self.skipped);
        (len > 0).then_some(Err(ProtocolError::Garbage { len }))
    }

    /// Decodes the buffered line, without its `\r` if it ends in one.
    fn decode_buffer(&self) -> Result<Message, ProtocolError> {
        let line = self.buf.get(..self.len).unwrap_or_default();
        Message::decode(line.strip_suffix(b"\r").unwrap_or(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_crc(payload: &str) -> String {
        format!("${payload}*{:04X}\r\n", crc16(payload.as_bytes()))
    }

    fn happy() -> FaceReport {
        FaceReport {
            face_id: 7,
            label: Emotion::Happy,
            confidence_permille: 873,
            bbox: BoundingBox {
                x: 120,
                y: 64,
                w: 96,
                h: 96,
            },
        }
    }

    fn decode_err(line: &str) -> ProtocolError {
        match Message::decode(line.as_bytes()) {
            Ok(m) => panic!("{line:?} decoded to {m:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn crc_matches_the_standard_check_value() {
        assert_eq!(crc16(b"123456789"), 0x29B1);
        assert_eq!(crc16(b""), 0xFFFF);
    }

    #[test]
    fn encodes_the_worked_example() {
        assert_eq!(
            Message::face(1, 1234, happy()).encode(),
            "$EMO,1,F,1,1234,7,happy,873,120,64,96,96*0EC2\r\n"
        );
        assert_eq!(
            Message::status(0, 0, Level::Info, "start", "emotion-edge started").encode(),
            "$EMO,1,S,0,0,I,start,emotion-edge started*AB3A\r\n"
        );
    }

    #[test]
    fn accepts_crlf_lf_and_no_line_ending_but_not_cr() {
        let m = Message::frame(3, 1234, 2);
        for line in [
            "$EMO,1,N,3,1234,2*5410\r\n",
            "$EMO,1,N,3,1234,2*5410\n",
            "$EMO,1,N,3,1234,2*5410",
        ] {
            assert_eq!(Message::decode(line.as_bytes()), Ok(m.clone()), "{line:?}");
            assert_eq!(line.parse::<Message>(), Ok(m.clone()));
        }
        assert_eq!(
            decode_err("$EMO,1,N,3,1234,2*5410\r"),
            ProtocolError::NotPrintableAscii {
                offset: 22,
                byte: b'\r'
            }
        );
        assert_eq!(
            decode_err("$EMO,1,N,3,1234,2*5410\n\n").kind(),
            "not_printable_ascii"
        );
    }

    #[test]
    fn longest_lines_fit() {
        let face = Message::face(
            u32::MAX,
            u32::MAX,
            FaceReport {
                face_id: u32::MAX,
                label: Emotion::Surprise,
                confidence_permille: u16::MAX,
                bbox: BoundingBox {
                    x: u16::MAX,
                    y: u16::MAX,
                    w: u16::MAX,
                    h: u16::MAX,
                },
            },
        );
        assert_eq!(face.encode().len(), 86);
        assert_eq!(
            Message::frame(u32::MAX, u32::MAX, u16::MAX).encode().len(),
            43
        );
        let status = Message {
            seq: u32::MAX,
            t_ms: u32::MAX,
            body: Body::Status(Status {
                level: Level::Warning,
                code: "c".repeat(1000),
                text: "t".repeat(1000),
            }),
        };
        let line = status.encode();
        assert_eq!(line.len(), 125, "{line}");
        assert!(line.len() <= MAX_LINE_LEN);
        assert_eq!(Message::decode(line.as_bytes()), Ok(status.normalized()));
    }

    #[test]
    fn encoder_sanitises_status_and_clamps_confidence() {
        let m = Message {
            seq: 1,
            t_ms: 2,
            body: Body::Status(Status {
                level: Level::Error,
                code: "Model Rejected!".into(),
                text: "bad sig, file $x*\u{1F600}".into(),
            }),
        };
        let line = m.encode();
        assert!(
            line.starts_with("$EMO,1,S,1,2,E,model_rejected_,bad sig; file ?x??*"),
            "{line}"
        );
        assert_eq!(Message::decode(line.as_bytes()), Ok(m.normalized()));

        let mut face = happy();
        face.confidence_permille = 1500;
        let m = Message::face(0, 0, face);
        assert!(m.encode().contains(",happy,1000,"));
        assert_eq!(face.confidence(), 1.0);

        let empty = Message::status(0, 0, Level::Info, "", "");
        assert_eq!(empty.encode(), with_crc("EMO,1,S,0,0,I,unknown,-"));
    }

    #[test]
    fn sanitising_is_idempotent_and_truncates_with_an_ellipsis() {
        let long = format!("{}{}", "a".repeat(70), "\u{e9}");
        let text = sanitize_text(&long);
        assert_eq!(text.len(), MAX_TEXT_LEN);
        assert!(text.ends_with("a..."));
        assert_eq!(sanitize_text(&text), text);
        let exactly = "b".repeat(MAX_TEXT_LEN);
        assert_eq!(sanitize_text(&exactly), exactly);
        let code = sanitize_code("ABCDEFGHIJKLMNOPQRSTUVWXYZ");
        assert_eq!(code, "abcdefghijklmnopqrst");
        assert_eq!(sanitize_code(&code), code);
    }

    #[test]
    fn permille_rounds_and_clamps() {
        assert_eq!(permille(0.0), 0);
        assert_eq!(permille(0.0004), 0);
        assert_eq!(permille(0.0005), 1);
        assert_eq!(permille(0.5), 500);
        assert_eq!(permille(1.0), 1000);
        assert_eq!(permille(-3.0), 0);
        assert_eq!(permille(f32::INFINITY), 1000);
        assert_eq!(permille(f32::NEG_INFINITY), 0);
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let err = decode_err(&with_crc("EMO,2,N,3,1234,2"));
        assert_eq!(
            err.to_string(),
            "unsupported protocol version 2, this decoder speaks 1"
        );
        let err = decode_err("$EMO,1,N,3,1234,2*5411");
        assert_eq!(
            err,
            ProtocolError::ChecksumMismatch {
                expected: 0x5410,
                found: 0x5411
            }
        );
        assert!(err.to_string().contains("5410") && err.to_string().contains("5411"));

        let cases: &[(&str, &str)] = &[
            ("", "missing_start"),
            ("EMO,1,N,3,1234,2*5410", "missing_start"),
            ("$EMO,1,N,3,1234,2", "missing_checksum"),
            ("$EMO,1,N,3,1234,2*541", "malformed_checksum"),
            ("$EMO,1,N,3,1234,2*54100", "malformed_checksum"),
            ("$EMO,1,N,3,1234,2*abcd", "malformed_checksum"),
            ("$EMO,1,N,3,1234,2*", "malformed_checksum"),
            ("$EMO,1,N,3,1234,\u{e9}*5410", "not_printable_ascii"),
            ("$EMO,1,N,3,1234,\t*5410", "not_printable_ascii"),
        ];
        for (line, kind) in cases {
            assert_eq!(decode_err(line).kind(), *kind, "{line:?}");
        }
        let too_long = with_crc(&format!("EMO,1,S,0,0,I,x,{}", "y".repeat(200)));
        assert_eq!(decode_err(&too_long).kind(), "too_long");

        let checked: &[(&str, &str)] = &[
            ("GPS,1,N,3,1234,2", "bad_prefix"),
            ("EMO", "bad_number"),
            ("EMO,x,N,3,1234,2", "bad_number"),
            ("EMO,01,N,3,1234,2", "bad_number"),
            ("EMO,0,N,3,1234,2", "unsupported_version"),
            ("EMO,99999999999999999999999,N", "unsupported_version"),
            ("EMO,1", "unknown_kind"),
            ("EMO,1,X,3,1234,2", "unknown_kind"),
            ("EMO,1,NN,3,1234,2", "unknown_kind"),
            ("EMO,1,f,1,2,3,happy,1,1,1,1,1", "unknown_kind"),
            ("EMO,1,N,3,1234", "field_count"),
            ("EMO,1,N,3,1234,2,", "field_count"),
            ("EMO,1,S,0,0,I,start,a,b", "field_count"),
            ("EMO,1,N,,1234,2", "bad_number"),
            ("EMO,1,N,+3,1234,2", "bad_number"),
            ("EMO,1,N,-3,1234,2", "bad_number"),
            ("EMO,1,N,3,01234,2", "bad_number"),
            ("EMO,1,N, 3,1234,2", "bad_number"),
            ("EMO,1,N,3,1234,0x2", "bad_number"),
            ("EMO,1,N,4294967296,1234,2", "out_of_range"),
            ("EMO,1,N,3,99999999999999999999999,2", "out_of_range"),
            ("EMO,1,N,3,1234,65536", "out_of_range"),
            ("EMO,1,F,1,2,3,happy,1001,1,1,1,1", "out_of_range"),
            ("EMO,1,F,1,2,3,happy,1000,65536,1,1,1", "out_of_range"),
            ("EMO,1,F,1,2,3,Happy,1,1,1,1,1", "unknown_label"),
            ("EMO,1,F,1,2,3,3,1,1,1,1,1", "unknown_label"),
            ("EMO,1,F,1,2,3,contempt,1,1,1,1,1", "unknown_label"),
            ("EMO,1,S,0,0,X,start,hi", "invalid_field"),
            ("EMO,1,S,0,0,,start,hi", "invalid_field"),
            ("EMO,1,S,0,0,II,start,hi", "invalid_field"),
            ("EMO,1,S,0,0,I,Start,hi", "invalid_field"),
            ("EMO,1,S,0,0,I,,hi", "invalid_field"),
            ("EMO,1,S,0,0,I,abcdefghijklmnopqrstu,hi", "invalid_field"),
            ("EMO,1,S,0,0,I,start,", "invalid_field"),
            ("EMO,1,S,0,0,I,start,a$b", "invalid_field"),
        ];
        for (payload, kind) in checked {
            assert_eq!(decode_err(&with_crc(payload)).kind(), *kind, "{payload:?}");
        }
    }

    #[test]
    fn decodes_boundary_values() {
        let line = with_crc("EMO,1,F,4294967295,4294967295,0,neutral,1000,65535,0,65535,0");
        let m = Message::decode(line.as_bytes());
        let expected = Message::face(
            u32::MAX,
            u32::MAX,
            FaceReport {
                face_id: 0,
                label: Emotion::Neutral,
                confidence_permille: 1000,
                bbox: BoundingBox {
                    x: u16::MAX,
                    y: 0,
                    w: u16::MAX,
                    h: 0,
                },
            },
        );
        assert_eq!(m, Ok(expected.clone()));
        assert_eq!(expected.encode(), line);
        let text = "t".repeat(MAX_TEXT_LEN);
        let line = with_crc(&format!(
            "EMO,1,S,0,0,W,{},{text}",
            "c".repeat(MAX_CODE_LEN)
        ));
        assert!(Message::decode(line.as_bytes()).is_ok());
    }

    #[test]
    fn stream_splits_arbitrary_chunks() {
        let messages = [
            Message::status(0, 0, Level::Info, "start", "up"),
            Message::face(1, 10, happy()),
            Message::frame(2, 10, 1),
        ];
        let bytes: String = messages.iter().map(Message::encode).collect();
        for chunk in 1..bytes.len() {
            let mut decoder = StreamDecoder::new();
            let mut out = Vec::new();
            for piece in bytes.as_bytes().chunks(chunk) {
                out.extend(decoder.feed(piece));
            }
            assert_eq!(decoder.finish(), None);
            let expected: Vec<_> = messages.iter().cloned().map(Ok).collect();
            assert_eq!(out, expected, "chunks of {chunk}");
        }
    }

    #[test]
    fn stream_reports_garbage_interruptions_and_overruns() {
        let line = Message::frame(3, 1234, 2).encode();
        let ok = || Ok(Message::frame(3, 1234, 2));
        let mut d = StreamDecoder::new();

        // Blank lines are not garbage; other bytes are, once per run.
        assert_eq!(d.feed(b"\r\n\r\n"), vec![]);
        assert_eq!(
            d.feed(format!("hello\r\n{line}").as_bytes()),
            vec![Err(ProtocolError::Garbage { len: 5 }), ok()]
        );
        assert_eq!(
            d.feed(format!("xy{line}").as_bytes()),
            vec![Err(ProtocolError::Garbage { len: 2 }), ok()]
        );

        // A '$' cuts the line in progress.
        assert_eq!(
            d.feed(format!("$EMO,1,N{line}").as_bytes()),
            vec![Err(ProtocolError::Interrupted { len: 8 }), ok()]
        );

        // An over-long run is reported once, then skipped up to '\n' or '$'.
        let mut long = vec![b'$'];
        long.extend(std::iter::repeat_n(b'A', 1000));
        long.extend(b"\r\n");
        long.extend(line.as_bytes());
        assert_eq!(d.feed(&long), vec![Err(ProtocolError::Overrun), ok()]);
        long.truncate(1001);
        long.extend(line.as_bytes());
        assert_eq!(d.feed(&long), vec![Err(ProtocolError::Overrun), ok()]);

        // A bad line is an error, and the next one decodes.
        assert_eq!(
            d.feed(format!("$EMO,1,N,3,1234,2*0000\r\n{line}").as_bytes()),
            vec![
                Err(ProtocolError::ChecksumMismatch {
                    expected: 0x5410,
                    found: 0
                }),
                ok()
            ]
        );

        // The end of the stream decodes a last line without ending, or reports garbage.
        assert_eq!(d.feed(line.trim_end().as_bytes()), vec![]);
        assert_eq!(d.buffered(), line.len() - 2);
        assert_eq!(d.finish(), Some(ok()));
        assert_eq!(d.feed(b"zz"), vec![]);
        assert_eq!(d.finish(), Some(Err(ProtocolError::Garbage { len: 2 })));
        assert_eq!(d.finish(), None);
    }

    #[test]
    fn stream_buffer_is_bounded() {
        let mut d = StreamDecoder::new();
        let mut max = 0;
        for i in 0..10_000u32 {
            let byte = if i % 997 == 0 {
                b'$'
            } else {
                (i % 251) as u8 | 0x20
            };
            let _ = d.push(byte);
            max = max.max(d.buffered());
        }
        assert!(max < MAX_LINE_LEN, "{max}");
    }

    #[test]
    fn longest_valid_line_passes_the_stream() {
        // 126 bytes of content + "\r\n" = 128: the stream must take it.
        let text = "t".repeat(MAX_TEXT_LEN);
        let code = "c".repeat(MAX_CODE_LEN);
        let payload = format!("EMO,1,S,4294967295,4294967295,W,{code},{text}");
        let line = with_crc(&payload);
        assert_eq!(line.len(), 125);
        let mut d = StreamDecoder::new();
        assert!(matches!(d.feed(line.as_bytes()).as_slice(), [Ok(_)]));

        // At the buffer's boundary: 126 bytes of content and "\r\n" reach the decoder (here
        // failing on the checksum); one byte more overruns the stream's buffer, or, with a bare
        // "\n", reaches the decoder and is too long.
        let filler = format!("${}*0000", "A".repeat(MAX_CONTENT_LEN - 6));
        assert_eq!(filler.len(), MAX_CONTENT_LEN);
        let out = d.feed(format!("{filler}\r\n").as_bytes());
        assert!(
            matches!(
                out.as_slice(),
                [Err(ProtocolError::ChecksumMismatch { .. })]
            ),
            "{out:?}"
        );
        let filler = format!("${}*0000", "A".repeat(MAX_CONTENT_LEN - 5));
        let out = d.feed(format!("{filler}\r\n").as_bytes());
        assert_eq!(out, vec![Err(ProtocolError::Overrun)]);
        let out = d.feed(format!("{filler}\n").as_bytes());
        assert_eq!(out, vec![Err(ProtocolError::TooLong { len: 127 })]);
    }
}
