//! `emotion-train distill`: a compact student taught by a trained teacher (e.g. the fine-tuned
//! `vggface2-resnet50`) with soft targets at a temperature plus the hard labels; with
//! `--baseline`, the same student is also trained without the teacher (same data, seed and
//! schedule) and both are reported side by side on PrivateTest.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use emotion_trainer::data::Split;
use emotion_trainer::data::tensors::SplitTensors;
use emotion_trainer::device;
use emotion_trainer::eval::predict;
use emotion_trainer::model::checkpoint;
use emotion_trainer::train::{self, DistillConfig, metrics_of};

use super::train::{TrainArgs, build_model, config, load_data, report};

/// Options of `emotion-train distill`: the student's training options plus the teacher.
#[derive(Debug, Args)]
pub struct DistillArgs {
    /// Teacher: a training run folder or its `.safetensors` checkpoint.
    #[arg(long)]
    pub teacher: PathBuf,
    /// Softmax temperature of the soft targets.
    #[arg(long, default_value_t = 4.0)]
    pub temperature: f64,
    /// Weight of the distillation term (the hard-label loss gets 1 - alpha).
    #[arg(long, default_value_t = 0.7)]
    pub alpha: f64,
    /// Also train the student without the teacher (into OUT/baseline) and compare.
    #[arg(long)]
    pub baseline: bool,
    /// The student and its training.
    #[command(flatten)]
    pub student: TrainArgs,
}

/// Runs `emotion-train distill`.
pub fn run(args: DistillArgs) -> Result<()> {
    if args.temperature.is_nan() || args.temperature <= 0.0 {
        bail!("--temperature {} must be positive", args.temperature);
    }
    if !(0.0..=1.0).contains(&args.alpha) {
        bail!("--alpha {} must be in [0, 1]", args.alpha);
    }
    let s = &args.student;
    let set = load_data(s)?;
    let dev = device::resolve(s.device).map_err(anyhow::Error::msg)?;
    let teacher = checkpoint::load(&args.teacher, dev)
        .with_context(|| format!("loading the teacher {}", args.teacher.display()))?;
    let private = SplitTensors::new(&set, Split::PrivateTest, dev);
    let accuracy = |m: &checkpoint::LoadedModel| -> Option<f64> {
        (!private.is_empty()).then(|| {
            let pred = predict::predict(&m.net, &m.meta.preprocess, &private, 128, false);
            metrics_of(&private, &pred).accuracy
        })
    };
    let teacher_acc = accuracy(&teacher);

    let mut cfg = config(s);
    cfg.distill = Some(DistillConfig {
        temperature: args.temperature,
        alpha: args.alpha,
        teacher: args.teacher.display().to_string(),
    });
    let mut student = build_model(s, dev)?;
    tracing::info!(
        "distilling {} ({} parameters) into {} ({} parameters), T = {}, alpha = {}",
        teacher.meta.arch,
        teacher.net.graph.params(),
        student.meta.arch,
        student.net.graph.params(),
        args.temperature,
        args.alpha
    );
    let summary = train::train_with(&mut student, &set, &cfg, &s.out, s.resume, Some(&teacher))
        .with_context(|| format!("distilling into {}", s.out.display()))?;
    report(s, &student.meta.arch, &summary);
    let distilled_acc = accuracy(&student);

    let baseline_acc = if args.baseline {
        let out = s.out.join("baseline");
        let mut plain = build_model(s, dev)?;
        let mut plain_cfg = config(s);
        plain_cfg.distill = None;
        train::train(&mut plain, &set, &plain_cfg, &out, false)
            .with_context(|| format!("training the baseline into {}", out.display()))?;
        accuracy(&plain)
    } else {
        None
    };

    let fmt = |a: Option<f64>| a.map_or_else(|| "n/a".to_string(), |v| format!("{v:.4}"));
    println!("\nPrivateTest accuracy ({} images):", private.len());
    println!("  teacher  {:<22} {}", teacher.meta.arch, fmt(teacher_acc));
    println!(
        "  student  {:<22} {}  (distilled, T = {}, alpha = {})",
        student.meta.arch,
        fmt(distilled_acc),
        args.temperature,
        args.alpha
    );
    if args.baseline {
        println!(
            "  student  {:<22} {}  (same training without the teacher)",
            student.meta.arch,
            fmt(baseline_acc)
        );
    }
    Ok(())
}
