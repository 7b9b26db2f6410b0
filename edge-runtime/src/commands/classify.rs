//! `emotion-edge classify`: faces in image files, one JSON object per image.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use emotion_edge::detect;
use emotion_edge::source::files;
use emotion_edge::tools::classify_files::classify_files_aligned;

use super::{DetectArgs, TrustArgs};

/// Options of `emotion-edge classify`.
#[derive(Debug, Args)]
pub struct ClassifyArgs {
    /// Model bundle directory.
    #[arg(long)]
    bundle: PathBuf,
    #[command(flatten)]
    trust: TrustArgs,
    #[command(flatten)]
    detect: DetectArgs,
    /// Images, folders or glob patterns.
    #[arg(required = true)]
    images: Vec<String>,
}

/// Prints one JSON line per image; fails when an image could not be read.
pub fn run(args: ClassifyArgs) -> Result<()> {
    let model = super::load_model(&args.bundle, &args.trust)?;
    let config = args.detect.config(false, 1);
    let mut detector = detect::from_config(&config)?;
    let paths = files::expand(&args.images)?;
    let failures =
        classify_files_aligned(&model, detector.as_mut(), config.align, &paths, |line| {
            println!("{line}");
        })?;
    if failures > 0 {
        bail!("{failures} image(s) could not be read");
    }
    Ok(())
}
