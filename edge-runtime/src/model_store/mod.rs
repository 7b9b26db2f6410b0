//! Live model updates: a store directory with an `inbox/` that is watched (polling), the
//! running bundle in `current/`, the one before it in `previous/` (for rollback) and refused
//! bundles in `rejected/` with a `REASON.txt`.
//!
//! A bundle dropped into the inbox is verified completely (signature with the installed
//! public key, SHA-256 and size of the model, manifest schema, the model loads and its
//! self-tests reproduce the trainer's outputs) before anything changes. Only then is the
//! fully loaded model published in the [`ModelSlot`]; the pipeline picks it up between two
//! frames, so no frame is ever classified by a half-loaded model. On any failure the running
//! model stays.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use emotion_shared::bundle::{Bundle, BundleError, TrustPolicy};

use crate::classify::{ClassifyError, LoadedModel};
use crate::clock::{Clock, SharedClock};

pub use emotion_shared::store_layout::{
    CURRENT, INBOX, PREVIOUS, REASON_FILE, REJECTED, ROLLBACK_TRIGGER, StoreLayout,
};

/// Why a bundle was refused or the store could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Signature, hash, manifest or file problems.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// The model does not load or fails its self-test.
    #[error("{dir}: {source}")]
    Model {
        /// The bundle.
        dir: PathBuf,
        /// Why.
        source: ClassifyError,
    },
    /// A file-system operation failed.
    #[error("model store: cannot {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Nothing to run or roll back to.
    #[error("{0}")]
    Empty(String),
}

/// A verified, loaded bundle.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The model, ready to classify.
    pub model: Arc<LoadedModel>,
    /// How the signature was established (e.g. `signed by ed25519:...`).
    pub signature: String,
    /// Self-test cases run and the largest error seen.
    pub self_tests: usize,
    /// Largest absolute self-test error.
    pub max_error: f32,
}

/// Verifies the bundle in `dir` completely and loads it.
pub fn verify_bundle(dir: &Path, policy: &TrustPolicy) -> Result<Verified, StoreError> {
    let bundle = Bundle::open(dir, policy)?;
    let signature = bundle.signature().to_string();
    let (manifest, onnx) = bundle.into_parts();
    let model_err = |source| StoreError::Model {
        dir: dir.to_path_buf(),
        source,
    };
    let model = Arc::new(LoadedModel::load(manifest, &onnx).map_err(model_err)?);
    let outcomes = model
        .classifier()
        .and_then(|mut c| c.self_test())
        .map_err(model_err)?;
    Ok(Verified {
        model,
        signature,
        self_tests: outcomes.len(),
        max_error: outcomes.iter().map(|o| o.max_abs_error).fold(0.0, f32::max),
    })
}

/// The running model, swapped atomically: readers take an `Arc` of a complete model.
#[derive(Debug)]
pub struct ModelSlot {
    current: Mutex<Arc<LoadedModel>>,
    generation: AtomicU64,
}

impl ModelSlot {
    /// A slot holding `model` (generation 0).
    pub fn new(model: Arc<LoadedModel>) -> Self {
        ModelSlot {
            current: Mutex::new(model),
            generation: AtomicU64::new(0),
        }
    }

    /// Increases whenever a new model is published.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The current model and its generation.
    pub fn get(&self) -> (u64, Arc<LoadedModel>) {
        let guard = match self.current.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        (self.generation(), Arc::clone(&guard))
    }

    /// Publishes `model`; the pipeline switches at its next frame.
    pub fn publish(&self, model: Arc<LoadedModel>) {
        let mut guard = match self.current.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        *guard = model;
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

/// What the store did, for the log and the serial status line.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreEvent {
    /// A new model runs.
    Installed {
        /// Inbox entry name.
        name: String,
        /// Model id.
        model: String,
    },
    /// A bundle was refused and moved to `rejected/`.
    Rejected {
        /// Inbox entry name.
        name: String,
        /// Why.
        reason: String,
    },
    /// Rolled back to the previous model.
    RolledBack {
        /// Model id now running.
        model: String,
    },
    /// A rollback was asked for but could not be done.
    RollbackFailed {
        /// Why.
        reason: String,
    },
}

/// What came of [`ModelStore::request_rollback`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollbackRequest {
    /// The running service rolled back: `to` runs now.
    Done {
        /// The model that ran before (name and version), if readable.
        from: Option<String>,
        /// The model that runs now.
        to: String,
    },
    /// The service took the request but kept (or could not read) its model: see its log.
    Refused {
        /// What `current/` holds now.
        current: Option<String>,
    },
    /// No service acted within the wait: the next start rolls back.
    Pending {
        /// The model in `current/`.
        from: Option<String>,
        /// The model in `previous/`.
        to: String,
    },
}

/// The store directory.
pub struct ModelStore {
    layout: StoreLayout,
    policy: TrustPolicy,
    slot: Arc<ModelSlot>,
    /// Inbox entries seen at the last poll with their size/mtime fingerprint (to wait until
    /// a copy has finished).
    seen: Vec<(String, u64)>,
}

impl ModelStore {
    /// Opens the store at `root` (creating its folders) and loads `current/`, or
    /// `previous/` if `current/` fails to verify.
    pub fn open(
        root: impl Into<PathBuf>,
        policy: TrustPolicy,
    ) -> Result<(ModelStore, Verified), StoreError> {
        let layout = StoreLayout::new(root);
        let root = layout.root().to_path_buf();
        for p in [layout.inbox(), layout.rejected()] {
            std::fs::create_dir_all(&p).map_err(|source| StoreError::Io {
                action: "create",
                path: p,
                source,
            })?;
        }
        let current = layout.current();
        let verified = match verify_bundle(&current, &policy) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!("current model refused: {e}; trying {PREVIOUS}/");
                let previous = layout.previous();
                let v = verify_bundle(&previous, &policy).map_err(|e2| {
                    StoreError::Empty(format!(
                        "no usable model in {}: current/: {e}; previous/: {e2}. Put a bundle in {}",
                        root.display(),
                        current.display()
                    ))
                })?;
                // previous becomes current.
                reject(&root, &current, CURRENT, &e.to_string())?;
                rename(&previous, &current)?;
                v
            }
        };
        let slot = Arc::new(ModelSlot::new(Arc::clone(&verified.model)));
        Ok((
            ModelStore {
                layout,
                policy,
                slot,
                seen: Vec::new(),
            },
            verified,
        ))
    }

    /// The slot the pipeline reads.
    pub fn slot(&self) -> Arc<ModelSlot> {
        Arc::clone(&self.slot)
    }

    /// The inbox path.
    pub fn inbox(&self) -> PathBuf {
        self.layout.inbox()
    }

    /// Looks at the inbox once: verifies and installs entries that stopped changing since
    /// the last poll, handles a rollback request.
    pub fn poll(&mut self) -> Vec<StoreEvent> {
        let mut events = Vec::new();
        let inbox = self.inbox();
        let Ok(entries) = std::fs::read_dir(&inbox) else {
            return events;
        };
        let mut now_seen = Vec::new();
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|n| !StoreLayout::is_hidden(n))
            .collect();
        names.sort();
        for name in names {
            let path = inbox.join(&name);
            if name == ROLLBACK_TRIGGER {
                // The trigger goes only once the rollback is done (or refused): whoever asked
                // (ModelStore::request_rollback) reads current/ as soon as it is gone.
                events.push(self.rollback());
                let _ = std::fs::remove_file(&path);
                continue;
            }
            let is_tar = name.ends_with(".tar") && path.is_file();
            if !path.is_dir() && !is_tar {
                continue;
            }
            let fp = fingerprint(&path);
            let stable = self.seen.iter().any(|(n, f)| *n == name && *f == fp);
            now_seen.push((name.clone(), fp));
            if stable {
                events.push(if is_tar {
                    self.install_tar(&name)
                } else {
                    self.install(&name)
                });
                now_seen.pop();
            }
        }
        self.seen = now_seen;
        events
    }

    fn install(&mut self, name: &str) -> StoreEvent {
        let candidate = self.inbox().join(name);
        match verify_bundle(&candidate, &self.policy) {
            Ok(v) => match self.promote(&candidate) {
                Ok(()) => {
                    self.slot.publish(Arc::clone(&v.model));
                    StoreEvent::Installed {
                        name: name.to_string(),
                        model: v.model.id().to_string(),
                    }
                }
                Err(e) => {
                    let reason = format!("verified but could not be installed: {e}");
                    let _ = reject(self.layout.root(), &candidate, name, &reason);
                    StoreEvent::Rejected {
                        name: name.to_string(),
                        reason,
                    }
                }
            },
            Err(e) => {
                let reason = e.to_string();
                if let Err(e2) = reject(self.layout.root(), &candidate, name, &reason) {
                    tracing::error!("{e2}");
                }
                StoreEvent::Rejected {
                    name: name.to_string(),
                    reason,
                }
            }
        }
    }

    /// A `NAME.tar` bundle in the inbox: unpacked (strictly, see
    /// [`emotion_shared::bundle_tar`]) into a hidden directory, renamed to `NAME` and installed
    /// like a directory bundle; a bad archive goes to `rejected/` with its reason.
    fn install_tar(&mut self, tar_name: &str) -> StoreEvent {
        let inbox = self.inbox();
        let tar_path = inbox.join(tar_name);
        let stem = tar_name.trim_end_matches(".tar").to_string();
        let tmp = inbox.join(format!(".{stem}.unpack"));
        let dest = inbox.join(&stem);
        let _ = std::fs::remove_dir_all(&tmp);
        let outcome = if dest.exists() {
            Err(format!("{} already exists in the inbox", stem))
        } else {
            emotion_shared::bundle_tar::unpack(&tar_path, &tmp)
                .map_err(|e| e.to_string())
                .and_then(|()| std::fs::rename(&tmp, &dest).map_err(|e| e.to_string()))
        };
        match outcome {
            Ok(()) => {
                let _ = std::fs::remove_file(&tar_path);
                self.install(&stem)
            }
            Err(reason) => {
                let _ = std::fs::remove_dir_all(&tmp);
                if let Err(e) = reject_file(self.layout.root(), &tar_path, tar_name, &reason) {
                    tracing::error!("{e}");
                }
                StoreEvent::Rejected {
                    name: tar_name.to_string(),
                    reason,
                }
            }
        }
    }

    /// current -> previous, candidate -> current.
    fn promote(&self, candidate: &Path) -> Result<(), StoreError> {
        let current = self.layout.current();
        let previous = self.layout.previous();
        if previous.exists() {
            std::fs::remove_dir_all(&previous).map_err(|source| StoreError::Io {
                action: "remove",
                path: previous.clone(),
                source,
            })?;
        }
        if current.exists() {
            rename(&current, &previous)?;
        }
        rename(candidate, &current)
    }

    /// Asks the service running on the store at `layout` to roll back (the trigger file in the
    /// inbox) and waits up to `wait` (on `clock`) for it to act. Without a running service the
    /// request stays, and the next start rolls back.
    pub fn request_rollback(
        layout: &StoreLayout,
        wait: Duration,
        clock: &dyn Clock,
    ) -> Result<RollbackRequest, StoreError> {
        let model_of = |dir: &Path| -> Option<String> {
            let bytes = std::fs::read(dir.join(emotion_shared::bundle::MANIFEST_FILE)).ok()?;
            let m = emotion_shared::manifest::Manifest::from_json(&bytes).ok()?;
            Some(format!("{} {}", m.model.name, m.model.version))
        };
        let Some(target) = model_of(&layout.previous()) else {
            return Err(StoreError::Empty(format!(
                "{} holds no readable bundle: there is nothing to roll back to",
                layout.previous().display()
            )));
        };
        let from = model_of(&layout.current());
        let trigger = layout.rollback_trigger();
        std::fs::write(&trigger, b"requested by emotion-edge rollback\n").map_err(|source| {
            StoreError::Io {
                action: "write (run as the service's user or root)",
                path: trigger.clone(),
                source,
            }
        })?;
        let deadline = clock.now() + wait;
        while clock.now() < deadline {
            if !trigger.exists() {
                let now = model_of(&layout.current());
                return Ok(if now.as_deref() == Some(target.as_str()) {
                    RollbackRequest::Done { from, to: target }
                } else {
                    RollbackRequest::Refused { current: now }
                });
            }
            clock.sleep(Duration::from_millis(200));
        }
        Ok(RollbackRequest::Pending { from, to: target })
    }

    /// Swaps `current/` and `previous/` after verifying `previous/` again.
    pub fn rollback(&mut self) -> StoreEvent {
        let current = self.layout.current();
        let previous = self.layout.previous();
        let v = match verify_bundle(&previous, &self.policy) {
            Ok(v) => v,
            Err(e) => {
                return StoreEvent::RollbackFailed {
                    reason: format!("previous model unusable: {e}"),
                };
            }
        };
        let swap = self.layout.root().join(".rollback-swap");
        let result = rename(&current, &swap)
            .and_then(|()| rename(&previous, &current))
            .and_then(|()| rename(&swap, &previous));
        match result {
            Ok(()) => {
                self.slot.publish(Arc::clone(&v.model));
                StoreEvent::RolledBack {
                    model: v.model.id().to_string(),
                }
            }
            Err(e) => StoreEvent::RollbackFailed {
                reason: e.to_string(),
            },
        }
    }
}

/// A cheap fingerprint of a directory's files (names, sizes, mtimes) to see that a copy
/// into the inbox has finished.
fn fingerprint(dir: &Path) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    if let Ok(m) = std::fs::metadata(dir)
        && m.is_file()
    {
        (m.len(), m.modified().ok()).hash(&mut h);
        return h.finish();
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        let mut items: Vec<_> = entries
            .flatten()
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                let mtime = m
                    .modified()
                    .ok()?
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .ok()?;
                Some((e.file_name(), m.len(), mtime))
            })
            .collect();
        items.sort();
        items.hash(&mut h);
    }
    h.finish()
}

fn rename(from: &Path, to: &Path) -> Result<(), StoreError> {
    std::fs::rename(from, to).map_err(|source| StoreError::Io {
        action: "move",
        path: from.to_path_buf(),
        source,
    })
}

/// Moves `dir` to `rejected/<name>-<unix seconds>/` and writes the reason next to it.
fn reject(root: &Path, dir: &Path, name: &str, reason: &str) -> Result<(), StoreError> {
    let stamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut dest = root.join(REJECTED).join(format!("{name}-{stamp}"));
    let mut n = 1;
    while dest.exists() {
        dest = root.join(REJECTED).join(format!("{name}-{stamp}-{n}"));
        n += 1;
    }
    rename(dir, &dest)?;
    let reason_path = dest.join(REASON_FILE);
    std::fs::write(&reason_path, format!("{reason}\n")).map_err(|source| StoreError::Io {
        action: "write",
        path: reason_path,
        source,
    })
}

/// Moves the file `path` (a refused archive) into its own folder under `rejected/` with the
/// reason beside it.
fn reject_file(root: &Path, path: &Path, name: &str, reason: &str) -> Result<(), StoreError> {
    let stamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let dir = root.join(REJECTED).join(format!("{name}-{stamp}"));
    std::fs::create_dir_all(&dir).map_err(|source| StoreError::Io {
        action: "create",
        path: dir.clone(),
        source,
    })?;
    rename(path, &dir.join(name))?;
    let reason_path = dir.join(REASON_FILE);
    std::fs::write(&reason_path, format!("{reason}\n")).map_err(|source| StoreError::Io {
        action: "write",
        path: reason_path,
        source,
    })
}

/// Polls the store every `interval` (measured on `clock`) on a background thread until `stop`
/// is set, sending events to `events`.
pub fn spawn_watcher(
    mut store: ModelStore,
    interval: Duration,
    clock: SharedClock,
    stop: Arc<AtomicBool>,
    events: Sender<StoreEvent>,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("model-store".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for e in store.poll() {
                    if events.send(e).is_err() {
                        return;
                    }
                }
                let mut slept = Duration::ZERO;
                while slept < interval && !stop.load(Ordering::Relaxed) {
                    let step = Duration::from_millis(50).min(interval - slept);
                    clock.sleep(step);
                    slept += step;
                }
            }
        })
        .unwrap_or_else(|e| {
            tracing::error!("cannot start the model-store thread: {e}; live model updates are off");
            std::thread::spawn(|| {})
        })
}
