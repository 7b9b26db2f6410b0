//! Training: feature extraction (frozen backbone, features computed once) or fine-tuning from
//! a named block, with class balancing, label smoothing or soft targets, AdamW or SGD, a
//! cosine schedule with warm-up, gradient clipping, per-epoch validation on PublicTest,
//! best/last checkpoints, resume and early stopping on validation macro-F1.

pub mod balance;
pub mod history;
pub mod optim;

use std::path::{Path, PathBuf};
use std::time::Instant;

use emotion_shared::NUM_CLASSES;
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use tch::{Kind, Reduction, Tensor};

use crate::data::augment::Augment;
use crate::data::tensors::SplitTensors;
use crate::data::{FaceSet, Split};
use crate::eval::metrics::{Confusion, Metrics};
use crate::eval::predict::{self, Predictions};
use crate::model::checkpoint::{self, LoadedModel};
use balance::{Balance, ClassWeighting};
use history::{EpochRecord, History};
use optim::{Optimizer, OptimizerKind};

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
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// Reading or writing the output folder failed.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Saved beside the checkpoints; read back by `--resume`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TrainState {
    config: TrainConfig,
    epochs_done: usize,
    best_epoch: usize,
    best_macro_f1: f64,
    data_hash: String,
}

/// Trains `model` on `data` (Training split; PublicTest for validation) and writes
/// checkpoints, `history.csv`/`history.json` and `train.json` into `out`.
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
    let io = |path: &Path, e: &dyn std::fmt::Display| TrainError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    std::fs::create_dir_all(out).map_err(|e| io(out, &e))?;
    tch::manual_seed(cfg.seed as i64);
    let device = model.vs.device();

    let train_set = SplitTensors::new(data, Split::Training, device);
    let val_set = SplitTensors::new(data, Split::PublicTest, device);
    if train_set.is_empty() {
        return Err(TrainError::Config(
            "the data set has no Training images".into(),
        ));
    }
    if val_set.is_empty() {
        return Err(TrainError::Config(
            "the data set has no PublicTest (validation) images: model selection needs them".into(),
        ));
    }
    let counts = data.class_counts(Split::Training);
    let class_weights = match cfg.balance {
        Balance::Weights => Some(
            Tensor::from_slice(&balance::class_weights(&counts, cfg.class_weighting))
                .to_kind(Kind::Float)
                .to_device(device),
        ),
        _ => None,
    };
    let sampler = (cfg.balance == Balance::Sampler).then(|| {
        Tensor::from_slice(&balance::sampler_weights(&train_set.host_labels, &counts))
            .to_kind(Kind::Float)
            .to_device(device)
    });

    // Which blocks train.
    let arch = model.meta.arch().map_err(TrainError::Config)?;
    let head_block = model
        .net
        .graph
        .block_index("head")
        .ok_or_else(|| TrainError::Config("the model has no head block".into()))?;
    let first_trainable = match (cfg.mode, &cfg.unfreeze_from) {
        (Mode::FeatureExtract, _) => Some(head_block),
        (Mode::Finetune, Some(name)) => Some(
            arch.resolve_block(&model.net.graph, name)
                .map_err(TrainError::Config)?,
        ),
        (Mode::Finetune, None) => None,
    };
    model.net.freeze_before(first_trainable);
    let trainable_params = model.net.trainable_params();
    let total_params = model.net.graph.params();
    let input = model.net.graph.input_shape();
    tracing::info!(
        "{arch} at {}x{}x{}: {total_params} parameters, {:.1} M multiply-accumulates per image; \
         {trainable_params} trainable ({:?}{})",
        input.c,
        input.h,
        input.w,
        model.net.graph.macs() as f64 / 1e6,
        cfg.mode,
        cfg.unfreeze_from
            .as_ref()
            .map(|b| format!(" from {b}"))
            .unwrap_or_default()
    );

    let (backbone, head) = model.net.trainable_groups();
    let backbone_scale = if model.meta.backbone_weights.is_some() {
        cfg.backbone_lr_scale
    } else {
        1.0
    };
    let mut opt = Optimizer::new(
        cfg.optimizer,
        vec![(backbone, backbone_scale), (head, 1.0)],
        cfg.weight_decay,
    );

    // Resume.
    let state_path = out.join("train.json");
    let data_hash = data.content_hash();
    let mut history = History::default();
    let mut start_epoch = 0;
    let mut best_epoch = 0;
    let mut best_f1 = f64::NEG_INFINITY;
    if resume {
        let bytes = std::fs::read(&state_path).map_err(|e| io(&state_path, &e))?;
        let state: TrainState = serde_json::from_slice(&bytes).map_err(|e| io(&state_path, &e))?;
        if state.data_hash != data_hash {
            return Err(TrainError::Config(format!(
                "--resume: {} was trained on other data (hash {}), this is {}",
                out.display(),
                &state.data_hash[..12],
                &data_hash[..12]
            )));
        }
        let last = out.join("last.safetensors");
        model.vs.load(&last).map_err(|e| io(&last, &e))?;
        let opt_path = out.join("optimizer.safetensors");
        let saved = Tensor::read_safetensors(&opt_path).map_err(|e| io(&opt_path, &e))?;
        opt.load_state(&saved).map_err(|e| io(&opt_path, &e))?;
        history = History::load(&out.join("history.json")).map_err(|e| io(out, &e))?;
        start_epoch = state.epochs_done;
        best_epoch = state.best_epoch;
        best_f1 = state.best_macro_f1;
        tch::manual_seed(cfg.seed as i64 + start_epoch as i64);
        tracing::info!("resuming after epoch {start_epoch} (best so far: epoch {best_epoch})");
    }

    // Feature extraction: run the frozen backbone once over both splits.
    let cached = if cfg.mode == Mode::FeatureExtract {
        let spec = &model.meta.preprocess;
        let t0 = Instant::now();
        let train_f = predict::features(&model.net, spec, &train_set, cfg.batch_size.max(64));
        let val_f = predict::features(&model.net, spec, &val_set, cfg.batch_size.max(64));
        tracing::info!(
            "features of {} images computed once in {:.1} s",
            train_set.len() + val_set.len(),
            t0.elapsed().as_secs_f64()
        );
        Some((train_f, val_f))
    } else {
        None
    };

    if cfg.distill.is_some() != teacher.is_some() {
        return Err(TrainError::Config(
            "distillation needs both its settings and a teacher".into(),
        ));
    }
    if cfg.qat_epochs > 0 && cfg.mode == Mode::FeatureExtract {
        return Err(TrainError::Config(
            "quantization-aware training needs --mode finetune (the backbone's convolutions \
             are what it adapts)"
                .into(),
        ));
    }
    // The teacher's logits: on the fly when it sees the same input as the student, otherwise
    // cached for the un-augmented training images.
    let teacher_cached = match teacher {
        Some(t) if t.meta.preprocess != model.meta.preprocess || cached.is_some() => {
            let pred = predict::predict(
                &t.net,
                &t.meta.preprocess,
                &SplitTensors::new(data, Split::Training, t.vs.device()),
                cfg.batch_size.max(64),
                false,
            );
            tracing::info!(
                "teacher logits cached for {} un-augmented training images",
                train_set.len()
            );
            Some(pred.probs.clamp_min(1e-12).log().to_device(device))
        }
        _ => None,
    };
    let qat_start = cfg.epochs.saturating_sub(cfg.qat_epochs);
    let mut fake_quant: Option<crate::quantize::qat::FakeQuant> = None;

    let n = train_set.len() as i64;
    let bs = cfg.batch_size.max(1) as i64;
    let steps_per_epoch = ((n + bs - 1) / bs) as usize;
    let total_steps = steps_per_epoch * cfg.epochs;
    let warmup = (cfg.warmup_epochs * steps_per_epoch as f64) as usize;
    let augment = if cfg.augment && cfg.mode == Mode::Finetune {
        Augment::default()
    } else {
        Augment::none()
    };
    let use_amp = cfg.amp && device.is_cuda();
    let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(cfg.seed.wrapping_add(start_epoch as u64));
    let mut stopped_early = false;

    for epoch in start_epoch..cfg.epochs {
        if cfg.qat_epochs > 0 && epoch >= qat_start && fake_quant.is_none() {
            fake_quant = Some(start_qat(model, &train_set, cfg)?);
            tracing::info!(
                "quantization-aware training from epoch {} on (per-tensor int8 weights, u8 \
                 activations, batch norm folded and frozen)",
                epoch + 1
            );
        }
        let t0 = Instant::now();
        let order = match &sampler {
            Some(w) => w.multinomial(n, true),
            None => Tensor::randperm(n, (Kind::Int64, device)),
        };
        let bar = progress(
            steps_per_epoch as u64,
            &format!("epoch {}/{}", epoch + 1, cfg.epochs),
        );
        let (mut loss_sum, mut correct, mut seen) = (0.0, 0i64, 0i64);
        let mut lr = cfg.lr;
        for step in 0..steps_per_epoch {
            let idx = order.narrow(0, step as i64 * bs, bs.min(n - step as i64 * bs));
            let global = epoch * steps_per_epoch + step;
            lr = optim::cosine_lr(cfg.lr, global, warmup, total_steps);
            let labels = train_set.labels.index_select(0, &idx);
            let soft = train_set.soft.as_ref().map(|s| s.index_select(0, &idx));
            let mut batch_input = None;
            let logits = tch::autocast(use_amp, || match &cached {
                Some((train_f, _)) => model.net.head_t(&train_f.index_select(0, &idx), true),
                None => {
                    let x = crate::preprocess::augmented_input(
                        &train_set.gather(&idx),
                        &model.meta.preprocess,
                        &augment,
                        &mut rng,
                    );
                    let y = match fake_quant.as_mut() {
                        Some(fq) => model.net.forward_hooked(&x, true, fq),
                        None => model.net.forward_t(&x, true),
                    };
                    batch_input = Some(x);
                    y
                }
            })
            .to_kind(Kind::Float);
            let hard = loss_fn(
                &logits,
                &labels,
                soft.as_ref(),
                class_weights.as_ref(),
                cfg.label_smoothing,
            );
            let loss = match (&cfg.distill, teacher) {
                (Some(d), Some(t)) => {
                    let t_logits = match (&teacher_cached, &batch_input) {
                        (Some(all), _) => all.index_select(0, &idx),
                        (None, Some(x)) => tch::no_grad(|| t.net.forward_t(x, false)),
                        (None, None) => {
                            return Err(TrainError::Config(
                                "no teacher logits for this batch".into(),
                            ));
                        }
                    };
                    distill_loss(&logits, &t_logits.to_kind(Kind::Float), &hard, d)
                }
                _ => hard,
            };
            opt.zero_grad();
            loss.backward();
            if cfg.clip_norm > 0.0 {
                opt.clip_grad_norm(cfg.clip_norm);
            }
            opt.step(lr);
            let b = idx.size()[0];
            loss_sum += f64::try_from(&loss).unwrap_or(f64::NAN) * b as f64;
            correct += i64::try_from(logits.argmax(1, false).eq_tensor(&labels).sum(Kind::Int64))
                .unwrap_or(0);
            seen += b;
            bar.inc(1);
        }
        bar.finish_and_clear();
        let train_secs = t0.elapsed().as_secs_f64();

        let val_pred = match &cached {
            Some((_, val_f)) => predict::from_features(&model.net, val_f, cfg.batch_size.max(64)),
            None => predict::predict(
                &model.net,
                &model.meta.preprocess,
                &val_set,
                cfg.batch_size.max(64),
                false,
            ),
        };
        let val = metrics_of(&val_set, &val_pred);
        let record = EpochRecord {
            epoch: epoch + 1,
            lr,
            train_loss: loss_sum / seen.max(1) as f64,
            train_accuracy: correct as f64 / seen.max(1) as f64,
            val_accuracy: val.accuracy,
            val_macro_f1: val.macro_f1,
            images_per_second: seen as f64 / train_secs.max(1e-9),
            seconds: t0.elapsed().as_secs_f64(),
        };
        tracing::info!("{}", record.line());
        history.epochs.push(record);

        let last = out.join("last.safetensors");
        checkpoint::save(model, &last).map_err(|e| io(&last, &e))?;
        let improved = val.macro_f1 > best_f1;
        if improved {
            best_f1 = val.macro_f1;
            best_epoch = epoch + 1;
            std::fs::copy(&last, out.join("best.safetensors")).map_err(|e| io(out, &e))?;
        }
        let opt_path = out.join("optimizer.safetensors");
        Tensor::write_safetensors(&opt.state(), &opt_path).map_err(|e| io(&opt_path, &e))?;
        history.save(out).map_err(|e| io(out, &e))?;
        let state = TrainState {
            config: cfg.clone(),
            epochs_done: epoch + 1,
            best_epoch,
            best_macro_f1: best_f1,
            data_hash: data_hash.clone(),
        };
        let json = serde_json::to_vec_pretty(&state).map_err(|e| io(&state_path, &e))?;
        std::fs::write(&state_path, json).map_err(|e| io(&state_path, &e))?;

        if cfg.patience > 0 && epoch + 1 - best_epoch >= cfg.patience {
            tracing::info!(
                "early stop: no better validation macro-F1 for {} epochs",
                cfg.patience
            );
            stopped_early = true;
            break;
        }
    }

    // Reload the best weights for the summary and for whatever comes next.
    let best = out.join("best.safetensors");
    model.vs.load(&best).map_err(|e| io(&best, &e))?;
    let val_pred = predict::predict(
        &model.net,
        &model.meta.preprocess,
        &val_set,
        cfg.batch_size.max(64),
        false,
    );
    let best_val = metrics_of(&val_set, &val_pred);
    warn_if_collapsed(&best_val);
    Ok(TrainSummary {
        best_epoch,
        best_val,
        epochs_run: history.epochs.len(),
        stopped_early,
        trainable_params,
        total_params,
        best_checkpoint: best,
    })
}

/// Calibrates activation ranges on up to 512 un-augmented training images and returns the
/// fake-quantization hook for quantization-aware training.
fn start_qat(
    model: &LoadedModel,
    train_set: &SplitTensors,
    cfg: &TrainConfig,
) -> Result<crate::quantize::qat::FakeQuant, TrainError> {
    use crate::quantize::RangeMethod;
    use crate::quantize::calibrate::Calibration;
    use crate::quantize::plan::QuantPlan;
    let n = train_set.len() as i64;
    let take = n.min(512);
    let idx = Tensor::arange(take, (Kind::Int64, train_set.images.device())) * (n / take.max(1));
    let x = crate::preprocess::model_input(&train_set.gather(&idx), &model.meta.preprocess);
    let plan = QuantPlan::new(&model.net.graph);
    let calibration = Calibration::collect(&model.net, &plan, &x, cfg.batch_size.max(64))
        .map_err(|e| TrainError::Config(format!("calibrating for QAT: {e}")))?;
    Ok(crate::quantize::qat::FakeQuant::new(
        &model.net,
        &calibration.ranges(RangeMethod::Percentile(99.99)),
    ))
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
