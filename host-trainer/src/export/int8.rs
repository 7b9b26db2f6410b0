//! The int8 export: calibration images (a folder of face crops, or the Training split spread
//! evenly), the calibration method chosen by accuracy in tract on PublicTest (or the one
//! asked for), the accuracy gate against fp32 on PrivateTest ([`Int8Options::margin`],
//! [`Int8Options::force`]), and self-tests taken from tract's own int8 outputs and replayed
//! the edge's way. [`export_int8_checked`] is the whole of it; the `int8` half of
//! `emotion-train export`.

use std::path::PathBuf;

use emotion_shared::manifest::{
    Quantization, QuantizationAccuracy, QuantizationSpeed, SelfTestCase,
};
use tch::Device;

use super::selftest::{self, SampleFace};
use super::{ExportData, ExportError};
use crate::data::tensors::SplitTensors;
use crate::data::{self, FaceSet, Split};
use crate::eval::predict;
use crate::model::checkpoint::LoadedModel;
use crate::onnx::OnnxError;
use crate::onnx::tract::TractModel;
use crate::preprocess::model_input;
use crate::quantize::calibrate::Calibration;
use crate::quantize::evaluate::{agreement, top_classes, tract_outputs};
use crate::quantize::plan::QuantPlan;
use crate::quantize::search::rank_methods;
use crate::quantize::{QuantError, RangeMethod, WeightScales};

/// Tolerance of an int8 bundle's self-tests (logits): tract's int8 arithmetic on another CPU
/// may round an intermediate value differently.
pub const INT8_SELF_TEST_TOLERANCE: f32 = 0.1;

/// How to quantize and how much accuracy the int8 model may cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Int8Options {
    /// Calibration methods to try; the most accurate on the selection split is kept.
    pub methods: Vec<RangeMethod>,
    /// Weight scales of the int8 convolutions.
    pub weight_scales: WeightScales,
    /// A folder of face crops (png/jpg) to calibrate on instead of the Training split.
    pub calib_dir: Option<PathBuf>,
    /// At most this many calibration images (spread evenly over what is given).
    pub calib_samples: usize,
    /// Largest accuracy drop against fp32 on PrivateTest, in percentage points.
    pub margin: f64,
    /// Export even when the drop exceeds `margin` (with a warning).
    pub force: bool,
    /// Batch size of calibration and of the fp32 predictions.
    pub batch_size: usize,
    /// Number of self-test cases for the manifest.
    pub self_tests: usize,
}

/// What the int8 export measured, for the report.
#[derive(Debug, Clone, PartialEq)]
pub struct Int8Report {
    /// Values whose activation range was calibrated.
    pub calibrated_values: usize,
    /// Calibration images used.
    pub calibration_images: usize,
    /// Where they came from: `training` or `images in DIR`.
    pub calibration_from: String,
    /// The split the calibration method was chosen on (PublicTest, or PrivateTest without it).
    pub select_split: Split,
    /// Every method tried with its accuracy on `select_split`, best first.
    pub ranked: Vec<(RangeMethod, f64)>,
    /// The method kept.
    pub method: RangeMethod,
    /// Weight scales used.
    pub weight_scales: WeightScales,
    /// The split the accuracy was checked on (PrivateTest).
    pub check_split: Split,
    /// Images of `check_split`.
    pub check_images: usize,
    /// fp32 (libtorch) accuracy on `check_split`.
    pub fp32_accuracy: f64,
    /// int8 (tract) accuracy on `check_split`.
    pub int8_accuracy: f64,
    /// Fraction of `check_split` where int8 picks fp32's class.
    pub same_class: f64,
    /// fp32 against int8 latency in tract on this machine.
    pub speed: QuantizationSpeed,
}

impl Int8Report {
    /// Accuracy lost against fp32, in percentage points.
    pub fn drop_points(&self) -> f64 {
        (self.fp32_accuracy - self.int8_accuracy) * 100.0
    }
}

/// A checked int8 model and what the manifest needs of it.
#[derive(Debug, Clone)]
pub struct Int8Export {
    /// The int8 ONNX bytes.
    pub onnx: Vec<u8>,
    /// The manifest's quantization section.
    pub quantization: Quantization,
    /// Self-test cases (tract's int8 outputs), already replayed the edge's way.
    pub self_test: Vec<SelfTestCase>,
    /// Classes tract gave while choosing and checking the model, per split: the metrics reuse
    /// them instead of running the int8 model over those splits again.
    pub predicted: Vec<(Split, Vec<u8>)>,
    /// What was measured.
    pub report: Int8Report,
}

/// Why the int8 export failed.
#[derive(Debug, thiserror::Error)]
pub enum Int8Error {
    /// The accuracy check needs PrivateTest images.
    #[error("{} has no PrivateTest images: the int8 accuracy check needs them", .data.display())]
    NoPrivateTest {
        /// The data set.
        data: PathBuf,
    },
    /// The calibration folder could not be listed.
    #[error("reading the calibration folder {}", .dir.display())]
    CalibrationFolder {
        /// The folder.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A calibration image could not be read.
    #[error("calibration image {}: {reason}", .path.display())]
    CalibrationImage {
        /// The image.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Nothing to calibrate on.
    #[error("no calibration images ({from}): give --calib DIR or --data with a Training split")]
    NoCalibrationImages {
        /// Where they were looked for.
        from: String,
    },
    /// Collecting activation statistics failed.
    #[error("calibrating activation ranges")]
    Calibrate(#[source] QuantError),
    /// Writing or measuring a candidate int8 model failed.
    #[error("writing the int8 model")]
    Write(#[source] QuantError),
    /// No calibration method was given.
    #[error("no calibration method was tried")]
    NoMethod,
    /// tract could not run the int8 model.
    #[error(transparent)]
    Onnx(#[from] OnnxError),
    /// The self-tests could not be made or did not replay.
    #[error("{stage}")]
    SelfTest {
        /// Which step: running, picking or replaying them.
        stage: &'static str,
        /// Why.
        #[source]
        source: ExportError,
    },
    /// The int8 model loses more than the margin (and `force` is off).
    #[error(
        "the int8 model loses {:.2} accuracy points on PrivateTest ({:.4} vs fp32 {:.4}), more \
         than --int8-margin {margin:.2}: try --weight-scales per-channel, quantization-aware \
         training, more --calib images, or --force",
        .report.drop_points(), .report.int8_accuracy, .report.fp32_accuracy
    )]
    TooInaccurate {
        /// What was measured (to report it even though the export is refused).
        report: Box<Int8Report>,
        /// The allowed drop in points.
        margin: f64,
    },
}

/// Quantizes `model` to int8 and checks it: calibration (on `opts.calib_dir` or the Training
/// split of `data`), method choice by accuracy in tract on PublicTest, accuracy against fp32
/// on PrivateTest (refused beyond `opts.margin` unless `opts.force`), self-test cases from
/// `samples` replayed the edge's way.
pub fn export_int8_checked(
    model: &LoadedModel,
    data: &ExportData,
    samples: &[SampleFace],
    opts: &Int8Options,
    producer_version: &str,
) -> Result<Int8Export, Int8Error> {
    let net = &model.net;
    let set = &data.set;
    let plan = QuantPlan::new(&net.graph);
    let (calib, calibration_from) = calibration_inputs(opts, model, set)?;
    let calibration =
        Calibration::collect(net, &plan, &calib, opts.batch_size).map_err(Int8Error::Calibrate)?;
    let select_split = if set.indices(Split::PublicTest).is_empty() {
        Split::PrivateTest
    } else {
        Split::PublicTest
    };
    let check_split = Split::PrivateTest;
    if set.indices(check_split).is_empty() {
        return Err(Int8Error::NoPrivateTest {
            data: data.path.clone(),
        });
    }
    let (select_x, select_y) = split_inputs(model, set, select_split);
    let ranked = rank_methods(
        net,
        &plan,
        &calibration,
        &opts.methods,
        opts.weight_scales,
        (&select_x, &select_y),
        producer_version,
    )
    .map_err(Int8Error::Write)?;
    let ranking = ranked.iter().map(|c| (c.method, c.accuracy)).collect();
    let mut best = ranked.into_iter().next().ok_or(Int8Error::NoMethod)?;

    // The accuracy cost on the held-out split, fp32 in libtorch against int8 in tract.
    let (check_x, check_y) = split_inputs(model, set, check_split);
    let fp32_pred = predict::predict(
        net,
        &model.meta.preprocess,
        &SplitTensors::new(set, check_split, Device::Cpu),
        opts.batch_size.max(1),
        false,
    );
    let int8_pred = top_classes(&tract_outputs(&best.onnx, &check_x, "int8 PrivateTest")?);
    let speed = measure_speed(model, &best.onnx, producer_version)?;
    let report = Int8Report {
        speed,
        calibrated_values: plan.observed.len(),
        calibration_images: calibration.samples,
        calibration_from,
        select_split,
        ranked: ranking,
        method: best.method,
        weight_scales: opts.weight_scales,
        check_split,
        check_images: check_y.len(),
        fp32_accuracy: agreement(&fp32_pred.labels, &check_y),
        int8_accuracy: agreement(&int8_pred, &check_y),
        same_class: agreement(&int8_pred, &fp32_pred.labels),
    };
    let drop = report.drop_points();
    if drop > opts.margin {
        if opts.force {
            tracing::warn!(
                "int8 loses {drop:.2} points (margin {:.2}): written anyway because of --force",
                opts.margin
            );
        } else {
            return Err(Int8Error::TooInaccurate {
                report: Box::new(report),
                margin: opts.margin,
            });
        }
    }

    if report.speed.int8_is_faster() {
        tracing::info!(
            "int8 in tract: {:.3} ms against fp32 {:.3} ms per face on this machine",
            report.speed.int8_ms,
            report.speed.fp32_ms
        );
    } else {
        tracing::warn!("{}", report.speed.verdict);
    }

    let self_test = int8_self_tests(&best.onnx, model, samples, opts.self_tests)?;
    let stem = data.stem();
    let predicted = vec![
        (select_split, std::mem::take(&mut best.predicted)),
        (check_split, int8_pred),
    ];
    Ok(Int8Export {
        predicted,
        onnx: best.onnx,
        quantization: Quantization::Int8 {
            scheme: opts.weight_scales.scheme().to_string(),
            calibration: emotion_shared::manifest::Calibration {
                method: report.method.to_string(),
                samples: report.calibration_images as u32,
                split: format!("{stem}-{}", report.calibration_from),
            },
            accuracy: QuantizationAccuracy {
                split: format!("{stem}-{}", check_split.cli_name()),
                fp32: report.fp32_accuracy,
                int8: report.int8_accuracy,
            },
            speed: Some(report.speed.clone()),
        },
        self_test,
        report,
    })
}

/// Runs timed per model by [`measure_speed`] (about 2 s for mini-Xception's int8 model).
const SPEED_RUNS: usize = 300;

/// fp32 (the same network written by the fp32 writer) against the int8 model `onnx` in tract,
/// median of [`SPEED_RUNS`] one-face runs each, on this machine; with the verdict for the
/// manifest: where int8 is not faster, the fp32 bundle stays the one to deploy.
fn measure_speed(
    model: &LoadedModel,
    onnx: &[u8],
    producer_version: &str,
) -> Result<QuantizationSpeed, Int8Error> {
    let s = model.net.graph.input_shape();
    let input = [1, s.c as usize, s.h as usize, s.w as usize];
    let fp32 = crate::onnx::to_onnx(&model.net, producer_version)?;
    let fp32_ms = TractModel::load(&fp32, input)?.median_ms(SPEED_RUNS)?;
    let int8_ms = TractModel::load(onnx, input)?.median_ms(SPEED_RUNS)?;
    let machine = format!(
        "{} {}, tract-onnx {}, one thread, batch 1",
        std::env::consts::ARCH,
        std::env::consts::OS,
        TRACT_VERSION
    );
    let verdict = if int8_ms < fp32_ms {
        format!(
            "int8 is faster in tract here ({int8_ms:.3} ms against fp32 {fp32_ms:.3} ms per face)"
        )
    } else {
        format!(
            "int8 is slower than fp32 in tract here ({int8_ms:.3} ms against {fp32_ms:.3} ms per \
             face): deploy the fp32 bundle for speed; int8 buys a smaller file. On aarch64 \
             tract's int8 kernels need the dot-product extension (Raspberry Pi 5 has it, Pi 4 \
             does not); measure there with `emotion-edge bench`"
        )
    };
    Ok(QuantizationSpeed {
        fp32_ms,
        int8_ms,
        machine,
        verdict,
    })
}

/// The tract version the trainer links (the edge pins the same one).
const TRACT_VERSION: &str = "0.23.9";

/// Self-test cases of the int8 model `onnx`: tract's outputs on `samples` the edge's way, at
/// most `max`, replayed once more.
fn int8_self_tests(
    onnx: &[u8],
    model: &LoadedModel,
    samples: &[SampleFace],
    max: usize,
) -> Result<Vec<SelfTestCase>, Int8Error> {
    let stage = |stage: &'static str| move |source| Int8Error::SelfTest { stage, source };
    let spec = &model.meta.preprocess;
    let outputs = selftest::edge_outputs(onnx, spec, samples)
        .map_err(stage("running the int8 self-tests"))?;
    let cases = selftest::cases(samples, &outputs, INT8_SELF_TEST_TOLERANCE, max)
        .map_err(stage("picking int8 self-test cases"))?;
    let worst =
        selftest::replay(onnx, spec, &cases).map_err(stage("replaying the int8 self-tests"))?;
    tracing::info!("int8 self-tests replay (max error {worst:.2e})");
    Ok(cases)
}

/// The calibration images (`opts.calib_dir`, or the Training split of `set`), at most
/// `opts.calib_samples` spread evenly, preprocessed for the model; and where they came from.
fn calibration_inputs(
    opts: &Int8Options,
    model: &LoadedModel,
    set: &FaceSet,
) -> Result<(tch::Tensor, String), Int8Error> {
    let (pixels, from): (Vec<Vec<u8>>, String) = match &opts.calib_dir {
        Some(dir) => {
            let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(|source| Int8Error::CalibrationFolder {
                    dir: dir.clone(),
                    source,
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                        matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg")
                    })
                })
                .collect();
            files.sort();
            let step = (files.len() / opts.calib_samples.max(1)).max(1);
            let faces = files
                .iter()
                .step_by(step)
                .take(opts.calib_samples)
                .map(|p| {
                    data::folders::read_face(p).map_err(|reason| Int8Error::CalibrationImage {
                        path: p.clone(),
                        reason,
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            (faces, format!("images in {}", dir.display()))
        }
        None => {
            let idx = set.indices(Split::Training);
            let step = (idx.len() / opts.calib_samples.max(1)).max(1);
            let faces = idx
                .iter()
                .step_by(step)
                .take(opts.calib_samples)
                .map(|&i| set.image(i).to_vec())
                .collect();
            (faces, "training".to_string())
        }
    };
    if pixels.is_empty() {
        return Err(Int8Error::NoCalibrationImages { from });
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
