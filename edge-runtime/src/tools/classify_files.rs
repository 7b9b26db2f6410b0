//! Classifying image files outside the service (`emotion-edge classify`): each image through
//! the detector and the model, one JSON object per image.

use std::path::Path;
use std::sync::Arc;

use emotion_shared::Emotion;
use emotion_shared::preprocess::{FaceCrop, PixelFormat};
use serde_json::{Value, json};

use crate::classify::{ClassifyError, LoadedModel};
use crate::detect::FaceDetector;
use crate::pipeline::crop_rgb;
use crate::source::files;

/// Classifies every face `detector` finds in each of `paths` with `model`, calling `report`
/// with one JSON object per image: `{"image", "model", "faces": [{"bbox", "label",
/// "confidence", "probabilities"}]}`, or `{"image", "error"}` for an image that cannot be
/// read. Returns how many could not be read.
pub fn classify_files(
    model: &Arc<LoadedModel>,
    detector: &mut dyn FaceDetector,
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
        for b in detector.detect(&image) {
            let crop = crop_rgb(&image, b.x, b.y, b.w, b.h);
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
