//! `emotion-edge bench`: per-stage latency of a bundle.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use emotion_edge::detect::DetectorKind;
use emotion_edge::tools::bench::{BenchFrames, BenchOptions, bench};

use super::{DetectArgs, TrustArgs};

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
    /// Real frames: a folder of JPEG camera frames (e.g. made by `bench/make_frames.py` from
    /// real photos, or saved from your camera), cycled in name order. Without it the synthetic
    /// camera draws them.
    #[arg(long)]
    frames_dir: Option<PathBuf>,
    /// Synthetic frame width.
    #[arg(long, default_value_t = 640)]
    width: u32,
    /// Synthetic frame height.
    #[arg(long, default_value_t = 480)]
    height: u32,
    #[command(flatten)]
    detect: DetectArgs,
    /// Detect every N frames (the boxes are followed in between).
    #[arg(long, default_value_t = 1)]
    detect_every: u32,
    /// Also write the measured frames (JPEG) into this folder, for the Python baseline
    /// (`bench/fer_pipeline.py --frames DIR`) to measure the same frames.
    #[arg(long)]
    save_frames: Option<PathBuf>,
    /// Also time the classifier (and the BlazeFace network, when that is the detector) node by
    /// node: tract's plan, one warm-up then as many runs as frames; prints the operators and
    /// the slowest nodes.
    #[arg(long)]
    profile: bool,
}

/// Measures and prints the table.
pub fn run(args: BenchArgs) -> Result<()> {
    let model = super::load_model(&args.bundle, &args.trust)?;
    let source = match args.frames_dir {
        Some(dir) => BenchFrames::Folder(dir),
        None => BenchFrames::Synthetic {
            width: args.width,
            height: args.height,
        },
    };
    let detect = args.detect.config(true, args.detect_every);
    let report = bench(
        &model,
        &BenchOptions {
            frames: args.frames,
            source,
            detect: detect.clone(),
            save_frames: args.save_frames,
        },
    )?;
    println!("{report}");
    if args.profile {
        let runs = args.frames.max(1) as usize;
        let profile = model.profile(runs).context("profiling the model")?;
        println!("classifier, node by node: {profile}");
        if detect.detector == DetectorKind::Blazeface {
            let detector = detect
                .blazeface
                .open()
                .context("loading the BlazeFace model")?;
            let profile = detector
                .profile(runs)
                .context("profiling the BlazeFace model")?;
            println!("BlazeFace, node by node: {profile}");
        }
    }
    Ok(())
}
