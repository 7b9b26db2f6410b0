//! Face detection: where the faces are in a frame. [`FullFrame`] (the frame is the face, for
//! kiosks and pre-cropped images), [`Rustface`] (SeetaFace frontal cascade, on a downscaled
//! grey frame, with a minimum face size) and [`Scheduled`] (detect every N frames, keep the
//! last boxes in between so the tracker follows them).

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::geometry::FaceBox;

mod seeta;

pub use seeta::{
    EMBEDDED_MODEL_AVAILABLE, Rustface, RustfaceError, SEETA_MIN_FACE, load_seeta_model,
};

/// Finds faces in a grey frame.
pub trait FaceDetector {
    /// Boxes of the faces in `frame`, in frame pixels.
    fn detect(&mut self, frame: &RgbImage) -> Vec<FaceBox>;
    /// A short name for logs.
    fn name(&self) -> &'static str;
}

/// Which detector, as in the config file and `--detector`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum DetectorKind {
    /// The whole frame is one face.
    FullFrame,
    /// SeetaFace frontal detector (rustface).
    Rustface,
}

/// Detection settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectConfig {
    /// Which detector.
    pub detector: DetectorKind,
    /// Smallest face side in frame pixels.
    pub min_face: u32,
    /// Frames wider than this are downscaled before detection (0: never).
    pub max_width: u32,
    /// Run the detector every N frames (1: every frame).
    pub every: u32,
    /// SeetaFace score threshold (higher: fewer false positives).
    pub score_threshold: f64,
    /// SeetaFace model file; empty: the model built into the binary.
    pub model: Option<std::path::PathBuf>,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            detector: DetectorKind::FullFrame,
            min_face: 40,
            max_width: 640,
            every: 3,
            score_threshold: 2.0,
            model: None,
        }
    }
}

/// The whole frame as one face.
#[derive(Debug, Clone, Default)]
pub struct FullFrame;

impl FaceDetector for FullFrame {
    fn detect(&mut self, frame: &RgbImage) -> Vec<FaceBox> {
        let (w, h) = frame.dimensions();
        if w == 0 || h == 0 {
            return vec![];
        }
        vec![FaceBox::new(0, 0, w, h)]
    }

    fn name(&self) -> &'static str {
        "full-frame"
    }
}

/// Runs the inner detector every `every` frames and returns the last boxes in between.
pub struct Scheduled {
    inner: Box<dyn FaceDetector>,
    every: u32,
    counter: u32,
    last: Vec<FaceBox>,
}

impl Scheduled {
    /// Wraps `inner`; `every` 0 or 1 detects on every frame.
    pub fn new(inner: Box<dyn FaceDetector>, every: u32) -> Self {
        Scheduled {
            inner,
            every: every.max(1),
            counter: 0,
            last: Vec::new(),
        }
    }

    /// Whether the next call runs the detector.
    pub fn due(&self) -> bool {
        self.counter == 0
    }
}

impl FaceDetector for Scheduled {
    fn detect(&mut self, frame: &RgbImage) -> Vec<FaceBox> {
        let (w, h) = frame.dimensions();
        if self.counter == 0 {
            self.last = self.inner.detect(frame);
        }
        self.counter = (self.counter + 1) % self.every;
        self.last.iter().filter_map(|b| b.clip(w, h)).collect()
    }

    fn name(&self) -> &'static str {
        self.inner.name()
    }
}

/// Builds the configured detector (downscaling and scheduling included).
pub fn build(config: &DetectConfig) -> Result<Box<dyn FaceDetector>, RustfaceError> {
    let base: Box<dyn FaceDetector> = match config.detector {
        DetectorKind::FullFrame => return Ok(Box::new(FullFrame)),
        DetectorKind::Rustface => {
            let model = load_seeta_model(config.model.as_deref())?;
            Box::new(Rustface::new(
                model,
                config.min_face,
                config.max_width,
                config.score_threshold,
            ))
        }
    };
    Ok(Box::new(Scheduled::new(base, config.every)))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counting(u32);
    impl FaceDetector for Counting {
        fn detect(&mut self, _: &RgbImage) -> Vec<FaceBox> {
            self.0 += 1;
            vec![FaceBox::new(self.0, 0, 10, 10)]
        }
        fn name(&self) -> &'static str {
            "counting"
        }
    }

    #[test]
    fn full_frame_is_one_box_of_the_frame() {
        let f = RgbImage::new(64, 48);
        assert_eq!(FullFrame.detect(&f), vec![FaceBox::new(0, 0, 64, 48)]);
        assert!(FullFrame.detect(&RgbImage::new(0, 0)).is_empty());
    }

    #[test]
    fn scheduled_detects_every_n_frames_and_repeats_boxes() {
        let mut s = Scheduled::new(Box::new(Counting(0)), 3);
        let f = RgbImage::new(100, 100);
        let xs: Vec<u32> = (0..7).map(|_| s.detect(&f)[0].x).collect();
        assert_eq!(xs, [1, 1, 1, 2, 2, 2, 3]);
    }
}
