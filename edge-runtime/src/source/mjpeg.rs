//! MJPEG as a byte stream (standard input from `rpicam-vid --codec mjpeg -o -`, or any
//! reader): [`JpegSplitter`] cuts it into JPEG frames by walking the marker structure from
//! SOI to EOI, and [`MjpegSource`] decodes them.
//!
//! Walking the markers (instead of searching for `FF D9`) keeps EXIF thumbnails inside a
//! frame from ending it early; bytes between frames are skipped, and a frame longer than
//! [`MAX_JPEG_BYTES`] is dropped as corrupt.

use std::io::Read;
use std::time::Instant;

use super::decode::decode_jpeg;
use super::{Frame, FrameSource, SourceError};

/// Largest JPEG frame accepted (bytes).
pub const MAX_JPEG_BYTES: usize = 16 * 1024 * 1024;

/// One item out of the splitter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// A complete JPEG from SOI to EOI.
    Jpeg(Vec<u8>),
    /// A frame that broke the marker structure or grew too long; its bytes are dropped.
    Corrupt(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Looking for FF D8.
    Seek,
    /// Seen FF while seeking.
    SeekFf,
    /// Inside headers: expecting FF then a marker.
    Marker,
    /// Seen FF in the header area.
    MarkerFf,
    /// Reading the two length bytes of a segment.
    Length { first: Option<u8>, sos: bool },
    /// Skipping `left` bytes of segment payload.
    Payload { left: usize, sos: bool },
    /// Entropy-coded data after SOS.
    Entropy,
    /// Seen FF in entropy data.
    EntropyFf,
}

/// Incremental SOI..EOI splitter; feed it bytes as they arrive.
#[derive(Debug, Clone)]
pub struct JpegSplitter {
    state: State,
    buf: Vec<u8>,
}

impl Default for JpegSplitter {
    fn default() -> Self {
        Self::new()
    }
}

impl JpegSplitter {
    /// A splitter waiting for the first SOI.
    pub fn new() -> Self {
        JpegSplitter {
            state: State::Seek,
            buf: Vec::new(),
        }
    }

    /// Feeds `bytes`; returns the frames completed (and corrupt ones dropped) in order.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Piece> {
        let mut out = Vec::new();
        for &b in bytes {
            if let Some(p) = self.push(b) {
                out.push(p);
            }
        }
        out
    }

    fn corrupt(&mut self, reason: impl Into<String>) -> Option<Piece> {
        self.buf.clear();
        self.state = State::Seek;
        Some(Piece::Corrupt(reason.into()))
    }

    fn push(&mut self, b: u8) -> Option<Piece> {
        if !matches!(self.state, State::Seek | State::SeekFf) {
            self.buf.push(b);
            if self.buf.len() > MAX_JPEG_BYTES {
                return self.corrupt(format!(
                    "frame longer than {MAX_JPEG_BYTES} bytes without EOI"
                ));
            }
        }
        match self.state {
            State::Seek => {
                if b == 0xFF {
                    self.state = State::SeekFf;
                }
            }
            State::SeekFf => {
                if b == 0xD8 {
                    self.buf.clear();
                    self.buf.extend_from_slice(&[0xFF, 0xD8]);
                    self.state = State::Marker;
                } else if b != 0xFF {
                    self.state = State::Seek;
                }
            }
            State::Marker => {
                if b == 0xFF {
                    self.state = State::MarkerFf;
                } else {
                    return self.corrupt("expected a marker in the JPEG header");
                }
            }
            State::MarkerFf => match b {
                0xFF => {}
                0xD8 => {
                    // A new SOI: the previous frame was cut off.
                    self.buf.clear();
                    self.buf.extend_from_slice(&[0xFF, 0xD8]);
                    self.state = State::Marker;
                    return Some(Piece::Corrupt("frame cut off by a new SOI".into()));
                }
                0xD9 => return self.corrupt("EOI before any image data"),
                0x01 | 0xD0..=0xD7 => self.state = State::Marker,
                m => {
                    self.state = State::Length {
                        first: None,
                        sos: m == 0xDA,
                    }
                }
            },
            State::Length { first: None, sos } => {
                self.state = State::Length {
                    first: Some(b),
                    sos,
                }
            }
            State::Length {
                first: Some(hi),
                sos,
            } => {
                let len = usize::from(u16::from_be_bytes([hi, b]));
                if len < 2 {
                    return self.corrupt(format!("segment length {len}"));
                }
                self.state = if len == 2 {
                    if sos { State::Entropy } else { State::Marker }
                } else {
                    State::Payload { left: len - 2, sos }
                };
            }
            State::Payload { left, sos } => {
                self.state = if left > 1 {
                    State::Payload {
                        left: left - 1,
                        sos,
                    }
                } else if sos {
                    State::Entropy
                } else {
                    State::Marker
                };
            }
            State::Entropy => {
                if b == 0xFF {
                    self.state = State::EntropyFf;
                }
            }
            State::EntropyFf => match b {
                0x00 | 0xD0..=0xD7 => self.state = State::Entropy,
                0xFF => {}
                0xD9 => {
                    self.state = State::Seek;
                    return Some(Piece::Jpeg(std::mem::take(&mut self.buf)));
                }
                0xD8 => {
                    self.buf.clear();
                    self.buf.extend_from_slice(&[0xFF, 0xD8]);
                    self.state = State::Marker;
                    return Some(Piece::Corrupt("frame cut off by a new SOI".into()));
                }
                // Another marker after scan data (progressive JPEG, DNL, ...): a header again.
                m => {
                    self.state = State::Length {
                        first: None,
                        sos: m == 0xDA,
                    }
                }
            },
        }
        None
    }
}

/// Frames from an MJPEG byte stream.
pub struct MjpegSource<R> {
    reader: R,
    origin: String,
    splitter: JpegSplitter,
    pending: std::collections::VecDeque<Piece>,
    buf: Vec<u8>,
    eof: bool,
}

impl<R: Read> MjpegSource<R> {
    /// Reads MJPEG from `reader`; `origin` names it in messages (e.g. `stdin`).
    pub fn new(reader: R, origin: impl Into<String>) -> Self {
        MjpegSource {
            reader,
            origin: origin.into(),
            splitter: JpegSplitter::new(),
            pending: Default::default(),
            buf: vec![0; 64 * 1024],
            eof: false,
        }
    }
}

impl<R: Read> FrameSource for MjpegSource<R> {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        loop {
            if let Some(piece) = self.pending.pop_front() {
                return match piece {
                    Piece::Jpeg(bytes) => match decode_jpeg(&bytes) {
                        Ok(image) => Ok(Some(Frame {
                            image,
                            captured: Instant::now(),
                            origin: self.origin.clone(),
                            truth: None,
                        })),
                        Err(e) => Err(SourceError::Corrupt {
                            origin: self.origin.clone(),
                            reason: e.to_string(),
                        }),
                    },
                    Piece::Corrupt(reason) => Err(SourceError::Corrupt {
                        origin: self.origin.clone(),
                        reason,
                    }),
                };
            }
            if self.eof {
                return Ok(None);
            }
            match self.reader.read(&mut self.buf) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    let pieces = self.splitter.feed(&self.buf[..n]);
                    self.pending.extend(pieces);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(SourceError::Fatal(format!(
                        "reading MJPEG from {}: {e}",
                        self.origin
                    )));
                }
            }
        }
    }

    fn describe(&self) -> String {
        format!("MJPEG stream on {}", self.origin)
    }
}

#[cfg(test)]
mod tests {
    use super::super::decode::{encode_jpeg, strip_huffman_tables};
    use super::*;
    use image::RgbImage;
    use proptest::prelude::*;

    fn jpeg(seed: u8) -> Vec<u8> {
        let img = RgbImage::from_fn(32, 24, |x, y| {
            image::Rgb([(x * 8) as u8 ^ seed, (y * 10) as u8, seed])
        });
        encode_jpeg(&img, 80)
    }

    #[test]
    fn splits_a_stream_in_any_chunking_and_skips_noise() {
        let frames = [jpeg(1), strip_huffman_tables(&jpeg(2)), jpeg(3)];
        let mut stream = b"noise\xFF\x00".to_vec();
        for f in &frames {
            stream.extend_from_slice(f);
            stream.extend_from_slice(b"\r\n--boundary\r\n");
        }
        for chunk in [1, 7, 4096] {
            let mut s = JpegSplitter::new();
            let out: Vec<Piece> = stream.chunks(chunk).flat_map(|c| s.feed(c)).collect();
            let expected: Vec<Piece> = frames.iter().cloned().map(Piece::Jpeg).collect();
            assert_eq!(out, expected, "chunk {chunk}");
        }
    }

    #[test]
    fn source_decodes_frames_and_reports_corrupt_ones() {
        let good = jpeg(5);
        let mut stream = good.clone();
        // A frame cut off by the next SOI, then a frame with broken scan data.
        stream.extend_from_slice(&good[..good.len() - 10]);
        stream.extend_from_slice(&strip_huffman_tables(&good));
        let mut src = MjpegSource::new(&stream[..], "test");
        assert!(matches!(src.next_frame(), Ok(Some(f)) if f.image.dimensions() == (32, 24)));
        assert!(matches!(src.next_frame(), Err(SourceError::Corrupt { .. })));
        assert!(matches!(src.next_frame(), Ok(Some(_))));
        assert!(matches!(src.next_frame(), Ok(None)));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic_and_never_grow_without_bound(
            bytes in proptest::collection::vec(any::<u8>(), 0..4000)
        ) {
            let mut src = MjpegSource::new(&bytes[..], "fuzz");
            for _ in 0..10_000 {
                match src.next_frame() {
                    Ok(None) => break,
                    Ok(Some(_)) | Err(SourceError::Corrupt { .. }) => {}
                    Err(e) => prop_assert!(false, "unexpected {e}"),
                }
            }
        }
    }
}
