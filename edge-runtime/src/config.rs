//! The service configuration: one TOML file (`emotion-edge run --config FILE`) with a section
//! per stage; every field has a default, unknown fields are refused, and command-line options
//! override what the file says.
//!
//! ```toml
//! [source]
//! kind = "v4l2"            # synthetic | files | stdin | v4l2
//! [source.v4l2]
//! device = "/dev/video0"
//! width = 640
//! height = 480
//! fps = 30
//! format = "mjpeg"         # mjpeg | yuyv
//! [detect]
//! detector = "rustface"    # full-frame | rustface
//! min_face = 40
//! every = 3
//! [model]
//! store = "/var/lib/emotion-edge/models"
//! public_key = "/etc/emotion-edge/bundle.pub"
//! [serial]
//! port = "/dev/ttyUSB0"
//! baud = 115200
//! [display]
//! target = "ssd1306:/dev/i2c-1@0x3c"   # or "png:/tmp/display"
//! [json]
//! path = "-"               # stdout, or a file
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::detect::DetectConfig;
use crate::smooth::SmoothConfig;
use crate::source::synthetic::SyntheticConfig;

/// Where frames come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// The synthetic camera.
    Synthetic,
    /// Image files, folders, globs (`source.files`).
    Files,
    /// MJPEG on standard input (`rpicam-vid --codec mjpeg -o -`).
    Stdin,
    /// A V4L2 camera (`source.v4l2`).
    V4l2,
}

/// `[source]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourceConfig {
    /// Which source.
    pub kind: SourceKind,
    /// For `files`: files, folders, glob patterns.
    pub files: Vec<String>,
    /// For `files`: start over at the end.
    pub repeat: bool,
    /// For `synthetic`.
    pub synthetic: SyntheticConfig,
    /// For `v4l2`.
    #[cfg(feature = "v4l")]
    pub v4l2: crate::source::v4l2::V4l2Config,
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig {
            kind: SourceKind::Synthetic,
            files: vec![],
            repeat: false,
            synthetic: SyntheticConfig::default(),
            #[cfg(feature = "v4l")]
            v4l2: Default::default(),
        }
    }
}

/// `[model]`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// A single bundle directory (no live updates).
    pub bundle: Option<PathBuf>,
    /// A model store root (`inbox/`, `current/`, `previous/`, `rejected/`): live updates.
    pub store: Option<PathBuf>,
    /// The public key bundles must be signed with.
    pub public_key: Option<PathBuf>,
    /// Accept unsigned bundles (development only; logged loudly).
    pub allow_unsigned: bool,
    /// Inbox poll interval in milliseconds.
    pub poll_ms: u64,
}

/// `[serial]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SerialConfig {
    /// Device; none: no serial output.
    pub port: Option<String>,
    /// Baud rate.
    pub baud: u32,
    /// Most frames per second to report.
    pub max_fps: f32,
}

impl Default for SerialConfig {
    fn default() -> Self {
        SerialConfig {
            port: None,
            baud: 115_200,
            max_fps: 10.0,
        }
    }
}

/// `[display]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DisplayConfig {
    /// `ssd1306:/dev/i2c-1@0x3c`, `ssd1306` (that default), `png:DIR`; none: no display.
    pub target: Option<String>,
    /// Most updates per second.
    pub max_fps: f32,
}

impl Default for DisplayConfig {
    fn default() -> Self {
        DisplayConfig {
            target: None,
            max_fps: 5.0,
        }
    }
}

/// `[json]`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JsonConfig {
    /// `-` for standard output, or a file to append to; none: no JSON.
    pub path: Option<String>,
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Frames.
    pub source: SourceConfig,
    /// Faces.
    pub detect: DetectConfig,
    /// Steadiness.
    pub smooth: SmoothConfig,
    /// The model.
    pub model: ModelConfig,
    /// Serial output.
    pub serial: SerialConfig,
    /// Display output.
    pub display: DisplayConfig,
    /// JSON lines output.
    pub json: JsonConfig,
    /// Stop after this many frames (0: run until stopped or the source ends).
    pub max_frames: u64,
}

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// TOML syntax or an unknown/mistyped field.
    #[error("config file {path}: {message}")]
    Parse {
        /// File.
        path: PathBuf,
        /// What toml said (names the field and line).
        message: String,
    },
    /// A value out of range or options that do not fit together.
    #[error("configuration: {0}")]
    Invalid(String),
}

/// A display target parsed from `display.target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisplayTarget {
    /// The OLED on an I2C bus at an address.
    Ssd1306 {
        /// Bus device.
        bus: String,
        /// 7-bit address.
        address: u8,
    },
    /// PNG files in a folder.
    Png(PathBuf),
}

impl DisplayTarget {
    /// Parses `ssd1306`, `ssd1306:/dev/i2c-1`, `ssd1306:/dev/i2c-1@0x3d`, `png:DIR`.
    pub fn parse(s: &str) -> Result<DisplayTarget, ConfigError> {
        if let Some(dir) = s.strip_prefix("png:") {
            if dir.is_empty() {
                return Err(ConfigError::Invalid(
                    "display target png: needs a folder, e.g. png:/tmp/display".into(),
                ));
            }
            return Ok(DisplayTarget::Png(PathBuf::from(dir)));
        }
        if let Some(rest) = s.strip_prefix("ssd1306") {
            let rest = rest.strip_prefix(':').unwrap_or(rest);
            let (bus, addr) = match rest.split_once('@') {
                Some((b, a)) => (b, Some(a)),
                None => (rest, None),
            };
            let bus = if bus.is_empty() { "/dev/i2c-1" } else { bus };
            let address = match addr {
                None => 0x3C,
                Some(a) => {
                    let t = a.trim_start_matches("0x").trim_start_matches("0X");
                    u8::from_str_radix(t, 16)
                        .ok()
                        .filter(|v| *v < 0x80)
                        .ok_or_else(|| {
                            ConfigError::Invalid(format!(
                                "I2C address {a:?} is not a 7-bit hex address like 0x3c"
                            ))
                        })?
                }
            };
            return Ok(DisplayTarget::Ssd1306 {
                bus: bus.to_string(),
                address,
            });
        }
        Err(ConfigError::Invalid(format!(
            "display target {s:?}: expected ssd1306[:BUS[@ADDR]] or png:DIR"
        )))
    }
}

impl Config {
    /// Reads and checks a TOML file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let config: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Ok(config)
    }

    /// Checks ranges and combinations (call after applying command-line overrides).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.smooth.validate().map_err(ConfigError::Invalid)?;
        if self.model.bundle.is_some() == self.model.store.is_some() {
            return Err(ConfigError::Invalid(
                "set exactly one of model.bundle (a bundle folder) or model.store (a model store with live updates)".into(),
            ));
        }
        if self.model.public_key.is_none() && !self.model.allow_unsigned {
            return Err(ConfigError::Invalid(
                "model.public_key is needed to verify bundles (or model.allow_unsigned = true for development)".into(),
            ));
        }
        if self.source.kind == SourceKind::Files && self.source.files.is_empty() {
            return Err(ConfigError::Invalid(
                "source.kind = \"files\" needs source.files".into(),
            ));
        }
        if let Some(t) = &self.display.target {
            DisplayTarget::parse(t)?;
        }
        if self.serial.baud == 0 {
            return Err(ConfigError::Invalid("serial.baud must be > 0".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_file_and_refuses_unknown_fields() {
        let text = r#"
            max_frames = 5
            [source]
            kind = "files"
            files = ["a.png"]
            [detect]
            detector = "rustface"
            every = 2
            [smooth]
            switch_frames = 2
            [model]
            bundle = "/b"
            allow_unsigned = true
            [serial]
            port = "/dev/ttyUSB0"
            [display]
            target = "png:/tmp/d"
        "#;
        let c: Config = toml::from_str(text).expect("valid");
        assert_eq!(c.source.kind, SourceKind::Files);
        assert_eq!(c.detect.every, 2);
        assert_eq!(c.smooth.switch_frames, 2);
        assert_eq!(c.smooth.ema_alpha, SmoothConfig::default().ema_alpha);
        c.validate().expect("consistent");
        let err = toml::from_str::<Config>("[serial]\nbaudrate = 9600\n").unwrap_err();
        assert!(err.to_string().contains("baudrate"), "{err}");
    }

    #[test]
    fn validation_explains_what_is_missing() {
        let c = Config::default();
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("model.bundle")
        );
        let mut c = Config::default();
        c.model.bundle = Some("/b".into());
        assert!(c.validate().unwrap_err().to_string().contains("public_key"));
    }

    #[test]
    fn display_targets() {
        assert_eq!(
            DisplayTarget::parse("ssd1306").expect("ok"),
            DisplayTarget::Ssd1306 {
                bus: "/dev/i2c-1".into(),
                address: 0x3C
            }
        );
        assert_eq!(
            DisplayTarget::parse("ssd1306:/dev/i2c-3@0x3d").expect("ok"),
            DisplayTarget::Ssd1306 {
                bus: "/dev/i2c-3".into(),
                address: 0x3D
            }
        );
        assert_eq!(
            DisplayTarget::parse("png:/x").expect("ok"),
            DisplayTarget::Png("/x".into())
        );
        assert!(DisplayTarget::parse("hdmi").is_err());
        assert!(DisplayTarget::parse("ssd1306@0x99").is_err());
    }
}
