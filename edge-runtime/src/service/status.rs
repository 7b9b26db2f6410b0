//! The running service's status, kept current in a JSON file that `emotion-edge status`
//! (and `emotion-train push --inventory` over SSH) reads: the model that runs (name, version,
//! sha256 of its ONNX file, signer), uptime, FPS, frames, faces in view, MQTT messages lost,
//! the last error and the last refused bundle.
//!
//! [`StatusSink`] writes it: a sink like the others, so it sees every frame and event. It
//! rewrites the file at most once per `[status] interval_ms` (through the [`Clock`]) and at
//! once on every event (a model swap or a refusal shows within one event), always atomically
//! (a temporary file renamed over the old one), so a reader never sees half a file.
//!
//! ```json
//! {"schema":1,"pid":812,"running":true,"started_unix":1764860000,"updated_unix":1764860042,
//!  "uptime_s":42.0,"model":{"id":"mini-xception 1.2.0 (int8)","name":"mini-xception",
//!  "version":"1.2.0","sha256":"9f2c...","signer":"ed25519:3a5e0c1d2b4f6789"},"fps":14.8,
//!  "frames":620,"faces":1,"lost_messages":0,"mqtt":{"connected":true,"lost":0,
//!  "published":97,"connections":1},"last_error":null,"last_rejected":null}
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use emotion_shared::protocol::Level;
use serde::{Deserialize, Serialize};

use crate::clock::SharedClock;
use crate::model_store::ModelSlot;
use crate::sink::mqtt::{Link, LinkStats};
use crate::sink::{FrameReport, Sink, SinkError};

/// The file's schema version.
pub const SCHEMA: u32 = 1;

/// The file name next to the model store.
pub const FILE_NAME: &str = "status.json";

/// A status older than this (while `running`) means the service stopped without saying so.
pub const STALE_AFTER: Duration = Duration::from_secs(10);

/// `[status]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StatusConfig {
    /// The status file; default: `status.json` next to `model.store` (none with a fixed
    /// bundle).
    pub path: Option<PathBuf>,
    /// Least time between two rewrites for frames, in milliseconds.
    pub interval_ms: u64,
}

impl Default for StatusConfig {
    fn default() -> Self {
        StatusConfig {
            path: None,
            interval_ms: 1000,
        }
    }
}

impl StatusConfig {
    /// Where the status goes: `path`, or next to `store`.
    pub fn resolve(&self, store: Option<&Path>) -> Option<PathBuf> {
        self.path.clone().or_else(|| store.map(default_path))
    }
}

/// The status file of a service whose model store is `store`: `status.json` in the store's
/// parent folder (`/var/lib/emotion-edge/status.json` for the installed store).
pub fn default_path(store: &Path) -> PathBuf {
    store
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join(FILE_NAME)
}

/// The running model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelStatus {
    /// `name version (fp32|int8)`.
    pub id: String,
    /// Manifest name.
    pub name: String,
    /// Manifest version.
    pub version: String,
    /// SHA-256 of the ONNX file, hex.
    pub sha256: String,
    /// Fingerprint of the key that signed the bundle, or `unsigned`.
    pub signer: String,
}

/// An event worth keeping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventStatus {
    /// The status code (`camera_lost`, `model_rejected`, ...).
    pub code: String,
    /// What happened.
    pub text: String,
    /// When (seconds since 1970).
    pub unix: u64,
}

/// A bundle the service refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// The bundle's name in the inbox.
    pub bundle: String,
    /// Why.
    pub reason: String,
    /// When (seconds since 1970).
    pub unix: u64,
}

/// The content of the status file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// [`SCHEMA`].
    pub schema: u32,
    /// The service's process id.
    pub pid: u32,
    /// False once the service stopped cleanly.
    pub running: bool,
    /// Start time (seconds since 1970).
    pub started_unix: u64,
    /// Last rewrite (seconds since 1970).
    pub updated_unix: u64,
    /// Seconds since start.
    pub uptime_s: f64,
    /// The model of the last frame (none before the first).
    pub model: Option<ModelStatus>,
    /// Recent frames per second.
    pub fps: f32,
    /// Frames processed.
    pub frames: u64,
    /// Faces in view in the last frame.
    pub faces: usize,
    /// Messages dropped by network sinks (MQTT) since start.
    pub lost_messages: u64,
    /// The MQTT link, when configured.
    pub mqtt: Option<LinkStats>,
    /// The last error event.
    pub last_error: Option<EventStatus>,
    /// The last refused bundle.
    pub last_rejected: Option<Rejection>,
}

/// Why a status file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// No file (no service has run with this path) or unreadable.
    #[error(
        "cannot read the status file {path}: {source} (is the service running, with this store or [status] path?)"
    )]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not a status file.
    #[error("status file {path} is not valid: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What serde said.
        message: String,
    },
}

/// The status as read back, with what the reader can tell about its freshness.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusView {
    /// The file's content.
    #[serde(flatten)]
    pub report: StatusReport,
    /// Whether the process `pid` exists on this machine.
    pub alive: bool,
    /// Seconds since the last rewrite.
    pub age_s: u64,
    /// Running, alive and rewritten within [`STALE_AFTER`].
    pub healthy: bool,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Reads the status file at `path`.
pub fn read(path: &Path) -> Result<StatusView, StatusError> {
    let text = std::fs::read_to_string(path).map_err(|source| StatusError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let report: StatusReport = serde_json::from_str(&text).map_err(|e| StatusError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let alive = Path::new(&format!("/proc/{}", report.pid)).exists();
    let age_s = unix_now().saturating_sub(report.updated_unix);
    let healthy = report.running && alive && age_s <= STALE_AFTER.as_secs();
    Ok(StatusView {
        report,
        alive,
        age_s,
        healthy,
    })
}

/// Where the signer of the running model can be read.
#[derive(Debug, Clone)]
pub enum BundleDir {
    /// A fixed bundle.
    Fixed(PathBuf),
    /// The store's `current/`.
    StoreCurrent(PathBuf),
}

/// The fingerprint in `DIR/manifest.sig` (`ed25519-sig <hex> <fingerprint>`), or `unsigned`.
fn signer_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join(emotion_shared::bundle::SIGNATURE_FILE))
        .ok()
        .and_then(|s| s.split_whitespace().nth(2).map(str::to_string))
        .unwrap_or_else(|| "unsigned".into())
}

/// Keeps the status file current; see the module doc.
pub struct StatusSink {
    path: PathBuf,
    clock: SharedClock,
    interval: Duration,
    start: Instant,
    last_write: Option<Instant>,
    slot: Arc<ModelSlot>,
    bundle: BundleDir,
    mqtt: Option<Arc<Link>>,
    report: StatusReport,
}

impl StatusSink {
    /// A sink writing `path`, reading model details from `slot` and the signer from `bundle`.
    pub fn new(
        path: PathBuf,
        interval: Duration,
        clock: SharedClock,
        slot: Arc<ModelSlot>,
        bundle: BundleDir,
        mqtt: Option<Arc<Link>>,
    ) -> StatusSink {
        let now = unix_now();
        StatusSink {
            path,
            start: clock.now(),
            clock,
            interval,
            last_write: None,
            slot,
            bundle,
            mqtt,
            report: StatusReport {
                schema: SCHEMA,
                pid: std::process::id(),
                running: true,
                started_unix: now,
                updated_unix: now,
                uptime_s: 0.0,
                model: None,
                fps: 0.0,
                frames: 0,
                faces: 0,
                lost_messages: 0,
                mqtt: None,
                last_error: None,
                last_rejected: None,
            },
        }
    }

    /// What the file says now (after the last write).
    pub fn report(&self) -> &StatusReport {
        &self.report
    }

    fn model_status(&self, id: &str) -> ModelStatus {
        let (_, model) = self.slot.get();
        if model.id() != id {
            // The slot moved on already; the next frame will tell.
            return ModelStatus {
                id: id.to_string(),
                name: String::new(),
                version: String::new(),
                sha256: String::new(),
                signer: String::new(),
            };
        }
        let m = model.manifest();
        let dir = match &self.bundle {
            BundleDir::Fixed(d) | BundleDir::StoreCurrent(d) => d,
        };
        ModelStatus {
            id: id.to_string(),
            name: m.model.name.clone(),
            version: m.model.version.clone(),
            sha256: m.onnx.sha256.to_hex(),
            signer: signer_of(dir),
        }
    }

    fn write(&mut self) -> Result<(), SinkError> {
        let now = self.clock.now();
        self.last_write = Some(now);
        self.report.updated_unix = unix_now();
        self.report.uptime_s = now.saturating_duration_since(self.start).as_secs_f64();
        if let Some(link) = &self.mqtt {
            let stats = link.stats();
            self.report.lost_messages = stats.lost;
            self.report.mqtt = Some(stats);
        }
        let io = |source| SinkError::Io {
            sink: format!("status file {}", self.path.display()),
            source,
        };
        let text = serde_json::to_string(&self.report).map_err(|e| io(e.into()))?;
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, &self.path).map_err(io)
    }
}

impl Sink for StatusSink {
    fn frame(&mut self, r: &FrameReport<'_>) -> Result<(), SinkError> {
        self.report.frames = r.frame + 1;
        self.report.fps = (r.fps * 10.0).round() / 10.0;
        self.report.faces = r.faces.len();
        let changed = self.report.model.as_ref().is_none_or(|m| {
            m.id != r.model
                || m.sha256.is_empty()
                || m.sha256 != self.slot.get().1.manifest().onnx.sha256.to_hex()
        });
        if changed {
            let status = self.model_status(r.model);
            self.report.model = Some(status);
        }
        let due = self
            .last_write
            .is_none_or(|t| self.clock.now().saturating_duration_since(t) >= self.interval);
        if changed || due {
            self.write()?;
        }
        Ok(())
    }

    fn status(
        &mut self,
        _t_ms: u32,
        level: Level,
        code: &str,
        text: &str,
    ) -> Result<(), SinkError> {
        let unix = unix_now();
        if level == Level::Error {
            self.report.last_error = Some(EventStatus {
                code: code.to_string(),
                text: text.to_string(),
                unix,
            });
        }
        if code == "model_rejected" {
            let (bundle, reason) = text.split_once(" refused: ").unwrap_or(("", text));
            self.report.last_rejected = Some(Rejection {
                bundle: bundle.to_string(),
                reason: reason.to_string(),
                unix,
            });
        }
        self.write()
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.report.running = false;
        self.write()
    }

    fn name(&self) -> String {
        format!("status:{}", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn default_path_is_next_to_the_store() {
        assert_eq!(
            default_path(Path::new("/var/lib/emotion-edge/models")),
            Path::new("/var/lib/emotion-edge/status.json")
        );
        assert_eq!(
            default_path(Path::new("models")),
            Path::new("./status.json")
        );
        let c = StatusConfig::default();
        assert_eq!(c.resolve(None), None);
    }

    #[test]
    fn writes_at_most_once_an_interval_and_at_once_on_events() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("status.json");
        let clock = ManualClock::new();
        let net = crate::testkit::TinyNet::grey48(1);
        let onnx = net.onnx();
        let model = Arc::new(
            crate::classify::LoadedModel::load(net.manifest(&onnx), &onnx).expect("tiny model"),
        );
        let slot = Arc::new(ModelSlot::new(Arc::clone(&model)));
        let mut sink = StatusSink::new(
            path.clone(),
            Duration::from_secs(1),
            clock.shared(),
            slot,
            BundleDir::Fixed(dir.path().to_path_buf()),
            None,
        );
        let report = |frame| FrameReport {
            t_ms: 0,
            frame,
            faces: &[],
            fps: 9.96,
            model: model.id(),
        };
        sink.frame(&report(0)).expect("frame");
        let first = read(&path).expect("status");
        assert!(first.healthy, "{first:?}");
        assert_eq!(first.report.frames, 1);
        let m = first.report.model.expect("model");
        assert_eq!(m.sha256, model.manifest().onnx.sha256.to_hex());
        assert_eq!(m.signer, "unsigned");
        clock.advance(Duration::from_millis(500));
        sink.frame(&report(1)).expect("frame");
        assert_eq!(read(&path).expect("status").report.frames, 1, "not yet");
        clock.advance(Duration::from_millis(500));
        sink.frame(&report(2)).expect("frame");
        let now = read(&path).expect("status").report;
        assert_eq!(now.frames, 3);
        assert_eq!(now.fps, 10.0);
        assert_eq!(now.uptime_s, 1.0);
        sink.status(
            0,
            Level::Error,
            "model_rejected",
            "v2 refused: bad signature",
        )
        .expect("event");
        let now = read(&path).expect("status").report;
        let r = now.last_rejected.expect("rejection");
        assert_eq!(
            (r.bundle.as_str(), r.reason.as_str()),
            ("v2", "bad signature")
        );
        assert_eq!(now.last_error.expect("error").code, "model_rejected");
        sink.finish().expect("finish");
        let end = read(&path).expect("status");
        assert!(!end.report.running && !end.healthy);
        assert!(!path.with_extension("json.tmp").exists());
    }
}
