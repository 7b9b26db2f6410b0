//! The topics and payloads of the MQTT sink, as pure functions (the spec is the parent
//! module's doc; its examples are checked against these functions by a test).

use emotion_shared::protocol::Level;
use serde_json::{Value, json};

use crate::sink::FrameReport;
use crate::smooth::TrackedFace;

/// Availability payload while the device runs.
pub const ONLINE: &str = "online";
/// Availability payload after a clean stop, and the last will.
pub const OFFLINE: &str = "offline";
/// What Home Assistant publishes on its status topic when it (re)starts.
pub const HA_BIRTH: &str = "online";
/// The `dominant` value when nobody is in view.
pub const NO_FACE: &str = "none";

/// The topics of one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    /// `PREFIX/DEVICE`.
    pub base: String,
    /// The device name as it appears in topics.
    pub device: String,
    /// The Home Assistant discovery prefix, when discovery is on.
    pub discovery: Option<String>,
}

impl Topics {
    /// The topics of `device` under `prefix`, with discovery configs under `discovery`.
    pub fn new(prefix: &str, device: &str, discovery: Option<&str>) -> Topics {
        let prefix = prefix.trim_matches('/');
        let device = sanitize_device(device);
        Topics {
            base: format!("{prefix}/{device}"),
            device,
            discovery: discovery.map(|d| d.trim_matches('/').to_string()),
        }
    }

    /// Retained `online`/`offline`; `offline` is the last will.
    pub fn availability(&self) -> String {
        format!("{}/availability", self.base)
    }

    /// Per-frame results.
    pub fn frame(&self) -> String {
        format!("{}/frame", self.base)
    }

    /// Retained summary: dominant emotion, faces, FPS, model.
    pub fn state(&self) -> String {
        format!("{}/state", self.base)
    }

    /// Events (the serial protocol's `S` codes).
    pub fn status(&self) -> String {
        format!("{}/status", self.base)
    }

    /// Home Assistant's birth/will topic (`homeassistant/status`).
    pub fn ha_status(&self) -> Option<String> {
        self.discovery.as_ref().map(|d| format!("{d}/status"))
    }

    /// The Home Assistant node id and device identifier: `emotion_edge_DEVICE` with every
    /// character outside `[A-Za-z0-9_-]` replaced by `_`.
    pub fn node_id(&self) -> String {
        let d: String = self
            .device
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!("emotion_edge_{d}")
    }

    /// The retained discovery messages (topic, payload): one sensor each for the dominant
    /// emotion, the faces in view, the model and the frame rate, grouped as one device.
    /// Empty when discovery is off.
    pub fn discovery_configs(&self, sw_version: &str) -> Vec<(String, String)> {
        let Some(prefix) = &self.discovery else {
            return Vec::new();
        };
        let node = self.node_id();
        SENSORS
            .iter()
            .map(|s| {
                let mut config = json!({
                    "name": s.name,
                    "unique_id": format!("{node}_{}", s.object),
                    "state_topic": self.state(),
                    "value_template": format!("{{{{ value_json.{} }}}}", s.field),
                    "availability_topic": self.availability(),
                    "payload_available": ONLINE,
                    "payload_not_available": OFFLINE,
                    "icon": s.icon,
                    "device": {
                        "identifiers": [node],
                        "name": format!("emotion-edge {}", self.device),
                        "manufacturer": "emotion",
                        "model": "emotion-edge",
                        "sw_version": sw_version,
                    },
                    "origin": {"name": "emotion-edge", "sw_version": sw_version},
                });
                if let Some(map) = config.as_object_mut() {
                    if let Some(unit) = s.unit {
                        map.insert("unit_of_measurement".into(), unit.into());
                        map.insert("state_class".into(), "measurement".into());
                    }
                    if s.diagnostic {
                        map.insert("entity_category".into(), "diagnostic".into());
                    }
                }
                (
                    format!("{prefix}/sensor/{node}/{}/config", s.object),
                    config.to_string(),
                )
            })
            .collect()
    }
}

/// One Home Assistant sensor read from the state topic.
struct SensorSpec {
    object: &'static str,
    name: &'static str,
    field: &'static str,
    icon: &'static str,
    unit: Option<&'static str>,
    diagnostic: bool,
}

const SENSORS: [SensorSpec; 4] = [
    SensorSpec {
        object: "dominant_emotion",
        name: "Dominant emotion",
        field: "dominant",
        icon: "mdi:emoticon-outline",
        unit: None,
        diagnostic: false,
    },
    SensorSpec {
        object: "faces",
        name: "Faces in view",
        field: "faces",
        icon: "mdi:account-group",
        unit: Some("faces"),
        diagnostic: false,
    },
    SensorSpec {
        object: "model",
        name: "Model",
        field: "model",
        icon: "mdi:brain",
        unit: None,
        diagnostic: true,
    },
    SensorSpec {
        object: "fps",
        name: "Frame rate",
        field: "fps",
        icon: "mdi:speedometer",
        unit: Some("fps"),
        diagnostic: true,
    },
];

/// A device name fit for one topic level: characters other than `[A-Za-z0-9._-]` (MQTT's
/// `/`, `+`, `#` among them) become `_`; an empty name becomes `device`.
pub fn sanitize_device(name: &str) -> String {
    let s: String = name
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() { "device".into() } else { s }
}

/// The emotion with the highest summed confidence over the faces in view ([`NO_FACE`] when
/// there are none); ties go to the first in FER2013 order.
pub fn dominant(faces: &[TrackedFace]) -> &'static str {
    let mut sums = [0.0f32; emotion_shared::NUM_CLASSES];
    for f in faces {
        sums[f.label.index()] += f.confidence;
    }
    let mut best: Option<(usize, f32)> = None;
    for (i, s) in sums.iter().enumerate() {
        if *s > 0.0 && best.is_none_or(|(_, b)| *s > b) {
            best = Some((i, *s));
        }
    }
    match best {
        Some((i, _)) => emotion_shared::Emotion::ALL[i].name(),
        None if faces.is_empty() => NO_FACE,
        // Faces with zero confidence: the first face's label.
        None => faces[0].label.name(),
    }
}

fn round(v: f32, places: i32) -> f64 {
    let k = 10f64.powi(places);
    (f64::from(v) * k).round() / k
}

/// The `frame` payload.
pub fn frame_payload(r: &FrameReport<'_>) -> Value {
    let faces: Vec<Value> = r
        .faces
        .iter()
        .map(|f| {
            json!({
                "id": f.id,
                "label": f.label.name(),
                "confidence": round(f.confidence, 3),
                "box": [f.bbox.x, f.bbox.y, f.bbox.w, f.bbox.h],
            })
        })
        .collect();
    json!({
        "t_ms": r.t_ms,
        "frame": r.frame,
        "fps": round(r.fps, 1),
        "model": r.model,
        "faces": faces,
    })
}

/// The retained summary a frame leaves.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    /// [`dominant`] of the frame's faces.
    pub dominant: &'static str,
    /// Faces in view.
    pub faces: usize,
    /// Recent frames per second.
    pub fps: f32,
    /// The model's id.
    pub model: String,
}

impl State {
    /// The summary of one frame.
    pub fn of(r: &FrameReport<'_>) -> State {
        State {
            dominant: dominant(r.faces),
            faces: r.faces.len(),
            fps: r.fps,
            model: r.model.to_string(),
        }
    }

    /// Whether `other` says something different (the frame rate aside).
    pub fn differs(&self, other: &State) -> bool {
        self.dominant != other.dominant || self.faces != other.faces || self.model != other.model
    }

    /// The `state` payload.
    pub fn payload(&self) -> Value {
        json!({
            "dominant": self.dominant,
            "faces": self.faces,
            "fps": round(self.fps, 1),
            "model": self.model,
        })
    }
}

/// The level's word in `status` payloads.
pub fn level_word(level: Level) -> &'static str {
    match level {
        Level::Info => "info",
        Level::Warning => "warning",
        Level::Error => "error",
    }
}

/// The `status` payload of one event.
pub fn status_payload(t_ms: u32, level: Level, code: &str, text: &str) -> Value {
    json!({"t_ms": t_ms, "level": level_word(level), "code": code, "text": text})
}
