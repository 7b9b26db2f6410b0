//! Frame sources behind one trait, [`FrameSource`]: the synthetic camera ([`synthetic`]),
//! image files, folders and globs ([`files`]), MJPEG on standard input ([`mjpeg`]) and V4L2
//! cameras ([`v4l2`], feature `v4l`), plus the decoders they share ([`decode`]).
//!
//! [`from_config`] opens the configured source. A new source is a module here implementing
//! [`FrameSource`], a [`SourceKind`] variant with its settings in [`SourceConfig`], and an arm
//! in [`from_config`].
//!
//! A source never panics on bad input: a frame that does not decode is
//! [`SourceError::Corrupt`] (the pipeline counts it and asks for the next one); a device that
//! went away is [`SourceError::Unavailable`] until it comes back.

use std::time::{Duration, Instant};

use emotion_shared::render::SceneTruth;
use image::RgbImage;
use serde::{Deserialize, Serialize};

use synthetic::SyntheticConfig;

pub mod decode;
pub mod files;
pub mod mjpeg;
pub mod synthetic;
#[cfg(feature = "v4l")]
pub mod v4l2;

/// Where frames come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// The synthetic camera.
    Synthetic,
    /// Image files, folders, globs (`source.files`).
    Files,
    /// MJPEG on standard input (`rpicam-vid --codec mjpeg -o -`).
    Stdin,
    /// A V4L2 camera (`source.v4l2`).
    V4l2,
}

/// `[source]`: which source, and each source's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourceConfig {
    /// Which source.
    pub kind: SourceKind,
    /// For `files`: files, folders, glob patterns.
    pub files: Vec<String>,
    /// For `files`: start over at the end.
    pub repeat: bool,
    /// For `synthetic`.
    pub synthetic: SyntheticConfig,
    /// For `v4l2`.
    #[cfg(feature = "v4l")]
    pub v4l2: crate::source::v4l2::V4l2Config,
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig {
            kind: SourceKind::Synthetic,
            files: vec![],
            repeat: false,
            synthetic: SyntheticConfig::default(),
            #[cfg(feature = "v4l")]
            v4l2: Default::default(),
        }
    }
}

/// Opens the configured source (the synthetic camera paces itself on `clock`). A camera
/// that is not there yet is not an error here: it is retried with back-off while the
/// pipeline runs.
pub fn from_config(
    config: &SourceConfig,
    clock: crate::clock::SharedClock,
) -> Result<Box<dyn FrameSource>, SourceError> {
    Ok(match config.kind {
        SourceKind::Synthetic => Box::new(synthetic::SyntheticCamera::with_clock(
            config.synthetic.clone(),
            clock,
        )),
        SourceKind::Files => Box::new(files::FileSource::new(&config.files, config.repeat)?),
        SourceKind::Stdin => Box::new(mjpeg::MjpegSource::new(std::io::stdin().lock(), "stdin")),
        #[cfg(feature = "v4l")]
        SourceKind::V4l2 => Box::new(v4l2::V4l2Camera::new(config.v4l2.clone())),
        #[cfg(not(feature = "v4l"))]
        SourceKind::V4l2 => {
            return Err(SourceError::Fatal(
                "this build has no V4L2 support (cargo feature `v4l`)".into(),
            ));
        }
    })
}

/// One captured frame.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The picture, RGB.
    pub image: RgbImage,
    /// When it was captured (or read).
    pub captured: Instant,
    /// Where it came from (file name, device), for messages.
    pub origin: String,
    /// The faces actually in it, when the source knows (synthetic camera).
    pub truth: Option<Vec<SceneTruth>>,
}

/// Why a source gave no frame this time.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// This frame is broken; the next one may be fine.
    #[error("corrupt frame from {origin}: {reason}")]
    Corrupt {
        /// Source or file.
        origin: String,
        /// What is wrong.
        reason: String,
    },
    /// The device is gone or not ready; try again after `retry_in`.
    #[error("{origin} unavailable: {reason} (retrying in {retry_in:?})")]
    Unavailable {
        /// Device.
        origin: String,
        /// Why.
        reason: String,
        /// When to call again.
        retry_in: Duration,
    },
    /// The source cannot work at all (bad configuration).
    #[error("{0}")]
    Fatal(String),
}

/// Something that produces frames.
pub trait FrameSource {
    /// The next frame; `Ok(None)` at the end of a finite source (files, a closed pipe).
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError>;
    /// A description for logs, e.g. `synthetic 640x480` or `/dev/video0 (MJPG 640x480)`.
    fn describe(&self) -> String;
}

impl<T: FrameSource + ?Sized> FrameSource for Box<T> {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        (**self).next_frame()
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
}

/// Exponential back-off for re-opening devices: 0.5 s doubling to 10 s.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    min: Duration,
    max: Duration,
    until: Option<Instant>,
}

impl Backoff {
    /// A back-off between `min` and `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            next: min,
            min,
            max,
            until: None,
        }
    }

    /// Whether enough time has passed since the last failure to try again.
    pub fn ready(&self, now: Instant) -> bool {
        self.until.is_none_or(|t| now >= t)
    }

    /// Records a failure at `now`; returns how long to wait.
    pub fn failed(&mut self, now: Instant) -> Duration {
        let wait = self.next;
        self.until = Some(now + wait);
        self.next = (self.next * 2).min(self.max);
        wait
    }

    /// Time left before the next try.
    pub fn remaining(&self, now: Instant) -> Duration {
        self.until
            .map_or(Duration::ZERO, |t| t.saturating_duration_since(now))
    }

    /// Records a success: the next failure waits `min` again.
    pub fn succeeded(&mut self) {
        self.next = self.min;
        self.until = None;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(Duration::from_millis(500), Duration::from_secs(10))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_max_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let t = Instant::now();
        assert!(b.ready(t));
        let waits: Vec<_> = (0..4).map(|_| b.failed(t).as_millis()).collect();
        assert_eq!(waits, [100, 200, 350, 350]);
        assert!(!b.ready(t));
        assert!(b.ready(t + Duration::from_millis(351)));
        b.succeeded();
        assert_eq!(b.failed(t).as_millis(), 100);
    }
}
