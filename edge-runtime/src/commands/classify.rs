//! `emotion-edge classify`: faces in image files, one JSON object per image.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use emotion_edge::detect::{self, DetectConfig, DetectorKind};
use emotion_edge::source::files;
use emotion_edge::tools::classify_files::classify_files;

use super::TrustArgs;

/// Options of `emotion-edge classify`.
#[derive(Debug, Args)]
pub struct ClassifyArgs {
    /// Model bundle directory.
    #[arg(long)]
    bundle: PathBuf,
    #[command(flatten)]
    trust: TrustArgs,
    /// Face detector.
    #[arg(long, value_enum, default_value = "full-frame")]
    detector: DetectorKind,
    /// Smallest face side in pixels (seeta).
    #[arg(long, default_value_t = 40)]
    min_face: u32,
    /// Images, folders or glob patterns.
    #[arg(required = true)]
    images: Vec<String>,
}

/// Prints one JSON line per image; fails when an image could not be read.
pub fn run(args: ClassifyArgs) -> Result<()> {
    let model = super::load_model(&args.bundle, &args.trust)?;
    let mut detector = detect::from_config(&DetectConfig {
        detector: args.detector,
        min_face: args.min_face,
        every: 1,
        ..DetectConfig::default()
    })?;
    let paths = files::expand(&args.images)?;
    let failures = classify_files(&model, detector.as_mut(), &paths, |line| {
        println!("{line}");
    })?;
    if failures > 0 {
        bail!("{failures} image(s) could not be read");
    }
    Ok(())
}
