/*
 * emotion_protocol.c: see emotion_protocol.h. C99, no malloc, no stdio.
 *
 * The checks follow the "Decoding rules" of the spec (emotion_shared::protocol) in their
 * order, so that every invalid line gets the same error as from the reference decoder.
 */
#include "emotion_protocol.h"

#include <string.h>

/* Fields of a line, counting EMO, version and kind: the most any kind has (F). */
#define MAX_FIELDS 12

/* Reader states. */
#define ST_HUNTING 0                /* waiting for '$', counting skipped bytes */
#define ST_IN_LINE 1                /* in a line that started with '$' */
#define ST_OVERRUN 2                /* a line overran the buffer: skipping to '\n' or '$' */

static const char *const label_names[EMO_NUM_LABELS] = {
    "angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"
};

uint16_t emo_crc16(const char *data, size_t n)
{
    uint16_t crc = 0xFFFF;
    while (n--) {
        uint8_t i;
        crc ^= (uint16_t)((uint16_t)(uint8_t)*data++ << 8);
        for (i = 0; i < 8; i++) {
            if (crc & 0x8000)
                crc = (uint16_t)((crc << 1) ^ 0x1021);
            else
                crc = (uint16_t)(crc << 1);
        }
    }
    return crc;
}

/* A field: start and length inside the line. */
struct field {
    const char *p;
    uint8_t n;
};

/* Digits only, no leading zero unless the number is 0. */
static int is_canonical_number(const struct field *f)
{
    uint8_t i;
    if (f->n == 0)
        return 0;
    for (i = 0; i < f->n; i++)
        if (f->p[i] < '0' || f->p[i] > '9')
            return 0;
    return f->n == 1 || f->p[0] != '0';
}

/* A canonical decimal number of at most max: EMO_OK, EMO_ERR_BAD_NUMBER or
   EMO_ERR_OUT_OF_RANGE. */
static int number(const struct field *f, uint32_t max, uint32_t *out)
{
    uint32_t v = 0;
    uint8_t i;
    if (!is_canonical_number(f))
        return EMO_ERR_BAD_NUMBER;
    if (f->n > 10)                  /* more digits than 4294967295 has */
        return EMO_ERR_OUT_OF_RANGE;
    for (i = 0; i < f->n; i++) {
        uint32_t d = (uint32_t)(f->p[i] - '0');
        if (v > (UINT32_MAX - d) / 10)
            return EMO_ERR_OUT_OF_RANGE;
        v = v * 10 + d;
    }
    if (v > max)
        return EMO_ERR_OUT_OF_RANGE;
    *out = v;
    return EMO_OK;
}

static int number16(const struct field *f, uint32_t max, uint16_t *out)
{
    uint32_t v = 0;
    int r = number(f, max, &v);
    *out = (uint16_t)v;
    return r;
}

static int field_is(const struct field *f, const char *s)
{
    size_t n = strlen(s);
    return f->n == n && memcmp(f->p, s, n) == 0;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;                      /* lowercase is malformed */
}

static int decode_fields(const struct field *fields, uint8_t count, struct emo_message *out)
{
    /* A field that is not there reads as empty, like in the reference decoder. */
    static const struct field none = { "", 0 };
#define F(i) ((i) < count ? &fields[(i)] : &none)
    const struct field *kind = F(2);
    uint8_t expected;
    int r;

    if (!field_is(F(0), "EMO"))
        return EMO_ERR_BAD_PREFIX;
    if (!is_canonical_number(F(1)))
        return EMO_ERR_BAD_NUMBER;
    if (!field_is(F(1), "1"))
        return EMO_ERR_UNSUPPORTED_VERSION;
    if (kind->n != 1)
        return EMO_ERR_UNKNOWN_KIND;
    switch (kind->p[0]) {
    case EMO_KIND_FACE: expected = 12; break;
    case EMO_KIND_FRAME: expected = 6; break;
    case EMO_KIND_STATUS: expected = 8; break;
    default: return EMO_ERR_UNKNOWN_KIND;
    }
    /* count is at most MAX_FIELDS + 1: one more means "too many". */
    if (count != expected)
        return EMO_ERR_FIELD_COUNT;
    out->kind = kind->p[0];

    if ((r = number(F(3), UINT32_MAX, &out->seq)) != EMO_OK)
        return r;
    if ((r = number(F(4), UINT32_MAX, &out->t_ms)) != EMO_OK)
        return r;

    if (out->kind == EMO_KIND_FACE) {
        struct emo_face *face = &out->u.face;
        uint8_t i;
        if ((r = number(F(5), UINT32_MAX, &face->face_id)) != EMO_OK)
            return r;
        for (i = 0; i < EMO_NUM_LABELS; i++)
            if (field_is(F(6), label_names[i]))
                break;
        if (i == EMO_NUM_LABELS)
            return EMO_ERR_UNKNOWN_LABEL;
        face->label = i;
        if ((r = number16(F(7), EMO_MAX_PERMILLE, &face->conf)) != EMO_OK ||
            (r = number16(F(8), 0xFFFF, &face->x)) != EMO_OK ||
            (r = number16(F(9), 0xFFFF, &face->y)) != EMO_OK ||
            (r = number16(F(10), 0xFFFF, &face->w)) != EMO_OK ||
            (r = number16(F(11), 0xFFFF, &face->h)) != EMO_OK)
            return r;
    } else if (out->kind == EMO_KIND_FRAME) {
        if ((r = number16(F(5), 0xFFFF, &out->u.frame.faces)) != EMO_OK)
            return r;
    } else {
        struct emo_status *st = &out->u.status;
        const struct field *level = F(5), *code = F(6), *text = F(7);
        uint8_t i;
        if (level->n != 1 || (level->p[0] != 'I' && level->p[0] != 'W' && level->p[0] != 'E'))
            return EMO_ERR_INVALID_FIELD;
        st->level = level->p[0];
        if (code->n == 0 || code->n > EMO_MAX_CODE_LEN)
            return EMO_ERR_INVALID_FIELD;
        for (i = 0; i < code->n; i++) {
            char c = code->p[i];
            if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
                return EMO_ERR_INVALID_FIELD;
        }
        /* Printable is checked already; ',' and '*' cannot be inside a field, '$' can. */
        if (text->n == 0 || text->n > EMO_MAX_TEXT_LEN || memchr(text->p, '$', text->n))
            return EMO_ERR_INVALID_FIELD;
        memcpy(st->code, code->p, code->n);
        st->code[code->n] = '\0';
        memcpy(st->text, text->p, text->n);
        st->text[text->n] = '\0';
    }
    return EMO_OK;
#undef F
}

int emo_parse_line(const char *line, size_t len, struct emo_message *out)
{
    struct field fields[MAX_FIELDS + 1];
    const char *payload, *star, *end;
    size_t i, payload_len;
    uint8_t count;
    uint16_t crc = 0;

    /* 1. One line ending off. */
    if (len >= 2 && line[len - 2] == '\r' && line[len - 1] == '\n')
        len -= 2;
    else if (len >= 1 && line[len - 1] == '\n')
        len -= 1;
    /* 2. Length. */
    if (len > EMO_MAX_CONTENT_LEN)
        return EMO_ERR_TOO_LONG;
    /* 3. Printable ASCII only. */
    for (i = 0; i < len; i++)
        if ((uint8_t)line[i] < 0x20 || (uint8_t)line[i] > 0x7E)
            return EMO_ERR_NOT_PRINTABLE_ASCII;
    /* 4. '$' first. */
    if (len == 0 || line[0] != '$')
        return EMO_ERR_MISSING_START;
    /* 5. '*' and exactly four uppercase hex digits after the first one. */
    payload = line + 1;
    end = line + len;
    star = (const char *)memchr(payload, '*', (size_t)(end - payload));
    if (star == NULL)
        return EMO_ERR_MISSING_CHECKSUM;
    if (end - star != 5)
        return EMO_ERR_MALFORMED_CHECKSUM;
    for (i = 1; i <= 4; i++) {
        int d = hex_digit(star[i]);
        if (d < 0)
            return EMO_ERR_MALFORMED_CHECKSUM;
        crc = (uint16_t)((crc << 4) | (uint16_t)d);
    }
    /* 6. CRC of the bytes between '$' and '*'. */
    payload_len = (size_t)(star - payload);
    if (emo_crc16(payload, payload_len) != crc)
        return EMO_ERR_CHECKSUM_MISMATCH;
    /* 7-11. Split on ',' (keeping one field more than any kind has, to see "too many") and
       check the fields. */
    count = 0;
    fields[0].p = payload;
    for (i = 0; i <= payload_len; i++) {
        if (i == payload_len || payload[i] == ',') {
            if (count <= MAX_FIELDS) {
                fields[count].n = (uint8_t)(payload + i - fields[count].p);
                count++;
                if (count <= MAX_FIELDS)
                    fields[count].p = payload + i + 1;
            }
        }
    }
    return decode_fields(fields, count, out);
}

void emo_reader_init(struct emo_reader *r)
{
    r->len = 0;
    r->state = ST_HUNTING;
    r->skipped = 0;
}

/* Reports and forgets skipped bytes, if any. */
static int take_garbage(struct emo_reader *r)
{
    if (r->skipped == 0)
        return EMO_NONE;
    r->skipped = 0;
    return EMO_ERR_GARBAGE;
}

/* Decodes the buffered line, without its '\r' if it ends in one. */
static int decode_buffer(const struct emo_reader *r, struct emo_message *out)
{
    size_t n = r->len;
    if (n > 0 && r->buf[n - 1] == '\r')
        n--;
    return emo_parse_line(r->buf, n, out);
}

int emo_reader_push(struct emo_reader *r, uint8_t byte, struct emo_message *out)
{
    int result = EMO_NONE;
    if (byte == '$') {
        if (r->state == ST_HUNTING)
            result = take_garbage(r);
        else if (r->state == ST_IN_LINE)
            result = EMO_ERR_INTERRUPTED;
        r->skipped = 0;
        r->buf[0] = '$';
        r->len = 1;
        r->state = ST_IN_LINE;
        return result;
    }
    switch (r->state) {
    case ST_HUNTING:
        if (byte == '\n')
            return take_garbage(r);
        if (byte != '\r' && r->skipped < UINT16_MAX)
            r->skipped++;
        return EMO_NONE;
    case ST_IN_LINE:
        if (byte == '\n') {
            result = decode_buffer(r, out);
            r->len = 0;
            r->state = ST_HUNTING;
            return result;
        }
        if (r->len < sizeof r->buf) {
            r->buf[r->len++] = (char)byte;
            return EMO_NONE;
        }
        r->len = 0;
        r->state = ST_OVERRUN;
        return EMO_ERR_OVERRUN;
    default: /* ST_OVERRUN */
        if (byte == '\n')
            r->state = ST_HUNTING;
        return EMO_NONE;
    }
}

int emo_reader_finish(struct emo_reader *r, struct emo_message *out)
{
    int result = EMO_NONE;
    if (r->state == ST_HUNTING)
        result = take_garbage(r);
    else if (r->state == ST_IN_LINE)
        result = decode_buffer(r, out);
    emo_reader_init(r);
    return result;
}

const char *emo_label_name(uint8_t label)
{
    return label < EMO_NUM_LABELS ? label_names[label] : "?";
}

const char *emo_error_name(int result)
{
    switch (result) {
    case EMO_NONE: return "none";
    case EMO_OK: return "ok";
    case EMO_ERR_TOO_LONG: return "too_long";
    case EMO_ERR_NOT_PRINTABLE_ASCII: return "not_printable_ascii";
    case EMO_ERR_MISSING_START: return "missing_start";
    case EMO_ERR_MISSING_CHECKSUM: return "missing_checksum";
    case EMO_ERR_MALFORMED_CHECKSUM: return "malformed_checksum";
    case EMO_ERR_CHECKSUM_MISMATCH: return "checksum_mismatch";
    case EMO_ERR_BAD_PREFIX: return "bad_prefix";
    case EMO_ERR_UNSUPPORTED_VERSION: return "unsupported_version";
    case EMO_ERR_UNKNOWN_KIND: return "unknown_kind";
    case EMO_ERR_FIELD_COUNT: return "field_count";
    case EMO_ERR_BAD_NUMBER: return "bad_number";
    case EMO_ERR_OUT_OF_RANGE: return "out_of_range";
    case EMO_ERR_UNKNOWN_LABEL: return "unknown_label";
    case EMO_ERR_INVALID_FIELD: return "invalid_field";
    case EMO_ERR_GARBAGE: return "garbage";
    case EMO_ERR_INTERRUPTED: return "interrupted";
    case EMO_ERR_OVERRUN: return "overrun";
    default: return "unknown_error";
    }
}
