/*
 * emotion_protocol.h: a strict parser for emotion-edge's serial wire protocol, version 1,
 * in plain C99 for microcontrollers (Arduino AVR, ESP32) and PCs. No malloc, no stdio, no
 * floating point; fixed buffers only (on AVR a reader takes 131 bytes of RAM, a decoded
 * message 96).
 *
 * The protocol is specified in the docs of emotion_shared::protocol (shared/src/protocol.rs
 * in the emotion repository). Every line is
 *
 *     $EMO,1,<kind>,<seq>,<t_ms>,<fields...>*<CRC>\r\n
 *
 * with kind F (one face), N (end of frame) or S (status), at most 128 bytes, and a
 * CRC-16/CCITT-FALSE over the bytes between '$' and '*' as four uppercase hex digits.
 *
 * emo_parse_line() accepts exactly the lines the runtime's encoder writes and reports the
 * same error for every other line as the reference decoder (Message::decode in Rust), in
 * the same order of checks; deploy/clients/arduino/test_protocol.c checks this against
 * shared/testdata/protocol/vectors.tsv. emo_reader_push() splits a byte stream, as it comes
 * from a UART, into lines like the Rust StreamDecoder.
 *
 * Usage:
 *
 *     static struct emo_reader reader;           // emo_reader_init(&reader) once
 *     struct emo_message msg;
 *     int r = emo_reader_push(&reader, byte, &msg);
 *     if (r == EMO_OK && msg.kind == EMO_KIND_FACE) { ... msg.u.face.label ... }
 *     else if (r > 0) { ... emo_error_name(r) ... }  // a bad line, skipped
 *     // r == EMO_NONE: the byte completed nothing
 */
#ifndef EMOTION_PROTOCOL_H
#define EMOTION_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The protocol version this parser speaks. */
#define EMO_VERSION 1
/* The longest line, including "\r\n". */
#define EMO_MAX_LINE_LEN 128
/* The longest line from '$' to the last checksum digit. */
#define EMO_MAX_CONTENT_LEN (EMO_MAX_LINE_LEN - 2)
/* The longest status code and text, in characters. */
#define EMO_MAX_CODE_LEN 20
#define EMO_MAX_TEXT_LEN 64
/* The largest confidence, in permille. */
#define EMO_MAX_PERMILLE 1000

/* What a parse gives: EMO_OK, EMO_NONE (stream: nothing yet) or why a line is invalid. The
   names in the comments are the error kinds of the spec and the test vectors. */
enum emo_result {
    EMO_NONE = -1,                  /* emo_reader_push: the byte completed nothing */
    EMO_OK = 0,                     /* a valid line; the message is filled in */
    EMO_ERR_TOO_LONG = 1,           /* too_long: more than 126 bytes before the line ending */
    EMO_ERR_NOT_PRINTABLE_ASCII,    /* not_printable_ascii: a byte outside 0x20..0x7E */
    EMO_ERR_MISSING_START,          /* missing_start: does not start with '$' */
    EMO_ERR_MISSING_CHECKSUM,       /* missing_checksum: no '*' */
    EMO_ERR_MALFORMED_CHECKSUM,     /* malformed_checksum: not 4 uppercase hex digits after '*' */
    EMO_ERR_CHECKSUM_MISMATCH,      /* checksum_mismatch: CRC differs */
    EMO_ERR_BAD_PREFIX,             /* bad_prefix: first field is not EMO */
    EMO_ERR_UNSUPPORTED_VERSION,    /* unsupported_version: valid line of another version */
    EMO_ERR_UNKNOWN_KIND,           /* unknown_kind: not F, N or S */
    EMO_ERR_FIELD_COUNT,            /* field_count: wrong number of fields for the kind */
    EMO_ERR_BAD_NUMBER,             /* bad_number: not digits only, or a leading zero */
    EMO_ERR_OUT_OF_RANGE,           /* out_of_range: a number above its maximum */
    EMO_ERR_UNKNOWN_LABEL,          /* unknown_label: not one of the seven emotions */
    EMO_ERR_INVALID_FIELD,          /* invalid_field: bad status level, code or text */
    EMO_ERR_GARBAGE,                /* garbage (stream): bytes outside any line */
    EMO_ERR_INTERRUPTED,            /* interrupted (stream): a line cut off by the next '$' */
    EMO_ERR_OVERRUN                 /* overrun (stream): no line ending within 128 bytes */
};

/* Line kinds: the letter on the wire. */
#define EMO_KIND_FACE 'F'
#define EMO_KIND_FRAME 'N'
#define EMO_KIND_STATUS 'S'

/* Emotions, in the order of the model's classes. */
enum emo_label {
    EMO_ANGRY = 0,
    EMO_DISGUST = 1,
    EMO_FEAR = 2,
    EMO_HAPPY = 3,
    EMO_SAD = 4,
    EMO_SURPRISE = 5,
    EMO_NEUTRAL = 6
};
#define EMO_NUM_LABELS 7

/* F: one face. */
struct emo_face {
    uint32_t face_id;               /* track id, stable while the face is followed */
    uint8_t label;                  /* enum emo_label */
    uint16_t conf;                  /* confidence in permille, 0..1000 */
    uint16_t x, y, w, h;            /* box in pixels of the camera frame */
};

/* N: end of a frame. */
struct emo_frame {
    uint16_t faces;                 /* how many F lines the frame had, right before */
};

/* S: status. */
struct emo_status {
    char level;                     /* 'I', 'W' or 'E' */
    char code[EMO_MAX_CODE_LEN + 1];    /* a-z 0-9 _, NUL-terminated */
    char text[EMO_MAX_TEXT_LEN + 1];    /* printable ASCII, NUL-terminated */
};

/* One decoded line. */
struct emo_message {
    char kind;                      /* EMO_KIND_FACE, EMO_KIND_FRAME or EMO_KIND_STATUS */
    uint32_t seq;                   /* line counter, +1 per line, wrapping */
    uint32_t t_ms;                  /* runtime clock in ms, wrapping; (uint32_t)(b - a) */
    union {
        struct emo_face face;
        struct emo_frame frame;
        struct emo_status status;
    } u;
};

/* A stream reader: feed it every received byte. */
struct emo_reader {
    char buf[EMO_MAX_LINE_LEN - 1]; /* a line without its '\n' */
    uint8_t len;
    uint8_t state;
    uint16_t skipped;               /* bytes outside lines since the last report */
};

/* CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final XOR) of n bytes. */
uint16_t emo_crc16(const char *data, size_t n);

/* Decodes one line of len bytes (with "\r\n", "\n" or no line ending; it need not be
   NUL-terminated and is not changed). Returns EMO_OK and fills *out, or an error (then *out
   is undefined). */
int emo_parse_line(const char *line, size_t len, struct emo_message *out);

/* Resets a reader: waiting for the first '$'. */
void emo_reader_init(struct emo_reader *r);

/* Feeds one byte. Returns EMO_NONE, EMO_OK with *out filled (a line ended), or an error: a
   bad line (any emo_parse_line error) or EMO_ERR_GARBAGE / _INTERRUPTED / _OVERRUN. */
int emo_reader_push(struct emo_reader *r, uint8_t byte, struct emo_message *out);

/* Ends the stream: decodes a last line without a line ending, or reports skipped bytes;
   EMO_NONE if there was nothing. Resets the reader. */
int emo_reader_finish(struct emo_reader *r, struct emo_message *out);

/* "angry" ... "neutral", or "?" for an invalid label. */
const char *emo_label_name(uint8_t label);

/* The error kind as named in the spec ("checksum_mismatch", ...), "ok" or "none". */
const char *emo_error_name(int result);

#ifdef __cplusplus
}
#endif

#endif /* EMOTION_PROTOCOL_H */
