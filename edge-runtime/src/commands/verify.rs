//! `emotion-edge verify`: a bundle checked as the service checks it, and what it holds.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use emotion_edge::model_store::verify_bundle;
use emotion_edge::service::trust_policy;

use super::TrustArgs;

/// Options of `emotion-edge verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Model bundle directory.
    bundle: PathBuf,
    #[command(flatten)]
    trust: TrustArgs,
}

/// Verifies the bundle and prints its summary.
pub fn run(args: VerifyArgs) -> Result<()> {
    let policy = trust_policy(args.trust.public_key.as_deref(), args.trust.allow_unsigned)?;
    let v = verify_bundle(&args.bundle, &policy)
        .with_context(|| format!("model bundle {} refused", args.bundle.display()))?;
    let m = v.model.manifest();
    println!("bundle    {}", args.bundle.display());
    println!("model     {}", v.model.id());
    println!("signature {}", v.signature);
    println!("input     {:?} ({:?})", m.input.shape, m.preprocess.color);
    println!("output    {:?} {:?}", m.output.shape, m.output.kind);
    println!(
        "self-test {} case(s) passed, max abs error {:.3e}",
        v.self_tests, v.max_error
    );
    for metric in &m.metrics {
        println!(
            "metric    {} = {:.4} ({} on {})",
            metric.name, metric.value, metric.split, metric.dataset
        );
    }
    println!("OK");
    Ok(())
}
