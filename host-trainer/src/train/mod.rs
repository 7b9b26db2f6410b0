//! Training: feature extraction (frozen backbone, features computed once) or fine-tuning from
//! a named block, with class balancing, label smoothing or soft targets, AdamW or SGD, a
//! cosine schedule with warm-up, gradient clipping, per-epoch validation on PublicTest,
//! best/last checkpoints, resume and early stopping on validation macro-F1.
//!
//! The loop is [`Trainer`] ([`trainer`]); what a run did so far is its [`RunRecord`]
//! (`train.json`, [`record`]), written after every epoch and read by `--resume` and `export`.

pub mod balance;
pub mod history;
pub mod optim;
pub mod record;
pub mod trainer;

pub use record::{RecordError, RunRecord};
pub use trainer::Trainer;

use std::path::{Path, PathBuf};

use emotion_shared::NUM_CLASSES;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use tch::{Kind, Reduction, Tensor};

use crate::data::FaceSet;
use crate::data::tensors::SplitTensors;
use crate::eval::metrics::{Confusion, Metrics};
use crate::eval::predict::Predictions;
use crate::model::checkpoint::LoadedModel;
use balance::{Balance, ClassWeighting};
use optim::OptimizerKind;

/// Feature extraction or fine-tuning (`--mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Backbone frozen (batch norm too); features computed once; only the head trains.
    FeatureExtract,
    /// Train from `--unfreeze-from` (or everything) on, with augmentation.
    Finetune,
}

/// Everything that shapes a training run (saved in `train.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Feature extraction or fine-tuning.
    pub mode: Mode,
    /// First block to train in fine-tuning (`None`: all).
    pub unfreeze_from: Option<String>,
    /// Class-imbalance remedy.
    pub balance: Balance,
    /// Loss weights for `Balance::Weights`.
    pub class_weighting: ClassWeighting,
    /// Label smoothing for hard targets.
    pub label_smoothing: f64,
    /// Optimiser.
    pub optimizer: OptimizerKind,
    /// Peak learning rate (head, and whole network when trained from scratch).
    pub lr: f64,
    /// Learning-rate multiplier for unfrozen backbone layers when starting from weights.
    pub backbone_lr_scale: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// Epochs.
    pub epochs: usize,
    /// Warm-up epochs (may be fractional).
    pub warmup_epochs: f64,
    /// Batch size.
    pub batch_size: usize,
    /// Gradient clipping by global norm (0 = off).
    pub clip_norm: f64,
    /// Random seed (libtorch generator: shuffling, augmentation, initialisation).
    pub seed: u64,
    /// Stop after this many epochs without a better validation macro-F1 (0 = never).
    pub patience: usize,
    /// Augment training batches (fine-tuning only).
    pub augment: bool,
    /// Mixed precision on CUDA.
    pub amp: bool,
    /// Quantization-aware training during the last this many epochs (0 = off).
    #[serde(default)]
    pub qat_epochs: usize,
    /// Knowledge distillation from a teacher (`emotion-train distill`).
    #[serde(default)]
    pub distill: Option<DistillConfig>,
}

/// Soft-target distillation: `alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistillConfig {
    /// Softmax temperature of both teacher and student in the KD term.
    pub temperature: f64,
    /// Weight of the KD term (the hard-label loss gets `1 - alpha`).
    pub alpha: f64,
    /// The teacher checkpoint, for the record.
    pub teacher: String,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            mode: Mode::Finetune,
            unfreeze_from: None,
            balance: Balance::Weights,
            class_weighting: ClassWeighting::Inverse,
            label_smoothing: 0.0,
            optimizer: OptimizerKind::Adamw,
            lr: 3e-3,
            backbone_lr_scale: 0.1,
            weight_decay: 1e-4,
            epochs: 20,
            warmup_epochs: 1.0,
            batch_size: 64,
            clip_norm: 5.0,
            seed: 42,
            patience: 0,
            augment: true,
            amp: true,
            qat_epochs: 0,
            distill: None,
        }
    }
}

/// What a finished run reports.
#[derive(Debug, Clone, Serialize)]
pub struct TrainSummary {
    /// Epoch (1-based) with the best validation macro-F1.
    pub best_epoch: usize,
    /// Validation metrics of the best epoch.
    pub best_val: Metrics,
    /// Epochs run (this session and before, when resumed).
    pub epochs_run: usize,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
    /// Trainable parameters.
    pub trainable_params: i64,
    /// All parameters.
    pub total_params: i64,
    /// Best checkpoint.
    pub best_checkpoint: PathBuf,
}

/// Errors in training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The configuration does not fit the model or data.
    #[error("{0}")]
    Config(String),
    /// The run record (`train.json`) could not be read or written.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// Reading or writing the output folder failed.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Trains `model` on `data` (Training split; PublicTest for validation) and writes
/// checkpoints, `history.csv`/`history.json` and the [`RunRecord`] (`train.json`) into `out`.
pub fn train(
    model: &mut LoadedModel,
    data: &FaceSet,
    cfg: &TrainConfig,
    out: &Path,
    resume: bool,
) -> Result<TrainSummary, TrainError> {
    train_with(model, data, cfg, out, resume, None)
}

/// [`train`] with a `teacher` for `cfg.distill`: its logits are computed on the fly on the
/// same augmented batch when it shares the student's preprocessing, otherwise once for the
/// un-augmented training images.
pub fn train_with(
    model: &mut LoadedModel,
    data: &FaceSet,
    cfg: &TrainConfig,
    out: &Path,
    resume: bool,
    teacher: Option<&LoadedModel>,
) -> Result<TrainSummary, TrainError> {
    Trainer::new(model, data, cfg, out, resume, teacher)?.run()
}

/// The distillation loss: `alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * hard`.
pub fn distill_loss(
    student: &Tensor,
    teacher: &Tensor,
    hard: &Tensor,
    d: &DistillConfig,
) -> Tensor {
    let t = d.temperature;
    let p_teacher = (teacher / t).softmax(1, Kind::Float);
    let log_student = (student / t).log_softmax(1, Kind::Float);
    let kl = (&p_teacher * (p_teacher.clamp_min(1e-12).log() - log_student))
        .sum_dim_intlist([1i64].as_slice(), false, Kind::Float)
        .mean(Kind::Float);
    kl * (d.alpha * t * t) + hard * (1.0 - d.alpha)
}

/// Cross-entropy with optional class weights, label smoothing, or soft targets.
pub fn loss_fn(
    logits: &Tensor,
    labels: &Tensor,
    soft: Option<&Tensor>,
    class_weights: Option<&Tensor>,
    label_smoothing: f64,
) -> Tensor {
    match soft {
        Some(target) => {
            let logp = logits.log_softmax(1, Kind::Float);
            let per_sample =
                -(target * &logp).sum_dim_intlist([1i64].as_slice(), false, Kind::Float);
            match class_weights {
                Some(w) => {
                    let sw = target.matmul(w);
                    (per_sample * &sw).sum(Kind::Float) / sw.sum(Kind::Float)
                }
                None => per_sample.mean(Kind::Float),
            }
        }
        None => logits.cross_entropy_loss(
            labels,
            class_weights,
            Reduction::Mean,
            -100,
            label_smoothing,
        ),
    }
}

/// Metrics of predictions on a split.
pub fn metrics_of(split: &SplitTensors, pred: &Predictions) -> Metrics {
    Confusion::from_pairs(&split.host_labels, &pred.labels).metrics()
}

/// The seed's first finding, detected: a head that has collapsed onto few classes.
pub fn warn_if_collapsed(m: &Metrics) -> bool {
    let (class, recall) = m.worst_recall();
    let collapsed = m
        .per_class
        .iter()
        .filter(|s| s.support > 0 && s.recall < 0.05)
        .count();
    if collapsed >= 2 || recall < 0.01 {
        tracing::warn!(
            "the model collapsed toward the majority classes: {collapsed} of {NUM_CLASSES} classes \
             have recall below 5% (worst: {class} at {:.1}%). Class imbalance does this (the \
             seed always predicted happy): try --balance weights or --balance sampler, and \
             fine-tune (--mode finetune) so the features learn expressions, not identities",
            recall * 100.0
        );
        return true;
    }
    false
}

/// A progress bar with ETA, hidden when stderr is not a terminal.
pub fn progress(len: u64, msg: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg:>14} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(msg.to_string());
    bar
}
