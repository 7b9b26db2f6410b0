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
use emotion_edge::detect::blazeface::BlazeFaceVariant;
use emotion_edge::detect::{BlazeFaceConfig, DetectConfig, DetectorKind};
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

/// Which face detector a tool uses (`classify`, `bench`): the settings of `[detect]` a command
/// line can give.
#[derive(Debug, Args, Clone)]
pub struct DetectArgs {
    /// Face detector [default: auto: for `bench` BlazeFace if installed, else SeetaFace; for
    /// `classify` the whole image is the face].
    #[arg(long, value_enum)]
    pub detector: Option<DetectorKind>,
    /// Smallest face side in frame pixels.
    #[arg(long, default_value_t = 40)]
    pub min_face: u32,
    /// BlazeFace model: `short` (faces within ~2 m) or `full` (up to ~5 m).
    #[arg(long, value_enum, default_value = "short")]
    pub blazeface_variant: BlazeFaceVariant,
    /// BlazeFace ONNX file (`emotion-train convert-detector`) [default: the variant's file in
    /// /usr/local/share/emotion-edge].
    #[arg(long)]
    pub blazeface_model: Option<PathBuf>,
    /// Its sha256, for a model other than MediaPipe's as converted by `emotion-train
    /// convert-detector`.
    #[arg(long)]
    pub blazeface_sha256: Option<String>,
    /// Crop faces upright on their eyes when the detector finds them (BlazeFace).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "true|false")]
    pub align: bool,
}

impl DetectArgs {
    /// The `[detect]` settings these options give, with `auto` resolved for a camera's frames
    /// (`camera`) or for images of faces; detection on every frame unless `every` says
    /// otherwise.
    pub fn config(&self, camera: bool, every: u32) -> DetectConfig {
        let defaults = DetectConfig::default();
        let blazeface = BlazeFaceConfig {
            variant: self.blazeface_variant,
            model: self.blazeface_model.clone(),
            sha256: self.blazeface_sha256.clone(),
            score_threshold: self.blazeface_variant.mediapipe_score_threshold(),
            ..defaults.blazeface.clone()
        };
        DetectConfig {
            detector: self.detector.unwrap_or(DetectorKind::Auto),
            min_face: self.min_face,
            every,
            align: self.align,
            blazeface,
            ..defaults
        }
        .resolved_for(camera)
    }
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
