//! The model-bundle manifest (`manifest.json`): its versioned schema, strict parsing with
//! errors that name the field, and the cross-field checks that make a manifest trustworthy.
//!
//! A bundle is a directory with `model.onnx`, `manifest.json` and `manifest.sig` (see
//! [`crate::bundle`]). The manifest says what the model is, how to feed it
//! ([`PreprocessSpec`]), how to read its output, how good it is and where it came from, and
//! carries self-test cases the edge runs at load. A complete example, which doubles as the
//! reference, is `shared/testdata/manifest/valid.json`.
//!
//! # Schema, version 1
//!
//! | field            | type                | rules                                                        |
//! |------------------|---------------------|--------------------------------------------------------------|
//! | `schema_version` | integer             | `1`; a newer version is refused with "update emotion-edge"    |
//! | `model`          | [`ModelInfo`]       | name, semver-ish version, architecture identifier            |
//! | `input`          | [`InputSpec`]       | shape `[1, C, H, W]` must equal `preprocess`'s; dtype `f32`    |
//! | `output`         | [`OutputSpec`]      | `logits` or `probabilities`, shape `[1, 7]`                   |
//! | `labels`         | list of strings     | exactly the 7 FER2013 names in FER2013 order (see below)      |
//! | `preprocess`     | [`PreprocessSpec`]  | valid per [`PreprocessSpec::validate`]                        |
//! | `quantization`   | [`Quantization`]    | `{"kind": "none"}` or `{"kind": "int8", ...}`                 |
//! | `metrics`        | list of [`Metric`]  | finite values; may be empty                                   |
//! | `onnx`           | [`OnnxFile`]        | file `model.onnx`, its sha256 (64 hex digits) and byte size   |
//! | `created_at`     | string              | RFC 3339 date-time, e.g. `2025-06-01T12:00:00Z`               |
//! | `training`       | [`TrainingSummary`] | epochs, best epoch (1-based), arch, mode, balance, seed, extra|
//! | `lineage`        | [`Lineage`]         | backbone and data hashes (optional), trainer version          |
//! | `self_test`      | list of [`SelfTestCase`] | at least one case                                        |
//!
//! Parsing is strict: unknown fields anywhere are refused, every field is required except the
//! ones documented as optional (`model.description`, the `Option` fields of [`Lineage`] and
//! `training.extra`).
//!
//! **Labels.** The labels must be exactly `angry, disgust, fear, happy, sad, surprise, neutral`
//! in that order, so output index `i` is always [`Emotion::from_index`]`(i)` and the serial
//! protocol's label names and indices stay valid. A model trained with another class order must
//! have its last layer permuted at export; a manifest cannot relabel outputs.
//!
//! **Self-test.** Each case holds a *raw* face crop (`u8` grey or RGB pixels, hex-encoded, any
//! size), so the edge exercises its own preprocessing as well as the model. `expected` is in the
//! model's output kind (logits or probabilities), `tolerance` is the largest absolute difference
//! allowed per value, and `top_label` must be the argmax of `expected`; the top two expected
//! values must differ by more than twice the tolerance, so an output within tolerance always has
//! the same top label. Use [`SelfTestCase::check`] on the runtime's output.
//!
//! # Errors
//!
//! [`Manifest::from_json`] reports the first problem as a [`ManifestError`] naming the field,
//! e.g. ``manifest.json field `onnx`: missing field `sha256` `` or
//! ``manifest.json field `self_test[0].expected`: has 6 values but the model has 7 outputs``.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use sha2::Digest;
use time::format_description::well_known::Rfc3339;

use crate::labels::{Emotion, NUM_CLASSES};
use crate::preprocess::{FaceCrop, MAX_SIDE, PixelFormat, PreprocessError, PreprocessSpec};

/// The manifest schema version this crate reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// The model file name in a bundle; `onnx.file` must be this.
pub const ONNX_FILE_NAME: &str = "model.onnx";

/// Why a manifest was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON at all (or not UTF-8).
    #[error("manifest.json is not valid JSON: {0}")]
    Syntax(String),
    /// JSON, but not an object.
    #[error("manifest.json must be a JSON object, found {0}")]
    NotAnObject(&'static str),
    /// No `schema_version` field.
    #[error("manifest.json has no `schema_version` field: is this a model-bundle manifest?")]
    MissingVersion,
    /// `schema_version` is not a non-negative integer.
    #[error("manifest.json field `schema_version` must be an integer, found {0}")]
    BadVersion(String),
    /// Written by a newer trainer than this runtime understands.
    #[error(
        "manifest schema version {found} is newer than this runtime supports ({supported}): update emotion-edge"
    )]
    NewerVersion {
        /// Version in the file.
        found: u64,
        /// [`SCHEMA_VERSION`].
        supported: u32,
    },
    /// A version older than any this runtime reads.
    #[error(
        "manifest schema version {found} is not supported: this runtime reads version {supported}; re-export the bundle"
    )]
    OlderVersion {
        /// Version in the file.
        found: u64,
        /// [`SCHEMA_VERSION`].
        supported: u32,
    },
    /// A problem with the top-level object: a missing or unknown field.
    #[error("manifest.json: {0}")]
    TopLevel(String),
    /// A field that does not parse or does not pass validation.
    #[error("manifest.json field `{path}`: {message}")]
    Field {
        /// JSON path of the field, e.g. `self_test[0].expected`.
        path: String,
        /// What is wrong with it.
        message: String,
    },
}

impl ManifestError {
    fn field(path: impl Into<String>, message: impl Into<String>) -> Self {
        ManifestError::Field {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// A SHA-256 digest; in JSON, 64 hex digits (written lowercase, read in either case).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256Digest(pub [u8; 32]);

impl Sha256Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(sha2::Sha256::digest(bytes).into())
    }

    /// Lowercase hex, 64 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl FromStr for Sha256Digest {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        if s.len() != 64 {
            return Err(format!(
                "a sha256 must be 64 hex digits, found {} characters: {s:?}",
                s.chars().count()
            ));
        }
        hex::decode_to_slice(s, &mut out)
            .map_err(|_| format!("a sha256 must be 64 hex digits (0-9, a-f), found {s:?}"))?;
        Ok(Self(out))
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Digest({})", self.to_hex())
    }
}

impl Serialize for Sha256Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Sha256Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What the model is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelInfo {
    /// Model name, e.g. `fer-mini-xception` (1-128 printable characters).
    pub name: String,
    /// Semver-ish version: `MAJOR.MINOR.PATCH`, optionally `-pre` and/or `+build`.
    pub version: String,
    /// Architecture identifier (`[A-Za-z0-9._-]+`), e.g. `mini-xception`, `vggface2-resnet50`.
    pub architecture: String,
    /// Optional free text for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    /// 32-bit float.
    F32,
}

/// The model's input tensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// ONNX input name.
    pub name: String,
    /// `[1, C, H, W]`; must equal [`PreprocessSpec::input_shape`].
    pub shape: [usize; 4],
    /// Element type (always `f32`: int8 models quantize inside the graph).
    pub dtype: DType,
}

/// What the output values are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    /// Unnormalised scores; apply softmax for probabilities.
    Logits,
    /// Probabilities summing to 1.
    Probabilities,
}

impl OutputKind {
    /// The output as probabilities: softmax for logits, unchanged for probabilities.
    pub fn to_probabilities(self, values: &[f32]) -> Vec<f32> {
        match self {
            OutputKind::Probabilities => values.to_vec(),
            OutputKind::Logits => softmax(values),
        }
    }
}

/// Numerically stable softmax; an empty input gives an empty output.
pub fn softmax(values: &[f32]) -> Vec<f32> {
    let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = values.iter().map(|v| (v - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// Index of the largest value (the first one on ties); `None` for an empty slice or NaN.
pub fn argmax(values: &[f32]) -> Option<usize> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &v) in values.iter().enumerate() {
        if v.is_nan() {
            return None;
        }
        if best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i)
}

/// The model's output tensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// ONNX output name.
    pub name: String,
    /// Logits or probabilities.
    pub kind: OutputKind,
    /// `[1, number of labels]`.
    pub shape: [usize; 2],
}

/// How the model was quantized.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Quantization {
    /// Plain f32 weights. (An empty struct variant, so that unknown fields next to
    /// `"kind": "none"` are refused like everywhere else.)
    None {},
    /// 8-bit integer weights and activations.
    Int8 {
        /// Scheme identifier, e.g. `qlinear-per-tensor`, `qdq-per-channel`.
        scheme: String,
        /// How the activation ranges were calibrated.
        calibration: Calibration,
        /// The accuracy cost of quantizing, measured on one split.
        accuracy: QuantizationAccuracy,
        /// fp32 against int8 latency in tract, measured at export on the exporting machine
        /// (absent in manifests written before it was measured).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        speed: Option<QuantizationSpeed>,
    },
}

/// One-face latency of the fp32 and the int8 model in tract (one thread, batch 1, median),
/// measured when the int8 bundle was exported. Where int8 is the slower one the fp32 bundle
/// is the one to deploy; int8 then only buys a smaller file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuantizationSpeed {
    /// Median milliseconds per face of the fp32 model.
    pub fp32_ms: f64,
    /// Median milliseconds per face of the int8 model.
    pub int8_ms: f64,
    /// Where it was measured, e.g. `x86_64 linux, tract 0.23.9` (int8 kernels differ by CPU:
    /// on aarch64 tract's fast int8 kernels need the dot-product extension).
    pub machine: String,
    /// What the figures mean for deployment, e.g. why the fp32 bundle is the default.
    pub verdict: String,
}

impl QuantizationSpeed {
    /// Whether int8 ran faster than fp32 where it was measured.
    pub fn int8_is_faster(&self) -> bool {
        self.int8_ms < self.fp32_ms
    }
}

impl Quantization {
    /// `{"kind": "none"}`.
    pub fn none() -> Self {
        Quantization::None {}
    }
}

/// Calibration of an int8 model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    /// Method, e.g. `minmax`, `percentile-99.99`, `entropy`.
    pub method: String,
    /// Number of calibration images (> 0).
    pub samples: u32,
    /// The split they came from, e.g. `fer2013-train`.
    pub split: String,
}

/// Accuracy before and after quantization, as fractions in `[0, 1]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuantizationAccuracy {
    /// The split measured, e.g. `fer2013-private-test`.
    pub split: String,
    /// Accuracy of the f32 model.
    pub fp32: f64,
    /// Accuracy of the int8 model.
    pub int8: f64,
}

/// One evaluation result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metric {
    /// Metric identifier, e.g. `accuracy`, `macro_f1`.
    pub name: String,
    /// Its value (finite).
    pub value: f64,
    /// The split, e.g. `fer2013-private-test`, `synthetic-private-test`.
    pub split: String,
    /// What the data set is, for people (e.g. "FER2013 PrivateTest, 3589 images").
    pub dataset: String,
}

/// The model file, pinned by hash and size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnnxFile {
    /// File name inside the bundle; must be [`ONNX_FILE_NAME`].
    pub file: String,
    /// SHA-256 of the file's bytes.
    pub sha256: Sha256Digest,
    /// Size of the file in bytes (> 0).
    pub size_bytes: u64,
}

impl OnnxFile {
    /// The pin for `onnx_bytes` stored as [`ONNX_FILE_NAME`].
    pub fn describe(onnx_bytes: &[u8]) -> Self {
        Self {
            file: ONNX_FILE_NAME.to_string(),
            sha256: Sha256Digest::of(onnx_bytes),
            size_bytes: onnx_bytes.len() as u64,
        }
    }
}

/// How the model was trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingSummary {
    /// Epochs run (>= 1).
    pub epochs: u32,
    /// The epoch whose weights were exported, 1-based (`1..=epochs`).
    pub best_epoch: u32,
    /// Architecture as the trainer names it.
    pub arch: String,
    /// Training mode, e.g. `scratch`, `finetune`, `linear-probe`.
    pub mode: String,
    /// Class-balancing strategy, e.g. `none`, `weighted-loss`, `oversample`.
    pub balance: String,
    /// Random seed.
    pub seed: u64,
    /// Anything else worth keeping (learning rate, batch size, ...). Optional.
    #[serde(default)]
    pub extra: BTreeMap<String, Value>,
}

/// Where the model came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lineage {
    /// Pretrained backbone, e.g. `vggface2-resnet50`; `null` when trained from scratch.
    #[serde(default)]
    pub backbone: Option<String>,
    /// SHA-256 of the backbone weights file, if known.
    #[serde(default)]
    pub backbone_sha256: Option<Sha256Digest>,
    /// SHA-256 of the training data (e.g. `fer2013.csv`), if known.
    #[serde(default)]
    pub dataset_sha256: Option<Sha256Digest>,
    /// Git commit of the trainer source (7-64 hex digits), if known.
    #[serde(default)]
    pub git_commit: Option<String>,
    /// Version of `emotion-train` that exported the bundle.
    pub trainer_version: String,
}

/// A raw face crop for a self-test: the edge preprocesses it with the manifest's spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelfTestInput {
    /// Crop width (1..=[`MAX_SIDE`]).
    pub width: u32,
    /// Crop height (1..=[`MAX_SIDE`]).
    pub height: u32,
    /// Grey or RGB.
    pub format: PixelFormat,
    /// Row-major pixel bytes (`width * height * channels`), hex-encoded in JSON.
    #[serde(rename = "pixels_hex", with = "hex_bytes")]
    pub pixels: Vec<u8>,
}

impl SelfTestInput {
    /// The crop, ready for [`PreprocessSpec::preprocess`].
    pub fn crop(&self) -> Result<FaceCrop<'_>, PreprocessError> {
        FaceCrop::from_raw(self.width, self.height, self.format, &self.pixels)
    }
}

/// One self-test: a raw crop and the output the exported model gave for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelfTestCase {
    /// A name for messages, e.g. `fer2013-private-test-0017-happy`.
    pub name: String,
    /// The raw crop.
    pub input: SelfTestInput,
    /// Expected output values, in `output.kind`, one per label.
    pub expected: Vec<f32>,
    /// Largest absolute difference allowed per value (> 0).
    pub tolerance: f32,
    /// The argmax of `expected`.
    pub top_label: Emotion,
}

/// A self-test that passed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SelfTestOutcome {
    /// Largest absolute difference between expected and actual values.
    pub max_abs_error: f32,
    /// The actual top label.
    pub top_label: Emotion,
}

/// A self-test that failed: the runtime does not reproduce the trainer's output.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SelfTestFailure {
    /// Wrong number of outputs.
    #[error("self-test `{name}`: the model gave {actual} outputs, expected {expected}")]
    Length {
        /// Case name.
        name: String,
        /// Expected count.
        expected: usize,
        /// Actual count.
        actual: usize,
    },
    /// Values too far from the expected ones (or not finite).
    #[error(
        "self-test `{name}`: output {index} is {actual} but the trainer got {expected} (tolerance {tolerance}): preprocessing or runtime differ from training"
    )]
    Value {
        /// Case name.
        name: String,
        /// Output index.
        index: usize,
        /// Expected value.
        expected: f32,
        /// Actual value.
        actual: f32,
        /// Allowed difference.
        tolerance: f32,
    },
    /// A different top label.
    #[error("self-test `{name}`: top label is {actual} but the trainer got {expected}")]
    TopLabel {
        /// Case name.
        name: String,
        /// Expected label.
        expected: Emotion,
        /// Actual top label, if any.
        actual: String,
    },
}

impl SelfTestCase {
    /// Compares the model's raw output (in `output.kind`) for this case's input with the
    /// expected values.
    pub fn check(&self, actual: &[f32]) -> Result<SelfTestOutcome, SelfTestFailure> {
        if actual.len() != self.expected.len() {
            return Err(SelfTestFailure::Length {
                name: self.name.clone(),
                expected: self.expected.len(),
                actual: actual.len(),
            });
        }
        let mut max_abs_error = 0.0f32;
        for (index, (&e, &a)) in self.expected.iter().zip(actual).enumerate() {
            let err = (e - a).abs();
            if err.is_nan() || err > self.tolerance {
                return Err(SelfTestFailure::Value {
                    name: self.name.clone(),
                    index,
                    expected: e,
                    actual: a,
                    tolerance: self.tolerance,
                });
            }
            max_abs_error = max_abs_error.max(err);
        }
        let top = argmax(actual).and_then(Emotion::from_index);
        match top {
            Some(t) if t == self.top_label => Ok(SelfTestOutcome {
                max_abs_error,
                top_label: t,
            }),
            other => Err(SelfTestFailure::TopLabel {
                name: self.name.clone(),
                expected: self.top_label,
                actual: other.map_or_else(|| "none".to_string(), |e| e.name().to_string()),
            }),
        }
    }
}

/// The manifest of a model bundle. See the [module docs](self) for the schema and rules.
///
/// Parse with [`Manifest::from_json`], which checks the version first, names the failing field
/// and validates; the `Deserialize` impl alone does neither.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// What the model is.
    pub model: ModelInfo,
    /// The input tensor.
    pub input: InputSpec,
    /// The output tensor.
    pub output: OutputSpec,
    /// Output labels: exactly [`Emotion::names`].
    pub labels: Vec<String>,
    /// How a face crop becomes the input tensor.
    pub preprocess: PreprocessSpec,
    /// Quantization, if any.
    pub quantization: Quantization,
    /// Evaluation results.
    pub metrics: Vec<Metric>,
    /// The pinned model file.
    pub onnx: OnnxFile,
    /// RFC 3339 creation time, e.g. `2025-06-01T12:00:00Z`.
    pub created_at: String,
    /// Training summary.
    pub training: TrainingSummary,
    /// Provenance.
    pub lineage: Lineage,
    /// Self-test cases (at least one).
    pub self_test: Vec<SelfTestCase>,
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn check_version(v: Option<&Value>) -> Result<u32, ManifestError> {
    let v = v.ok_or(ManifestError::MissingVersion)?;
    let n = v
        .as_u64()
        .ok_or_else(|| ManifestError::BadVersion(v.to_string()))?;
    match n {
        n if n > u64::from(SCHEMA_VERSION) => Err(ManifestError::NewerVersion {
            found: n,
            supported: SCHEMA_VERSION,
        }),
        n if n < u64::from(SCHEMA_VERSION) => Err(ManifestError::OlderVersion {
            found: n,
            supported: SCHEMA_VERSION,
        }),
        _ => Ok(SCHEMA_VERSION),
    }
}

impl Manifest {
    /// Parses and validates `manifest.json`. The version is checked first, so a manifest from
    /// a newer trainer says "update emotion-edge" whatever else changed.
    pub fn from_json(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Syntax(e.to_string()))?;
        let Value::Object(map) = value else {
            return Err(ManifestError::NotAnObject(json_kind(&value)));
        };
        check_version(map.get("schema_version"))?;
        // serde_path_to_error names the field that failed, e.g. `self_test[0].expected`.
        let manifest: Manifest =
            serde_path_to_error::deserialize(Value::Object(map)).map_err(|e| {
                let path = e.path().to_string();
                let message = e.into_inner().to_string();
                if path == "." {
                    ManifestError::TopLevel(message)
                } else {
                    ManifestError::field(path, message)
                }
            })?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// Pretty-printed JSON with a trailing newline: what [`crate::bundle::write_bundle`]
    /// writes and signs. Does not validate; call [`Manifest::validate`] first.
    pub fn to_json_pretty(&self) -> Result<String, ManifestError> {
        let mut s = serde_json::to_string_pretty(self)
            .map_err(|e| ManifestError::TopLevel(format!("cannot be serialised: {e}")))?;
        s.push('\n');
        Ok(s)
    }

    /// The emotion of output index `index`: labels are fixed, so this is
    /// [`Emotion::from_index`].
    pub fn label(&self, index: usize) -> Option<Emotion> {
        Emotion::from_index(index)
    }

    /// Checks every rule of the schema, including the cross-field ones: input shape against
    /// the preprocessing, labels against the output, self-test lengths and labels, formats of
    /// hashes, versions and dates.
    pub fn validate(&self) -> Result<(), ManifestError> {
        if self.schema_version != SCHEMA_VERSION {
            check_version(Some(&Value::from(self.schema_version)))?;
        }

        // model
        check_text("model.name", &self.model.name, 128)?;
        check_semver("model.version", &self.model.version)?;
        check_identifier("model.architecture", &self.model.architecture)?;
        if let Some(d) = &self.model.description {
            check_text("model.description", d, 4096)?;
        }

        // preprocessing and input
        self.preprocess
            .validate()
            .map_err(|e| ManifestError::field("preprocess", e.to_string()))?;
        check_text("input.name", &self.input.name, 256)?;
        let want = self.preprocess.input_shape();
        if self.input.shape != want {
            return Err(ManifestError::field(
                "input.shape",
                format!(
                    "is {:?} but the preprocessing produces {want:?} ({}x{} {:?})",
                    self.input.shape,
                    self.preprocess.width,
                    self.preprocess.height,
                    self.preprocess.color
                ),
            ));
        }

        // labels and output
        let names = Emotion::names();
        if self.labels != names {
            let detail = match self
                .labels
                .iter()
                .zip(&names)
                .position(|(got, want)| got != want)
            {
                Some(i) => format!(
                    "labels[{i}] is {:?} where {:?} is expected",
                    self.labels[i], names[i]
                ),
                None => format!("there are {} labels, not {NUM_CLASSES}", self.labels.len()),
            };
            return Err(ManifestError::field(
                "labels",
                format!(
                    "must be exactly [{}] in this order (FER2013 order); {detail}",
                    names.join(", ")
                ),
            ));
        }
        check_text("output.name", &self.output.name, 256)?;
        if self.output.shape != [1, self.labels.len()] {
            return Err(ManifestError::field(
                "output.shape",
                format!(
                    "is {:?} but there are {} labels: expected [1, {}]",
                    self.output.shape,
                    self.labels.len(),
                    self.labels.len()
                ),
            ));
        }

        // quantization
        if let Quantization::Int8 {
            scheme,
            calibration,
            accuracy,
            speed,
        } = &self.quantization
        {
            check_identifier("quantization.scheme", scheme)?;
            check_text("quantization.calibration.method", &calibration.method, 128)?;
            check_text("quantization.calibration.split", &calibration.split, 128)?;
            if calibration.samples == 0 {
                return Err(ManifestError::field(
                    "quantization.calibration.samples",
                    "must be > 0",
                ));
            }
            check_text("quantization.accuracy.split", &accuracy.split, 128)?;
            check_fraction("quantization.accuracy.fp32", accuracy.fp32)?;
            check_fraction("quantization.accuracy.int8", accuracy.int8)?;
            if let Some(speed) = speed {
                for (field, v) in [
                    ("quantization.speed.fp32_ms", speed.fp32_ms),
                    ("quantization.speed.int8_ms", speed.int8_ms),
                ] {
                    if !(v.is_finite() && v > 0.0) {
                        return Err(ManifestError::field(field, "must be a positive number"));
                    }
                }
                check_text("quantization.speed.machine", &speed.machine, 256)?;
                check_text("quantization.speed.verdict", &speed.verdict, 1024)?;
            }
        }

        // metrics
        for (i, m) in self.metrics.iter().enumerate() {
            check_identifier(&format!("metrics[{i}].name"), &m.name)?;
            check_text(&format!("metrics[{i}].split"), &m.split, 128)?;
            check_text(&format!("metrics[{i}].dataset"), &m.dataset, 1024)?;
            if !m.value.is_finite() {
                return Err(ManifestError::field(
                    format!("metrics[{i}].value"),
                    "must be a finite number",
                ));
            }
        }

        // model file
        if self.onnx.file != ONNX_FILE_NAME {
            return Err(ManifestError::field(
                "onnx.file",
                format!(
                    "is {:?}; schema version 1 bundles use {ONNX_FILE_NAME:?}",
                    self.onnx.file
                ),
            ));
        }
        if self.onnx.size_bytes == 0 {
            return Err(ManifestError::field(
                "onnx.size_bytes",
                "is 0: an empty file is not a model",
            ));
        }

        check_rfc3339("created_at", &self.created_at)?;

        // training
        let t = &self.training;
        if t.epochs == 0 {
            return Err(ManifestError::field("training.epochs", "must be >= 1"));
        }
        if t.best_epoch == 0 || t.best_epoch > t.epochs {
            return Err(ManifestError::field(
                "training.best_epoch",
                format!(
                    "is {} but must be in 1..={} (1-based)",
                    t.best_epoch, t.epochs
                ),
            ));
        }
        check_text("training.arch", &t.arch, 128)?;
        check_text("training.mode", &t.mode, 128)?;
        check_text("training.balance", &t.balance, 128)?;
        if t.extra.keys().any(|k| k.trim().is_empty()) {
            return Err(ManifestError::field("training.extra", "has an empty key"));
        }

        // lineage
        let l = &self.lineage;
        if let Some(b) = &l.backbone {
            check_text("lineage.backbone", b, 256)?;
        }
        if let Some(c) = &l.git_commit {
            let ok = (7..=64).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_hexdigit());
            if !ok {
                return Err(ManifestError::field(
                    "lineage.git_commit",
                    format!("must be 7 to 64 hex digits, found {c:?}"),
                ));
            }
        }
        check_text("lineage.trainer_version", &l.trainer_version, 128)?;

        // self-tests
        if self.self_test.is_empty() {
            return Err(ManifestError::field(
                "self_test",
                "is empty: at least one case is needed so the edge can prove it reproduces the trainer's output",
            ));
        }
        for (i, case) in self.self_test.iter().enumerate() {
            self.validate_self_test(i, case)?;
        }
        Ok(())
    }

    fn validate_self_test(&self, i: usize, case: &SelfTestCase) -> Result<(), ManifestError> {
        let at = |field: &str| format!("self_test[{i}].{field}");
        check_text(&at("name"), &case.name, 256)?;
        let input = &case.input;
        for (name, v) in [("input.width", input.width), ("input.height", input.height)] {
            if v == 0 || v > MAX_SIDE {
                return Err(ManifestError::field(
                    at(name),
                    format!("is {v}, must be in 1..={MAX_SIDE}"),
                ));
            }
        }
        input
            .crop()
            .map_err(|e| ManifestError::field(at("input.pixels_hex"), e.to_string()))?;
        let n = self.labels.len();
        if case.expected.len() != n {
            return Err(ManifestError::field(
                at("expected"),
                format!(
                    "has {} values but the model has {n} outputs",
                    case.expected.len()
                ),
            ));
        }
        if let Some(j) = case.expected.iter().position(|v| !v.is_finite()) {
            return Err(ManifestError::field(
                at("expected"),
                format!("value {j} is not finite"),
            ));
        }
        if self.output.kind == OutputKind::Probabilities {
            if case.expected.iter().any(|v| !(0.0..=1.0).contains(v)) {
                return Err(ManifestError::field(
                    at("expected"),
                    "has a probability outside [0, 1]",
                ));
            }
            let sum: f32 = case.expected.iter().sum();
            if (sum - 1.0).abs() > 1e-3 {
                return Err(ManifestError::field(
                    at("expected"),
                    format!("probabilities sum to {sum}, not 1 (is output.kind right?)"),
                ));
            }
        }
        if !(case.tolerance.is_finite() && case.tolerance > 0.0) {
            return Err(ManifestError::field(
                at("tolerance"),
                "must be a finite number > 0",
            ));
        }
        let top = argmax(&case.expected).and_then(Emotion::from_index);
        if top != Some(case.top_label) {
            return Err(ManifestError::field(
                at("top_label"),
                format!(
                    "is {} but the largest expected value is {}",
                    case.top_label,
                    top.map_or("none", |e| e.name())
                ),
            ));
        }
        let mut sorted = case.expected.clone();
        sorted.sort_by(|a, b| b.total_cmp(a));
        if let [first, second, ..] = sorted[..]
            && first - second <= 2.0 * case.tolerance
        {
            return Err(ManifestError::field(
                at("expected"),
                format!(
                    "the top two values ({first} and {second}) are within twice the tolerance \
                     ({}), so the top label is not a stable check: use a clearer input",
                    case.tolerance
                ),
            ));
        }
        Ok(())
    }
}

fn check_text(path: &str, s: &str, max_chars: usize) -> Result<(), ManifestError> {
    if s.trim().is_empty() {
        return Err(ManifestError::field(path, "must not be empty"));
    }
    if s.chars().count() > max_chars {
        return Err(ManifestError::field(
            path,
            format!("is longer than {max_chars} characters"),
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(ManifestError::field(path, "contains control characters"));
    }
    Ok(())
}

fn check_identifier(path: &str, s: &str) -> Result<(), ManifestError> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(ManifestError::field(
            path,
            format!("must be 1-64 characters of A-Z a-z 0-9 . _ -, found {s:?}"),
        ))
    }
}

fn check_fraction(path: &str, v: f64) -> Result<(), ManifestError> {
    if (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(ManifestError::field(
            path,
            format!("is {v}; accuracies are fractions in [0, 1]"),
        ))
    }
}

/// A semantic version (<https://semver.org>), e.g. `1.2.0` or `1.2.0-rc.1+git.abc`.
fn check_semver(path: &str, s: &str) -> Result<(), ManifestError> {
    semver::Version::parse(s).map(drop).map_err(|e| {
        ManifestError::field(
            path,
            format!(
                "must look like MAJOR.MINOR.PATCH (e.g. 1.2.0 or 1.2.0-rc.1), found {s:?}: {e}"
            ),
        )
    })
}

/// RFC 3339 `date-time`: `YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)`, with calendar checks.
fn check_rfc3339(path: &str, s: &str) -> Result<(), ManifestError> {
    if is_rfc3339(s) {
        Ok(())
    } else {
        Err(ManifestError::field(
            path,
            format!("must be an RFC 3339 date-time like 2025-06-01T12:00:00Z, found {s:?}"),
        ))
    }
}

/// RFC 3339 as the `time` crate reads it, with `T` (or `t`) between date and time: `time`
/// also takes any other separator, which RFC 3339 leaves to applications.
fn is_rfc3339(s: &str) -> bool {
    matches!(s.as_bytes().get(10), Some(b'T' | b't'))
        && time::OffsetDateTime::parse(s, &Rfc3339).is_ok()
}

/// `time` as an RFC 3339 UTC date-time with second precision, e.g. `2025-06-01T12:00:00Z`
/// (for `created_at`). Times before 1970 are written as 1970-01-01T00:00:00Z.
pub fn rfc3339_utc(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let at = UNIX_EPOCH + std::time::Duration::from_secs(secs);
    time::OffsetDateTime::from(at)
        .format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
}

/// The current time, see [`rfc3339_utc`].
pub fn now_rfc3339() -> String {
    rfc3339_utc(SystemTime::now())
}

/// Serde helpers: bytes as a lowercase hex string.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(&s).map_err(|e| serde::de::Error::custom(format!("invalid hex: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_accepts_and_refuses() {
        for ok in [
            "2025-06-01T12:00:00Z",
            "2024-02-29T23:59:59.123456+05:30",
            "2016-12-31T23:59:60Z",
            "2000-02-29t00:00:00z",
            "1999-12-31T23:59:59-08:00",
        ] {
            assert!(is_rfc3339(ok), "{ok}");
        }
        for bad in [
            "",
            "2025-06-01",
            "2025-06-01 12:00:00Z",
            "2025-13-01T12:00:00Z",
            "2023-02-29T12:00:00Z",
            "1900-02-29T12:00:00Z",
            "2025-06-01T24:00:00Z",
            "2025-06-01T12:00:00",
            "2025-06-01T12:00:00.Z",
            "2025-06-01T12:00:00+0100",
            "2025-06-01T12:00:00Zjunk",
            "２０２５-06-01T12:00:00Z",
            "2024-02-29T12:00:60Z",
        ] {
            assert!(!is_rfc3339(bad), "{bad}");
        }
    }

    #[test]
    fn formats_utc_times() {
        let t = |s: u64| rfc3339_utc(UNIX_EPOCH + std::time::Duration::from_secs(s));
        assert_eq!(t(0), "1970-01-01T00:00:00Z");
        assert_eq!(t(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(t(1_748_779_200), "2025-06-01T12:00:00Z");
        assert_eq!(t(4_107_542_399), "2100-02-28T23:59:59Z");
        assert!(is_rfc3339(&now_rfc3339()));
    }

    #[test]
    fn semver_ish() {
        for ok in ["1.0.0", "0.12.3-rc.1", "2.0.0+git.abc123", "1.2.3-alpha+b7"] {
            assert!(check_semver("v", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1",
            "1.2",
            "v1.2.3",
            "1.2.3.4",
            "1.2.x",
            "1.2.3-",
            "1.2.3 beta",
        ] {
            assert!(check_semver("v", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sha256_digests_parse_strictly() {
        let d = Sha256Digest::of(b"abc");
        assert_eq!(
            d.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(d.to_hex().parse::<Sha256Digest>(), Ok(d));
        assert_eq!(d.to_hex().to_uppercase().parse::<Sha256Digest>(), Ok(d));
        assert!(
            "abc"
                .parse::<Sha256Digest>()
                .unwrap_err()
                .contains("64 hex digits")
        );
        let not_hex = "g".repeat(64);
        assert!(not_hex.parse::<Sha256Digest>().is_err());
    }

    #[test]
    fn argmax_and_softmax() {
        assert_eq!(argmax(&[]), None);
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), Some(1));
        assert_eq!(argmax(&[1.0, f32::NAN]), None);
        let p = softmax(&[1000.0, 1000.0]);
        assert_eq!(p, vec![0.5, 0.5]);
        assert!(OutputKind::Logits.to_probabilities(&[0.0, 1.0])[1] > 0.7);
    }
}
