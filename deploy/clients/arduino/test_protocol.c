/*
 * test_protocol.c: checks the C parser of the Arduino/ESP32 sketch (emotion_protocol.c) on a
 * PC against the shared test vectors, and its stream reader against the stream behaviour of
 * the reference decoder (emotion_shared::protocol::StreamDecoder).
 *
 *   gcc -std=c99 -Wall -Wextra -Werror -pedantic -I emotion_serial \
 *       test_protocol.c emotion_serial/emotion_protocol.c -o test_protocol
 *   ./test_protocol ../../../shared/testdata/protocol/vectors.tsv
 *
 * Every valid vector must decode to exactly its fields; every invalid one must be refused
 * with the error kind the vector names (full conformance, see the vectors' README.md).
 * Prints each failure and "N passed, N failed"; exits 1 on any failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emotion_protocol.h"

#define MAX_ROW 2048
#define MAX_CELLS 18

/* Columns of vectors.tsv (README.md there). */
enum {
    COL_EXPECT, COL_LINE_HEX, COL_KIND, COL_SEQ, COL_T_MS, COL_FACE_ID, COL_LABEL, COL_CONF,
    COL_X, COL_Y, COL_W, COL_H, COL_FACES, COL_LEVEL, COL_CODE, COL_TEXT, COL_LINE, COL_NOTE
};

static const char *const column_names[MAX_CELLS] = {
    "expect", "line_hex", "kind", "seq", "t_ms", "face_id", "label", "conf",
    "x", "y", "w", "h", "faces", "level", "code", "text", "line", "note"
};

static int passed, failed;

static void pass(void)
{
    passed++;
}

static void fail(const char *what, const char *detail)
{
    failed++;
    printf("FAIL %s: %s\n", what, detail);
}

/* Splits row (without its '\n') on tabs, in place; returns the number of cells. */
static int split_tabs(char *row, char **cells, int max)
{
    int n = 0;
    char *p = row;
    for (;;) {
        char *tab = strchr(p, '\t');
        if (n == max)
            return max + 1;
        cells[n++] = p;
        if (tab == NULL)
            return n;
        *tab = '\0';
        p = tab + 1;
    }
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes hex into out; returns the byte count or -1. */
static long unhex(const char *hex, char *out, size_t cap)
{
    size_t n = strlen(hex), i;
    if (n % 2 != 0 || n / 2 > cap)
        return -1;
    for (i = 0; i < n / 2; i++) {
        int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (char)(hi * 16 + lo);
    }
    return (long)(n / 2);
}

/* Appends "name=have (want want)" to diff if the decimal value differs from the cell. */
static void compare_number(char *diff, size_t cap, const char *name, unsigned long have,
                           const char *want)
{
    char buf[32];
    sprintf(buf, "%lu", have);
    if (strcmp(buf, want) != 0) {
        size_t used = strlen(diff);
        snprintf(diff + used, cap - used, " %s=%s (want %s)", name, buf, want);
    }
}

static void compare_text(char *diff, size_t cap, const char *name, const char *have,
                         const char *want)
{
    if (strcmp(have, want) != 0) {
        size_t used = strlen(diff);
        snprintf(diff + used, cap - used, " %s=\"%s\" (want \"%s\")", name, have, want);
    }
}

static void check_vector(char **cell)
{
    char line[MAX_ROW];
    char what[MAX_ROW + 64];
    char diff[1024] = "";
    struct emo_message m;
    long n = unhex(cell[COL_LINE_HEX], line, sizeof line);
    int r;

    snprintf(what, sizeof what, "vector %s [%s]", cell[COL_LINE], cell[COL_NOTE]);
    if (n < 0) {
        fail(what, "line_hex is not hex");
        return;
    }
    memset(&m, 0xA5, sizeof m);
    r = emo_parse_line(line, (size_t)n, &m);

    if (strcmp(cell[COL_EXPECT], "ok") != 0) {
        if (r == EMO_OK) {
            snprintf(diff, sizeof diff, "accepted, want %s", cell[COL_EXPECT]);
            fail(what, diff);
        } else if (strcmp(emo_error_name(r), cell[COL_EXPECT]) != 0) {
            snprintf(diff, sizeof diff, "refused as %s, want %s", emo_error_name(r),
                     cell[COL_EXPECT]);
            fail(what, diff);
        } else {
            pass();
        }
        return;
    }

    if (r != EMO_OK) {
        snprintf(diff, sizeof diff, "refused as %s, want ok", emo_error_name(r));
        fail(what, diff);
        return;
    }
    if (m.kind != cell[COL_KIND][0] || cell[COL_KIND][1] != '\0') {
        snprintf(diff, sizeof diff, "kind %c, want %s", m.kind, cell[COL_KIND]);
        fail(what, diff);
        return;
    }
    compare_number(diff, sizeof diff, "seq", m.seq, cell[COL_SEQ]);
    compare_number(diff, sizeof diff, "t_ms", m.t_ms, cell[COL_T_MS]);
    switch (m.kind) {
    case EMO_KIND_FACE:
        compare_number(diff, sizeof diff, "face_id", m.u.face.face_id, cell[COL_FACE_ID]);
        compare_text(diff, sizeof diff, "label", emo_label_name(m.u.face.label),
                     cell[COL_LABEL]);
        compare_number(diff, sizeof diff, "conf", m.u.face.conf, cell[COL_CONF]);
        compare_number(diff, sizeof diff, "x", m.u.face.x, cell[COL_X]);
        compare_number(diff, sizeof diff, "y", m.u.face.y, cell[COL_Y]);
        compare_number(diff, sizeof diff, "w", m.u.face.w, cell[COL_W]);
        compare_number(diff, sizeof diff, "h", m.u.face.h, cell[COL_H]);
        break;
    case EMO_KIND_FRAME:
        compare_number(diff, sizeof diff, "faces", m.u.frame.faces, cell[COL_FACES]);
        break;
    default: {
        char level[2] = { m.u.status.level, '\0' };
        compare_text(diff, sizeof diff, "level", level, cell[COL_LEVEL]);
        compare_text(diff, sizeof diff, "code", m.u.status.code, cell[COL_CODE]);
        compare_text(diff, sizeof diff, "text", m.u.status.text, cell[COL_TEXT]);
        break;
    }
    }
    if (diff[0] != '\0')
        fail(what, diff);
    else
        pass();
}

/* Runs every vector of the file; returns the number of vectors, or -1 if the file is
   unusable. */
static int check_file(const char *path)
{
    char row[MAX_ROW];
    char *cells[MAX_CELLS + 1];
    int header_seen = 0, vectors = 0, lineno = 0;
    FILE *f = fopen(path, "r");

    if (f == NULL) {
        perror(path);
        return -1;
    }
    while (fgets(row, sizeof row, f) != NULL) {
        size_t len = strlen(row);
        int n, i;
        lineno++;
        if (len > 0 && row[len - 1] == '\n')
            row[--len] = '\0';
        else if (!feof(f)) {
            fprintf(stderr, "%s:%d: row too long\n", path, lineno);
            fclose(f);
            return -1;
        }
        if (row[0] == '#')
            continue;
        n = split_tabs(row, cells, MAX_CELLS);
        if (n != MAX_CELLS) {
            fprintf(stderr, "%s:%d: %d cells, expected %d\n", path, lineno, n, MAX_CELLS);
            fclose(f);
            return -1;
        }
        if (!header_seen) {
            for (i = 0; i < MAX_CELLS; i++) {
                if (strcmp(cells[i], column_names[i]) != 0) {
                    fprintf(stderr, "%s:%d: column %d is %s, expected %s\n", path, lineno, i,
                            cells[i], column_names[i]);
                    fclose(f);
                    return -1;
                }
            }
            header_seen = 1;
            continue;
        }
        check_vector(cells);
        vectors++;
    }
    fclose(f);
    if (!header_seen) {
        fprintf(stderr, "%s: no header row\n", path);
        return -1;
    }
    return vectors;
}

/* ---- stream reader ------------------------------------------------------------------- */

/* What one result of the reader should be: a kind of error, or ok with this seq. */
struct expect {
    int result;
    unsigned long seq;
};

/* Feeds bytes (then, if finish, ends the stream) and compares the results with want. */
static void check_stream(const char *name, const char *bytes, size_t n, int finish,
                         const struct expect *want, int nwant)
{
    struct emo_reader reader;
    struct emo_message m;
    char diff[256] = "";
    int got = 0;
    size_t i;

    emo_reader_init(&reader);
    for (i = 0; i <= n; i++) {
        int r;
        if (i < n)
            r = emo_reader_push(&reader, (uint8_t)bytes[i], &m);
        else if (finish)
            r = emo_reader_finish(&reader, &m);
        else
            break;
        if (r == EMO_NONE)
            continue;
        if (got >= nwant) {
            snprintf(diff, sizeof diff, "unexpected extra result %s at byte %lu",
                     emo_error_name(r), (unsigned long)i);
            break;
        }
        if (r != want[got].result || (r == EMO_OK && m.seq != want[got].seq)) {
            snprintf(diff, sizeof diff, "result %d is %s (seq %lu), want %s (seq %lu)", got,
                     emo_error_name(r), r == EMO_OK ? (unsigned long)m.seq : 0UL,
                     emo_error_name(want[got].result), want[got].seq);
            break;
        }
        got++;
    }
    if (diff[0] == '\0' && got != nwant)
        snprintf(diff, sizeof diff, "%d results, want %d", got, nwant);
    if (diff[0] != '\0')
        fail(name, diff);
    else
        pass();
}

#define STREAM(name, literal, finish, ...)                                                    \
    do {                                                                                      \
        static const struct expect want_[] = { __VA_ARGS__ };                                 \
        check_stream(name, literal, sizeof(literal) - 1, finish, want_,                       \
                     (int)(sizeof want_ / sizeof want_[0]));                                  \
    } while (0)

#define LINE3 "$EMO,1,N,3,1234,2*5410"
#define LINE4 "$EMO,1,N,4,1267,0*565F"

static void check_streams(void)
{
    char big[300];
    size_t n;
    struct expect want[2];

    /* The example of StreamDecoder's docs, in one piece. */
    STREAM("stream: noise, then two lines", "\0noise" LINE3 "\r\n" LINE4 "\r\n", 0,
           { EMO_ERR_GARBAGE, 0 }, { EMO_OK, 3 }, { EMO_OK, 4 });
    STREAM("stream: bare LF endings", LINE3 "\n" LINE4 "\n", 0, { EMO_OK, 3 }, { EMO_OK, 4 });
    STREAM("stream: CR LF between lines is not garbage", "\r\n\r\n" LINE3 "\r\n\r\n", 0,
           { EMO_OK, 3 });
    STREAM("stream: noise ended by a line ending", "junk\r\n" LINE4 "\r\n", 0,
           { EMO_ERR_GARBAGE, 0 }, { EMO_OK, 4 });
    STREAM("stream: a line cut off by the next '$'", "$EMO,1,N,3,12" LINE4 "\r\n", 0,
           { EMO_ERR_INTERRUPTED, 0 }, { EMO_OK, 4 });
    STREAM("stream: a bad line is reported and skipped", "$EMO,1,N,3,1234,3*5410\r\n" LINE4
           "\r\n", 0, { EMO_ERR_CHECKSUM_MISMATCH, 0 }, { EMO_OK, 4 });
    STREAM("stream: the last line without an ending, at finish", LINE4, 1, { EMO_OK, 4 });
    STREAM("stream: trailing noise, at finish", LINE4 "\r\nxx", 1, { EMO_OK, 4 },
           { EMO_ERR_GARBAGE, 0 });
    STREAM("stream: the spec's worked example",
           "$EMO,1,S,0,0,I,start,emotion-edge started*AB3A\r\n"
           "$EMO,1,F,1,1234,7,happy,873,120,64,96,96*0EC2\r\n"
           "$EMO,1,F,2,1234,9,sad,412,300,80,88,90*DAC1\r\n" LINE3 "\r\n" LINE4 "\r\n"
           "$EMO,1,S,5,5012,E,camera_lost,no frame for 2000 ms; retrying*6B0B\r\n", 0,
           { EMO_OK, 0 }, { EMO_OK, 1 }, { EMO_OK, 2 }, { EMO_OK, 3 }, { EMO_OK, 4 },
           { EMO_OK, 5 });

    /* No line ending within 128 bytes: overrun, then nothing until the next '\n' or '$'. */
    n = 0;
    big[n++] = '$';
    while (n < 200)
        big[n++] = 'A';
    big[n++] = '\n';
    memcpy(big + n, LINE3 "\r\n", sizeof(LINE3 "\r\n") - 1);
    n += sizeof(LINE3 "\r\n") - 1;
    want[0].result = EMO_ERR_OVERRUN;
    want[0].seq = 0;
    want[1].result = EMO_OK;
    want[1].seq = 3;
    check_stream("stream: overrun, then the next line", big, n, 0, want, 2);

    /* The longest v1 line (125 bytes with "\r\n"): a status line with the longest fields. */
    {
        char line[160], payload[140];
        int len = sprintf(payload, "EMO,1,S,4294967295,4294967295,W,%s,%s",
                          "abcdefghijklmnopqrst",
                          "0123456789012345678901234567890123456789012345678901234567890123");
        len = sprintf(line, "$%s*%04X\r\n", payload, (unsigned)emo_crc16(payload, (size_t)len));
        if (len != EMO_MAX_LINE_LEN - 3) {
            char d[64];
            sprintf(d, "built a line of %d bytes", len);
            fail("stream: longest status line", d);
        } else {
            want[0].result = EMO_OK;
            want[0].seq = 4294967295UL;
            check_stream("stream: longest status line", line, (size_t)len, 0, want, 1);
        }
    }
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "shared/testdata/protocol/vectors.tsv";
    int vectors;

    if (emo_crc16("123456789", 9) == 0x29B1)
        pass();
    else
        fail("crc16", "check value of \"123456789\" is not 29B1");

    vectors = check_file(path);
    if (vectors < 0) {
        printf("cannot use the test vectors %s\n", path);
        return 2;
    }
    if (vectors < 50) {
        printf("only %d vectors in %s: the wrong file?\n", vectors, path);
        return 2;
    }
    check_streams();

    printf("%d vectors from %s; sizeof(struct emo_message) = %lu, sizeof(struct emo_reader) = %lu\n",
           vectors, path, (unsigned long)sizeof(struct emo_message),
           (unsigned long)sizeof(struct emo_reader));
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
