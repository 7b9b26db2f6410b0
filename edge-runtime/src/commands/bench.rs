//! `emotion-edge bench`: per-stage latency of a bundle.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use emotion_edge::detect::DetectorKind;
use emotion_edge::tools::bench::{BenchOptions, bench};

use super::TrustArgs;

/// Options of `emotion-edge bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Model bundle directory.
    bundle: PathBuf,
    #[command(flatten)]
    trust: TrustArgs,
    /// Frames to measure.
    #[arg(long, default_value_t = 200)]
    frames: u64,
    /// Frame width.
    #[arg(long, default_value_t = 640)]
    width: u32,
    /// Frame height.
    #[arg(long, default_value_t = 480)]
    height: u32,
    /// Face detector.
    #[arg(long, value_enum, default_value = "seeta")]
    detector: DetectorKind,
    /// Detect every N frames.
    #[arg(long, default_value_t = 1)]
    detect_every: u32,
    /// Also write the measured frames (JPEG) into this folder, for the Python baseline
    /// (`bench/fer_pipeline.py --frames DIR`) to measure the same frames.
    #[arg(long)]
    save_frames: Option<PathBuf>,
}

/// Measures and prints the table.
pub fn run(args: BenchArgs) -> Result<()> {
    let model = super::load_model(&args.bundle, &args.trust)?;
    let report = bench(
        &model,
        &BenchOptions {
            frames: args.frames,
            width: args.width,
            height: args.height,
            detector: args.detector,
            detect_every: args.detect_every,
            save_frames: args.save_frames,
        },
    )?;
    println!("{report}");
    Ok(())
}
