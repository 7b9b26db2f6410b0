//! `emotion-train eval`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use emotion_trainer::data::tensors::SplitTensors;
use emotion_trainer::data::{self, OnBadRow, Split};
use emotion_trainer::device::{self, DeviceChoice};
use emotion_trainer::eval::{plot, predict};
use emotion_trainer::model::checkpoint;
use emotion_trainer::train::history::History;
use emotion_trainer::train::{metrics_of, warn_if_collapsed};

/// Options of `emotion-train eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Checkpoint: a training output folder or a `.safetensors` file with `model.json` beside.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// FER2013 CSV or image-folder root.
    #[arg(long)]
    pub data: PathBuf,
    /// Split to report on: private-test (the honest default), public-test or train.
    #[arg(long, default_value = "private-test")]
    pub split: Split,
    /// What to do with malformed rows.
    #[arg(long, value_enum, default_value = "fail")]
    pub on_bad_row: OnBadRow,
    /// Also report horizontal-flip test-time augmentation.
    #[arg(long)]
    pub tta: bool,
    /// Folder for the reports (metrics JSON, confusion-matrix and training-curve PNGs);
    /// default: the checkpoint's folder.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Batch size.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
}

/// Runs `emotion-train eval`.
pub fn run(args: EvalArgs) -> Result<()> {
    let dev = device::resolve(args.device).map_err(anyhow::Error::msg)?;
    let model = checkpoint::load(&args.checkpoint, dev)
        .with_context(|| format!("loading checkpoint {}", args.checkpoint.display()))?;
    let set = data::load(&args.data, args.on_bad_row)
        .with_context(|| format!("loading {}", args.data.display()))?;
    let split = SplitTensors::new(&set, args.split, dev);
    if split.is_empty() {
        bail!(
            "{} has no {} images",
            args.data.display(),
            args.split.usage_name()
        );
    }
    let pred = predict::predict(
        &model.net,
        &model.meta.preprocess,
        &split,
        args.batch_size,
        false,
    );
    let m = metrics_of(&split, &pred);
    println!(
        "{} on {} ({} images of {}):\n{}",
        model.meta.arch,
        args.split.usage_name(),
        split.len(),
        args.data.display(),
        m.report()
    );
    println!("{}", m.confusion.table());
    warn_if_collapsed(&m);
    let mut report = serde_json::json!({
        "checkpoint": args.checkpoint.display().to_string(),
        "data": args.data.display().to_string(),
        "split": args.split.usage_name(),
        "metrics": m,
    });
    if args.tta {
        let pred = predict::predict(
            &model.net,
            &model.meta.preprocess,
            &split,
            args.batch_size,
            true,
        );
        let t = metrics_of(&split, &pred);
        println!(
            "with flip TTA: accuracy {:.4}, macro-F1 {:.4}",
            t.accuracy, t.macro_f1
        );
        report["metrics_tta_flip"] = serde_json::to_value(&t)?;
    }
    // The training run's folder: where model.json and history.json live.
    let run_dir = checkpoint::run_dir_of(&args.checkpoint);
    let out = args.out.clone().unwrap_or_else(|| run_dir.clone());
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let split_name = args.split.cli_name();
    let json = out.join(format!("eval-{split_name}.json"));
    std::fs::write(&json, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("writing {}", json.display()))?;
    let heat = out.join(format!("confusion-{split_name}.png"));
    plot::confusion_png(
        &m.confusion,
        &format!(
            "{} on {}: accuracy {:.3}, macro-F1 {:.3}",
            model.meta.arch,
            args.split.usage_name(),
            m.accuracy,
            m.macro_f1
        ),
        &heat,
    )
    .with_context(|| format!("writing {}", heat.display()))?;
    println!("wrote {} and {}", json.display(), heat.display());
    if let Ok(history) = History::load(&run_dir.join("history.json")) {
        let curves = out.join("curves.png");
        plot::curves_png(
            &history,
            &format!("training of {}", model.meta.arch),
            &curves,
        )
        .with_context(|| format!("writing {}", curves.display()))?;
        println!("wrote {}", curves.display());
    }
    Ok(())
}
