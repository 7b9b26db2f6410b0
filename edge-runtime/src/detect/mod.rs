//! Face detection: where the faces are in a frame. [`FullFrame`] (the frame is the face, for
//! kiosks and pre-cropped images), [`SeetaDetector`] (SeetaFace frontal cascade through the
//! `rustface` crate, on a downscaled grey copy of the frame, with a minimum face size),
//! [`BlazeFaceDetector`] (MediaPipe's BlazeFace CNN in tract, short or full range, with eye,
//! nose, mouth and ear key points: [`blazeface`]) and
//! [`Scheduled`] (detect every N frames, keep the last boxes in between so the tracker follows
//! them). [`from_config`] builds the configured one.
//!
//! A new detector adds a variant to [`DetectorKind`], its own settings section beside
//! [`SeetaConfig`] (`[detect.NAME]` in the config file) and an arm in [`from_config`].

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::geometry::FaceBox;
pub use crate::geometry::{Face, Keypoints};

pub mod blazeface;
mod seeta;

pub use blazeface::{BlazeFaceConfig, BlazeFaceDetector, BlazeFaceError, BlazeFaceModel};

pub use seeta::{
    EMBEDDED_MODEL_AVAILABLE, SEETA_MIN_FACE, SeetaConfig, SeetaDetector, SeetaError,
    load_seeta_model,
};

/// Finds faces in a colour frame.
pub trait FaceDetector {
    /// The faces in `frame` (the whole camera frame, 8-bit RGB, any size): boxes in that
    /// frame's pixels, clipped to it, with key points from detectors that find them.
    fn detect(&mut self, frame: &RgbImage) -> Vec<Face>;
    /// A short name for logs.
    fn name(&self) -> &'static str;
}

/// Which detector, as in the config file and `--detector`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum DetectorKind {
    /// The default: for cameras (`v4l2`, `stdin`) BlazeFace when its model is installed
    /// (SeetaFace otherwise, with a warning); for image files and the synthetic camera the
    /// whole frame is one face. [`DetectConfig::resolved_for`] decides.
    Auto,
    /// The whole frame is one face.
    FullFrame,
    /// SeetaFace frontal cascade (the `rustface` crate); `rustface` is accepted as an alias.
    #[serde(alias = "rustface")]
    #[value(alias = "rustface")]
    Seeta,
    /// MediaPipe's BlazeFace CNN (`[detect.blazeface]`: short or full range, its ONNX file).
    Blazeface,
}

/// Why the configured detector could not be built.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// The SeetaFace model.
    #[error(transparent)]
    Seeta(#[from] SeetaError),
    /// The BlazeFace model.
    #[error(transparent)]
    BlazeFace(#[from] BlazeFaceError),
}

/// `[detect]`: settings every detector shares, and one section per detector.
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
    /// Crop faces upright on their eyes when the detector finds them (BlazeFace): the face box
    /// turned by the eye line's angle ([`crate::align::aligned_crop`]); off: the box as it is.
    pub align: bool,
    /// `[detect.seeta]`: the SeetaFace detector's own settings.
    pub seeta: SeetaConfig,
    /// `[detect.blazeface]`: the BlazeFace detector's own settings.
    pub blazeface: BlazeFaceConfig,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            detector: DetectorKind::Auto,
            min_face: 40,
            max_width: 640,
            every: 3,
            align: true,
            seeta: SeetaConfig::default(),
            blazeface: BlazeFaceConfig::default(),
        }
    }
}

impl DetectConfig {
    /// This configuration with [`DetectorKind::Auto`] replaced by the detector it stands for:
    /// for a camera (`camera`: frames of a scene, not face crops) BlazeFace when its model file
    /// exists ([`BlazeFaceConfig::model_path`]), else SeetaFace with a warning naming the
    /// missing file; for anything else full-frame. Other kinds are kept.
    pub fn resolved_for(&self, camera: bool) -> DetectConfig {
        let mut resolved = self.clone();
        if self.detector != DetectorKind::Auto {
            return resolved;
        }
        resolved.detector = if !camera {
            DetectorKind::FullFrame
        } else if self.blazeface.model_path().is_file() {
            DetectorKind::Blazeface
        } else {
            tracing::warn!(
                "BlazeFace model {} is not installed: detecting faces with SeetaFace, which is \
                 several times slower (install it with `deploy/install.sh --detector FILE`, made \
                 by `emotion-train convert-detector`; or set [detect] detector = \"seeta\")",
                self.blazeface.model_path().display()
            );
            DetectorKind::Seeta
        };
        resolved
    }
}

/// The whole frame as one face.
#[derive(Debug, Clone, Default)]
pub struct FullFrame;

impl FaceDetector for FullFrame {
    fn detect(&mut self, frame: &RgbImage) -> Vec<Face> {
        let (w, h) = frame.dimensions();
        if w == 0 || h == 0 {
            return vec![];
        }
        vec![Face::boxed(FaceBox::new(0, 0, w, h))]
    }

    fn name(&self) -> &'static str {
        "full-frame"
    }
}

/// Runs the inner detector every `every` frames and returns the last faces (boxes and key
/// points) in between.
pub struct Scheduled {
    inner: Box<dyn FaceDetector>,
    every: u32,
    counter: u32,
    last: Vec<Face>,
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
    fn detect(&mut self, frame: &RgbImage) -> Vec<Face> {
        let (w, h) = frame.dimensions();
        if self.counter == 0 {
            self.last = self.inner.detect(frame);
        }
        self.counter = (self.counter + 1) % self.every;
        self.last
            .iter()
            .filter_map(|f| {
                Some(Face {
                    bbox: f.bbox.clip(w, h)?,
                    keypoints: f.keypoints,
                })
            })
            .collect()
    }

    fn name(&self) -> &'static str {
        self.inner.name()
    }
}

/// Builds the configured detector (downscaling and scheduling included); an unresolved
/// [`DetectorKind::Auto`] is full-frame (see [`DetectConfig::resolved_for`]).
pub fn from_config(config: &DetectConfig) -> Result<Box<dyn FaceDetector>, DetectError> {
    let base: Box<dyn FaceDetector> = match config.detector {
        DetectorKind::FullFrame | DetectorKind::Auto => return Ok(Box::new(FullFrame)),
        DetectorKind::Seeta => {
            let model = load_seeta_model(config.seeta.model.as_deref())?;
            Box::new(SeetaDetector::new(
                model,
                config.min_face,
                config.max_width,
                config.seeta.score_threshold,
            ))
        }
        DetectorKind::Blazeface => Box::new(BlazeFaceDetector::from_config(
            &config.blazeface,
            config.min_face,
        )?),
    };
    Ok(Box::new(Scheduled::new(base, config.every)))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counting(u32);
    impl FaceDetector for Counting {
        fn detect(&mut self, _: &RgbImage) -> Vec<Face> {
            self.0 += 1;
            let mut points = [[self.0 as f32, 5.0]; 6];
            points[1][0] += 4.0;
            vec![Face {
                bbox: FaceBox::new(self.0, 0, 10, 10),
                keypoints: Some(Keypoints::from_mediapipe(points)),
            }]
        }
        fn name(&self) -> &'static str {
            "counting"
        }
    }

    #[test]
    fn auto_is_full_frame_for_images_and_blazeface_or_seeta_for_cameras() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = DetectConfig::default();
        assert_eq!(c.detector, DetectorKind::Auto);
        assert_eq!(c.resolved_for(false).detector, DetectorKind::FullFrame);
        c.blazeface.model = Some(dir.path().join("absent.onnx"));
        assert_eq!(c.resolved_for(true).detector, DetectorKind::Seeta);
        let present = dir.path().join("face_detection_short_range.onnx");
        std::fs::write(&present, b"x").expect("write");
        c.blazeface.model = Some(present);
        assert_eq!(c.resolved_for(true).detector, DetectorKind::Blazeface);
        // A detector that is set stays as it is.
        c.detector = DetectorKind::Seeta;
        assert_eq!(c.resolved_for(true).detector, DetectorKind::Seeta);
    }

    #[test]
    fn pinned_hashes_are_the_deploy_files() {
        for v in [
            blazeface::BlazeFaceVariant::Short,
            blazeface::BlazeFaceVariant::Full,
        ] {
            let sha = v.pinned_sha256();
            assert_eq!(sha.len(), 64, "{v:?}");
            assert!(sha.bytes().all(|b| b.is_ascii_hexdigit()), "{v:?}");
        }
        assert_ne!(
            blazeface::BlazeFaceVariant::Short.pinned_sha256(),
            blazeface::BlazeFaceVariant::Full.pinned_sha256()
        );
        // The full-range file of converters before the upsampling change stays accepted, after
        // the current one; the short-range file never changed.
        let full = blazeface::BlazeFaceVariant::Full.pinned_sha256s();
        assert_eq!(full.len(), 2, "{full:?}");
        assert_eq!(full[0], blazeface::BlazeFaceVariant::Full.pinned_sha256());
        assert_eq!(blazeface::BlazeFaceVariant::Short.pinned_sha256s().len(), 1);
        // Which accepted hash a file's is: any case, blanks around a configured one ignored.
        let upper = full[1].to_ascii_uppercase();
        assert_eq!(blazeface::accepted_as(full[1], &full), Some(1));
        assert_eq!(
            blazeface::accepted_as(full[0], &[&format!(" {upper} "), full[0]]),
            Some(1)
        );
        assert_eq!(blazeface::accepted_as(&upper, &full), Some(1));
        assert_eq!(blazeface::accepted_as(&"0".repeat(64), &full), None);
    }

    #[test]
    fn full_frame_is_one_box_of_the_frame() {
        let f = RgbImage::new(64, 48);
        assert_eq!(
            FullFrame.detect(&f),
            vec![Face::boxed(FaceBox::new(0, 0, 64, 48))]
        );
        assert!(FullFrame.detect(&RgbImage::new(0, 0)).is_empty());
    }

    #[test]
    fn scheduled_detects_every_n_frames_and_repeats_boxes() {
        let mut s = Scheduled::new(Box::new(Counting(0)), 3);
        let f = RgbImage::new(100, 100);
        let faces: Vec<Face> = (0..7).map(|_| s.detect(&f)[0]).collect();
        let xs: Vec<u32> = faces.iter().map(|f| f.bbox.x).collect();
        assert_eq!(xs, [1, 1, 1, 2, 2, 2, 3]);
        // The key points stay with their box between detections.
        let eyes: Vec<f32> = faces
            .iter()
            .map(|f| f.keypoints.expect("key points kept").right_eye[0])
            .collect();
        assert_eq!(eyes, [1.0, 1.0, 1.0, 2.0, 2.0, 2.0, 3.0]);
        // Repeated boxes are clipped to a smaller frame, key points kept as they were.
        let mut s = Scheduled::new(Box::new(Counting(0)), 2);
        s.detect(&f);
        let small = s.detect(&RgbImage::new(6, 6));
        assert_eq!(small[0].bbox, FaceBox::new(1, 0, 5, 6));
        assert_eq!(small[0].keypoints.expect("kept").left_eye, [5.0, 5.0]);
    }
}
