//! The running service, assembled from a [`Config`]: the model (a fixed bundle, or a store
//! whose inbox a background thread watches), the face detector, the frame source and the
//! sinks around one [`Pipeline`]; [`Service::run`] drives it until the source ends, the frame
//! limit is reached or the stop flag is set, with systemd told about each step ([`systemd`]).
//!
//! `emotion-edge run` is argument parsing plus `Service::from_config(..)?.run()`; a program can
//! do the same.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::thread::JoinHandle;
use std::time::Duration;

use emotion_shared::bundle::{KeyError, TrustPolicy, read_public_key};
use emotion_shared::protocol::Level;

use crate::classify::ClassifyError;
use crate::clock::SharedClock;
use crate::config::{Config, ConfigError, DEFAULT_PUBLIC_KEY};
use crate::detect::DetectError;
use crate::model_store::{self, ModelSlot, ModelStore, StoreError, StoreEvent, verify_bundle};
use crate::pipeline::{Pipeline, RunStats};
use crate::sink::{SinkError, Sinks};
use crate::source::{self, FrameSource, SourceError, SourceKind};

pub mod status;
pub mod systemd;

pub use systemd::{Watchdog, notify_ready, notify_stopping};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The public key bundles are checked with cannot be read.
    #[error(
        "cannot read the bundle public key {path}: {source}; pass --public-key FILE (or --allow-unsigned for development)"
    )]
    PublicKey {
        /// The key file.
        path: PathBuf,
        /// Why.
        source: KeyError,
    },
    /// The fixed bundle failed verification.
    #[error("model bundle {path} refused: {source}")]
    Bundle {
        /// The bundle.
        path: PathBuf,
        /// Why.
        source: Box<StoreError>,
    },
    /// The model store has no usable model or cannot be used.
    #[error("model store {path}: {source}")]
    Store {
        /// The store root.
        path: PathBuf,
        /// Why.
        source: Box<StoreError>,
    },
    /// The face detector cannot be built.
    #[error("face detector: {0}")]
    Detector(#[from] DetectError),
    /// The frame source cannot be opened.
    #[error("frame source: {0}")]
    Source(#[from] SourceError),
    /// An output cannot be opened.
    #[error("output: {0}")]
    Sink(#[from] SinkError),
    /// The model cannot run.
    #[error(transparent)]
    Classify(#[from] ClassifyError),
}

/// How bundles are trusted: the key at `public_key` (or [`DEFAULT_PUBLIC_KEY`]), or any
/// bundle when `allow_unsigned` (logged as a warning: development only).
pub fn trust_policy(
    public_key: Option<&Path>,
    allow_unsigned: bool,
) -> Result<TrustPolicy, ServiceError> {
    if allow_unsigned {
        tracing::warn!("accepting UNSIGNED model bundles (--allow-unsigned): for development only");
        return Ok(TrustPolicy::AllowUnsigned);
    }
    let path = public_key.unwrap_or(Path::new(DEFAULT_PUBLIC_KEY));
    let key = read_public_key(path).map_err(|source| ServiceError::PublicKey {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(TrustPolicy::require(key))
}

/// The store watcher thread and the events it sends.
type Watcher = (JoinHandle<()>, Receiver<StoreEvent>);

/// A configured pipeline with its source, ready to run.
pub struct Service {
    pipeline: Pipeline,
    source: Box<dyn FrameSource>,
    watcher: Option<Watcher>,
    stop: Arc<AtomicBool>,
    max_frames: u64,
}

impl Service {
    /// Verifies the model, builds the detector, sinks and source the configuration names, all
    /// timed by `clock`. `stop` ends [`Service::run`] (and the store watcher) when set.
    pub fn from_config(
        config: &Config,
        clock: SharedClock,
        stop: Arc<AtomicBool>,
    ) -> Result<Service, ServiceError> {
        config.validate()?;
        let policy = trust_policy(
            config.model.public_key.as_deref(),
            config.model.allow_unsigned,
        )?;
        let (slot, watcher) = match (&config.model.bundle, &config.model.store) {
            (Some(bundle), _) => {
                let v = verify_bundle(bundle, &policy).map_err(|source| ServiceError::Bundle {
                    path: bundle.clone(),
                    source: Box::new(source),
                })?;
                tracing::info!("model {} ({})", v.model.id(), v.signature);
                (Arc::new(ModelSlot::new(v.model)), None)
            }
            (None, Some(root)) => {
                let (store, v) =
                    ModelStore::open(root, policy).map_err(|source| ServiceError::Store {
                        path: root.clone(),
                        source: Box::new(source),
                    })?;
                tracing::info!(inbox = %store.inbox().display(), "model {} ({}); watching for updates", v.model.id(), v.signature);
                let slot = store.slot();
                let (tx, rx) = std::sync::mpsc::channel();
                let poll = Duration::from_millis(if config.model.poll_ms == 0 {
                    1000
                } else {
                    config.model.poll_ms
                });
                let handle = model_store::spawn_watcher(
                    store,
                    poll,
                    Arc::clone(&clock),
                    Arc::clone(&stop),
                    tx,
                );
                (slot, Some((handle, rx)))
            }
            (None, None) => {
                return Err(ConfigError::Invalid(
                    "no model: pass --bundle DIR or --store DIR".into(),
                )
                .into());
            }
        };
        let mut sinks = Sinks::from_config(config, Arc::clone(&clock))?;
        if let Some(path) = config.status.resolve(config.model.store.as_deref()) {
            let bundle = match (&config.model.bundle, &config.model.store) {
                (Some(b), _) => status::BundleDir::Fixed(b.clone()),
                (None, Some(root)) => status::BundleDir::StoreCurrent(
                    emotion_shared::store_layout::StoreLayout::new(root).current(),
                ),
                (None, None) => status::BundleDir::Fixed(PathBuf::new()),
            };
            tracing::info!("status in {}", path.display());
            sinks.push(Box::new(status::StatusSink::new(
                path,
                Duration::from_millis(config.status.interval_ms.max(100)),
                Arc::clone(&clock),
                Arc::clone(&slot),
                bundle,
                sinks.mqtt_link(),
            )));
        }
        let camera = matches!(config.source.kind, SourceKind::V4l2 | SourceKind::Stdin);
        let detect = config.detect.resolved_for(camera);
        tracing::info!("face detector: {:?}", detect.detector);
        let detector = crate::detect::from_config(&detect)?;
        let source = source::from_config(&config.source, Arc::clone(&clock))?;
        let pipeline = Pipeline::new(detector, slot, config.smooth, sinks)?
            .with_clock(clock)
            .with_align(config.detect.align);
        Ok(Service {
            pipeline,
            source,
            watcher,
            stop,
            max_frames: config.max_frames,
        })
    }

    /// Runs until the source ends, `max_frames` were processed or the stop flag is set;
    /// reports `start` and `stop` to the sinks, tells systemd (ready, watchdog, stopping) and
    /// stops the store watcher on the way out.
    pub fn run(mut self) -> RunStats {
        self.pipeline.status(
            Level::Info,
            "start",
            &format!("emotion-edge {} started", env!("CARGO_PKG_VERSION")),
        );
        tracing::info!("source: {}", self.source.describe());
        self.pipeline.set_watchdog(Watchdog::from_env());
        notify_ready();
        let events = self.watcher.as_ref().map(|(_, rx)| rx);
        let stats = self
            .pipeline
            .run(self.source.as_mut(), &self.stop, self.max_frames, events);
        notify_stopping();
        self.pipeline.status(
            Level::Info,
            "stop",
            &format!("stopped after {} frames", stats.frames),
        );
        self.pipeline.finish();
        self.stop.store(true, Ordering::Relaxed);
        if let Some((handle, _)) = self.watcher
            && handle.join().is_err()
        {
            tracing::error!("the model-store thread panicked");
        }
        tracing::info!(
            frames = stats.frames,
            corrupt = stats.corrupt,
            failed_faces = stats.failed_faces,
            swaps = stats.swaps,
            "done"
        );
        stats
    }
}
