//! The training loop in pieces: [`Trainer::new`] prepares a run (splits, class balancing,
//! frozen blocks, optimiser, resume, feature and teacher caches), [`Trainer::epoch`] trains,
//! validates and checkpoints one epoch, [`Trainer::step`] trains one batch, and
//! [`Trainer::run`] loops until the last epoch or an early stop, then reloads the best weights.
//! [`Schedule`] and [`BestEpoch`] are the arithmetic of batches, learning rate and early
//! stopping, on their own so they can be checked without a model.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::SeedableRng;
use tch::{Device, Kind, Tensor};

use super::balance::{self, Balance};
use super::history::{EpochRecord, History};
use super::optim::{self, Optimizer};
use super::record::RunRecord;
use super::{
    DistillConfig, Mode, TrainConfig, TrainError, TrainSummary, distill_loss, loss_fn, metrics_of,
    progress, warn_if_collapsed,
};
use crate::data::augment::Augment;
use crate::data::tensors::SplitTensors;
use crate::data::{FaceSet, Split};
use crate::eval::metrics::Metrics;
use crate::eval::predict;
use crate::model::checkpoint::{self, LoadedModel};
use crate::quantize::qat::FakeQuant;

/// An I/O failure on `path`.
fn io(path: &Path, e: &dyn std::fmt::Display) -> TrainError {
    TrainError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Batches per epoch and the learning-rate schedule over the whole run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Training images per epoch.
    pub images: i64,
    /// Batch size (the last batch of an epoch may be smaller).
    pub batch: i64,
    /// Batches per epoch.
    pub steps_per_epoch: usize,
    /// Batches in the whole run.
    pub total_steps: usize,
    /// Warm-up batches.
    pub warmup: usize,
}

impl Schedule {
    /// The schedule of `cfg` over `images` training images.
    pub fn new(images: usize, cfg: &TrainConfig) -> Schedule {
        let n = images as i64;
        let bs = cfg.batch_size.max(1) as i64;
        let steps_per_epoch = ((n + bs - 1) / bs) as usize;
        Schedule {
            images: n,
            batch: bs,
            steps_per_epoch,
            total_steps: steps_per_epoch * cfg.epochs,
            warmup: (cfg.warmup_epochs * steps_per_epoch as f64) as usize,
        }
    }

    /// Start and length of batch `step` in an epoch's image order.
    pub fn batch_range(&self, step: usize) -> (i64, i64) {
        let start = step as i64 * self.batch;
        (start, self.batch.min(self.images - start))
    }

    /// Learning rate of batch `step` of (0-based) `epoch`: cosine with warm-up from `base`.
    pub fn lr(&self, base: f64, epoch: usize, step: usize) -> f64 {
        optim::cosine_lr(
            base,
            epoch * self.steps_per_epoch + step,
            self.warmup,
            self.total_steps,
        )
    }
}

/// The best validation macro-F1 so far, and early stopping on it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BestEpoch {
    /// Epoch (1-based) of the best macro-F1; 0 before any.
    pub epoch: usize,
    /// The best macro-F1 (negative infinity before any).
    pub macro_f1: f64,
}

impl Default for BestEpoch {
    fn default() -> Self {
        BestEpoch {
            epoch: 0,
            macro_f1: f64::NEG_INFINITY,
        }
    }
}

impl BestEpoch {
    /// Records (1-based) `epoch`'s validation `macro_f1`; true when it is strictly better.
    pub fn update(&mut self, epoch: usize, macro_f1: f64) -> bool {
        let improved = macro_f1 > self.macro_f1;
        if improved {
            self.macro_f1 = macro_f1;
            self.epoch = epoch;
        }
        improved
    }

    /// After `epochs_done` epochs: stop, because `patience` (> 0) epochs brought nothing
    /// better?
    pub fn should_stop(&self, epochs_done: usize, patience: usize) -> bool {
        patience > 0 && epochs_done - self.epoch >= patience
    }
}

/// What one batch did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepOutcome {
    /// The loss (distillation term included).
    pub loss: f64,
    /// Images of the batch classified correctly.
    pub correct: i64,
    /// Images in the batch.
    pub images: i64,
    /// Learning rate used.
    pub lr: f64,
}

/// What one epoch did.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochOutcome {
    /// Its line in the history.
    pub record: EpochRecord,
    /// Whether its validation macro-F1 is the best so far (then it is `best.safetensors`).
    pub improved: bool,
    /// Whether early stopping ends the run after it.
    pub stop: bool,
}

/// A training run in progress: `model` trained on a data set's Training split, validated on its
/// PublicTest split, with checkpoints, history and the [`RunRecord`] written into a folder.
pub struct Trainer<'a> {
    model: &'a mut LoadedModel,
    teacher: Option<&'a LoadedModel>,
    cfg: &'a TrainConfig,
    out: PathBuf,
    device: Device,
    data_hash: String,
    train_set: SplitTensors,
    val_set: SplitTensors,
    class_weights: Option<Tensor>,
    sampler: Option<Tensor>,
    opt: Optimizer,
    /// Backbone features of the training and validation images (feature extraction).
    features: Option<(Tensor, Tensor)>,
    /// The teacher's log-probabilities for the un-augmented training images, when it cannot
    /// see the student's batches.
    teacher_logits: Option<Tensor>,
    fake_quant: Option<FakeQuant>,
    augment: Augment,
    use_amp: bool,
    rng: rand_pcg::Pcg64Mcg,
    schedule: Schedule,
    history: History,
    best: BestEpoch,
    next_epoch: usize,
    trainable_params: i64,
    total_params: i64,
}

impl std::fmt::Debug for Trainer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("out", &self.out)
            .field("schedule", &self.schedule)
            .field("best", &self.best)
            .field("next_epoch", &self.next_epoch)
            .finish_non_exhaustive()
    }
}

impl<'a> Trainer<'a> {
    /// Prepares training `model` on `data` into `out` (created if needed): with `resume`, from
    /// the run already there; with a `teacher`, distilling it (`cfg.distill`).
    pub fn new(
        model: &'a mut LoadedModel,
        data: &FaceSet,
        cfg: &'a TrainConfig,
        out: &Path,
        resume: bool,
        teacher: Option<&'a LoadedModel>,
    ) -> Result<Trainer<'a>, TrainError> {
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
                "the data set has no PublicTest (validation) images: model selection needs them"
                    .into(),
            ));
        }
        let (class_weights, sampler) = balancing(data, cfg, &train_set, device);
        let (trainable_params, total_params) = freeze(model, cfg)?;
        let mut opt = optimizer(model, cfg);

        let data_hash = data.content_hash();
        let mut history = History::default();
        let mut best = BestEpoch::default();
        let mut start_epoch = 0;
        if resume {
            let record = RunRecord::load(out)?;
            check_resume(&record, &data_hash, out)?;
            history = restore(model, &mut opt, out)?;
            start_epoch = record.epochs_done;
            best = BestEpoch {
                epoch: record.best_epoch,
                macro_f1: record.best_macro_f1,
            };
            tch::manual_seed(cfg.seed as i64 + start_epoch as i64);
            tracing::info!(
                "resuming after epoch {start_epoch} (best so far: epoch {})",
                best.epoch
            );
        }

        let features = (cfg.mode == Mode::FeatureExtract)
            .then(|| feature_cache(model, &train_set, &val_set, cfg));
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
        let teacher_logits = teacher_cache(
            teacher,
            model,
            data,
            train_set.len(),
            features.is_some(),
            cfg,
        );

        let schedule = Schedule::new(train_set.len(), cfg);
        let augment = if cfg.augment && cfg.mode == Mode::Finetune {
            Augment::default()
        } else {
            Augment::none()
        };
        Ok(Trainer {
            use_amp: cfg.amp && device.is_cuda(),
            rng: rand_pcg::Pcg64Mcg::seed_from_u64(cfg.seed.wrapping_add(start_epoch as u64)),
            model,
            teacher,
            cfg,
            out: out.to_path_buf(),
            device,
            data_hash,
            train_set,
            val_set,
            class_weights,
            sampler,
            opt,
            features,
            teacher_logits,
            fake_quant: None,
            augment,
            schedule,
            history,
            best,
            next_epoch: start_epoch,
            trainable_params,
            total_params,
        })
    }

    /// The batches and learning rates of the run.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// The best epoch so far.
    pub fn best(&self) -> BestEpoch {
        self.best
    }

    /// The next epoch to train (0-based): epochs done so far.
    pub fn next_epoch(&self) -> usize {
        self.next_epoch
    }

    /// Trains until the last epoch or an early stop, then reloads the best weights and
    /// measures them on the validation split.
    pub fn run(mut self) -> Result<TrainSummary, TrainError> {
        let mut stopped_early = false;
        while self.next_epoch < self.cfg.epochs {
            if self.epoch()?.stop {
                stopped_early = true;
                break;
            }
        }
        self.finish(stopped_early)
    }

    /// Trains one epoch over the Training split (in a fresh random or balanced order),
    /// validates it, writes the checkpoints, history and run record, and says whether early
    /// stopping ends the run.
    pub fn epoch(&mut self) -> Result<EpochOutcome, TrainError> {
        let epoch = self.next_epoch;
        let cfg = self.cfg;
        let qat_start = cfg.epochs.saturating_sub(cfg.qat_epochs);
        if cfg.qat_epochs > 0 && epoch >= qat_start && self.fake_quant.is_none() {
            self.fake_quant = Some(start_qat(self.model, &self.train_set, cfg)?);
            tracing::info!(
                "quantization-aware training from epoch {} on (per-tensor int8 weights, u8 \
                 activations, batch norm folded and frozen)",
                epoch + 1
            );
        }
        let t0 = Instant::now();
        let n = self.schedule.images;
        let order = match &self.sampler {
            Some(w) => w.multinomial(n, true),
            None => Tensor::randperm(n, (Kind::Int64, self.device)),
        };
        let steps = self.schedule.steps_per_epoch;
        let bar = progress(steps as u64, &format!("epoch {}/{}", epoch + 1, cfg.epochs));
        let (mut loss_sum, mut correct, mut seen) = (0.0, 0i64, 0i64);
        let mut lr = cfg.lr;
        for step in 0..steps {
            let s = self.step(epoch, step, &order)?;
            lr = s.lr;
            loss_sum += s.loss * s.images as f64;
            correct += s.correct;
            seen += s.images;
            bar.inc(1);
        }
        bar.finish_and_clear();
        let train_secs = t0.elapsed().as_secs_f64();

        let val = self.validate();
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
        self.history.epochs.push(record.clone());
        let improved = self.checkpoint(epoch + 1, val.macro_f1)?;
        self.next_epoch = epoch + 1;

        let stop = self.best.should_stop(epoch + 1, cfg.patience);
        if stop {
            tracing::info!(
                "early stop: no better validation macro-F1 for {} epochs",
                cfg.patience
            );
        }
        Ok(EpochOutcome {
            record,
            improved,
            stop,
        })
    }

    /// Trains batch `step` of (0-based) `epoch`, whose images are taken from `order`: forward
    /// (on cached features, or on augmented images, with fake quantization during QAT), loss
    /// (with the teacher's soft targets when distilling), backward, clipping, optimiser step.
    pub fn step(
        &mut self,
        epoch: usize,
        step: usize,
        order: &Tensor,
    ) -> Result<StepOutcome, TrainError> {
        let cfg = self.cfg;
        let (start, len) = self.schedule.batch_range(step);
        let idx = order.narrow(0, start, len);
        let lr = self.schedule.lr(cfg.lr, epoch, step);
        let labels = self.train_set.labels.index_select(0, &idx);
        let soft = self
            .train_set
            .soft
            .as_ref()
            .map(|s| s.index_select(0, &idx));
        let mut batch_input = None;
        let model = &*self.model;
        let (train_set, augment, rng, fake_quant) = (
            &self.train_set,
            &self.augment,
            &mut self.rng,
            &mut self.fake_quant,
        );
        let logits = tch::autocast(self.use_amp, || match &self.features {
            Some((train_f, _)) => model.net.head_t(&train_f.index_select(0, &idx), true),
            None => {
                let x = crate::preprocess::augmented_input(
                    &train_set.gather(&idx),
                    &model.meta.preprocess,
                    augment,
                    rng,
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
            self.class_weights.as_ref(),
            cfg.label_smoothing,
        );
        let loss = match (&cfg.distill, self.teacher) {
            (Some(d), Some(t)) => self.distilled(&logits, &hard, d, t, &idx, batch_input)?,
            _ => hard,
        };
        self.opt.zero_grad();
        loss.backward();
        if cfg.clip_norm > 0.0 {
            self.opt.clip_grad_norm(cfg.clip_norm);
        }
        self.opt.step(lr);
        let images = idx.size()[0];
        Ok(StepOutcome {
            loss: f64::try_from(&loss).unwrap_or(f64::NAN),
            correct: i64::try_from(logits.argmax(1, false).eq_tensor(&labels).sum(Kind::Int64))
                .unwrap_or(0),
            images,
            lr,
        })
    }

    /// The distillation loss of a batch: the teacher's logits from the cache (rows `idx`) or
    /// computed on the student's own (augmented) `input`.
    fn distilled(
        &self,
        logits: &Tensor,
        hard: &Tensor,
        d: &DistillConfig,
        teacher: &LoadedModel,
        idx: &Tensor,
        input: Option<Tensor>,
    ) -> Result<Tensor, TrainError> {
        let t_logits = match (&self.teacher_logits, &input) {
            (Some(all), _) => all.index_select(0, idx),
            (None, Some(x)) => tch::no_grad(|| teacher.net.forward_t(x, false)),
            (None, None) => {
                return Err(TrainError::Config(
                    "no teacher logits for this batch".into(),
                ));
            }
        };
        Ok(distill_loss(
            logits,
            &t_logits.to_kind(Kind::Float),
            hard,
            d,
        ))
    }

    /// Validation metrics of the current weights (on cached features when extracting).
    fn validate(&self) -> Metrics {
        let batch = self.cfg.batch_size.max(64);
        let pred = match &self.features {
            Some((_, val_f)) => predict::from_features(&self.model.net, val_f, batch),
            None => predict::predict(
                &self.model.net,
                &self.model.meta.preprocess,
                &self.val_set,
                batch,
                false,
            ),
        };
        metrics_of(&self.val_set, &pred)
    }

    /// After (1-based) `epoch` with validation `macro_f1`: `last.safetensors`, a copy as
    /// `best.safetensors` when it improved, the optimiser state, the history and the
    /// [`RunRecord`]. Returns whether it improved.
    fn checkpoint(&mut self, epoch: usize, macro_f1: f64) -> Result<bool, TrainError> {
        let out = &self.out;
        let last = out.join("last.safetensors");
        checkpoint::save(self.model, &last).map_err(|e| io(&last, &e))?;
        let improved = self.best.update(epoch, macro_f1);
        if improved {
            std::fs::copy(&last, out.join("best.safetensors")).map_err(|e| io(out, &e))?;
        }
        let opt_path = out.join("optimizer.safetensors");
        Tensor::write_safetensors(&self.opt.state(), &opt_path).map_err(|e| io(&opt_path, &e))?;
        self.history.save(out).map_err(|e| io(out, &e))?;
        RunRecord {
            config: self.cfg.clone(),
            epochs_done: epoch,
            best_epoch: self.best.epoch,
            best_macro_f1: self.best.macro_f1,
            data_hash: self.data_hash.clone(),
        }
        .save(out)?;
        Ok(improved)
    }

    /// Reloads the best weights (for the summary and whatever comes next) and measures them.
    fn finish(self, stopped_early: bool) -> Result<TrainSummary, TrainError> {
        let best = self.out.join("best.safetensors");
        self.model.vs.load(&best).map_err(|e| io(&best, &e))?;
        let val_pred = predict::predict(
            &self.model.net,
            &self.model.meta.preprocess,
            &self.val_set,
            self.cfg.batch_size.max(64),
            false,
        );
        let best_val = metrics_of(&self.val_set, &val_pred);
        warn_if_collapsed(&best_val);
        Ok(TrainSummary {
            best_epoch: self.best.epoch,
            best_val,
            epochs_run: self.history.epochs.len(),
            stopped_early,
            trainable_params: self.trainable_params,
            total_params: self.total_params,
            best_checkpoint: best,
        })
    }
}

/// Class weights for the loss (`Balance::Weights`) or sampling weights (`Balance::Sampler`).
fn balancing(
    data: &FaceSet,
    cfg: &TrainConfig,
    train_set: &SplitTensors,
    device: Device,
) -> (Option<Tensor>, Option<Tensor>) {
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
    (class_weights, sampler)
}

/// Freezes the blocks that do not train (`--mode`, `--unfreeze-from`) and logs the model's
/// size; returns the trainable and total parameter counts.
fn freeze(model: &mut LoadedModel, cfg: &TrainConfig) -> Result<(i64, i64), TrainError> {
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
    Ok((trainable_params, total_params))
}

/// The optimiser over the trainable backbone (at `backbone_lr_scale` when it starts from
/// pretrained weights) and head.
fn optimizer(model: &LoadedModel, cfg: &TrainConfig) -> Optimizer {
    let (backbone, head) = model.net.trainable_groups();
    let backbone_scale = if model.meta.backbone_weights.is_some() {
        cfg.backbone_lr_scale
    } else {
        1.0
    };
    Optimizer::new(
        cfg.optimizer,
        vec![(backbone, backbone_scale), (head, 1.0)],
        cfg.weight_decay,
    )
}

/// Refuses to resume the run in `out` (recorded as `record`) on data other than `data_hash`.
pub fn check_resume(record: &RunRecord, data_hash: &str, out: &Path) -> Result<(), TrainError> {
    if record.data_hash != data_hash {
        let short = |h: &str| h.get(..12).unwrap_or(h).to_string();
        return Err(TrainError::Config(format!(
            "--resume: {} was trained on other data (hash {}), this is {}",
            out.display(),
            short(&record.data_hash),
            short(data_hash)
        )));
    }
    Ok(())
}

/// Restores the weights (`last.safetensors`) and optimiser state of the run in `out`; returns
/// its history.
fn restore(
    model: &mut LoadedModel,
    opt: &mut Optimizer,
    out: &Path,
) -> Result<History, TrainError> {
    let last = out.join("last.safetensors");
    model.vs.load(&last).map_err(|e| io(&last, &e))?;
    let opt_path = out.join("optimizer.safetensors");
    let saved = Tensor::read_safetensors(&opt_path).map_err(|e| io(&opt_path, &e))?;
    opt.load_state(&saved).map_err(|e| io(&opt_path, &e))?;
    History::load(&out.join("history.json")).map_err(|e| io(out, &e))
}

/// Feature extraction: the frozen backbone run once over the training and validation images.
fn feature_cache(
    model: &LoadedModel,
    train_set: &SplitTensors,
    val_set: &SplitTensors,
    cfg: &TrainConfig,
) -> (Tensor, Tensor) {
    let spec = &model.meta.preprocess;
    let t0 = Instant::now();
    let train_f = predict::features(&model.net, spec, train_set, cfg.batch_size.max(64));
    let val_f = predict::features(&model.net, spec, val_set, cfg.batch_size.max(64));
    tracing::info!(
        "features of {} images computed once in {:.1} s",
        train_set.len() + val_set.len(),
        t0.elapsed().as_secs_f64()
    );
    (train_f, val_f)
}

/// The teacher's log-probabilities for the un-augmented training images, when it cannot run
/// on the student's batches (other preprocessing, or the student trains on cached features);
/// `None` when it runs on the fly (or there is no teacher).
fn teacher_cache(
    teacher: Option<&LoadedModel>,
    student: &LoadedModel,
    data: &FaceSet,
    train_images: usize,
    features_cached: bool,
    cfg: &TrainConfig,
) -> Option<Tensor> {
    match teacher {
        Some(t) if t.meta.preprocess != student.meta.preprocess || features_cached => {
            let pred = predict::predict(
                &t.net,
                &t.meta.preprocess,
                &SplitTensors::new(data, Split::Training, t.vs.device()),
                cfg.batch_size.max(64),
                false,
            );
            tracing::info!("teacher logits cached for {train_images} un-augmented training images");
            Some(
                pred.probs
                    .clamp_min(1e-12)
                    .log()
                    .to_device(student.vs.device()),
            )
        }
        _ => None,
    }
}

/// Calibrates activation ranges on up to 512 un-augmented training images and returns the
/// fake-quantization hook for quantization-aware training.
fn start_qat(
    model: &LoadedModel,
    train_set: &SplitTensors,
    cfg: &TrainConfig,
) -> Result<FakeQuant, TrainError> {
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
    Ok(FakeQuant::new(
        &model.net,
        &calibration.ranges(RangeMethod::Percentile(99.99)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_covers_every_image_once_per_epoch() {
        let cfg = TrainConfig {
            batch_size: 64,
            epochs: 3,
            warmup_epochs: 1.0,
            ..TrainConfig::default()
        };
        let s = Schedule::new(150, &cfg);
        assert_eq!((s.steps_per_epoch, s.total_steps, s.warmup), (3, 9, 3));
        let batches: Vec<_> = (0..s.steps_per_epoch).map(|k| s.batch_range(k)).collect();
        assert_eq!(batches, [(0, 64), (64, 64), (128, 22)]);
        // Warm-up rises to the peak, then the cosine decays to the end of the last epoch.
        assert!(s.lr(1.0, 0, 0) < 1.0);
        assert!((s.lr(1.0, 0, 2) - 1.0).abs() < 1e-9);
        assert!(s.lr(1.0, 2, 2) < s.lr(1.0, 1, 0));
    }

    #[test]
    fn early_stop_after_patience_epochs_without_a_strictly_better_f1() {
        let mut best = BestEpoch::default();
        assert!(best.update(1, 0.30));
        assert!(!best.should_stop(1, 2));
        assert!(!best.update(2, 0.30), "equal is not better");
        assert!(!best.should_stop(2, 2));
        assert!(!best.update(3, 0.25));
        assert!(best.should_stop(3, 2), "two epochs since epoch 1");
        assert_eq!(best.epoch, 1);
        assert!(!best.should_stop(100, 0), "patience 0 never stops");
        assert!(best.update(4, 0.31));
        assert_eq!((best.epoch, best.macro_f1), (4, 0.31));
        assert!(!best.should_stop(4, 1));
        assert!(best.should_stop(5, 1));
    }

    #[test]
    fn resume_refuses_other_data_and_reads_the_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let record = RunRecord {
            config: TrainConfig::default(),
            epochs_done: 4,
            best_epoch: 3,
            best_macro_f1: 0.5,
            data_hash: "0123456789abcdef".repeat(4),
        };
        record.save(dir.path()).expect("saves");
        let read = RunRecord::load(dir.path()).expect("loads");
        assert_eq!((read.epochs_done, read.best_epoch), (4, 3));
        check_resume(&read, &record.data_hash, dir.path()).expect("same data resumes");
        let err = check_resume(&read, &"f".repeat(64), dir.path()).expect_err("other data");
        let msg = err.to_string();
        assert!(
            msg.contains("trained on other data (hash 0123456789ab), this is ffffffffffff"),
            "{msg}"
        );
    }
}
