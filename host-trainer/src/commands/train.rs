//! `emotion-train train`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use emotion_trainer::data::ferplus::{self, FerPlusTargets};
use emotion_trainer::data::{self, OnBadRow, Split};
use emotion_trainer::device::{self, DeviceChoice};
use emotion_trainer::model::Arch;
use emotion_trainer::model::checkpoint::LoadedModel;
use emotion_trainer::model::setup::ModelRequest;
use emotion_trainer::train::balance::{Balance, ClassWeighting};
use emotion_trainer::train::optim::OptimizerKind;
use emotion_trainer::train::{self, Mode, TrainConfig};

/// Options of `emotion-train train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// FER2013 CSV (fer2013.csv, icml_face_data.csv) or image-folder root (train/, test/).
    #[arg(long)]
    pub data: PathBuf,
    /// FER+ votes (fer2013new.csv) to relabel a fer2013.csv.
    #[arg(long)]
    pub ferplus: Option<PathBuf>,
    /// How FER+ votes become targets.
    #[arg(long, value_enum, default_value = "majority")]
    pub ferplus_targets: FerPlusTargets,
    /// What to do with malformed rows.
    #[arg(long, value_enum, default_value = "fail")]
    pub on_bad_row: OnBadRow,
    /// Architecture: vggface2-resnet50, mini-xception, mobilenetv2[-WIDTH].
    #[arg(long, default_value = "mini-xception")]
    pub arch: Arch,
    /// Model input side in pixels (default: the architecture's own; 224 for ResNet50).
    #[arg(long)]
    pub input_size: Option<u32>,
    /// Classifier head: `linear`, hidden widths `256` or `512,128`, optional `:dropout`.
    #[arg(long)]
    pub head: Option<String>,
    /// Pretrained backbone weights (safetensors from `emotion-train import-weights`).
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// feature-extract: frozen backbone, cached features; finetune: train from a block on.
    #[arg(long, value_enum, default_value = "finetune")]
    pub mode: Mode,
    /// First block to train: our block names (conv5_3) or Keras layer names (activation_46).
    /// Without it, fine-tuning trains everything.
    #[arg(long)]
    pub unfreeze_from: Option<String>,
    /// Class-imbalance remedy.
    #[arg(long, value_enum, default_value = "weights")]
    pub balance: Balance,
    /// Class weights for --balance weights.
    #[arg(long, value_enum, default_value = "inverse")]
    pub class_weights: ClassWeighting,
    /// Label smoothing (hard targets).
    #[arg(long, default_value_t = 0.0)]
    pub label_smoothing: f64,
    /// Optimiser.
    #[arg(long, value_enum, default_value = "adamw")]
    pub optimizer: OptimizerKind,
    /// Peak learning rate.
    #[arg(long, default_value_t = 3e-3)]
    pub lr: f64,
    /// Learning-rate multiplier for unfrozen pretrained backbone layers.
    #[arg(long, default_value_t = 0.1)]
    pub backbone_lr_scale: f64,
    /// Weight decay.
    #[arg(long, default_value_t = 1e-4)]
    pub weight_decay: f64,
    /// Epochs.
    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    /// Warm-up epochs.
    #[arg(long, default_value_t = 1.0)]
    pub warmup_epochs: f64,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Clip gradients to this global norm (0 = off).
    #[arg(long, default_value_t = 5.0)]
    pub clip_norm: f64,
    /// Stop after this many epochs without better validation macro-F1 (0 = never).
    #[arg(long, default_value_t = 0)]
    pub patience: usize,
    /// Turn training augmentation off.
    #[arg(long)]
    pub no_augment: bool,
    /// Turn mixed precision off on CUDA.
    #[arg(long)]
    pub no_amp: bool,
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    /// Output folder for checkpoints and logs.
    #[arg(long, default_value = "runs/train")]
    pub out: PathBuf,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Quantization-aware training in the last N epochs: int8 arithmetic simulated (per-tensor
    /// weights after batch-norm folding, u8 activations), for models that lose accuracy in
    /// `export --int8`.
    #[arg(long, default_value_t = 0)]
    pub qat_epochs: usize,
    /// Start from a trained run of the same architecture (all weights, head included), e.g.
    /// for a short quantization-aware fine-tune: `--init-from RUN --qat-epochs 2 --epochs 2`.
    #[arg(long)]
    pub init_from: Option<PathBuf>,
}

/// The model the options ask for.
pub fn model_request(args: &TrainArgs) -> ModelRequest<'_> {
    ModelRequest {
        arch: args.arch,
        input_size: args.input_size,
        head: args.head.as_deref(),
        weights: args.weights.as_deref(),
        init_from: args.init_from.as_deref(),
    }
}

/// Runs `emotion-train train`.
pub fn run(args: TrainArgs) -> Result<()> {
    let set = load_data(&args)?;
    let dev = device::resolve(args.device).map_err(anyhow::Error::msg)?;
    let mut model = build_model(&args, dev)?;
    let cfg = config(&args);
    let summary = train::train(&mut model, &set, &cfg, &args.out, args.resume)
        .with_context(|| format!("training into {}", args.out.display()))?;
    report(&args, &model.meta.arch, &summary);
    Ok(())
}

/// The data set of `--data` (with FER+ labels when given), its summary printed.
pub fn load_data(args: &TrainArgs) -> Result<data::FaceSet> {
    let mut set = data::load(&args.data, args.on_bad_row)
        .with_context(|| format!("loading {}", args.data.display()))?;
    if let Some(fp) = &args.ferplus {
        set = ferplus::apply(set, fp, args.ferplus_targets)
            .with_context(|| format!("applying FER+ labels from {}", fp.display()))?;
    }
    eprint!("{}", set.summary());
    for s in set.skipped.iter().take(10) {
        tracing::warn!("skipped {}: {}", s.location, s.reason);
    }
    if set.skipped.len() > 10 {
        tracing::warn!("... and {} more skipped rows", set.skipped.len() - 10);
    }
    Ok(set)
}

/// The model of the options on `dev`, with `--weights` or `--init-from` loaded.
pub fn build_model(args: &TrainArgs, dev: tch::Device) -> Result<LoadedModel> {
    Ok(model_request(args).build(dev)?)
}

/// The training configuration of the options.
pub fn config(args: &TrainArgs) -> TrainConfig {
    TrainConfig {
        mode: args.mode,
        unfreeze_from: args.unfreeze_from.clone(),
        balance: args.balance,
        class_weighting: args.class_weights,
        label_smoothing: args.label_smoothing,
        optimizer: args.optimizer,
        lr: args.lr,
        backbone_lr_scale: args.backbone_lr_scale,
        weight_decay: args.weight_decay,
        epochs: args.epochs,
        warmup_epochs: args.warmup_epochs,
        batch_size: args.batch_size,
        clip_norm: args.clip_norm,
        seed: args.seed,
        patience: args.patience,
        augment: !args.no_augment,
        amp: !args.no_amp,
        qat_epochs: args.qat_epochs,
        distill: None,
    }
}

/// Prints the end-of-training summary.
pub fn report(args: &TrainArgs, arch: &str, summary: &train::TrainSummary) {
    let m = &summary.best_val;
    println!(
        "\n{} trained: best epoch {} of {}{}; {} of {} parameters trainable",
        arch,
        summary.best_epoch,
        summary.epochs_run,
        if summary.stopped_early {
            " (early stop)"
        } else {
            ""
        },
        summary.trainable_params,
        summary.total_params
    );
    println!(
        "validation ({}):\n{}",
        Split::PublicTest.usage_name(),
        m.report()
    );
    println!("{}", m.confusion.table());
    println!("best checkpoint: {}", summary.best_checkpoint.display());
    println!(
        "report on the held-out test split with: emotion-train eval --checkpoint {} --data {}",
        args.out.display(),
        args.data.display()
    );
}
