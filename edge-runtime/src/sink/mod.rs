//! Where results leave the device: the serial line ([`serial`], the shared wire protocol),
//! a display ([`display`]: SSD1306 OLED or PNG files), JSON lines ([`json`]), an MQTT broker
//! ([`mqtt`], with Home Assistant discovery) and the status file ([`crate::service::status`]).
//!
//! Every sink takes the same [`FrameReport`] and status events; a sink whose device fails
//! deals with it itself (re-open, back-off) and never stops the pipeline. [`Sinks::from_config`]
//! builds the configured ones.
//!
//! A new sink is a module here implementing [`Sink`], a section of its own in
//! [`crate::config::Config`] and a few lines in [`Sinks::from_config`].

use std::sync::Arc;

use emotion_shared::protocol::Level;
use serde::Serialize;

use crate::clock::SharedClock;
use crate::config::{Config, DisplayTarget};
use crate::smooth::TrackedFace;

pub mod display;
pub mod json;
pub mod mqtt;
pub mod serial;

/// What happened in one processed frame, after smoothing.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct FrameReport<'a> {
    /// Capture time, milliseconds since the runtime started (wraps after 49.7 days).
    pub t_ms: u32,
    /// Frame counter since start.
    pub frame: u64,
    /// Faces with their steady labels.
    pub faces: &'a [TrackedFace],
    /// Recent frames per second.
    pub fps: f32,
    /// The model that classified them.
    pub model: &'a str,
}

/// Why a sink failed in a way the pipeline should log.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Writing failed.
    #[error("{sink}: {source}")]
    Io {
        /// Which sink.
        sink: String,
        /// Why.
        source: std::io::Error,
    },
    /// The display failed.
    #[error("display {0}")]
    Display(String),
}

/// A destination for results.
pub trait Sink {
    /// Reports one frame.
    fn frame(&mut self, report: &FrameReport<'_>) -> Result<(), SinkError>;
    /// Reports an event (start, model swap, camera lost...).
    fn status(&mut self, t_ms: u32, level: Level, code: &str, text: &str) -> Result<(), SinkError>;
    /// Flushes and closes (end of run).
    fn finish(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
    /// A name for logs.
    fn name(&self) -> String;
}

/// Fans out to several sinks; a failing sink is logged and the others carry on.
#[derive(Default)]
pub struct Sinks {
    sinks: Vec<Box<dyn Sink>>,
    mqtt: Option<Arc<mqtt::Link>>,
}

impl Sinks {
    /// No sinks.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a sink.
    pub fn push(&mut self, sink: Box<dyn Sink>) {
        self.sinks.push(sink);
    }

    /// How many sinks.
    pub fn len(&self) -> usize {
        self.sinks.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }

    /// The MQTT link's counters, when an MQTT sink is configured.
    pub fn mqtt_link(&self) -> Option<Arc<mqtt::Link>> {
        self.mqtt.clone()
    }

    /// The sinks the configuration asks for: serial (`[serial] port`), display
    /// (`[display] target`), JSON lines (`[json] path`) and MQTT (`[mqtt] host`), each timed
    /// by `clock`. A serial port, display or broker that is not there yet is not an error:
    /// those sinks connect later with back-off. A PNG folder or JSON file that cannot be
    /// created is.
    pub fn from_config(config: &Config, clock: SharedClock) -> Result<Sinks, SinkError> {
        let mut sinks = Sinks::new();
        if let Some(port) = &config.serial.port {
            sinks.push(Box::new(serial::SerialSink::with_clock(
                serial::SerialPortOpener {
                    path: port.clone(),
                    baud: config.serial.baud,
                },
                serial::SerialLimits {
                    baud: config.serial.baud,
                    max_fps: config.serial.max_fps,
                },
                Arc::clone(&clock),
            )));
        }
        if let Some(target) = &config.display.target {
            let target =
                DisplayTarget::parse(target).map_err(|e| SinkError::Display(e.to_string()))?;
            let max_fps = config.display.max_fps;
            let sink: Box<dyn Sink> = match target {
                DisplayTarget::Png(dir) => {
                    let panel = display::PngPanel::new(&dir).map_err(|source| SinkError::Io {
                        sink: format!("display folder {}", dir.display()),
                        source,
                    })?;
                    Box::new(display::DisplaySink::with_clock(
                        panel,
                        max_fps,
                        Arc::clone(&clock),
                    ))
                }
                DisplayTarget::Ssd1306 { bus, address } => {
                    Box::new(display::DisplaySink::with_clock(
                        display::oled::OledPanel::new(bus, address),
                        max_fps,
                        Arc::clone(&clock),
                    ))
                }
            };
            sinks.push(sink);
        }
        match config.json.path.as_deref() {
            None => {}
            Some("-") => sinks.push(Box::new(json::JsonSink::new(std::io::stdout(), "stdout"))),
            Some(path) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| SinkError::Io {
                        sink: format!("JSON output file {path} (cannot open it)"),
                        source,
                    })?;
                sinks.push(Box::new(json::JsonSink::new(
                    std::io::BufWriter::new(file),
                    path,
                )));
            }
        }
        if config.mqtt.host.is_some() {
            let sink = mqtt::MqttSink::start(&config.mqtt, Arc::clone(&clock))?;
            sinks.mqtt = Some(sink.link());
            sinks.push(Box::new(sink));
        }
        if sinks.is_empty() {
            tracing::warn!(
                "no output configured (--serial, --display, --json, --mqtt-host): results go nowhere"
            );
        }
        Ok(sinks)
    }

    /// Reports a frame to every sink.
    pub fn frame(&mut self, report: &FrameReport<'_>) {
        for s in &mut self.sinks {
            if let Err(e) = s.frame(report) {
                tracing::warn!(sink = %s.name(), "{e}");
            }
        }
    }

    /// Reports a status event to every sink (and the log).
    pub fn status(&mut self, t_ms: u32, level: Level, code: &str, text: &str) {
        match level {
            Level::Info => tracing::info!(code, "{text}"),
            Level::Warning => tracing::warn!(code, "{text}"),
            Level::Error => tracing::error!(code, "{text}"),
        }
        for s in &mut self.sinks {
            if let Err(e) = s.status(t_ms, level, code, text) {
                tracing::warn!(sink = %s.name(), "{e}");
            }
        }
    }

    /// Finishes every sink.
    pub fn finish(&mut self) {
        for s in &mut self.sinks {
            if let Err(e) = s.finish() {
                tracing::warn!(sink = %s.name(), "{e}");
            }
        }
    }
}
