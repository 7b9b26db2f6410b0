//! Classifying image files outside the service (`emotion-edge classify`): each image through
//! the detector, the face crop (aligned on the eyes when the detector gives them and `align` is
//! set, as in the service) and the model, one JSON object per image.

use std::path::Path;
use std::sync::Arc;

use emotion_shared::Emotion;
use emotion_shared::preprocess::{FaceCrop, PixelFormat};
use serde_json::{Value, json};

use crate::align::face_crop;
use crate::classify::{ClassifyError, LoadedModel};
use crate::detect::FaceDetector;
use crate::source::files;

/// Classifies every face `detector` finds in each of `paths` with `model`, calling `report`
/// with one JSON object per image: `{"image", "model", "faces": [{"bbox", "label",
/// "confidence", "probabilities"}]}`, or `{"image", "error"}` for an image that cannot be
/// read. Returns how many could not be read. Faces are cropped upright on their eyes when
/// the detector gives them (see [`classify_files_aligned`] to choose).
pub fn classify_files(
    model: &Arc<LoadedModel>,
    detector: &mut dyn FaceDetector,
    paths: &[std::path::PathBuf],
    report: impl FnMut(Value),
) -> Result<usize, ClassifyError> {
    classify_files_aligned(model, detector, true, paths, report)
}

/// [`classify_files`] with the crop chosen: `align` crops faces with eye key points upright
/// ([`crate::align::aligned_crop`]), otherwise the detector's box is cropped as it is.
pub fn classify_files_aligned(
    model: &Arc<LoadedModel>,
    detector: &mut dyn FaceDetector,
    align: bool,
    paths: &[std::path::PathBuf],
    mut report: impl FnMut(Value),
) -> Result<usize, ClassifyError> {
    let mut classifier = model.classifier()?;
    let mut failures = 0;
    for path in paths {
        let image = match files::read_image(path) {
            Ok(i) => i,
            Err(e) => {
                failures += 1;
                report(json!({"image": display(path), "error": e.to_string()}));
                continue;
            }
        };
        let mut faces = Vec::new();
        for face in detector.detect(&image) {
            let b = face.bbox;
            let crop = face_crop(&image, &face, align);
            let fc =
                FaceCrop::from_raw(crop.width(), crop.height(), PixelFormat::Rgb, crop.as_raw())?;
            let p = classifier.classify(fc)?;
            let probs: serde_json::Map<String, Value> = Emotion::ALL
                .iter()
                .map(|e| (e.name().to_string(), json!(p.probabilities[e.index()])))
                .collect();
            faces.push(json!({
                "bbox": {"x": b.x, "y": b.y, "w": b.w, "h": b.h},
                "label": p.label.name(),
                "confidence": p.confidence,
                "probabilities": probs,
            }));
        }
        report(json!({"image": display(path), "model": model.id(), "faces": faces}));
    }
    Ok(failures)
}

fn display(path: &Path) -> String {
    path.display().to_string()
}
