//! MQTT: results and events to an existing broker (Mosquitto, EMQX, ...), with Home Assistant
//! discovery. This module doc is the specification of the topics and payloads; the examples
//! below are checked against the code by a test (`the_spec_examples_are_what_the_code_sends`).
//!
//! # Connection
//!
//! Configured in `[mqtt]` (see [`MqttConfig`]): `host` (no host: no MQTT), `port` (1883, or
//! 8883 with TLS), `device` (default: the host name; the client id is `emotion-edge-DEVICE`),
//! `username` and `password` or `password_file`, `ca_file` (TLS, server checked against that
//! CA). MQTT 3.1.1, clean session, keep-alive `keep_alive_s`.
//!
//! The client runs on a thread of its own. The frame loop only ever puts a message into a
//! bounded queue (`queue` messages) without waiting: while the broker is unreachable, or the
//! queue is full, messages are dropped and counted. The client reconnects with back-off
//! (doubling from 0.5 s to `reconnect_max_s`). Each time the broker accepts it, it publishes
//! availability, the discovery configs and the latest state, the last [`link::HELD_EVENTS`]
//! events that happened while it was away, and then a `mqtt_lost` event saying how many
//! messages were dropped.
//!
//! # Topics
//!
//! All under `PREFIX/DEVICE/` (`topic_prefix`, default `emotion`; one tree per device, the
//! device name with characters other than `[A-Za-z0-9._-]` replaced by `_`):
//!
//! | topic | retained | QoS | payload |
//! |-------|----------|-----|---------|
//! | `availability` | yes | 1 | `online` once connected; `offline` after a clean stop and as the last will (the broker publishes it when the device vanishes) |
//! | `state` | yes | 1 | the summary: dominant emotion, faces in view, FPS, model; sent when the dominant emotion, the face count or the model changes (at most every `state_interval_s`) and at least every `state_heartbeat_s` |
//! | `frame` | no | 0 | every face of one frame, at most `frame_rate` frames a second (0: none) |
//! | `status` | no | 1 | one event: the codes of the serial protocol's `S` lines |
//!
//! ## `state`
//!
//! `dominant` is the emotion with the highest summed confidence over the faces in view, or
//! `none`; `faces` the number of faces; `fps` the recent frame rate; `model` the model's id.
//!
//! Example (`state`):
//!
//! ```json
//! {"dominant":"happy","faces":2,"fps":14.8,"model":"mini-xception 1.2.0 (int8)"}
//! ```
//!
//! ## `frame`
//!
//! `t_ms` and `frame` as on the serial line (milliseconds since start, wrapping at 2³²;
//! frame counter); per face its track `id`, steady `label`, `confidence` (0 to 1) and `box`
//! `[x, y, w, h]` in pixels of the camera frame.
//!
//! Example (`frame`):
//!
//! ```json
//! {"t_ms":1200,"frame":36,"fps":14.8,"model":"mini-xception 1.2.0 (int8)","faces":[{"id":3,"label":"happy","confidence":0.873,"box":[120,80,96,96]},{"id":4,"label":"sad","confidence":0.5,"box":[300,90,80,80]}]}
//! ```
//!
//! ## `status`
//!
//! `level` is `info`, `warning` or `error`; `code` one of the serial protocol's status codes
//! (`start`, `stop`, `model`, `model_rejected`, `model_rollback`, `rollback_failed`,
//! `camera_lost`, `camera_back`, `source_failed`, ...) or `mqtt_lost`; `text` for people.
//! The set of codes is open, as on the serial line.
//!
//! Example (`status`):
//!
//! ```json
//! {"t_ms":5012,"level":"error","code":"model_rejected","text":"v2 refused: signature does not verify"}
//! ```
//!
//! # Home Assistant
//!
//! With `discovery = true` (the default) the device publishes one retained config per sensor
//! under `DISCOVERY/sensor/emotion_edge_DEVICE/OBJECT/config` (`discovery_prefix`, default
//! `homeassistant`), all read from the `state` topic with a value template and grouped as
//! one device (`identifiers: ["emotion_edge_DEVICE"]`):
//!
//! | object | name | value |
//! |--------|------|-------|
//! | `dominant_emotion` | Dominant emotion | `{{ value_json.dominant }}` |
//! | `faces` | Faces in view | `{{ value_json.faces }}` (unit `faces`) |
//! | `model` | Model | `{{ value_json.model }}` (diagnostic) |
//! | `fps` | Frame rate | `{{ value_json.fps }}` (unit `fps`, diagnostic) |
//!
//! Entities are available while `availability` says `online`. The device subscribes to
//! `DISCOVERY/status` and publishes the configs, availability and state again when Home
//! Assistant announces itself there with `online` (after a Home Assistant restart).
//!
//! Example (`homeassistant/sensor/emotion_edge_pi-lab-3/dominant_emotion/config`):
//!
//! ```json
//! {"name":"Dominant emotion","unique_id":"emotion_edge_pi-lab-3_dominant_emotion","state_topic":"emotion/pi-lab-3/state","value_template":"{{ value_json.dominant }}","availability_topic":"emotion/pi-lab-3/availability","payload_available":"online","payload_not_available":"offline","icon":"mdi:emoticon-outline","device":{"identifiers":["emotion_edge_pi-lab-3"],"name":"emotion-edge pi-lab-3","manufacturer":"emotion","model":"emotion-edge","sw_version":"0.1.0"},"origin":{"name":"emotion-edge","sw_version":"0.1.0"}}
//! ```
//!
//! # Commands
//!
//! None: the device subscribes to nothing but Home Assistant's status, and acts on nothing
//! it receives over MQTT. A broker ACL for a device only needs
//! `topic write PREFIX/DEVICE/#`, `topic write DISCOVERY/sensor/emotion_edge_DEVICE/#` and
//! `topic read DISCOVERY/status`.

use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use emotion_shared::protocol::Level;
use rumqttc::{Client, LastWill, MqttOptions, QoS, TlsConfiguration, Transport};
use serde::{Deserialize, Serialize};

use super::{FrameReport, Sink, SinkError};
use crate::clock::SharedClock;

pub mod link;
pub mod messages;

pub use link::{Link, LinkStats};
pub use messages::Topics;

/// `[mqtt]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttConfig {
    /// Broker host name or address; none: no MQTT.
    pub host: Option<String>,
    /// Broker port (default 1883, 8883 with `ca_file`).
    pub port: Option<u16>,
    /// The device's name in topics and the client id (default: the host name).
    pub device: Option<String>,
    /// First topic level.
    pub topic_prefix: String,
    /// User name.
    pub username: Option<String>,
    /// Password (prefer `password_file`).
    pub password: Option<String>,
    /// A file holding the password (trailing newline ignored).
    pub password_file: Option<PathBuf>,
    /// PEM CA certificate(s): connect with TLS and check the broker against them.
    pub ca_file: Option<PathBuf>,
    /// Most `frame` messages per second (0: none).
    pub frame_rate: f32,
    /// Shortest time between two `state` messages.
    pub state_interval_s: f32,
    /// Longest time without a `state` message.
    pub state_heartbeat_s: f32,
    /// Messages that may wait for the broker.
    pub queue: usize,
    /// MQTT keep-alive.
    pub keep_alive_s: u64,
    /// Longest wait between reconnection attempts.
    pub reconnect_max_s: f32,
    /// Publish Home Assistant discovery configs.
    pub discovery: bool,
    /// Home Assistant's discovery prefix.
    pub discovery_prefix: String,
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            host: None,
            port: None,
            device: None,
            topic_prefix: "emotion".into(),
            username: None,
            password: None,
            password_file: None,
            ca_file: None,
            frame_rate: 2.0,
            state_interval_s: 1.0,
            state_heartbeat_s: 60.0,
            queue: 64,
            keep_alive_s: 15,
            reconnect_max_s: 30.0,
            discovery: true,
            discovery_prefix: "homeassistant".into(),
        }
    }
}

impl MqttConfig {
    /// Checks ranges and combinations.
    pub fn validate(&self) -> Result<(), String> {
        if self.host.is_none() {
            return Ok(());
        }
        if self.password.is_some() && self.password_file.is_some() {
            return Err("mqtt: set password or password_file, not both".into());
        }
        if (self.password.is_some() || self.password_file.is_some()) && self.username.is_none() {
            return Err("mqtt: a password needs a username".into());
        }
        if self.queue < 8 {
            return Err("mqtt.queue must be at least 8".into());
        }
        if !(self.frame_rate >= 0.0 && self.frame_rate.is_finite()) {
            return Err("mqtt.frame_rate must be >= 0".into());
        }
        for (name, v) in [
            ("state_interval_s", self.state_interval_s),
            ("state_heartbeat_s", self.state_heartbeat_s),
            ("reconnect_max_s", self.reconnect_max_s),
        ] {
            if !(v > 0.0 && v.is_finite()) {
                return Err(format!("mqtt.{name} must be > 0"));
            }
        }
        if self.topic_prefix.trim_matches('/').is_empty() || self.topic_prefix.contains(['+', '#'])
        {
            return Err("mqtt.topic_prefix must be a topic without + or #".into());
        }
        if self.keep_alive_s < 5 {
            return Err("mqtt.keep_alive_s must be at least 5".into());
        }
        Ok(())
    }

    /// The device name: `device`, or the host name.
    pub fn device_name(&self) -> String {
        self.device.clone().unwrap_or_else(host_name)
    }
}

/// This machine's host name (`/proc/sys/kernel/hostname`), or `device`.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "device".into())
}

fn config_error(message: String) -> SinkError {
    SinkError::Io {
        sink: "mqtt".into(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, message),
    }
}

fn tls_config(ca_file: &std::path::Path) -> Result<TlsConfiguration, SinkError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let pem = std::fs::read(ca_file).map_err(|source| SinkError::Io {
        sink: format!("mqtt CA file {}", ca_file.display()),
        source,
    })?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| config_error(format!("CA file {}: {e}", ca_file.display())))?;
        roots
            .add(cert)
            .map_err(|e| config_error(format!("CA file {}: {e}", ca_file.display())))?;
    }
    if roots.is_empty() {
        return Err(config_error(format!(
            "CA file {} holds no PEM certificate",
            ca_file.display()
        )));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConfiguration::Rustls(Arc::new(config)))
}

/// Publishes frames, state and events to a broker; see the module doc.
pub struct MqttSink {
    client: Client,
    link: Arc<Link>,
    topics: Topics,
    thread: Option<JoinHandle<()>>,
    clock: SharedClock,
    frame_every: Option<Duration>,
    state_interval: Duration,
    state_heartbeat: Duration,
    last_frame: Option<Instant>,
    last_state: Option<(Instant, messages::State)>,
}

impl MqttSink {
    /// Starts the connection thread for `config` (which must name a host); never waits for
    /// the broker.
    pub fn start(config: &MqttConfig, clock: SharedClock) -> Result<MqttSink, SinkError> {
        config.validate().map_err(config_error)?;
        let host = config
            .host
            .clone()
            .ok_or_else(|| config_error("mqtt.host is not set".into()))?;
        let device = config.device_name();
        let topics = Topics::new(
            &config.topic_prefix,
            &device,
            config.discovery.then_some(config.discovery_prefix.as_str()),
        );
        let port = config
            .port
            .unwrap_or(if config.ca_file.is_some() { 8883 } else { 1883 });
        let mut options = MqttOptions::new(format!("emotion-edge-{}", topics.device), host, port);
        options
            .set_keep_alive(Duration::from_secs(config.keep_alive_s))
            .set_clean_session(true)
            .set_last_will(LastWill::new(
                topics.availability(),
                messages::OFFLINE,
                QoS::AtLeastOnce,
                true,
            ));
        if let Some(user) = &config.username {
            let password = match (&config.password, &config.password_file) {
                (Some(p), _) => p.clone(),
                (None, Some(file)) => std::fs::read_to_string(file)
                    .map_err(|source| SinkError::Io {
                        sink: format!("mqtt password file {}", file.display()),
                        source,
                    })?
                    .trim_end_matches(['\r', '\n'])
                    .to_string(),
                (None, None) => String::new(),
            };
            options.set_credentials(user.clone(), password);
        }
        if let Some(ca) = &config.ca_file {
            options.set_transport(Transport::tls_with_config(tls_config(ca)?));
        }
        let (client, connection) = Client::new(options, config.queue);
        let link = Arc::new(Link::default());
        let announce = link::Announce {
            topics: topics.clone(),
            sw_version: env!("CARGO_PKG_VERSION").into(),
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs_f32(config.reconnect_max_s),
        };
        let thread = {
            let (client, link, clock) = (client.clone(), Arc::clone(&link), Arc::clone(&clock));
            std::thread::Builder::new()
                .name("mqtt".into())
                .spawn(move || link::run(client, connection, link, announce, clock))
                .map_err(|source| SinkError::Io {
                    sink: "mqtt (cannot start its thread)".into(),
                    source,
                })?
        };
        tracing::info!(topics = %topics.base, "MQTT to {}:{port}", config.host.as_deref().unwrap_or(""));
        Ok(MqttSink {
            client,
            link,
            topics,
            thread: Some(thread),
            clock,
            frame_every: (config.frame_rate > 0.0)
                .then(|| Duration::from_secs_f32(1.0 / config.frame_rate)),
            state_interval: Duration::from_secs_f32(config.state_interval_s),
            state_heartbeat: Duration::from_secs_f32(config.state_heartbeat_s),
            last_frame: None,
            last_state: None,
        })
    }

    /// The link's shared state (counters for status reports).
    pub fn link(&self) -> Arc<Link> {
        Arc::clone(&self.link)
    }

    /// The device's topics.
    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    /// Publishes without waiting, or counts the message as lost.
    fn try_send(&self, topic: String, qos: QoS, retain: bool, payload: String) {
        if !self.link.connected() {
            self.link.lose();
            return;
        }
        match self.client.try_publish(topic, qos, retain, payload) {
            Ok(()) => self.link.published(),
            Err(_) => self.link.lose(),
        }
    }
}

/// Whether something last done at `last` may be done again at `now`, `every` apart.
fn due(last: Option<Instant>, now: Instant, every: Duration) -> bool {
    last.is_none_or(|t| now.saturating_duration_since(t) >= every)
}

impl Sink for MqttSink {
    fn frame(&mut self, report: &FrameReport<'_>) -> Result<(), SinkError> {
        let now = self.clock.now();
        if let Some(every) = self.frame_every
            && due(self.last_frame, now, every)
        {
            self.last_frame = Some(now);
            self.try_send(
                self.topics.frame(),
                QoS::AtMostOnce,
                false,
                messages::frame_payload(report).to_string(),
            );
        }
        let state = messages::State::of(report);
        let send = match &self.last_state {
            None => true,
            Some((at, last)) => {
                let since = now.saturating_duration_since(*at);
                (state.differs(last) && since >= self.state_interval)
                    || since >= self.state_heartbeat
            }
        };
        if send {
            let payload = state.payload().to_string();
            self.link.set_state(payload.clone());
            self.try_send(self.topics.state(), QoS::AtLeastOnce, true, payload);
            self.last_state = Some((now, state));
        }
        Ok(())
    }

    fn status(&mut self, t_ms: u32, level: Level, code: &str, text: &str) -> Result<(), SinkError> {
        let payload = messages::status_payload(t_ms, level, code, text).to_string();
        if !self.link.connected() {
            self.link.hold(payload);
            return Ok(());
        }
        match self
            .client
            .try_publish(self.topics.status(), QoS::AtLeastOnce, false, payload)
        {
            Ok(()) => self.link.published(),
            Err(_) => self.link.lose(),
        }
        Ok(())
    }

    /// Says `offline` (retained), disconnects and waits up to two seconds for the queue to
    /// drain; a broker that is away is not waited for.
    fn finish(&mut self) -> Result<(), SinkError> {
        if self.link.connected() {
            let _ = self.client.try_publish(
                self.topics.availability(),
                QoS::AtLeastOnce,
                true,
                messages::OFFLINE,
            );
            let _ = self.client.try_disconnect();
        }
        self.link.stop();
        if let Some(thread) = self.thread.take() {
            let deadline = Instant::now() + Duration::from_secs(2);
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
        let stats = self.link.stats();
        tracing::info!(
            published = stats.published,
            lost = stats.lost,
            "MQTT finished"
        );
        Ok(())
    }

    fn name(&self) -> String {
        format!("mqtt:{}", self.topics.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::FaceBox;
    use crate::smooth::TrackedFace;
    use emotion_shared::Emotion;
    use serde_json::Value;

    /// The ```json blocks of this module's doc, each with the topic named in the
    /// `Example (...)` line before it.
    fn spec_examples() -> Vec<(String, Value)> {
        let source = include_str!("mod.rs");
        let doc: Vec<&str> = source
            .lines()
            .take_while(|l| l.starts_with("//!"))
            .map(|l| l.trim_start_matches("//!").trim_start())
            .collect();
        let mut out = Vec::new();
        let mut topic = None;
        let mut i = 0;
        while i < doc.len() {
            if let Some(rest) = doc[i].strip_prefix("Example (`") {
                topic = rest.split('`').next().map(str::to_string);
            }
            if doc[i] == "```json" {
                let body = doc[i + 1];
                let t = topic
                    .take()
                    .expect("an Example (`topic`) line before each block");
                out.push((t, serde_json::from_str(body).expect("example is JSON")));
                i += 1;
            }
            i += 1;
        }
        out
    }

    fn face(id: u32, label: Emotion, confidence: f32, b: [u32; 4]) -> TrackedFace {
        TrackedFace {
            id,
            bbox: FaceBox::new(b[0], b[1], b[2], b[3]),
            label,
            confidence,
            probabilities: [0.0; 7],
            raw_label: label,
        }
    }

    #[test]
    fn the_spec_examples_are_what_the_code_sends() {
        let faces = [
            face(3, Emotion::Happy, 0.873, [120, 80, 96, 96]),
            face(4, Emotion::Sad, 0.5, [300, 90, 80, 80]),
        ];
        let report = FrameReport {
            t_ms: 1200,
            frame: 36,
            faces: &faces,
            fps: 14.83,
            model: "mini-xception 1.2.0 (int8)",
        };
        let topics = Topics::new("emotion", "pi-lab-3", Some("homeassistant"));
        let examples = spec_examples();
        assert_eq!(examples.len(), 4, "{examples:?}");
        for (topic, example) in examples {
            let ours: Value = match topic.as_str() {
                "state" => messages::State::of(&report).payload(),
                "frame" => messages::frame_payload(&report),
                "status" => messages::status_payload(
                    5012,
                    Level::Error,
                    "model_rejected",
                    "v2 refused: signature does not verify",
                ),
                t => {
                    let configs = topics.discovery_configs("0.1.0");
                    let (_, payload) = configs
                        .iter()
                        .find(|(name, _)| name == t)
                        .unwrap_or_else(|| panic!("no discovery config {t} in {configs:?}"));
                    serde_json::from_str(payload).expect("json")
                }
            };
            assert_eq!(ours, example, "topic {topic}");
        }
    }

    #[test]
    fn topics_and_discovery_group_one_device() {
        let t = Topics::new("/lab/", "pi 3/#", Some("homeassistant"));
        assert_eq!(t.base, "lab/pi_3__");
        assert_eq!(t.availability(), "lab/pi_3__/availability");
        assert_eq!(t.ha_status().as_deref(), Some("homeassistant/status"));
        let configs = t.discovery_configs("9.9.9");
        assert_eq!(configs.len(), 4);
        for (topic, payload) in &configs {
            assert!(
                topic.starts_with("homeassistant/sensor/emotion_edge_pi_3__/"),
                "{topic}"
            );
            let v: Value = serde_json::from_str(payload).expect("json");
            assert_eq!(v["device"]["identifiers"][0], "emotion_edge_pi_3__");
            assert_eq!(v["availability_topic"], "lab/pi_3__/availability");
            assert_eq!(v["state_topic"], "lab/pi_3__/state");
        }
        assert!(
            Topics::new("e", "d", None)
                .discovery_configs("1")
                .is_empty()
        );
    }

    #[test]
    fn dominant_weighs_confidence_and_says_none_without_faces() {
        assert_eq!(messages::dominant(&[]), "none");
        let faces = [
            face(1, Emotion::Sad, 0.4, [0, 0, 1, 1]),
            face(2, Emotion::Sad, 0.4, [0, 0, 1, 1]),
            face(3, Emotion::Happy, 0.7, [0, 0, 1, 1]),
        ];
        assert_eq!(messages::dominant(&faces), "sad");
    }

    #[test]
    fn a_broker_that_is_not_there_costs_the_frame_loop_nothing() {
        // Nothing listens on port 1 of loopback: every message is counted as lost, none waits.
        let clock = crate::clock::ManualClock::new();
        let config = MqttConfig {
            host: Some("127.0.0.1".into()),
            port: Some(1),
            device: Some("t".into()),
            frame_rate: 1000.0,
            state_interval_s: 0.001,
            ..MqttConfig::default()
        };
        let mut sink = MqttSink::start(&config, clock.shared()).expect("starts");
        let faces = [face(1, Emotion::Happy, 0.9, [0, 0, 4, 4])];
        let t = Instant::now();
        for i in 0..1000 {
            clock.advance(Duration::from_millis(2));
            let faces = if i % 2 == 0 { &faces[..] } else { &[] };
            sink.frame(&FrameReport {
                t_ms: i,
                frame: u64::from(i),
                faces,
                fps: 10.0,
                model: "m",
            })
            .expect("frame");
        }
        for _ in 0..40 {
            sink.status(0, Level::Info, "x", "y").expect("status");
        }
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        let stats = sink.link().stats();
        assert!(!stats.connected);
        // 1000 frames + 1000 states + 8 events pushed out of the 32 held.
        assert_eq!(stats.lost, 2008, "{stats:?}");
        sink.finish().expect("finish");
    }

    #[test]
    fn config_is_checked() {
        let mut c = MqttConfig {
            host: Some("b".into()),
            ..MqttConfig::default()
        };
        c.validate().expect("defaults are valid");
        c.password = Some("p".into());
        assert!(c.validate().unwrap_err().contains("username"));
        c.username = Some("u".into());
        c.validate().expect("valid");
        c.topic_prefix = "a/#".into();
        assert!(c.validate().is_err());
    }
}
