//! Face-detector models for the edge, converted on the workstation: MediaPipe's BlazeFace
//! (`face_detection_short_range.tflite`, 128x128, and `face_detection_full_range.tflite`,
//! 192x192, Apache-2.0) from TensorFlow Lite into the ONNX file the edge's
//! `detect::blazeface` runs in tract.
//!
//! [`tflite`] does the general conversion; [`convert_blazeface`] checks that the file is a
//! BlazeFace detector (one `[1, S, S, 3]` input, a `[1, N, 16]` box regressor and a `[1, N, 1]`
//! score output, N = 896 for S = 128 or 2304 for S = 192) and names the outputs as the edge
//! expects: [`REGRESSORS`] then [`CLASSIFICATORS`].

pub mod tflite;

use std::path::Path;

use prost::Message;
use sha2::{Digest, Sha256};

pub use tflite::TfliteError;

/// Name of the box-regressor output (`[1, N, 16]`: box centre offset and size, six key
/// points, in input pixels relative to the anchor).
pub const REGRESSORS: &str = "regressors";
/// Name of the score output (`[1, N, 1]`: logits).
pub const CLASSIFICATORS: &str = "classificators";

/// Why a detector could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum DetectorError {
    /// The TFLite file could not be converted.
    #[error("{path}: {source}")]
    Tflite {
        /// The TFLite file.
        path: String,
        /// Why.
        source: TfliteError,
    },
    /// The model converts but is not a BlazeFace detector.
    #[error("{path}: not a BlazeFace face detector: {reason}")]
    NotBlazeFace {
        /// The TFLite file.
        path: String,
        /// What does not fit.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// What [`convert_blazeface`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertedDetector {
    /// Input side in pixels (128 short range, 192 full range).
    pub input_size: usize,
    /// Number of anchors (896 or 2304).
    pub anchors: usize,
    /// sha256 of the TFLite file read.
    pub tflite_sha256: String,
    /// sha256 of the ONNX file written.
    pub onnx_sha256: String,
    /// Size of the ONNX file in bytes.
    pub onnx_bytes: usize,
}

/// Converts a BlazeFace TFLite model (bytes) into ONNX bytes; `origin` names it in errors.
pub fn blazeface_onnx(
    tflite_bytes: &[u8],
    origin: &str,
) -> Result<(Vec<u8>, usize, usize), DetectorError> {
    let converted =
        tflite::convert(tflite_bytes, Some(&[REGRESSORS, CLASSIFICATORS])).map_err(|source| {
            DetectorError::Tflite {
                path: origin.to_string(),
                source,
            }
        })?;
    let not = |reason: String| DetectorError::NotBlazeFace {
        path: origin.to_string(),
        reason,
    };
    let [1, 3, s, s2] = converted.input_shape else {
        return Err(not(format!(
            "input is {:?} (NCHW), not one RGB image",
            converted.input_shape
        )));
    };
    if s != s2 {
        return Err(not(format!("input is {s}x{s2}, not square")));
    }
    let shapes: Vec<&[usize]> = converted.outputs.iter().map(|(_, s)| &s[..]).collect();
    let anchors = match shapes[..] {
        [[1, n, 16], [1, m, 1]] if n == m => *n,
        _ => return Err(not(format!("outputs are {shapes:?}"))),
    };
    Ok((converted.model.encode_to_vec(), s, anchors))
}

/// Converts the BlazeFace TFLite file `tflite_path` into the ONNX file `out`.
pub fn convert_blazeface(
    tflite_path: &Path,
    out: &Path,
) -> Result<ConvertedDetector, DetectorError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| DetectorError::Io { path, source }
    };
    let bytes = std::fs::read(tflite_path).map_err(io(tflite_path))?;
    let (onnx, input_size, anchors) = blazeface_onnx(&bytes, &tflite_path.display().to_string())?;
    std::fs::write(out, &onnx).map_err(io(out))?;
    Ok(ConvertedDetector {
        input_size,
        anchors,
        tflite_sha256: hex::encode(Sha256::digest(&bytes)),
        onnx_sha256: hex::encode(Sha256::digest(&onnx)),
        onnx_bytes: onnx.len(),
    })
}
