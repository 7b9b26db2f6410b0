//! The serial sink: results as lines of the shared wire protocol
//! (`emotion_shared::protocol`), a `start` status line first, a rate limit that keeps the
//! line within its baud rate, and a port that is re-opened with back-off after it vanishes
//! (USB adapter unplugged).
//!
//! `seq` counts every line the runtime meant to send, so a client sees lines lost while the
//! port was away as a gap; frames skipped by the rate limit are not lines and leave no gap.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use emotion_shared::protocol::{FaceReport, Level, Message, permille};

use super::{FrameReport, Sink, SinkError};
use crate::clock::{SharedClock, SystemClock};
use crate::source::Backoff;

/// Opens the byte channel to the client: the real serial port, or a test double.
pub trait PortOpener {
    /// Opens (or re-opens) the port.
    fn open(&mut self) -> io::Result<Box<dyn Write + Send>>;
    /// The device name, for messages.
    fn name(&self) -> String;
}

/// A serial device via `serialport`.
#[derive(Debug, Clone)]
pub struct SerialPortOpener {
    /// Device, e.g. `/dev/ttyUSB0`, `/dev/serial0`.
    pub path: String,
    /// Baud rate.
    pub baud: u32,
}

impl PortOpener for SerialPortOpener {
    fn open(&mut self) -> io::Result<Box<dyn Write + Send>> {
        let port = serialport::new(&self.path, self.baud)
            .timeout(Duration::from_millis(200))
            .open_native()
            .map_err(io::Error::from)?;
        Ok(Box::new(port))
    }

    fn name(&self) -> String {
        self.path.clone()
    }
}

/// Serial sink settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SerialLimits {
    /// Baud rate (for the byte budget: 10 bits per byte, 8N1).
    pub baud: u32,
    /// Most frames per second to report (0: no limit but the byte budget).
    pub max_fps: f32,
}

/// Writes the wire protocol to a port.
pub struct SerialSink<O: PortOpener> {
    opener: O,
    port: Option<Box<dyn Write + Send>>,
    clock: SharedClock,
    backoff: Backoff,
    seq: u32,
    limits: SerialLimits,
    tokens: f64,
    last_refill: Option<Instant>,
    last_frame: Option<Instant>,
    lost_lines: u64,
    lost_since_open: u64,
    skipped_frames: u64,
    opened_once: bool,
}

impl<O: PortOpener> SerialSink<O> {
    /// A sink on the system clock; the port is opened now if possible, else later with
    /// back-off.
    pub fn new(opener: O, limits: SerialLimits) -> Self {
        Self::with_clock(opener, limits, SystemClock::shared())
    }

    /// A sink whose rate limit and re-open back-off run on `clock`.
    pub fn with_clock(opener: O, limits: SerialLimits, clock: SharedClock) -> Self {
        let mut s = SerialSink {
            opener,
            port: None,
            clock,
            backoff: Backoff::new(Duration::from_millis(500), Duration::from_secs(10)),
            seq: 0,
            limits,
            tokens: 0.0,
            last_refill: None,
            last_frame: None,
            lost_lines: 0,
            lost_since_open: 0,
            skipped_frames: 0,
            opened_once: false,
        };
        s.ensure_open(s.clock.now());
        s.tokens = s.bytes_per_second();
        s
    }

    /// Lines that could not be written (port away or write failed).
    pub fn lost_lines(&self) -> u64 {
        self.lost_lines
    }

    /// Frames not reported because of the rate limit.
    pub fn skipped_frames(&self) -> u64 {
        self.skipped_frames
    }

    /// The `seq` of the next line.
    pub fn next_seq(&self) -> u32 {
        self.seq
    }

    fn bytes_per_second(&self) -> f64 {
        f64::from(self.limits.baud.max(1)) / 10.0
    }

    fn ensure_open(&mut self, now: Instant) -> bool {
        if self.port.is_some() {
            return true;
        }
        if !self.backoff.ready(now) {
            return false;
        }
        match self.opener.open() {
            Ok(p) => {
                self.port = Some(p);
                self.backoff.succeeded();
                if self.opened_once {
                    tracing::info!(port = %self.opener.name(), lost = self.lost_since_open, "serial port re-opened");
                } else {
                    tracing::info!(port = %self.opener.name(), "serial port open");
                }
                self.opened_once = true;
                true
            }
            Err(e) => {
                let wait = self.backoff.failed(now);
                tracing::warn!(port = %self.opener.name(), "cannot open serial port: {e}; retrying in {wait:?}");
                false
            }
        }
    }

    /// Makes sure the port is open (within the back-off); after a re-open that followed lost
    /// lines, first sends a `serial_reopened` warning. Returns whether the port is open.
    fn prepare(&mut self, now: Instant, t_ms: u32) -> bool {
        let was_open = self.port.is_some();
        let open = self.ensure_open(now);
        if open && !was_open && self.lost_since_open > 0 {
            let lost = self.lost_since_open;
            self.lost_since_open = 0;
            let m = Message::status(
                self.seq,
                t_ms,
                Level::Warning,
                "serial_reopened",
                &format!("serial port back; {lost} line(s) lost"),
            );
            self.seq = self.seq.wrapping_add(1);
            self.write_lines(std::slice::from_ref(&m), now);
        }
        open
    }

    /// Sends lines in one write, or counts them as lost when the port is away.
    fn send(&mut self, messages: &[Message], open: bool, now: Instant) {
        if open {
            self.write_lines(messages, now);
        } else {
            self.lost_lines += messages.len() as u64;
            self.lost_since_open += messages.len() as u64;
        }
    }

    fn write_lines(&mut self, messages: &[Message], now: Instant) {
        let text: String = messages.iter().map(Message::encode).collect();
        let Some(port) = self.port.as_mut() else {
            self.lost_lines += messages.len() as u64;
            self.lost_since_open += messages.len() as u64;
            return;
        };
        let result = port.write_all(text.as_bytes()).and_then(|()| port.flush());
        if let Err(e) = result {
            self.lost_lines += messages.len() as u64;
            self.lost_since_open += messages.len() as u64;
            if matches!(
                e.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ) {
                tracing::debug!(port = %self.opener.name(), "serial write timed out; line(s) dropped");
            } else {
                let wait = self.backoff.failed(now);
                tracing::warn!(port = %self.opener.name(), "serial port lost: {e}; re-opening in {wait:?}");
                self.port = None;
            }
        }
    }

    fn refill(&mut self, now: Instant) {
        let rate = self.bytes_per_second();
        if let Some(last) = self.last_refill {
            self.tokens = (self.tokens + now.duration_since(last).as_secs_f64() * rate).min(rate);
        }
        self.last_refill = Some(now);
    }
}

impl<O: PortOpener> Sink for SerialSink<O> {
    fn frame(&mut self, r: &FrameReport<'_>) -> Result<(), SinkError> {
        let now = self.clock.now();
        if self.limits.max_fps > 0.0
            && let Some(last) = self.last_frame
            && now.duration_since(last).as_secs_f32() < 1.0 / self.limits.max_fps
        {
            self.skipped_frames += 1;
            return Ok(());
        }
        self.refill(now);
        let open = self.prepare(now, r.t_ms);
        // Build the lines with provisional seq numbers to measure them.
        let faces = r.faces.len().min(usize::from(u16::MAX));
        let mut messages = Vec::with_capacity(faces + 1);
        let mut seq = self.seq;
        for f in &r.faces[..faces] {
            messages.push(Message::face(
                seq,
                r.t_ms,
                FaceReport {
                    face_id: f.id,
                    label: f.label,
                    confidence_permille: permille(f.confidence),
                    bbox: f.bbox.to_protocol(),
                },
            ));
            seq = seq.wrapping_add(1);
        }
        messages.push(Message::frame(seq, r.t_ms, faces as u16));
        let bytes: usize = messages.iter().map(|m| m.encode().len()).sum();
        if bytes as f64 > self.tokens {
            self.skipped_frames += 1;
            return Ok(());
        }
        self.tokens -= bytes as f64;
        self.last_frame = Some(now);
        self.seq = seq.wrapping_add(1);
        self.send(&messages, open, now);
        Ok(())
    }

    fn status(&mut self, t_ms: u32, level: Level, code: &str, text: &str) -> Result<(), SinkError> {
        let now = self.clock.now();
        let open = self.prepare(now, t_ms);
        let m = Message::status(self.seq, t_ms, level, code, text);
        self.seq = self.seq.wrapping_add(1);
        self.send(std::slice::from_ref(&m), open, now);
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        if let Some(p) = self.port.as_mut() {
            let name = self.opener.name();
            p.flush().map_err(|source| SinkError::Io {
                sink: format!("serial {name}"),
                source,
            })?;
        }
        self.port = None;
        Ok(())
    }

    fn name(&self) -> String {
        format!("serial:{}", self.opener.name())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use emotion_shared::Emotion;
    use emotion_shared::protocol::{Body, StreamDecoder};

    use super::*;
    use crate::geometry::FaceBox;
    use crate::smooth::TrackedFace;

    /// An in-memory port that can be "unplugged".
    #[derive(Clone, Default)]
    struct MemPort {
        bytes: Arc<Mutex<Vec<u8>>>,
        plugged: Arc<Mutex<bool>>,
    }

    struct MemWriter(MemPort);

    impl Write for MemWriter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if !*self
                .0
                .plugged
                .lock()
                .map_err(|_| io::Error::other("poisoned"))?
            {
                return Err(io::Error::new(io::ErrorKind::BrokenPipe, "unplugged"));
            }
            self.0
                .bytes
                .lock()
                .map_err(|_| io::Error::other("poisoned"))?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl PortOpener for MemPort {
        fn open(&mut self) -> io::Result<Box<dyn Write + Send>> {
            if *self
                .plugged
                .lock()
                .map_err(|_| io::Error::other("poisoned"))?
            {
                Ok(Box::new(MemWriter(self.clone())))
            } else {
                Err(io::Error::new(io::ErrorKind::NotFound, "no such device"))
            }
        }
        fn name(&self) -> String {
            "mem".into()
        }
    }

    fn face() -> TrackedFace {
        TrackedFace {
            id: 3,
            bbox: FaceBox::new(10, 20, 30, 40),
            label: Emotion::Surprise,
            confidence: 0.8765,
            probabilities: [0.0; 7],
            raw_label: Emotion::Surprise,
        }
    }

    fn decode(port: &MemPort) -> Vec<Message> {
        let bytes = port.bytes.lock().expect("lock").clone();
        StreamDecoder::new()
            .feed(&bytes)
            .into_iter()
            .map(|r| r.expect("every line decodes"))
            .collect()
    }

    const FAST: SerialLimits = SerialLimits {
        baud: 1_000_000,
        max_fps: 0.0,
    };

    #[test]
    fn start_line_then_faces_and_frame_lines_with_consecutive_seq() {
        let port = MemPort::default();
        *port.plugged.lock().expect("lock") = true;
        let mut sink = SerialSink::new(port.clone(), FAST);
        sink.status(0, Level::Info, "start", "emotion-edge started")
            .expect("status");
        let faces = [face()];
        sink.frame(&FrameReport {
            t_ms: 40,
            frame: 0,
            faces: &faces,
            fps: 25.0,
            model: "m",
        })
        .expect("frame");
        sink.frame(&FrameReport {
            t_ms: 80,
            frame: 1,
            faces: &[],
            fps: 25.0,
            model: "m",
        })
        .expect("frame");
        let msgs = decode(&port);
        let seqs: Vec<u32> = msgs.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, [0, 1, 2, 3]);
        assert!(matches!(&msgs[0].body, Body::Status(s) if s.code == "start"));
        match &msgs[1].body {
            Body::Face(f) => {
                assert_eq!(
                    (f.face_id, f.label, f.confidence_permille),
                    (3, Emotion::Surprise, 877)
                );
                assert_eq!((f.bbox.x, f.bbox.y, f.bbox.w, f.bbox.h), (10, 20, 30, 40));
            }
            other => panic!("expected a face line, got {other:?}"),
        }
        assert!(matches!(msgs[2].body, Body::Frame(f) if f.faces == 1));
        assert!(matches!(msgs[3].body, Body::Frame(f) if f.faces == 0));
        assert_eq!(msgs[3].t_ms, 80);
    }

    #[test]
    fn survives_unplug_and_reports_the_gap_after_reopening() {
        let port = MemPort::default();
        *port.plugged.lock().expect("lock") = true;
        let clock = crate::clock::ManualClock::new();
        let mut sink = SerialSink::with_clock(port.clone(), FAST, clock.shared());
        sink.status(0, Level::Info, "start", "up").expect("status");
        *port.plugged.lock().expect("lock") = false;
        for i in 0..3 {
            sink.frame(&FrameReport {
                t_ms: i,
                frame: u64::from(i),
                faces: &[],
                fps: 0.0,
                model: "m",
            })
            .expect("no error while unplugged");
        }
        assert_eq!(sink.lost_lines(), 3);
        *port.plugged.lock().expect("lock") = true;
        clock.advance(Duration::from_millis(1100)); // longer than the back-off
        sink.frame(&FrameReport {
            t_ms: 99,
            frame: 9,
            faces: &[],
            fps: 0.0,
            model: "m",
        })
        .expect("frame");
        let msgs = decode(&port);
        let seqs: Vec<u32> = msgs.iter().map(|m| m.seq).collect();
        // start (0), three lost frames (1..=3), the re-open notice (4) and the frame (5).
        assert_eq!(seqs, [0, 4, 5]);
        assert!(
            matches!(&msgs[1].body, Body::Status(s) if s.code == "serial_reopened" && s.text.contains("3 line"))
        );
    }

    #[test]
    fn rate_limit_skips_frames_without_seq_gaps() {
        let port = MemPort::default();
        *port.plugged.lock().expect("lock") = true;
        // 9600 baud: 960 bytes/s; one N line is ~25 bytes, an F line ~50.
        let mut sink = SerialSink::new(
            port.clone(),
            SerialLimits {
                baud: 9600,
                max_fps: 5.0,
            },
        );
        let faces = [face(), face(), face()];
        for i in 0..50 {
            sink.frame(&FrameReport {
                t_ms: i,
                frame: u64::from(i),
                faces: &faces,
                fps: 0.0,
                model: "m",
            })
            .expect("frame");
        }
        let msgs = decode(&port);
        assert_eq!(msgs.len(), 4, "one frame of 3 faces + N within 1/5 s");
        assert_eq!(sink.skipped_frames(), 49);
        let seqs: Vec<u32> = msgs.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, [0, 1, 2, 3]);
    }
}
