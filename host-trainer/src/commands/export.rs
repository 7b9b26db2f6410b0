//! `emotion-train export`: a training run as a checked (and, with `--sign-key`, signed) model
//! bundle for `emotion-edge`. The work is the library's (`emotion_trainer::export`): sample
//! faces, the checked fp32 ONNX, the int8 model with its accuracy gate, test metrics, the
//! manifest from the run record, the bundle written and re-opened. This parses the options,
//! calls those steps in order and prints what they measured.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use emotion_shared::bundle::key_fingerprint;
use emotion_shared::manifest::Quantization;
use emotion_trainer::data::{self, OnBadRow};
use emotion_trainer::export::bundle::{self, ManifestContent, ModelNaming, SplitMetrics};
use emotion_trainer::export::check::FP32_LOGIT_TOLERANCE;
use emotion_trainer::export::int8::{self, Int8Error, Int8Options, Int8Report};
use emotion_trainer::export::{self as exporter, ExportData, SELF_TEST_TOLERANCE};
use emotion_trainer::model::checkpoint;
use emotion_trainer::quantize::{RangeMethod, WeightScales};
use emotion_trainer::train::RunRecord;
use tch::Device;

/// Options of `emotion-train export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Checkpoint: a training output folder (its best.safetensors, model.json, train.json) or
    /// a `.safetensors` file inside one.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Bundle directory to write (created if needed): model.onnx, manifest.json, manifest.sig.
    #[arg(long)]
    pub out: PathBuf,
    /// Secret key from `emotion-train keygen`; without it the bundle is unsigned and devices
    /// refuse it unless configured to accept unsigned bundles.
    #[arg(long)]
    pub sign_key: Option<PathBuf>,
    /// FER2013 CSV or image-folder root: metrics on PublicTest and PrivateTest, and the
    /// self-test faces. Without it, drawn synthetic faces serve as self-tests and the manifest
    /// has no metrics.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// What to do with malformed rows in --data.
    #[arg(long, value_enum, default_value = "fail")]
    pub on_bad_row: OnBadRow,
    /// Model name in the manifest (default: fer-ARCH).
    #[arg(long)]
    pub name: Option<String>,
    /// Model version in the manifest (MAJOR.MINOR.PATCH).
    #[arg(long, default_value = "0.1.0")]
    pub version: String,
    /// Free-text description for the manifest.
    #[arg(long)]
    pub description: Option<String>,
    /// Number of self-test cases in the manifest.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub self_tests: u16,
    /// Batch size for the evaluation.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Also write the bundle as one file, OUT.tar (for copying by hand; `push` and the device's
    /// inbox take either form).
    #[arg(long)]
    pub tar: bool,
    /// Export an int8 model (QLinearConv, u8 activations, i8 weights) instead of fp32. Needs
    /// --data: its PublicTest split picks the calibration method and its PrivateTest split
    /// checks the accuracy cost (see --int8-margin).
    #[arg(long)]
    pub int8: bool,
    /// How activation ranges are calibrated; `auto` tries min-max, percentile and entropy and
    /// keeps the most accurate on PublicTest.
    #[arg(long, value_enum, default_value = "auto")]
    pub calibration: CalibrationArg,
    /// Percentile kept by `--calibration percentile`.
    #[arg(long, default_value_t = 99.99)]
    pub percentile: f64,
    /// Weight scales of the int8 convolutions: per tensor (fast in tract) or per channel.
    #[arg(long, value_enum, default_value = "per-tensor")]
    pub weight_scales: WeightScales,
    /// Calibration images: a folder of face crops (png/jpg), best frames from the deployment
    /// camera cropped by the edge's detector. Default: the Training split of --data.
    #[arg(long)]
    pub calib: Option<PathBuf>,
    /// At most this many calibration images (spread evenly over what is given).
    #[arg(long, default_value_t = 512)]
    pub calib_samples: usize,
    /// Largest accuracy drop (percentage points, PrivateTest) the int8 model may have against
    /// fp32; a larger drop refuses the export unless --force.
    #[arg(long, default_value_t = 1.0)]
    pub int8_margin: f64,
    /// Write the int8 bundle even when it exceeds --int8-margin.
    #[arg(long)]
    pub force: bool,
    /// Also write the fp32 model as plain ONNX (one node per layer) to this file, for
    /// onnxruntime and other runtimes; the bundle carries the form tract runs fastest.
    #[arg(long)]
    pub plain_onnx: Option<PathBuf>,
}

/// `--calibration` choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CalibrationArg {
    /// Try min-max, percentile and entropy; keep the most accurate.
    Auto,
    /// Smallest and largest value seen.
    Minmax,
    /// Clip to --percentile.
    Percentile,
    /// Smallest KL divergence of the 8-bit histogram.
    Entropy,
}

impl CalibrationArg {
    fn methods(self, percentile: f64) -> Vec<RangeMethod> {
        match self {
            CalibrationArg::Auto => RangeMethod::AUTO.to_vec(),
            CalibrationArg::Minmax => vec![RangeMethod::MinMax],
            CalibrationArg::Percentile => vec![RangeMethod::Percentile(percentile)],
            CalibrationArg::Entropy => vec![RangeMethod::Entropy],
        }
    }
}

/// Runs `emotion-train export`.
pub fn run(args: ExportArgs) -> Result<()> {
    // Everything the user controls is checked before the work starts.
    if args.int8 && args.data.is_none() {
        bail!(
            "--int8 needs --data: the int8 model's calibration method is chosen on its PublicTest \
             split and its accuracy is checked against fp32 on PrivateTest"
        );
    }
    if !(50.0..100.0).contains(&args.percentile) {
        bail!("--percentile {} is not in [50, 100)", args.percentile);
    }
    let signing_key = super::signing_key(args.sign_key.as_deref())?;
    let record = RunRecord::of_checkpoint(&args.checkpoint)?;

    // Export on the CPU: the comparison with tract is on the CPU anyway.
    let model = checkpoint::load(&args.checkpoint, Device::Cpu)
        .with_context(|| format!("loading checkpoint {}", args.checkpoint.display()))?;
    let arch = bundle::bundle_arch(&model, &args.checkpoint)?;
    let record_path = RunRecord::path(&checkpoint::run_dir_of(&args.checkpoint));
    let training = bundle::training_summary(&record, &model.meta, &record_path)?;

    let data = args
        .data
        .as_ref()
        .map(|p| {
            data::load(p, args.on_bad_row)
                .with_context(|| format!("loading {}", p.display()))
                .map(|set| ExportData {
                    path: p.clone(),
                    set,
                })
        })
        .transpose()?;

    let samples = exporter::sample_faces(data.as_ref());
    let checked = exporter::export_checked(
        &model.net,
        &model.meta.preprocess,
        &samples,
        FP32_LOGIT_TOLERANCE,
        SELF_TEST_TOLERANCE,
        usize::from(args.self_tests),
        env!("CARGO_PKG_VERSION"),
    )
    .with_context(|| format!("exporting {} to ONNX", args.checkpoint.display()))?;
    println!(
        "ONNX: {} bytes; tract agrees with libtorch on {} faces (max |logit difference| {:.2e} <= {:.0e})",
        checked.onnx.len(),
        checked.agreement.cases,
        checked.agreement.max_abs_diff,
        FP32_LOGIT_TOLERANCE
    );
    if let Some(path) = &args.plain_onnx {
        let bytes = exporter::write_plain_onnx(
            &model.net,
            &model.meta.preprocess,
            &samples,
            FP32_LOGIT_TOLERANCE,
            env!("CARGO_PKG_VERSION"),
            path,
        )?;
        println!(
            "plain ONNX (other runtimes): {} ({bytes} bytes)",
            path.display()
        );
    }

    let (onnx, quantization, self_test, int8_predicted) = match &data {
        Some(d) if args.int8 => {
            let q = int8::export_int8_checked(
                &model,
                d,
                &samples,
                &int8_options(&args),
                env!("CARGO_PKG_VERSION"),
            )
            .inspect_err(|e| {
                if let Int8Error::TooInaccurate { report, .. } = e {
                    print_int8(report);
                }
            })?;
            print_int8(&q.report);
            (q.onnx, q.quantization, q.self_test, Some(q.predicted))
        }
        _ => (checked.onnx, Quantization::none(), checked.self_test, None),
    };
    let metrics = match &data {
        Some(d) => {
            let (metrics, splits) =
                bundle::test_metrics(&model, d, args.batch_size, int8_predicted.as_deref())?;
            print_metrics(&splits);
            metrics
        }
        None => {
            tracing::warn!("no --data: the manifest carries no metrics");
            Vec::new()
        }
    };
    let dataset_sha256 = bundle::dataset_hash(&record, data.as_ref().map(|d| &d.set))?;

    let naming = ModelNaming {
        name: args.name.clone(),
        version: args.version.clone(),
        description: args.description.clone(),
    };
    let content = ManifestContent {
        onnx: &onnx,
        quantization,
        metrics,
        self_test,
        training,
        dataset_sha256,
    };
    let manifest = bundle::manifest(&model, arch, &naming, content)?;
    let tar = bundle::write_checked(&args.out, &manifest, &onnx, signing_key.as_ref(), args.tar)?;
    if let Some(tar_path) = tar {
        println!("wrote {}", tar_path.display());
    }
    println!(
        "wrote {} ({} {}, {} self-tests, {})",
        args.out.display(),
        manifest.model.name,
        manifest.model.version,
        manifest.self_test.len(),
        match &signing_key {
            Some(k) => format!("signed by {}", key_fingerprint(&k.verifying_key())),
            None => "UNSIGNED".to_string(),
        }
    );
    Ok(())
}

/// The int8 options of the command line.
fn int8_options(args: &ExportArgs) -> Int8Options {
    Int8Options {
        methods: args.calibration.methods(args.percentile),
        weight_scales: args.weight_scales,
        calib_dir: args.calib.clone(),
        calib_samples: args.calib_samples,
        margin: args.int8_margin,
        force: args.force,
        batch_size: args.batch_size,
        self_tests: usize::from(args.self_tests),
    }
}

/// Prints what the int8 export measured: calibration, each method, the accuracy check.
fn print_int8(r: &Int8Report) {
    println!(
        "int8: calibrated {} values on {} {} images",
        r.calibrated_values, r.calibration_images, r.calibration_from
    );
    for (method, accuracy) in &r.ranked {
        println!(
            "int8 {:<18} {} accuracy {:.4}",
            method.to_string(),
            r.select_split.usage_name(),
            accuracy
        );
    }
    println!(
        "int8 ({}, {} ranges): PrivateTest accuracy {:.4} vs fp32 {:.4} \
         ({:+.2} points); same class as fp32 on {:.2}% of {} images",
        r.weight_scales.scheme(),
        r.method,
        r.int8_accuracy,
        r.fp32_accuracy,
        (r.int8_accuracy - r.fp32_accuracy) * 100.0,
        r.same_class * 100.0,
        r.check_images
    );
    println!(
        "int8 speed in tract ({}): int8 {:.3} ms, fp32 {:.3} ms per face",
        r.speed.machine, r.speed.int8_ms, r.speed.fp32_ms
    );
}

/// Prints the test-split metrics.
fn print_metrics(splits: &[SplitMetrics]) {
    for s in splits {
        println!(
            "{}{}: accuracy {:.4}, macro-F1 {:.4} ({} images)",
            s.split.usage_name(),
            if s.int8 { " (int8, tract)" } else { "" },
            s.metrics.accuracy,
            s.metrics.macro_f1,
            s.images
        );
    }
}
