//! Self-test cases for the manifest: raw face crops (`u8`, as the edge's camera delivers them)
//! with libtorch's logits, and their replay the edge's way — the shared preprocessing
//! implementation, then tract — before the bundle is written.

use emotion_shared::manifest::{SelfTestCase, SelfTestInput, argmax};
use emotion_shared::preprocess::{PixelFormat, PreprocessSpec};
use emotion_shared::render::{ClassProportions, SyntheticDataset};
use emotion_shared::{Emotion, NUM_CLASSES};
use tch::{Kind, Tensor};

use super::ExportError;
use crate::data::{FER_SIZE, FaceSet, Split};
use crate::onnx::tract::TractModel;
use crate::preprocess::model_input;

/// A raw face crop to check the export on and to draw self-test cases from.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleFace {
    /// A name for messages and the manifest, e.g. `PrivateTest-0017`.
    pub name: String,
    /// The crop as the edge would see it.
    pub input: SelfTestInput,
}

impl SampleFace {
    /// A 48x48 grey FER2013-style face.
    pub fn grey48(name: String, pixels: &[u8]) -> SampleFace {
        SampleFace {
            name,
            input: SelfTestInput {
                width: FER_SIZE as u32,
                height: FER_SIZE as u32,
                format: PixelFormat::Grey,
                pixels: pixels.to_vec(),
            },
        }
    }
}

/// Up to `max` faces of `split` of `set`, spread evenly over the split.
pub fn from_face_set(set: &FaceSet, split: Split, max: usize) -> Vec<SampleFace> {
    let idx = set.indices(split);
    let step = (idx.len() / max.max(1)).max(1);
    idx.iter()
        .step_by(step)
        .take(max)
        .map(|&i| SampleFace::grey48(format!("{}-{i:05}", split.usage_name()), set.image(i)))
        .collect()
}

/// `count` procedurally drawn faces (balanced over the seven emotions), for exports without
/// `--data`.
pub fn synthetic(count: usize, seed: u64) -> Vec<SampleFace> {
    let data = SyntheticDataset::new(count, ClassProportions::BALANCED, seed);
    (0..count)
        .map(|i| {
            let (emotion, img) = data.sample(i);
            SampleFace::grey48(format!("synthetic-{i:03}-{}", emotion.name()), img.as_raw())
        })
        .collect()
}

/// The faces preprocessed with libtorch (the training path), stacked `[N, C, H, W]`.
pub fn tch_inputs(samples: &[SampleFace], spec: &PreprocessSpec) -> Result<Tensor, ExportError> {
    if samples.is_empty() {
        return Err(ExportError::SelfTest(
            "no sample faces to check the export on".into(),
        ));
    }
    let mut rows = Vec::with_capacity(samples.len());
    for s in samples {
        let (w, h) = (i64::from(s.input.width), i64::from(s.input.height));
        let c = s.input.format.channels() as i64;
        if s.input.pixels.len() as i64 != w * h * c {
            return Err(ExportError::SelfTest(format!(
                "face {} has {} bytes, expected {w}x{h}x{c}",
                s.name,
                s.input.pixels.len()
            )));
        }
        let hwc = Tensor::from_slice(&s.input.pixels)
            .view([h, w, c])
            .permute([2, 0, 1])
            .unsqueeze(0)
            .to_kind(Kind::Float);
        rows.push(model_input(&hwc, spec));
    }
    Ok(Tensor::cat(&rows, 0))
}

/// Self-test cases from `samples` and libtorch's logits for them (same order): at most `max`,
/// keeping only faces whose top two logits are more than ten tolerances apart (the manifest
/// needs more than two, and a margin keeps the check stable).
pub fn cases(
    samples: &[SampleFace],
    logits: &[Vec<f32>],
    tolerance: f32,
    max: usize,
) -> Result<Vec<SelfTestCase>, ExportError> {
    let mut out = Vec::new();
    for (s, l) in samples.iter().zip(logits) {
        if out.len() >= max {
            break;
        }
        if l.len() != NUM_CLASSES {
            return Err(ExportError::SelfTest(format!(
                "the model gives {} outputs, the manifest needs {NUM_CLASSES}",
                l.len()
            )));
        }
        let mut sorted = l.clone();
        sorted.sort_by(|a, b| b.total_cmp(a));
        if sorted[0] - sorted[1] <= 10.0 * tolerance {
            continue;
        }
        let Some(top) = argmax(l).and_then(Emotion::from_index) else {
            continue;
        };
        out.push(SelfTestCase {
            name: format!("{}-{}", s.name, top.name()),
            input: s.input.clone(),
            expected: l.clone(),
            tolerance,
            top_label: top,
        });
    }
    if out.is_empty() {
        return Err(ExportError::SelfTest(format!(
            "none of the {} sample faces has a clear top class (top two logits more than {} apart): \
             is the model trained?",
            samples.len(),
            10.0 * tolerance
        )));
    }
    Ok(out)
}

/// Replays `cases` as the edge does (shared preprocessing of the raw crop, then tract) and
/// returns the largest error; a failing case is an error naming it.
pub fn replay(
    onnx: &[u8],
    spec: &PreprocessSpec,
    cases: &[SelfTestCase],
) -> Result<f32, ExportError> {
    let model = TractModel::load(onnx, spec.input_shape())?;
    let mut worst = 0.0f32;
    for case in cases {
        let crop = case
            .input
            .crop()
            .map_err(|e| ExportError::SelfTest(format!("`{}` input: {e}", case.name)))?;
        let x = spec
            .preprocess(crop)
            .map_err(|e| ExportError::SelfTest(format!("`{}` preprocessing: {e}", case.name)))?;
        let got = model.run(&x)?;
        let outcome = case
            .check(&got)
            .map_err(|e| ExportError::SelfTest(format!("edge-style replay failed: {e}")))?;
        worst = worst.max(outcome.max_abs_error);
    }
    Ok(worst)
}

/// `onnx`'s outputs for each sample the edge's way (shared preprocessing of the raw crop, then
/// tract): the expected values of an int8 model's self-tests, whose arithmetic libtorch does
/// not reproduce.
pub fn edge_outputs(
    onnx: &[u8],
    spec: &PreprocessSpec,
    samples: &[SampleFace],
) -> Result<Vec<Vec<f32>>, ExportError> {
    let model = TractModel::load(onnx, spec.input_shape())?;
    samples
        .iter()
        .map(|s| {
            let crop = s
                .input
                .crop()
                .map_err(|e| ExportError::SelfTest(format!("`{}` input: {e}", s.name)))?;
            let x = spec
                .preprocess(crop)
                .map_err(|e| ExportError::SelfTest(format!("`{}` preprocessing: {e}", s.name)))?;
            Ok(model.run(&x)?)
        })
        .collect()
}
