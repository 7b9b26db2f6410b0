//! `emotion-train export`: a training run as a checked (and, with `--sign-key`, signed) model
//! bundle for `emotion-edge`.
//!
//! Steps: load the checkpoint; write the ONNX and check it in tract against libtorch on sample
//! faces (PrivateTest images with `--data`, drawn faces otherwise); pick self-test cases and
//! replay them the edge's way; evaluate on PublicTest and PrivateTest when `--data` is given;
//! fill the shared manifest (training summary from the run's `train.json`, lineage); write the
//! bundle with `emotion_shared::bundle::write_bundle`; open it again with `Bundle::open` and
//! the matching public key as the final check.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::Args;
use emotion_shared::bundle::{Bundle, SigningKey, TrustPolicy, key_fingerprint, read_secret_key};
use emotion_shared::manifest::{
    DType, InputSpec, Lineage, Manifest, Metric, ModelInfo, OnnxFile, OutputKind, OutputSpec,
    Quantization, SCHEMA_VERSION, Sha256Digest, TrainingSummary, now_rfc3339,
};
use emotion_shared::{Emotion, NUM_CLASSES};
use emotion_trainer::data::tensors::SplitTensors;
use emotion_trainer::data::{self, FaceSet, OnBadRow, Split};
use emotion_trainer::eval::metrics::Confusion;
use emotion_trainer::eval::predict;
use emotion_trainer::export as exporter;
use emotion_trainer::export::check::FP32_LOGIT_TOLERANCE;
use emotion_trainer::export::onnx::{INPUT_NAME, OUTPUT_NAME};
use emotion_trainer::export::selftest;
use emotion_trainer::model::checkpoint::{self, LoadedModel};
use emotion_trainer::preprocess::model_input;
use emotion_trainer::quantize::calibrate::Calibration;
use emotion_trainer::quantize::evaluate::{agreement, top_classes, tract_outputs};
use emotion_trainer::quantize::plan::QuantPlan;
use emotion_trainer::quantize::search::rank_methods;
use emotion_trainer::quantize::{RangeMethod, WeightScales};
use serde_json::Value;
use tch::Device;

/// Tolerance of the self-test cases in the manifest (logits): the edge's preprocessing and
/// tract against libtorch's.
pub const SELF_TEST_TOLERANCE: f32 = 1e-3;
/// Sample faces the export is checked on (self-test cases are picked from them).
const SAMPLE_FACES: usize = 24;

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

/// The training run folder of a checkpoint argument.
fn run_dir_of(checkpoint: &Path) -> PathBuf {
    if checkpoint.is_dir() {
        checkpoint.to_path_buf()
    } else {
        checkpoint::meta_path_for(checkpoint)
            .parent()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."))
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
    let signing_key = args
        .sign_key
        .as_ref()
        .map(|p| {
            read_secret_key(p).with_context(|| format!("reading the signing key {}", p.display()))
        })
        .transpose()?;
    let run_dir = run_dir_of(&args.checkpoint);
    let train_json = run_dir.join("train.json");
    let train_state: Value =
        serde_json::from_slice(&std::fs::read(&train_json).with_context(|| {
            format!(
                "reading {} (the training run's summary, written by `emotion-train train`)",
                train_json.display()
            )
        })?)
        .with_context(|| format!("parsing {}", train_json.display()))?;

    // Export on the CPU: the comparison with tract is on the CPU anyway.
    let model = checkpoint::load(&args.checkpoint, Device::Cpu)
        .with_context(|| format!("loading checkpoint {}", args.checkpoint.display()))?;
    let arch = model.meta.arch().map_err(anyhow::Error::msg)?;
    if model.meta.classes != NUM_CLASSES as i64 {
        bail!(
            "{} has {} classes; a bundle needs the {NUM_CLASSES} FER2013 emotions",
            args.checkpoint.display(),
            model.meta.classes
        );
    }
    let spec = model.meta.preprocess.clone();
    let training = training_summary(&train_state, &model, &train_json)?;

    let data = args
        .data
        .as_ref()
        .map(|p| {
            data::load(p, args.on_bad_row)
                .with_context(|| format!("loading {}", p.display()))
                .map(|set| (p.clone(), set))
        })
        .transpose()?;

    let samples = match &data {
        Some((_, set)) if !set.indices(Split::PrivateTest).is_empty() => {
            selftest::from_face_set(set, Split::PrivateTest, SAMPLE_FACES)
        }
        Some((p, _)) => {
            tracing::warn!(
                "{} has no PrivateTest images: using drawn faces for the self-tests",
                p.display()
            );
            selftest::synthetic(SAMPLE_FACES, 7)
        }
        None => selftest::synthetic(SAMPLE_FACES, 7),
    };
    let producer = format!("emotion-train {}", env!("CARGO_PKG_VERSION"));
    let checked = exporter::export_checked(
        &model.net,
        &spec,
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

    let (onnx, quantization, self_test, int8_predicted) = match &data {
        Some((path, set)) if args.int8 => {
            let q = quantize(&args, &model, path, set, &samples)?;
            (q.onnx, q.quantization, q.self_test, Some(q.predicted))
        }
        _ => (checked.onnx, Quantization::none(), checked.self_test, None),
    };
    let metrics = match &data {
        Some((path, set)) => evaluate(
            &model,
            path,
            set,
            args.batch_size,
            int8_predicted.as_deref(),
        )?,
        None => {
            tracing::warn!("no --data: the manifest carries no metrics");
            Vec::new()
        }
    };
    let dataset_sha256 = dataset_hash(&train_state, data.as_ref().map(|(_, s)| s))?;

    let backbone_sha256 = match &model.meta.backbone_weights {
        Some((file, sha)) => Some(sha.parse::<Sha256Digest>().map_err(|e| {
            anyhow::anyhow!("model.json: backbone weights {file} have a malformed sha256: {e}")
        })?),
        None => None,
    };
    let manifest = Manifest {
        schema_version: SCHEMA_VERSION,
        model: ModelInfo {
            name: args.name.clone().unwrap_or_else(|| format!("fer-{arch}")),
            version: args.version.clone(),
            architecture: arch.to_string(),
            description: args.description.clone(),
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
        quantization,
        metrics,
        onnx: OnnxFile::describe(&onnx),
        created_at: now_rfc3339(),
        training,
        lineage: Lineage {
            backbone: model
                .meta
                .backbone_weights
                .as_ref()
                .map(|(file, _)| format!("{arch} ({file})")),
            backbone_sha256,
            dataset_sha256,
            git_commit: git_commit(),
            trainer_version: producer,
        },
        self_test,
    };
    manifest
        .validate()
        .context("the manifest built for this export does not validate (a bug in the export)")?;

    emotion_shared::bundle::write_bundle(&args.out, &manifest, &onnx, signing_key.as_ref())
        .with_context(|| format!("writing the bundle {}", args.out.display()))?;
    reopen(&args.out, &manifest, signing_key.as_ref())?;
    if args.tar {
        let tar_path = PathBuf::from(format!("{}.tar", args.out.display()));
        emotion_shared::bundle_tar::pack(&args.out, &tar_path)
            .with_context(|| format!("writing {}", tar_path.display()))?;
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

/// Opens the written bundle as the edge will (signature, manifest, model hash) and replays its
/// self-tests on the bytes it returns.
fn reopen(dir: &Path, written: &Manifest, key: Option<&SigningKey>) -> Result<()> {
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
    let bundle = Bundle::open(dir, &policy)
        .with_context(|| format!("re-opening the written bundle {}", dir.display()))?;
    // Compare bytes, not parsed values: serde_json's default float parsing may differ from the
    // written value in the last bit, and the bytes are what the signature covers.
    let json = written
        .to_json_pretty()
        .context("serialising the manifest")?;
    if bundle.manifest_bytes() != json.as_bytes() {
        bail!(
            "the manifest.json read back from {} differs from the one written",
            dir.display()
        );
    }
    let worst = selftest::replay(
        bundle.onnx_bytes(),
        &bundle.manifest().preprocess,
        &bundle.manifest().self_test,
    )
    .with_context(|| format!("self-tests of the written bundle {}", dir.display()))?;
    tracing::info!(
        "re-opened {} ({}): self-tests pass, max error {worst:.2e}",
        dir.display(),
        bundle.signature()
    );
    Ok(())
}

/// Field `pointer` (a JSON pointer such as `/config/mode`) of `train.json`.
fn field<'a>(state: &'a Value, path: &Path, pointer: &str) -> Result<&'a Value> {
    state.pointer(pointer).with_context(|| {
        format!(
            "{}: no `{}` field (is this a training run folder?)",
            path.display(),
            pointer.trim_start_matches('/').replace('/', ".")
        )
    })
}

/// A count from `train.json`.
fn count(state: &Value, path: &Path, pointer: &str) -> Result<u32> {
    field(state, path, pointer)?
        .as_u64()
        .and_then(|v| u32::try_from(v).ok())
        .with_context(|| format!("{}: `{pointer}` is not a count", path.display()))
}

/// A string (or any value as its JSON text) from `train.json`.
fn text(state: &Value, path: &Path, pointer: &str) -> Result<String> {
    let v = field(state, path, pointer)?;
    Ok(v.as_str().map_or_else(|| v.to_string(), str::to_string))
}

/// The training summary from the run's `train.json` (and the checkpoint's description).
fn training_summary(state: &Value, model: &LoadedModel, path: &Path) -> Result<TrainingSummary> {
    let epochs = count(state, path, "/epochs_done")?;
    let best_epoch = count(state, path, "/best_epoch")?;
    if epochs == 0 || best_epoch == 0 || best_epoch > epochs {
        bail!(
            "{}: epochs_done {epochs}, best_epoch {best_epoch}: the run has no finished epoch to export",
            path.display()
        );
    }
    let mut extra = std::collections::BTreeMap::new();
    for key in [
        "lr",
        "optimizer",
        "batch_size",
        "weight_decay",
        "label_smoothing",
        "unfreeze_from",
        "class_weighting",
        "augment",
    ] {
        if let Some(v) = state.pointer(&format!("/config/{key}"))
            && !v.is_null()
        {
            extra.insert(key.to_string(), v.clone());
        }
    }
    if let Some(f1) = state.get("best_macro_f1").and_then(Value::as_f64)
        && f1.is_finite()
    {
        extra.insert("best_val_macro_f1".into(), Value::from(f1));
    }
    if let Ok(head) = serde_json::to_value(&model.meta.head) {
        extra.insert("head".into(), head);
    }
    Ok(TrainingSummary {
        epochs,
        best_epoch,
        arch: model.meta.arch.clone(),
        mode: text(state, path, "/config/mode")?,
        balance: text(state, path, "/config/balance")?,
        seed: field(state, path, "/config/seed")?
            .as_u64()
            .with_context(|| format!("{}: `config.seed` is not a number", path.display()))?,
        extra,
    })
}

/// Tolerance of an int8 bundle's self-tests (logits): tract's int8 arithmetic on another CPU
/// may round an intermediate value differently.
pub const INT8_SELF_TEST_TOLERANCE: f32 = 0.1;

/// What the int8 export produced.
struct Int8Export {
    onnx: Vec<u8>,
    quantization: Quantization,
    self_test: Vec<emotion_shared::manifest::SelfTestCase>,
    /// Classes tract gave while choosing and checking the model, per split: the metrics reuse
    /// them instead of running the int8 model over those splits again.
    predicted: Vec<(Split, Vec<u8>)>,
}

/// The Training split of `set` (or `--calib` images), at most `--calib-samples` spread evenly,
/// preprocessed for the model.
fn calibration_inputs(
    args: &ExportArgs,
    model: &LoadedModel,
    set: &FaceSet,
) -> Result<(tch::Tensor, String)> {
    let (pixels, from): (Vec<Vec<u8>>, String) = match &args.calib {
        Some(dir) => {
            let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
                .with_context(|| format!("reading the calibration folder {}", dir.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                        matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg")
                    })
                })
                .collect();
            files.sort();
            let step = (files.len() / args.calib_samples.max(1)).max(1);
            let faces = files
                .iter()
                .step_by(step)
                .take(args.calib_samples)
                .map(|p| {
                    data::folders::read_face(p)
                        .map_err(|e| anyhow::anyhow!("calibration image {}: {e}", p.display()))
                })
                .collect::<Result<Vec<_>>>()?;
            (faces, format!("images in {}", dir.display()))
        }
        None => {
            let idx = set.indices(Split::Training);
            let step = (idx.len() / args.calib_samples.max(1)).max(1);
            let faces = idx
                .iter()
                .step_by(step)
                .take(args.calib_samples)
                .map(|&i| set.image(i).to_vec())
                .collect();
            (faces, "training".to_string())
        }
    };
    if pixels.is_empty() {
        bail!("no calibration images ({from}): give --calib DIR or --data with a Training split");
    }
    let n = pixels.len() as i64;
    let flat: Vec<u8> = pixels.concat();
    let size = data::FER_SIZE as i64;
    let x = tch::Tensor::from_slice(&flat).view([n, 1, size, size]);
    Ok((model_input(&x, &model.meta.preprocess), from))
}

/// The preprocessed images and labels of `split`.
fn split_inputs(model: &LoadedModel, set: &FaceSet, split: Split) -> (tch::Tensor, Vec<u8>) {
    let t = SplitTensors::new(set, split, Device::Cpu);
    let x = model_input(&t.images.unsqueeze(1), &model.meta.preprocess);
    (x, t.host_labels)
}

/// Quantizes the model: calibration, method choice on PublicTest, accuracy check against fp32
/// on PrivateTest, self-tests replayed the edge's way.
fn quantize(
    args: &ExportArgs,
    model: &LoadedModel,
    path: &Path,
    set: &FaceSet,
    samples: &[selftest::SampleFace],
) -> Result<Int8Export> {
    let net = &model.net;
    let plan = QuantPlan::new(&net.graph);
    let (calib, calib_from) = calibration_inputs(args, model, set)?;
    let calibration = Calibration::collect(net, &plan, &calib, args.batch_size)
        .context("calibrating activation ranges")?;
    println!(
        "int8: calibrated {} values on {} {calib_from} images",
        plan.observed.len(),
        calibration.samples
    );
    let select_split = if set.indices(Split::PublicTest).is_empty() {
        Split::PrivateTest
    } else {
        Split::PublicTest
    };
    let check_split = Split::PrivateTest;
    if set.indices(check_split).is_empty() {
        bail!(
            "{} has no PrivateTest images: the int8 accuracy check needs them",
            path.display()
        );
    }
    let (select_x, select_y) = split_inputs(model, set, select_split);
    let producer = env!("CARGO_PKG_VERSION");
    let ranked = rank_methods(
        net,
        &plan,
        &calibration,
        &args.calibration.methods(args.percentile),
        args.weight_scales,
        (&select_x, &select_y),
        producer,
    )
    .context("writing the int8 model")?;
    for c in &ranked {
        println!(
            "int8 {:<18} {} accuracy {:.4}",
            c.method.to_string(),
            select_split.usage_name(),
            c.accuracy
        );
    }
    let mut best = ranked
        .into_iter()
        .next()
        .context("no calibration method was tried")?;

    // The accuracy cost on the held-out split, fp32 in libtorch against int8 in tract.
    let (check_x, check_y) = split_inputs(model, set, check_split);
    let fp32_pred = predict::predict(
        net,
        &model.meta.preprocess,
        &SplitTensors::new(set, check_split, Device::Cpu),
        args.batch_size.max(1),
        false,
    );
    let int8_pred = top_classes(&tract_outputs(&best.onnx, &check_x, "int8 PrivateTest")?);
    let fp32_acc = agreement(&fp32_pred.labels, &check_y);
    let int8_acc = agreement(&int8_pred, &check_y);
    let same = agreement(&int8_pred, &fp32_pred.labels);
    println!(
        "int8 ({}, {} ranges): PrivateTest accuracy {int8_acc:.4} vs fp32 {fp32_acc:.4} \
         ({:+.2} points); same class as fp32 on {:.2}% of {} images",
        args.weight_scales.scheme(),
        best.method,
        (int8_acc - fp32_acc) * 100.0,
        same * 100.0,
        check_y.len()
    );
    let drop = (fp32_acc - int8_acc) * 100.0;
    if drop > args.int8_margin {
        if args.force {
            tracing::warn!(
                "int8 loses {drop:.2} points (margin {:.2}): written anyway because of --force",
                args.int8_margin
            );
        } else {
            bail!(
                "the int8 model loses {drop:.2} accuracy points on PrivateTest ({int8_acc:.4} vs \
                 fp32 {fp32_acc:.4}), more than --int8-margin {:.2}: try --weight-scales \
                 per-channel, quantization-aware training, more --calib images, or --force",
                args.int8_margin
            );
        }
    }

    let outputs = selftest::edge_outputs(&best.onnx, &model.meta.preprocess, samples)
        .context("running the int8 self-tests")?;
    let self_test = selftest::cases(
        samples,
        &outputs,
        INT8_SELF_TEST_TOLERANCE,
        usize::from(args.self_tests),
    )
    .context("picking int8 self-test cases")?;
    let worst = selftest::replay(&best.onnx, &model.meta.preprocess, &self_test)
        .context("replaying the int8 self-tests")?;
    tracing::info!("int8 self-tests replay (max error {worst:.2e})");
    let stem = split_stem(path);
    let predicted = vec![
        (select_split, std::mem::take(&mut best.predicted)),
        (check_split, int8_pred),
    ];
    Ok(Int8Export {
        predicted,
        onnx: best.onnx,
        quantization: Quantization::Int8 {
            scheme: args.weight_scales.scheme().to_string(),
            calibration: emotion_shared::manifest::Calibration {
                method: best.method.to_string(),
                samples: calibration.samples as u32,
                split: format!("{stem}-{calib_from}"),
            },
            accuracy: emotion_shared::manifest::QuantizationAccuracy {
                split: format!("{stem}-{}", check_split.cli_name()),
                fp32: fp32_acc,
                int8: int8_acc,
            },
        },
        self_test,
    })
}

/// Lower-case file stem of a data path, for split names such as `fer2013-private-test`.
fn split_stem(path: &Path) -> String {
    path.file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("data")
        .to_ascii_lowercase()
}

/// Accuracy and macro-F1 on PublicTest and PrivateTest of `set`: of the libtorch model, or,
/// given `int8` (the classes tract gave the int8 model on each split while `quantize` chose
/// and checked it), of the int8 model.
fn evaluate(
    model: &LoadedModel,
    path: &Path,
    set: &FaceSet,
    batch: usize,
    int8: Option<&[(Split, Vec<u8>)]>,
) -> Result<Vec<Metric>> {
    let stem = split_stem(path);
    let mut out = Vec::new();
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
                .with_context(|| format!("the int8 model was not run on {}", split.usage_name()))?,
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
        println!(
            "{}{}: accuracy {:.4}, macro-F1 {:.4} ({} images)",
            split.usage_name(),
            if int8.is_some() { " (int8, tract)" } else { "" },
            m.accuracy,
            m.macro_f1,
            tensors.len()
        );
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
    }
    Ok(out)
}

/// The training data's content hash from `train.json`; a `--data` set with another hash is
/// reported (its metrics are then not on the training data's held-out splits).
fn dataset_hash(state: &Value, data: Option<&FaceSet>) -> Result<Option<Sha256Digest>> {
    let trained = state
        .get("data_hash")
        .and_then(Value::as_str)
        .map(str::parse::<Sha256Digest>)
        .transpose()
        .map_err(|e| anyhow::anyhow!("train.json: malformed data_hash: {e}"))?;
    if let Some(set) = data {
        let given: Sha256Digest = set
            .content_hash()
            .parse()
            .map_err(|e| anyhow::anyhow!("data set hash: {e}"))?;
        match trained {
            Some(t) if t != given => tracing::warn!(
                "--data is not the data set the model was trained on (content hash {} vs {}): \
                 the metrics are on other data",
                &given.to_hex()[..12],
                &t.to_hex()[..12]
            ),
            Some(_) => {}
            None => return Ok(Some(given)),
        }
    }
    Ok(trained)
}

/// The trainer source's git commit, if the source tree it was built from is still a git
/// checkout (or the current directory is).
fn git_commit() -> Option<String> {
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
