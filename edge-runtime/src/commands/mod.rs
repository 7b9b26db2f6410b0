//! One module per subcommand: its options (clap) and a `run` that calls the library.

pub mod bench;
pub mod classify;
pub mod listen;
pub mod rollback;
pub mod run;
pub mod status;
pub mod verify;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result};
use clap::Args;
use emotion_edge::classify::LoadedModel;
use emotion_edge::model_store::verify_bundle;
use emotion_edge::service::trust_policy;

/// How bundles are trusted.
#[derive(Debug, Args, Clone)]
pub struct TrustArgs {
    /// Public key bundles must be signed with [default: /etc/emotion-edge/bundle.pub].
    #[arg(long)]
    pub public_key: Option<PathBuf>,
    /// Accept unsigned bundles (development only).
    #[arg(long)]
    pub allow_unsigned: bool,
}

/// Verifies `bundle` under `trust` and loads its model, logging what was checked.
pub fn load_model(bundle: &Path, trust: &TrustArgs) -> Result<Arc<LoadedModel>> {
    let policy = trust_policy(trust.public_key.as_deref(), trust.allow_unsigned)?;
    let v = verify_bundle(bundle, &policy)
        .with_context(|| format!("model bundle {} refused", bundle.display()))?;
    tracing::info!(
        "model {} ({}; {} self-test(s) passed, max error {:.2e})",
        v.model.id(),
        v.signature,
        v.self_tests,
        v.max_error
    );
    Ok(v.model)
}

/// Stop flag set by SIGTERM and SIGINT.
pub fn stop_flag() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .with_context(|| format!("cannot install the handler for signal {sig}"))?;
    }
    Ok(stop)
}
