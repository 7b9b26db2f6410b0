/*
 * emotion_serial: shows the emotion that emotion-edge (on a Raspberry Pi or Jetson) sees, on
 * seven LEDs (one per emotion) or on one RGB LED, from the lines of its serial protocol
 * ($EMO,1,...*CRC, version 1; spec: emotion_shared::protocol in shared/src/protocol.rs).
 *
 * Every byte from the serial link goes into a strict line parser (emotion_protocol.c, plain
 * C99, checked against the shared test vectors by ../test_protocol.c): lines with a bad
 * checksum or any malformed field are dropped. A frame's F lines (one per face) are collected
 * until its N line (end of frame); if they are all there, the emotion of the largest face
 * (the person nearest the camera) is shown, or nothing when nobody is in view. Without a
 * complete frame for NO_DATA_MS the LEDs go off and the status LED blinks.
 *
 * Boards (Arduino IDE 1.8/2.x; the three files of this folder form the sketch):
 *   - Arduino Uno / Nano (ATmega328P, 5 V): one UART, shared with USB. Easiest: connect the
 *     board's USB to the Pi (/dev/ttyACM0 for an Uno, /dev/ttyUSB0 for a Nano clone) and
 *     set that port in the runtime's config; no wiring, no debug output. Or wire the Pi's
 *     TX (GPIO14, pin 8) to D0 (RX) and GND to GND, with USB unplugged.
 *   - Arduino Mega / Leonardo / Micro: the link on Serial1 (Mega: RX1 = D19; Leonardo/Micro:
 *     RX = D0), debug messages on the USB Serial.
 *   - ESP32 (3.3 V; Arduino-ESP32 core 2.x or 3.x): the link on Serial1 remapped to
 *     LINK_RX_PIN / LINK_TX_PIN below (GPIO9/10, Serial1's default on the classic ESP32, are
 *     wired to the flash), debug messages on the USB Serial.
 * The runtime only sends: the Arduino's TX need not be connected. A 5 V board's TX must
 * never go straight to a Pi or Jetson pin (3.3 V only; use a divider or a level shifter).
 */

#include <string.h>

#include "emotion_protocol.h"

/* ---- configuration ----------------------------------------------------------------- */

/* The runtime's serial.baud. On an Uno at 16 MHz, 115200 is 2.1 % off; if many lines fail
   their checksum, use 57600 on both ends. */
#define LINK_BAUD 115200

/* 0: seven LEDs, one per emotion (LED_PINS). 1: one RGB LED (RGB_PINS, colours below). */
#define USE_RGB_LED 0

/* 1 for a common-anode RGB LED (the common leg to + instead of GND). */
#define RGB_COMMON_ANODE 0

/* Nothing valid for this long: LEDs off, status LED blinks. */
#define NO_DATA_MS 1500UL

#if defined(ARDUINO_ARCH_ESP32)
/* ESP32 DevKit: Serial1 on GPIO16 (RX, to the Pi's TX) and GPIO17 (TX, unused). */
#define LINK Serial1
#define LINK_RX_PIN 16
#define LINK_TX_PIN 17
#define DEBUG_PORT Serial
/* angry, disgust, fear, happy, sad, surprise, neutral: any output GPIOs (not 6-11: flash;
   not 34-39: inputs only). */
static const uint8_t LED_PINS[EMO_NUM_LABELS] = { 4, 5, 18, 19, 21, 22, 23 };
/* red, green, blue */
static const uint8_t RGB_PINS[3] = { 25, 26, 27 };
#elif defined(HAVE_HWSERIAL1)
/* Mega, Leonardo, Micro: a second UART for the link, USB for debug messages. */
#define LINK Serial1
#define DEBUG_PORT Serial
static const uint8_t LED_PINS[EMO_NUM_LABELS] = { 2, 3, 4, 5, 6, 7, 8 };
static const uint8_t RGB_PINS[3] = { 9, 10, 11 }; /* PWM pins */
#else
/* Uno, Nano: the only UART is the link (D0 = RX, D1 = TX); no debug output. */
#define LINK Serial
static const uint8_t LED_PINS[EMO_NUM_LABELS] = { 2, 3, 4, 5, 6, 7, 8 };
static const uint8_t RGB_PINS[3] = { 9, 10, 11 }; /* PWM pins */
#endif

/* Colour of each emotion on the RGB LED: red, green, blue, 0-255. */
static const uint8_t COLOURS[EMO_NUM_LABELS][3] = {
    { 255, 0, 0 },     /* angry: red */
    { 0, 160, 0 },     /* disgust: green */
    { 128, 0, 255 },   /* fear: purple */
    { 255, 160, 0 },   /* happy: yellow */
    { 0, 0, 255 },     /* sad: blue */
    { 0, 200, 255 },   /* surprise: cyan */
    { 60, 60, 60 },    /* neutral: dim white */
};

/* The board's own LED shows the link: blinking = no data, on = the runtime reported an
   error (an S line with level E, e.g. camera_lost), off = all well. */
#ifdef LED_BUILTIN
#define STATUS_LED LED_BUILTIN
#endif

#ifdef DEBUG_PORT
#define DEBUG(x) DEBUG_PORT.print(x)
#define DEBUGLN(x) DEBUG_PORT.println(x)
#else
#define DEBUG(x) ((void)0)
#define DEBUGLN(x) ((void)0)
#endif

/* ---- state ------------------------------------------------------------------------- */

static struct emo_reader reader;
static struct emo_message msg;

/* The frame whose F lines are coming in. */
static bool frame_open = false;
static uint32_t frame_t_ms;
static uint16_t frame_faces_seen;
static int8_t frame_best = -1;     /* label of the largest face so far, -1: none */
static uint32_t frame_best_area;

static int8_t shown = -2;          /* label on the LEDs; -1: nobody; -2: not yet set */
static unsigned long last_frame_at; /* millis() of the last complete frame */
static bool have_data = false;
static bool runtime_error = false;

static bool seq_known = false;     /* to count lost lines from gaps in seq */
static uint32_t next_seq;
static uint32_t lines_lost = 0;
static bool told_version = false;

/* ---- output ------------------------------------------------------------------------ */

#if USE_RGB_LED
static void rgb_write(uint8_t r, uint8_t g, uint8_t b)
{
    const uint8_t v[3] = { r, g, b };
    for (uint8_t i = 0; i < 3; i++)
        analogWrite(RGB_PINS[i], RGB_COMMON_ANODE ? 255 - v[i] : v[i]);
}
#endif

/* Shows label (0-6) or nothing (-1). */
static void show(int8_t label)
{
    if (label == shown)
        return;
    shown = label;
#if USE_RGB_LED
    if (label < 0)
        rgb_write(0, 0, 0);
    else
        rgb_write(COLOURS[label][0], COLOURS[label][1], COLOURS[label][2]);
#else
    for (uint8_t i = 0; i < EMO_NUM_LABELS; i++)
        digitalWrite(LED_PINS[i], (int8_t)i == label ? HIGH : LOW);
#endif
    DEBUG("show ");
    DEBUGLN(label < 0 ? "nobody" : emo_label_name((uint8_t)label));
}

static void status_led(unsigned long now)
{
#ifdef STATUS_LED
    bool on;
    if (!have_data)
        on = (now / 250) % 2;      /* blink: no data */
    else
        on = runtime_error;
    digitalWrite(STATUS_LED, on ? HIGH : LOW);
#else
    (void)now;
#endif
}

/* ---- protocol ---------------------------------------------------------------------- */

static void on_face(const struct emo_message *m)
{
    const struct emo_face *f = &m->u.face;
    uint32_t area = (uint32_t)f->w * f->h;
    if (!frame_open || m->t_ms != frame_t_ms) {
        /* The first F line of a new frame (a frame's lines share its t_ms). */
        frame_open = true;
        frame_t_ms = m->t_ms;
        frame_faces_seen = 0;
        frame_best = -1;
        frame_best_area = 0;
    }
    frame_faces_seen++;
    if (frame_best < 0 || area > frame_best_area) {
        frame_best = (int8_t)f->label;
        frame_best_area = area;
    }
}

static void on_frame_end(const struct emo_message *m, unsigned long now)
{
    uint16_t faces = m->u.frame.faces;
    bool complete = faces == 0 ||
                    (frame_open && frame_t_ms == m->t_ms && frame_faces_seen == faces);
    frame_open = false;
    if (!complete) {
        /* An F line of this frame was lost: keep showing the last complete frame. */
        DEBUGLN("incomplete frame skipped");
        return;
    }
    last_frame_at = now;
    have_data = true;
    show(faces == 0 ? -1 : frame_best);
}

static void on_status(const struct emo_message *m)
{
    const struct emo_status *s = &m->u.status;
    DEBUG("runtime ");
    DEBUG(s->level);
    DEBUG(' ');
    DEBUG(s->code);
    DEBUG(": ");
    DEBUGLN(s->text);
    if (strcmp(s->code, "start") == 0) {
        /* The runtime (re)started: seq, t_ms and face ids begin again. */
        seq_known = false;
        frame_open = false;
        runtime_error = false;
    }
    if (s->level == 'E')
        runtime_error = true;
    else if (s->level == 'I')
        runtime_error = false;
}

static void handle(int result, unsigned long now)
{
    if (result == EMO_NONE)
        return;
    if (result != EMO_OK) {
        if (result == EMO_ERR_UNSUPPORTED_VERSION) {
            /* A newer runtime: not noise, but nothing this sketch can read. Say it once. */
            if (!told_version)
                DEBUGLN("the runtime speaks another protocol version: update this sketch");
            told_version = true;
        } else {
            DEBUG("line skipped: ");
            DEBUGLN(emo_error_name(result));
        }
        return;
    }
    if (seq_known && msg.seq != next_seq) {
        lines_lost += msg.seq - next_seq;  /* wrapping subtraction */
        DEBUG("lines lost so far: ");
        DEBUGLN(lines_lost);
    }
    seq_known = true;
    next_seq = msg.seq + 1;

    switch (msg.kind) {
    case EMO_KIND_FACE: on_face(&msg); break;
    case EMO_KIND_FRAME: on_frame_end(&msg, now); break;
    case EMO_KIND_STATUS: on_status(&msg); break;
    }
}

/* ---- Arduino ----------------------------------------------------------------------- */

void setup()
{
#if USE_RGB_LED
    for (uint8_t i = 0; i < 3; i++)
        pinMode(RGB_PINS[i], OUTPUT);
#else
    for (uint8_t i = 0; i < EMO_NUM_LABELS; i++)
        pinMode(LED_PINS[i], OUTPUT);
#endif
#ifdef STATUS_LED
    pinMode(STATUS_LED, OUTPUT);
#endif
    show(-1);

#ifdef DEBUG_PORT
    DEBUG_PORT.begin(115200);
#endif
#if defined(ARDUINO_ARCH_ESP32)
    LINK.begin(LINK_BAUD, SERIAL_8N1, LINK_RX_PIN, LINK_TX_PIN);
#else
    LINK.begin(LINK_BAUD);
#endif
    emo_reader_init(&reader);
    DEBUGLN("emotion_serial: waiting for $EMO lines");
}

void loop()
{
    unsigned long now = millis();
    while (LINK.available() > 0) {
        int c = LINK.read();
        if (c < 0)
            break;
        handle(emo_reader_push(&reader, (uint8_t)c, &msg), now);
    }
    if (have_data && now - last_frame_at > NO_DATA_MS) {
        /* The runtime or the link is down: show "no data", not the last emotion forever. */
        have_data = false;
        frame_open = false;
        show(-1);
        DEBUGLN("no data");
    }
    status_led(now);
}
