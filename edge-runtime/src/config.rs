//! The service configuration: one TOML file (`emotion-edge run --config FILE`) with a section
//! per stage; every field has a default, unknown fields are refused, and command-line options
//! ([`Overrides`]) override what the file says. [`Config::load`] does that layering
//! (defaults < file < command line) in one place: the overrides are serialised to their
//! dotted config keys and merged into the file's TOML table, which is then deserialised once.
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
//! detector = "seeta"       # full-frame | seeta | blazeface ([detect.blazeface])
//! min_face = 40
//! every = 3
//! [detect.seeta]
//! score_threshold = 2.0
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
//! [mqtt]                   # see emotion_edge::sink::mqtt for topics and payloads
//! host = "broker.lan"      # none: no MQTT
//! device = "pi-lab-3"      # default: the host name
//! username = "pi-lab-3"
//! password_file = "/etc/emotion-edge/mqtt.pass"
//! ca_file = "/etc/emotion-edge/mqtt-ca.pem"   # TLS (port 8883 by default)
//! [status]
//! path = "/var/lib/emotion-edge/status.json"  # default: next to model.store
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::detect::{DetectConfig, DetectorKind};
pub use crate::service::status::StatusConfig;
pub use crate::sink::mqtt::MqttConfig;
use crate::smooth::SmoothConfig;
pub use crate::source::{SourceConfig, SourceKind};

/// The public key an installed device checks bundles with (`deploy/install.sh` puts it here);
/// used when neither the file nor the command line names one.
pub const DEFAULT_PUBLIC_KEY: &str = "/etc/emotion-edge/bundle.pub";

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
    /// MQTT output.
    pub mqtt: MqttConfig,
    /// The status file (`emotion-edge status`).
    pub status: StatusConfig,
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

/// Command-line options of `emotion-edge run` that override the configuration file. Each
/// field serialises under the dotted config key it sets (`source.kind`, `model.bundle`, ...);
/// unset options are skipped, so only what was given overrides the file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, clap::Args)]
pub struct Overrides {
    /// Frame source.
    #[arg(long, value_enum)]
    #[serde(rename = "source.kind", skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceKind>,
    /// Image files, folders or globs (implies --source files).
    #[arg(long = "file")]
    #[serde(rename = "source.files", skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    /// V4L2 device (implies --source v4l2).
    #[arg(long)]
    #[serde(rename = "source.v4l2.device", skip_serializing_if = "Option::is_none")]
    pub camera: Option<String>,
    /// Model bundle directory (no live updates).
    #[arg(long)]
    #[serde(rename = "model.bundle", skip_serializing_if = "Option::is_none")]
    pub bundle: Option<PathBuf>,
    /// Model store root (live updates through its inbox/).
    #[arg(long)]
    #[serde(rename = "model.store", skip_serializing_if = "Option::is_none")]
    pub store: Option<PathBuf>,
    /// Public key bundles must be signed with [default: /etc/emotion-edge/bundle.pub].
    #[arg(long)]
    #[serde(rename = "model.public_key", skip_serializing_if = "Option::is_none")]
    pub public_key: Option<PathBuf>,
    /// Accept unsigned bundles (development only).
    #[arg(long)]
    #[serde(rename = "model.allow_unsigned", skip_serializing_if = "is_false")]
    pub allow_unsigned: bool,
    /// Face detector.
    #[arg(long, value_enum)]
    #[serde(rename = "detect.detector", skip_serializing_if = "Option::is_none")]
    pub detector: Option<DetectorKind>,
    /// Serial device for the wire protocol.
    #[arg(long)]
    #[serde(rename = "serial.port", skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// Serial baud rate.
    #[arg(long)]
    #[serde(rename = "serial.baud", skip_serializing_if = "Option::is_none")]
    pub baud: Option<u32>,
    /// Display: ssd1306[:BUS[@ADDR]] or png:DIR.
    #[arg(long)]
    #[serde(rename = "display.target", skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
    /// JSON lines: `-` for stdout or a file.
    #[arg(long)]
    #[serde(rename = "json.path", skip_serializing_if = "Option::is_none")]
    pub json: Option<String>,
    /// MQTT broker host (enables the MQTT sink).
    #[arg(long)]
    #[serde(rename = "mqtt.host", skip_serializing_if = "Option::is_none")]
    pub mqtt_host: Option<String>,
    /// MQTT broker port [default: 1883, 8883 with --mqtt-ca-file].
    #[arg(long)]
    #[serde(rename = "mqtt.port", skip_serializing_if = "Option::is_none")]
    pub mqtt_port: Option<u16>,
    /// The device's name in MQTT topics [default: the host name].
    #[arg(long)]
    #[serde(rename = "mqtt.device", skip_serializing_if = "Option::is_none")]
    pub mqtt_device: Option<String>,
    /// First MQTT topic level [default: emotion].
    #[arg(long)]
    #[serde(rename = "mqtt.topic_prefix", skip_serializing_if = "Option::is_none")]
    pub mqtt_prefix: Option<String>,
    /// MQTT user name.
    #[arg(long)]
    #[serde(rename = "mqtt.username", skip_serializing_if = "Option::is_none")]
    pub mqtt_username: Option<String>,
    /// File holding the MQTT password.
    #[arg(long)]
    #[serde(rename = "mqtt.password_file", skip_serializing_if = "Option::is_none")]
    pub mqtt_password_file: Option<PathBuf>,
    /// CA certificate(s) (PEM): MQTT over TLS.
    #[arg(long)]
    #[serde(rename = "mqtt.ca_file", skip_serializing_if = "Option::is_none")]
    pub mqtt_ca_file: Option<PathBuf>,
    /// Most MQTT `frame` messages per second (0: none).
    #[arg(long)]
    #[serde(rename = "mqtt.frame_rate", skip_serializing_if = "Option::is_none")]
    pub mqtt_frame_rate: Option<f32>,
    /// Home Assistant discovery prefix [default: homeassistant].
    #[arg(long)]
    #[serde(
        rename = "mqtt.discovery_prefix",
        skip_serializing_if = "Option::is_none"
    )]
    pub mqtt_discovery_prefix: Option<String>,
    /// Where the service keeps its status (`emotion-edge status`) [default: status.json
    /// next to the model store].
    #[arg(long)]
    #[serde(rename = "status.path", skip_serializing_if = "Option::is_none")]
    pub status_file: Option<PathBuf>,
    /// Stop after N frames.
    #[arg(long)]
    #[serde(rename = "max_frames", skip_serializing_if = "Option::is_none")]
    pub max_frames: Option<u64>,
    /// Synthetic camera: number of faces.
    #[arg(long)]
    #[serde(
        rename = "source.synthetic.faces",
        skip_serializing_if = "Option::is_none"
    )]
    pub synthetic_faces: Option<u32>,
    /// Synthetic camera: frames per second (0: as fast as possible).
    #[arg(long)]
    #[serde(
        rename = "source.synthetic.fps",
        skip_serializing_if = "Option::is_none"
    )]
    pub synthetic_fps: Option<f32>,
    /// Synthetic camera: one face filling each frame (for `--detector full-frame`).
    #[arg(long)]
    #[serde(rename = "source.synthetic.fill", skip_serializing_if = "is_false")]
    pub synthetic_fill: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Overrides {
    /// What an option implies beyond its own key: `--file` and `--camera` choose their
    /// source kind (unless `--source` says otherwise), and `--bundle` and `--store` each
    /// replace the other's setting from the file.
    fn implied(&self) -> Vec<(&'static str, Option<toml::Value>)> {
        let mut implied = Vec::new();
        if self.source.is_none() {
            if !self.files.is_empty() {
                implied.push(("source.kind", Some("files".into())));
            }
            if self.camera.is_some() {
                implied.push(("source.kind", Some("v4l2".into())));
            }
        }
        if self.bundle.is_some() {
            implied.push(("model.store", None));
        }
        if self.store.is_some() {
            implied.push(("model.bundle", None));
        }
        implied
    }

    /// Merges these options into `table` (a parsed configuration file).
    pub fn merge_into(&self, table: &mut toml::Table) -> Result<(), ConfigError> {
        if self.camera.is_some() && !cfg!(feature = "v4l") {
            return Err(ConfigError::Invalid(
                "--camera: this build has no V4L2 support (cargo feature `v4l`)".into(),
            ));
        }
        let flat = toml::Table::try_from(self)
            .map_err(|e| ConfigError::Invalid(format!("command-line options: {e}")))?;
        let entries = flat
            .into_iter()
            .map(|(k, v)| (k, Some(v)))
            .chain(self.implied().into_iter().map(|(k, v)| (k.to_string(), v)));
        for (key, value) in entries {
            set_dotted(table, &key, value)?;
        }
        Ok(())
    }
}

/// Files written before detectors had sections of their own kept SeetaFace's `score_threshold`
/// and `model` in `[detect]`: moves them to `[detect.seeta]`. Returns whether it moved any.
fn move_legacy_seeta_keys(table: &mut toml::Table) -> bool {
    let Some(detect) = table.get_mut("detect").and_then(toml::Value::as_table_mut) else {
        return false;
    };
    let moved: Vec<(String, toml::Value)> = ["score_threshold", "model"]
        .into_iter()
        .filter_map(|k| detect.remove(k).map(|v| (k.to_string(), v)))
        .collect();
    if moved.is_empty() {
        return false;
    }
    let seeta = detect
        .entry("seeta")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let Some(seeta) = seeta.as_table_mut() {
        for (k, v) in moved {
            seeta.entry(k).or_insert(v);
        }
    }
    true
}

/// Sets (or with `None` removes) `a.b.c` in `table`, creating the tables on the way.
fn set_dotted(
    table: &mut toml::Table,
    key: &str,
    value: Option<toml::Value>,
) -> Result<(), ConfigError> {
    let (parents, leaf) = match key.rsplit_once('.') {
        Some((p, l)) => (p.split('.').collect::<Vec<_>>(), l),
        None => (Vec::new(), key),
    };
    let mut at = table;
    for part in parents {
        let entry = at
            .entry(part)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        at = entry.as_table_mut().ok_or_else(|| {
            ConfigError::Invalid(format!("`{part}` in the config file must be a section"))
        })?;
    }
    match value {
        Some(v) => at.insert(leaf.to_string(), v),
        None => at.remove(leaf),
    };
    Ok(())
}

impl Config {
    /// The configuration a service runs with: the defaults, then the file (if any), then the
    /// command-line options; the default public key when it exists and none is set; checked.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let (mut table, origin) = match file {
            Some(path) => {
                let text = Self::read(path)?;
                let mut table = text
                    .parse::<toml::Table>()
                    .map_err(|e| ConfigError::Parse {
                        path: path.to_path_buf(),
                        message: e.to_string(),
                    })?;
                if move_legacy_seeta_keys(&mut table) {
                    tracing::warn!(
                        "{}: `score_threshold` and `model` belong in [detect.seeta] now; read \
                         from [detect] this time, please move them",
                        path.display()
                    );
                } else {
                    // Parsed as a `Config` too, so errors in the file name their line.
                    Self::parse(&text, path)?;
                }
                (table, path.to_path_buf())
            }
            None => (toml::Table::new(), PathBuf::from("(no file)")),
        };
        overrides.merge_into(&mut table)?;
        let mut config: Config =
            table
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Parse {
                    path: origin,
                    message: format!("with the command-line options: {e}"),
                })?;
        if config.model.public_key.is_none()
            && !config.model.allow_unsigned
            && Path::new(DEFAULT_PUBLIC_KEY).exists()
        {
            config.model.public_key = Some(DEFAULT_PUBLIC_KEY.into());
        }
        config.validate()?;
        Ok(config)
    }

    fn read(path: &Path) -> Result<String, ConfigError> {
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })
    }

    fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// Reads and checks a TOML file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        Self::parse(&Self::read(path)?, path)
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
        self.mqtt.validate().map_err(ConfigError::Invalid)?;
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
            [detect.seeta]
            score_threshold = 3.0
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
        assert_eq!(c.detect.detector, DetectorKind::Seeta);
        assert_eq!(c.detect.seeta.score_threshold, 3.0);
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
    fn command_line_overrides_the_file_which_overrides_the_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "max_frames = 7\n[source]\nkind = \"synthetic\"\n[source.synthetic]\nfaces = 3\n\
             [model]\nstore = \"/s\"\nallow_unsigned = true\n[serial]\nport = \"/dev/a\"\nbaud = 9600\n",
        )
        .expect("write");
        let overrides = Overrides {
            files: vec!["x.png".into()],
            bundle: Some("/b".into()),
            baud: Some(57_600),
            ..Overrides::default()
        };
        let c = Config::load(Some(&file), &overrides).expect("loads");
        // command line
        assert_eq!(c.source.kind, SourceKind::Files, "--file implies files");
        assert_eq!(c.source.files, ["x.png"]);
        assert_eq!(c.model.bundle.as_deref(), Some(Path::new("/b")));
        assert_eq!(c.model.store, None, "--bundle replaces the file's store");
        assert_eq!(c.serial.baud, 57_600);
        // file
        assert_eq!(c.max_frames, 7);
        assert_eq!(c.source.synthetic.faces, 3);
        assert_eq!(c.serial.port.as_deref(), Some("/dev/a"));
        assert!(c.model.allow_unsigned);
        // defaults
        assert_eq!(c.serial.max_fps, SerialConfig::default().max_fps);
        assert_eq!(c.detect, DetectConfig::default());

        let explicit = Overrides {
            source: Some(SourceKind::Synthetic),
            files: vec!["x.png".into()],
            ..Overrides::default()
        };
        let c = Config::load(Some(&file), &explicit).expect("loads");
        assert_eq!(
            c.source.kind,
            SourceKind::Synthetic,
            "--source wins over --file"
        );
    }

    #[test]
    fn load_names_the_file_and_line_of_a_mistake() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("bad.toml");
        std::fs::write(
            &file,
            "[model]\nbundle = \"/b\"\n\n[serial]\nbaudrate = 1\n",
        )
        .expect("write");
        let e = Config::load(Some(&file), &Overrides::default())
            .expect_err("unknown key")
            .to_string();
        assert!(
            e.contains("bad.toml") && e.contains("baudrate") && e.contains("line 5"),
            "{e}"
        );
        let e = Config::load(None, &Overrides::default())
            .expect_err("no model")
            .to_string();
        assert!(e.contains("model.bundle"), "{e}");
    }

    #[test]
    fn files_with_seetas_settings_in_detect_still_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("old.toml");
        std::fs::write(
            &file,
            "[detect]\ndetector = \"rustface\"\nscore_threshold = 4.5\n[model]\nbundle = \"/b\"\nallow_unsigned = true\n",
        )
        .expect("write");
        let c = Config::load(Some(&file), &Overrides::default()).expect("loads");
        assert_eq!(c.detect.detector, DetectorKind::Seeta);
        assert_eq!(c.detect.seeta.score_threshold, 4.5);
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
