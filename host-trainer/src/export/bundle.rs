//! A checked export as a bundle: the manifest filled from the model, its run record
//! ([`RunRecord`]), the measured metrics and lineage; the bundle written with
//! `emotion_shared::bundle::write_bundle` and opened again the edge's way (signature, manifest
//! bytes, model hash, self-tests) before it is reported as written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use emotion_shared::bundle::{Bundle, SigningKey, TrustPolicy};
use emotion_shared::manifest::{
    DType, InputSpec, Lineage, Manifest, Metric, ModelInfo, OnnxFile, OutputKind, OutputSpec,
    Quantization, SCHEMA_VERSION, SelfTestCase, Sha256Digest, TrainingSummary, now_rfc3339,
};
use emotion_shared::{Emotion, NUM_CLASSES};
use serde::Serialize;
use serde_json::Value;
use tch::Device;

use super::selftest;
use super::{ExportData, ExportError};
use crate::data::tensors::SplitTensors;
use crate::data::{FaceSet, Split};
use crate::eval::metrics::{Confusion, Metrics};
use crate::eval::predict;
use crate::model::Arch;
use crate::model::checkpoint::{LoadedModel, ModelMeta};
use crate::onnx::{INPUT_NAME, OUTPUT_NAME};
use crate::train::RunRecord;

/// Why a bundle could not be assembled or written.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// The checkpoint's architecture is unknown.
    #[error("{0}")]
    Arch(String),
    /// The model does not output the seven emotions.
    #[error("{} has {classes} classes; a bundle needs the {NUM_CLASSES} FER2013 emotions", .checkpoint.display())]
    Classes {
        /// The checkpoint.
        checkpoint: PathBuf,
        /// Its number of classes.
        classes: i64,
    },
    /// The run has no finished epoch.
    #[error(
        "{}: epochs_done {epochs}, best_epoch {best_epoch}: the run has no finished epoch to export",
        .path.display()
    )]
    Unfinished {
        /// The run record.
        path: PathBuf,
        /// Epochs done.
        epochs: usize,
        /// Best epoch.
        best_epoch: usize,
    },
    /// A count of the run record does not fit the manifest.
    #[error("{}: `{field}` is not a count", .path.display())]
    Count {
        /// The run record.
        path: PathBuf,
        /// The field.
        field: &'static str,
    },
    /// A content hash is malformed.
    #[error("{what}: {reason}")]
    Hash {
        /// Which hash.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// The int8 model was not measured on a split the metrics need.
    #[error("the int8 model was not run on {}", .0.usage_name())]
    NotRun(Split),
    /// The manifest is invalid.
    #[error("the manifest built for this export does not validate (a bug in the export)")]
    Invalid(#[source] emotion_shared::manifest::ManifestError),
    /// Writing the bundle failed.
    #[error("writing the bundle {}", .dir.display())]
    Write {
        /// The bundle directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: emotion_shared::bundle::BundleError,
    },
    /// The written bundle does not open.
    #[error("re-opening the written bundle {}", .dir.display())]
    Reopen {
        /// The bundle directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: emotion_shared::bundle::BundleError,
    },
    /// The manifest could not be serialised for the comparison.
    #[error("serialising the manifest")]
    Serialise(#[source] emotion_shared::manifest::ManifestError),
    /// The manifest read back is not the one written.
    #[error("the manifest.json read back from {} differs from the one written", .dir.display())]
    ReadBack {
        /// The bundle directory.
        dir: PathBuf,
    },
    /// The written bundle's self-tests fail.
    #[error("self-tests of the written bundle {}", .dir.display())]
    SelfTests {
        /// The bundle directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: ExportError,
    },
    /// The bundle could not be packed as one file.
    #[error("writing {}", .path.display())]
    Tar {
        /// The tar file.
        path: PathBuf,
        /// Why.
        #[source]
        source: emotion_shared::bundle_tar::TarError,
    },
}

/// The architecture of `model` (loaded from `checkpoint`), refusing models that do not output
/// the seven emotions.
pub fn bundle_arch(model: &LoadedModel, checkpoint: &Path) -> Result<Arch, PackError> {
    let arch = model.meta.arch().map_err(PackError::Arch)?;
    if model.meta.classes != NUM_CLASSES as i64 {
        return Err(PackError::Classes {
            checkpoint: checkpoint.to_path_buf(),
            classes: model.meta.classes,
        });
    }
    Ok(arch)
}

/// The manifest's training summary from the run record (`path` for messages) and the
/// checkpoint's description.
pub fn training_summary(
    record: &RunRecord,
    meta: &ModelMeta,
    path: &Path,
) -> Result<TrainingSummary, PackError> {
    let count = |v: usize, field: &'static str| {
        u32::try_from(v).map_err(|_| PackError::Count {
            path: path.to_path_buf(),
            field,
        })
    };
    let epochs = count(record.epochs_done, "epochs_done")?;
    let best_epoch = count(record.best_epoch, "best_epoch")?;
    if epochs == 0 || best_epoch == 0 || best_epoch > epochs {
        return Err(PackError::Unfinished {
            path: path.to_path_buf(),
            epochs: record.epochs_done,
            best_epoch: record.best_epoch,
        });
    }
    let cfg = &record.config;
    let mut extra = BTreeMap::new();
    let mut put = |key: &str, v: Value| {
        if !v.is_null() {
            extra.insert(key.to_string(), v);
        }
    };
    put("lr", json(&cfg.lr));
    put("optimizer", json(&cfg.optimizer));
    put("batch_size", json(&cfg.batch_size));
    put("weight_decay", json(&cfg.weight_decay));
    put("label_smoothing", json(&cfg.label_smoothing));
    put("unfreeze_from", json(&cfg.unfreeze_from));
    put("class_weighting", json(&cfg.class_weighting));
    put("augment", json(&cfg.augment));
    if record.best_macro_f1.is_finite() {
        put("best_val_macro_f1", Value::from(record.best_macro_f1));
    }
    put("head", json(&meta.head));
    Ok(TrainingSummary {
        epochs,
        best_epoch,
        arch: meta.arch.clone(),
        mode: text(&cfg.mode),
        balance: text(&cfg.balance),
        seed: cfg.seed,
        extra,
    })
}

/// A value as the JSON the run record stores it as (`null` if it has none).
fn json<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// A value's JSON string (an enum's kebab-case name), or its JSON text.
fn text<T: Serialize>(v: &T) -> String {
    let v = json(v);
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

/// The training data's content hash from the run record; a `data` set with another hash is
/// reported (its metrics are then not on the training data's held-out splits).
pub fn dataset_hash(
    record: &RunRecord,
    data: Option<&FaceSet>,
) -> Result<Option<Sha256Digest>, PackError> {
    let trained: Sha256Digest = record.data_hash.parse().map_err(|reason| PackError::Hash {
        what: "train.json: malformed data_hash".into(),
        reason,
    })?;
    if let Some(set) = data {
        let given: Sha256Digest = set
            .content_hash()
            .parse()
            .map_err(|reason| PackError::Hash {
                what: "data set hash".into(),
                reason,
            })?;
        if trained != given {
            tracing::warn!(
                "--data is not the data set the model was trained on (content hash {} vs {}): \
                 the metrics are on other data",
                &given.to_hex()[..12],
                &trained.to_hex()[..12]
            );
        }
    }
    Ok(Some(trained))
}

/// Accuracy and macro-F1 of one test split.
#[derive(Debug, Clone)]
pub struct SplitMetrics {
    /// The split.
    pub split: Split,
    /// Its metrics.
    pub metrics: Metrics,
    /// Its images.
    pub images: usize,
    /// Whether they are the int8 model's (in tract) rather than libtorch's.
    pub int8: bool,
}

/// Accuracy and macro-F1 on PublicTest and PrivateTest of `data`: of the libtorch model, or,
/// given `int8` (the classes tract gave the int8 model on each split while it was chosen and
/// checked), of the int8 model. Returns the manifest's metrics and the per-split results.
pub fn test_metrics(
    model: &LoadedModel,
    data: &ExportData,
    batch: usize,
    int8: Option<&[(Split, Vec<u8>)]>,
) -> Result<(Vec<Metric>, Vec<SplitMetrics>), PackError> {
    let (path, set) = (&data.path, &data.set);
    let stem = data.stem();
    let mut out = Vec::new();
    let mut results = Vec::new();
    for split in [Split::PublicTest, Split::PrivateTest] {
        let tensors = SplitTensors::new(set, split, Device::Cpu);
        if tensors.is_empty() {
            tracing::warn!("{} has no {} images", path.display(), split.usage_name());
            continue;
        }
        let predicted = match int8 {
            Some(known) => known
                .iter()
                .find(|(s, _)| *s == split)
                .map(|(_, classes)| classes.clone())
                .ok_or(PackError::NotRun(split))?,
            None => {
                predict::predict(
                    &model.net,
                    &model.meta.preprocess,
                    &tensors,
                    batch.max(1),
                    false,
                )
                .labels
            }
        };
        let m = Confusion::from_pairs(&tensors.host_labels, &predicted).metrics();
        let name = format!("{stem}-{}", split.cli_name());
        let dataset = format!(
            "{} of {}, {} images, 48x48 grey",
            split.usage_name(),
            path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into()
            ),
            tensors.len()
        );
        for (metric, value) in [("accuracy", m.accuracy), ("macro_f1", m.macro_f1)] {
            out.push(Metric {
                name: metric.into(),
                value,
                split: name.clone(),
                dataset: dataset.clone(),
            });
        }
        results.push(SplitMetrics {
            split,
            metrics: m,
            images: tensors.len(),
            int8: int8.is_some(),
        });
    }
    Ok((out, results))
}

/// The manifest's own words for a model: name, version, description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelNaming {
    /// Model name (default: `fer-ARCH`).
    pub name: Option<String>,
    /// Model version (MAJOR.MINOR.PATCH).
    pub version: String,
    /// Free-text description.
    pub description: Option<String>,
}

/// Everything measured about the exported model that goes into its manifest.
#[derive(Debug, Clone)]
pub struct ManifestContent<'a> {
    /// The ONNX bytes the manifest pins.
    pub onnx: &'a [u8],
    /// fp32, or int8 with its calibration and accuracy.
    pub quantization: Quantization,
    /// Metrics on the test splits.
    pub metrics: Vec<Metric>,
    /// Self-test cases.
    pub self_test: Vec<SelfTestCase>,
    /// The run's training summary.
    pub training: TrainingSummary,
    /// Content hash of the training data.
    pub dataset_sha256: Option<Sha256Digest>,
}

/// The validated manifest of `model` (architecture `arch`) with `content`.
pub fn manifest(
    model: &LoadedModel,
    arch: Arch,
    naming: &ModelNaming,
    content: ManifestContent<'_>,
) -> Result<Manifest, PackError> {
    let spec = &model.meta.preprocess;
    let backbone_sha256 = match &model.meta.backbone_weights {
        Some((file, sha)) => {
            Some(
                sha.parse::<Sha256Digest>()
                    .map_err(|reason| PackError::Hash {
                        what: format!(
                            "model.json: backbone weights {file} have a malformed sha256"
                        ),
                        reason,
                    })?,
            )
        }
        None => None,
    };
    let manifest = Manifest {
        schema_version: SCHEMA_VERSION,
        model: ModelInfo {
            name: naming.name.clone().unwrap_or_else(|| format!("fer-{arch}")),
            version: naming.version.clone(),
            architecture: arch.to_string(),
            description: naming.description.clone(),
        },
        input: InputSpec {
            name: INPUT_NAME.into(),
            shape: spec.input_shape(),
            dtype: DType::F32,
        },
        output: OutputSpec {
            name: OUTPUT_NAME.into(),
            kind: OutputKind::Logits,
            shape: [1, NUM_CLASSES],
        },
        labels: Emotion::names(),
        preprocess: spec.clone(),
        quantization: content.quantization,
        metrics: content.metrics,
        onnx: OnnxFile::describe(content.onnx),
        created_at: now_rfc3339(),
        training: content.training,
        lineage: Lineage {
            backbone: model
                .meta
                .backbone_weights
                .as_ref()
                .map(|(file, _)| format!("{arch} ({file})")),
            backbone_sha256,
            dataset_sha256: content.dataset_sha256,
            git_commit: git_commit(),
            trainer_version: format!("emotion-train {}", env!("CARGO_PKG_VERSION")),
        },
        self_test: content.self_test,
    };
    manifest.validate().map_err(PackError::Invalid)?;
    Ok(manifest)
}

/// Writes the bundle into `dir` (signed with `key`, if given), opens it again as the edge will
/// (signature, manifest bytes, model hash) and replays its self-tests on the bytes it returns;
/// with `tar`, also packs it as `DIR.tar` and returns that path.
pub fn write_checked(
    dir: &Path,
    manifest: &Manifest,
    onnx: &[u8],
    key: Option<&SigningKey>,
    tar: bool,
) -> Result<Option<PathBuf>, PackError> {
    emotion_shared::bundle::write_bundle(dir, manifest, onnx, key).map_err(|source| {
        PackError::Write {
            dir: dir.to_path_buf(),
            source,
        }
    })?;
    reopen(dir, manifest, key)?;
    if !tar {
        return Ok(None);
    }
    let tar_path = PathBuf::from(format!("{}.tar", dir.display()));
    emotion_shared::bundle_tar::pack(dir, &tar_path).map_err(|source| PackError::Tar {
        path: tar_path.clone(),
        source,
    })?;
    Ok(Some(tar_path))
}

/// Opens the written bundle as the edge will (signature, manifest, model hash) and replays its
/// self-tests on the bytes it returns.
fn reopen(dir: &Path, written: &Manifest, key: Option<&SigningKey>) -> Result<(), PackError> {
    let policy = match key {
        Some(k) => TrustPolicy::require(k.verifying_key()),
        None => {
            tracing::warn!(
                "the bundle is UNSIGNED: devices refuse it unless configured to accept unsigned \
                 bundles; pass --sign-key (make one with `emotion-train keygen`)"
            );
            TrustPolicy::AllowUnsigned
        }
    };
    let bundle = Bundle::open(dir, &policy).map_err(|source| PackError::Reopen {
        dir: dir.to_path_buf(),
        source,
    })?;
    // Compare bytes, not parsed values: serde_json's default float parsing may differ from the
    // written value in the last bit, and the bytes are what the signature covers.
    let json = written.to_json_pretty().map_err(PackError::Serialise)?;
    if bundle.manifest_bytes() != json.as_bytes() {
        return Err(PackError::ReadBack {
            dir: dir.to_path_buf(),
        });
    }
    let worst = selftest::replay(
        bundle.onnx_bytes(),
        &bundle.manifest().preprocess,
        &bundle.manifest().self_test,
    )
    .map_err(|source| PackError::SelfTests {
        dir: dir.to_path_buf(),
        source,
    })?;
    tracing::info!(
        "re-opened {} ({}): self-tests pass, max error {worst:.2e}",
        dir.display(),
        bundle.signature()
    );
    Ok(())
}

/// The trainer source's git commit, if the source tree it was built from is still a git
/// checkout (or the current directory is).
pub fn git_commit() -> Option<String> {
    for dir in [env!("CARGO_MANIFEST_DIR"), "."] {
        let out = Command::new("git")
            .args(["-C", dir, "rev-parse", "HEAD"])
            .output();
        if let Ok(out) = out
            && out.status.success()
        {
            let commit = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if (7..=64).contains(&commit.len()) && commit.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Some(commit);
            }
        }
    }
    tracing::debug!("no git commit found for the lineage");
    None
}
