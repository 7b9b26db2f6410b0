//! The record of a training run: `train.json` beside its checkpoints, written by `train` after
//! every epoch and read back by `--resume`, `export` and `eval`.
//!
//! The file is the serde form of [`RunRecord`]; its field names are the on-disk format.
//! Reading reports which field is wrong (`config.seed: invalid type ...`) through
//! `serde_path_to_error`, so a hand-edited or truncated record names the culprit.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

use super::TrainConfig;
use crate::model::checkpoint;

/// What a training run did so far: its configuration, progress and best epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The configuration the run trains with.
    pub config: TrainConfig,
    /// Epochs finished (this session and before).
    pub epochs_done: usize,
    /// Epoch (1-based) with the best validation macro-F1; 0 before any improvement.
    pub best_epoch: usize,
    /// Validation macro-F1 of the best epoch (negative infinity, stored as `null`, before any).
    #[serde(deserialize_with = "f64_or_null")]
    pub best_macro_f1: f64,
    /// Content hash of the data set trained on (`FaceSet::content_hash`, sha256 hex).
    pub data_hash: String,
}

/// Why a run record could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The file could not be read.
    #[error(
        "cannot read {path} (the training run's record, written by `emotion-train train`; is \
         this a training run folder?): {source}"
    )]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A field is missing or malformed.
    #[error("{path}: field `{field}`: {reason}")]
    Field {
        /// The file.
        path: PathBuf,
        /// Where in the file, e.g. `config.seed` (`.` for the whole document).
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// The file could not be written.
    #[error("cannot write {path}: {reason}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl RunRecord {
    /// File name of the record in a run folder.
    pub const FILE: &'static str = "train.json";

    /// The record's path in the run folder `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(Self::FILE)
    }

    /// Reads the record of the run folder `dir`.
    pub fn load(dir: &Path) -> Result<RunRecord, RecordError> {
        let path = Self::path(dir);
        let bytes = std::fs::read(&path).map_err(|source| RecordError::Read {
            path: path.clone(),
            source,
        })?;
        Self::from_json(&bytes).map_err(|(field, reason)| RecordError::Field {
            path,
            field,
            reason,
        })
    }

    /// Reads the record of the run a checkpoint argument (run folder or `.safetensors` file in
    /// one) belongs to.
    pub fn of_checkpoint(checkpoint: &Path) -> Result<RunRecord, RecordError> {
        Self::load(&checkpoint::run_dir_of(checkpoint))
    }

    /// Parses a record; a failure is `(field path, reason)`.
    fn from_json(bytes: &[u8]) -> Result<RunRecord, (String, String)> {
        let de = &mut serde_json::Deserializer::from_slice(bytes);
        serde_path_to_error::deserialize(de)
            .map_err(|e| (e.path().to_string(), e.into_inner().to_string()))
    }

    /// Writes the record into the run folder `dir` (pretty JSON).
    pub fn save(&self, dir: &Path) -> Result<(), RecordError> {
        let path = Self::path(dir);
        let write = |reason: String| RecordError::Write {
            path: path.clone(),
            reason,
        };
        let json = serde_json::to_vec_pretty(self).map_err(|e| write(e.to_string()))?;
        std::fs::write(&path, json).map_err(|e| write(e.to_string()))
    }
}

/// An `f64` that serde_json wrote as `null` because it was not finite (negative infinity before
/// any epoch improved).
fn f64_or_null<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NEG_INFINITY))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> RunRecord {
        RunRecord {
            config: TrainConfig::default(),
            epochs_done: 3,
            best_epoch: 2,
            best_macro_f1: 0.4375,
            data_hash: "ab".repeat(32),
        }
    }

    #[test]
    fn round_trips_through_the_run_folder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = record();
        r.save(dir.path()).expect("saves");
        assert_eq!(RunRecord::load(dir.path()).expect("loads"), r);
        // Before any improvement the best macro-F1 is -inf, which JSON stores as null.
        let fresh = RunRecord {
            best_epoch: 0,
            best_macro_f1: f64::NEG_INFINITY,
            ..record()
        };
        fresh.save(dir.path()).expect("saves");
        let text = std::fs::read_to_string(RunRecord::path(dir.path())).expect("reads");
        assert!(text.contains("\"best_macro_f1\": null"), "{text}");
        assert_eq!(RunRecord::load(dir.path()).expect("loads"), fresh);
    }

    #[test]
    fn keeps_the_field_names_of_existing_runs() {
        let json = serde_json::to_value(record()).expect("serialises");
        for pointer in [
            "/config/mode",
            "/config/balance",
            "/config/seed",
            "/config/lr",
            "/epochs_done",
            "/best_epoch",
            "/best_macro_f1",
            "/data_hash",
        ] {
            assert!(json.pointer(pointer).is_some(), "{pointer} missing: {json}");
        }
        assert_eq!(json["config"]["mode"], "finetune");
        // Runs written before quantization-aware training and distillation still load.
        let mut old = json.clone();
        let config = old["config"].as_object_mut().expect("object");
        config.remove("qat_epochs");
        config.remove("distill");
        let bytes = serde_json::to_vec(&old).expect("json");
        assert_eq!(RunRecord::from_json(&bytes).expect("loads"), record());
    }

    #[test]
    fn a_bad_field_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut json = serde_json::to_value(record()).expect("serialises");
        json["config"]["seed"] = serde_json::json!("forty-two");
        std::fs::write(RunRecord::path(dir.path()), json.to_string()).expect("writes");
        let err = RunRecord::load(dir.path()).expect_err("a string seed is refused");
        let msg = err.to_string();
        assert!(
            matches!(&err, RecordError::Field { field, .. } if field == "config.seed"),
            "{msg}"
        );
        assert!(msg.contains("train.json: field `config.seed`"), "{msg}");

        json["config"]["seed"] = serde_json::json!(42);
        json.as_object_mut().expect("object").remove("epochs_done");
        std::fs::write(RunRecord::path(dir.path()), json.to_string()).expect("writes");
        let msg = RunRecord::load(dir.path())
            .expect_err("missing")
            .to_string();
        assert!(msg.contains("epochs_done"), "{msg}");

        let empty = tempfile::tempdir().expect("tempdir");
        let err = RunRecord::load(empty.path()).expect_err("no record");
        assert!(matches!(err, RecordError::Read { .. }), "{err}");
    }
}
