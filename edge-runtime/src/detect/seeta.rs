//! The SeetaFace frontal face detector (`rustface`): model loading (embedded at build time
//! from the `rustface` crate package, or a file) and detection on a downscaled frame with a
//! minimum face size.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use image::RgbImage;
use image::imageops::FilterType;

use super::FaceDetector;
use crate::geometry::{Face, FaceBox};

/// `[detect.seeta]`: the SeetaFace detector's own settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SeetaConfig {
    /// Score threshold (higher: fewer false positives, more missed faces).
    pub score_threshold: f64,
    /// Model file; unset: the model built into the binary.
    pub model: Option<PathBuf>,
}

impl Default for SeetaConfig {
    fn default() -> Self {
        SeetaConfig {
            score_threshold: 2.0,
            model: None,
        }
    }
}

/// Whether this binary carries the SeetaFace model (found by `build.rs`).
pub const EMBEDDED_MODEL_AVAILABLE: bool = cfg!(seeta_embedded);

#[cfg(seeta_embedded)]
static EMBEDDED_MODEL: &[u8] = include_bytes!(env!("EMOTION_EDGE_SEETA_MODEL_PATH"));
#[cfg(not(seeta_embedded))]
static EMBEDDED_MODEL: &[u8] = &[];

/// The smallest face SeetaFace's cascade can find, in pixels of the image it sees.
pub const SEETA_MIN_FACE: u32 = 20;

/// Why the SeetaFace model could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SeetaError {
    /// The model file could not be read.
    #[error("cannot read SeetaFace model {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The bytes are not a SeetaFace model.
    #[error("{origin} is not a valid SeetaFace model: {reason}")]
    Invalid {
        /// Which model.
        origin: String,
        /// Why.
        reason: String,
    },
    /// No model built in and none given.
    #[error(
        "this build has no SeetaFace model built in: set `model = PATH` in the [detect.seeta] section of the config (the file model/seeta_fd_frontal_v1.0.bin of the rustface 0.1.7 crate)"
    )]
    NoModel,
}

/// Loads the model from `path`, or the built-in one when `path` is `None`.
pub fn load_seeta_model(path: Option<&Path>) -> Result<rustface::Model, SeetaError> {
    let (bytes, origin) = match path {
        Some(p) => (
            std::fs::read(p).map_err(|source| SeetaError::Read {
                path: p.display().to_string(),
                source,
            })?,
            p.display().to_string(),
        ),
        None if EMBEDDED_MODEL_AVAILABLE => (EMBEDDED_MODEL.to_vec(), "built-in model".to_string()),
        None => return Err(SeetaError::NoModel),
    };
    let invalid = |reason: String| SeetaError::Invalid {
        origin: origin.clone(),
        reason,
    };
    catch_unwind(AssertUnwindSafe(|| rustface::read_model(&bytes[..])))
        .map_err(|_| invalid("the model reader panicked".into()))?
        .map_err(|e| invalid(e.to_string()))
}

/// SeetaFace detection on a grey frame, downscaled to at most `max_width` pixels first.
pub struct SeetaDetector {
    detector: Box<dyn rustface::Detector>,
    min_face: u32,
    max_width: u32,
}

impl SeetaDetector {
    /// A detector; `min_face` is in frame pixels, `max_width` 0 disables downscaling.
    pub fn new(
        model: rustface::Model,
        min_face: u32,
        max_width: u32,
        score_threshold: f64,
    ) -> Self {
        let mut detector = rustface::create_detector_with_model(model);
        detector.set_score_thresh(score_threshold);
        detector.set_pyramid_scale_factor(0.8);
        detector.set_slide_window_step(4, 4);
        SeetaDetector {
            detector,
            min_face,
            max_width,
        }
    }
}

impl FaceDetector for SeetaDetector {
    fn detect(&mut self, frame: &RgbImage) -> Vec<Face> {
        let grey = image::imageops::grayscale(frame);
        let frame = &grey;
        let (w, h) = frame.dimensions();
        let factor = if self.max_width > 0 && w > self.max_width {
            w as f32 / self.max_width as f32
        } else {
            1.0
        };
        let small;
        let seen = if factor > 1.0 {
            let nh = ((h as f32 / factor).round() as u32).max(1);
            small = image::imageops::resize(frame, self.max_width, nh, FilterType::Triangle);
            &small
        } else {
            frame
        };
        let (sw, sh) = seen.dimensions();
        let min_face = ((self.min_face as f32 / factor).round() as u32).max(SEETA_MIN_FACE);
        if sw < min_face || sh < min_face {
            return vec![];
        }
        self.detector.set_min_face_size(min_face);
        let data = rustface::ImageData::new(seen.as_raw(), sw, sh);
        let faces = match catch_unwind(AssertUnwindSafe(|| self.detector.detect(&data))) {
            Ok(f) => f,
            Err(_) => {
                tracing::warn!(
                    width = sw,
                    height = sh,
                    "rustface panicked on a frame; skipping it"
                );
                return vec![];
            }
        };
        faces
            .iter()
            .filter_map(|f| {
                let b = f.bbox();
                let x = b.x().max(0) as u32;
                let y = b.y().max(0) as u32;
                FaceBox::new(x, y, b.width(), b.height())
                    .scaled(factor)
                    .clip(w, h)
                    .map(Face::boxed)
            })
            .collect()
    }

    fn name(&self) -> &'static str {
        "seeta"
    }
}
