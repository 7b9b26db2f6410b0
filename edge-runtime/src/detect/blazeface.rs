//! MediaPipe's BlazeFace face detector (Apache-2.0) in tract: the short-range model (128x128
//! input, faces within about 2 m) or the full-range one (192x192, up to about 5 m), as the
//! ONNX file `emotion-train convert-detector` writes from MediaPipe's `.tflite`.
//!
//! Per frame, as MediaPipe's `face_detection.pbtxt` does it: the whole RGB frame is
//! letterboxed into the square input (aspect kept, black borders, bilinear), scaled to
//! `[-1, 1]`, run; each of the SSD anchors' 16 regressor values (box centre offset and size,
//! six key points, in input pixels) is decoded against its anchor, the score logit is clipped
//! to ±100 and passed through a sigmoid, boxes under the score threshold are dropped, the rest
//! merged by weighted non-maximum suppression (IoU > `nms_iou` merges, weights are the scores),
//! and boxes and key points are mapped back through the letterbox to frame pixels.
//!
//! The model is loaded and optimised once ([`BlazeFaceModel`]); a wrong file is refused with a
//! [`BlazeFaceError`] (sha256 mismatch, not ONNX, input or output shapes of another model).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use image::RgbImage;
use image::imageops::FilterType;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tract_onnx::prelude::*;

use super::FaceDetector;
use crate::geometry::{Face, FaceBox, Keypoints};
use crate::tools::model_profile::{self, ModelProfile};

/// Which BlazeFace model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum BlazeFaceVariant {
    /// `face_detection_short_range`: 128x128 input, 896 anchors, faces within about 2 m.
    Short,
    /// `face_detection_full_range`: 192x192 input, 2304 anchors, faces up to about 5 m.
    Full,
}

impl BlazeFaceVariant {
    /// Side of the square model input in pixels.
    pub fn input_size(self) -> usize {
        match self {
            BlazeFaceVariant::Short => 128,
            BlazeFaceVariant::Full => 192,
        }
    }

    /// The SSD anchor centres, in `[0, 1]` input coordinates, in the model's output order
    /// (MediaPipe's `SsdAnchorsCalculator` with the options of
    /// `face_detection_short_range.pbtxt` / `face_detection_full_range.pbtxt`: anchor offset
    /// 0.5, fixed anchor size; short range: strides 8, 16, 16, 16 with an interpolated scale
    /// (two anchors per layer and cell, the three stride-16 layers sharing their cells);
    /// full range: one layer of stride 4, one anchor per cell).
    pub fn anchors(self) -> Vec<[f32; 2]> {
        let (strides, per_layer): (&[usize], usize) = match self {
            BlazeFaceVariant::Short => (&[8, 16, 16, 16], 2),
            BlazeFaceVariant::Full => (&[4], 1),
        };
        let size = self.input_size();
        let mut anchors = Vec::new();
        let mut layer = 0;
        while layer < strides.len() {
            let stride = strides[layer];
            let same = strides[layer..]
                .iter()
                .take_while(|&&s| s == stride)
                .count();
            let repeats = same * per_layer;
            let cells = size / stride;
            for y in 0..cells {
                let cy = (y as f32 + 0.5) / cells as f32;
                for x in 0..cells {
                    let cx = (x as f32 + 0.5) / cells as f32;
                    anchors.extend(std::iter::repeat_n([cx, cy], repeats));
                }
            }
            layer += same;
        }
        anchors
    }
}

/// Where `deploy/install.sh --detector FILE` puts converted BlazeFace models on a device; the
/// detector looks there when `[detect.blazeface] model` is not set.
pub const INSTALL_DIR: &str = "/usr/local/share/emotion-edge";

/// The sha256 of the ONNX files `emotion-train convert-detector` makes from MediaPipe's
/// published models (the conversion is deterministic), in `sha256sum` format. The same file is
/// `deploy/install.sh`'s check, so the binary and the installer trust the same two models.
const PINNED_SHA256: &str = include_str!("../../../deploy/detectors.sha256");

impl BlazeFaceVariant {
    /// The converted model's file name (MediaPipe's name with `.onnx`).
    pub fn file_name(self) -> &'static str {
        match self {
            BlazeFaceVariant::Short => "face_detection_short_range.onnx",
            BlazeFaceVariant::Full => "face_detection_full_range.onnx",
        }
    }

    /// MediaPipe's minimum score for this model (0.5 short range, 0.6 full range).
    pub fn mediapipe_score_threshold(self) -> f32 {
        match self {
            BlazeFaceVariant::Short => 0.5,
            BlazeFaceVariant::Full => 0.6,
        }
    }

    /// The sha256 (hex) of MediaPipe's model of this variant as `emotion-train
    /// convert-detector` writes it now (the first of [`Self::pinned_sha256s`]).
    pub fn pinned_sha256(self) -> &'static str {
        self.pinned_sha256s().first().copied().unwrap_or_default()
    }

    /// Every sha256 (hex) `deploy/detectors.sha256` pins for this variant, the current
    /// converter's first, then the files earlier converters wrote (still accepted, so a device
    /// updated without its detector being installed again keeps detecting).
    pub fn pinned_sha256s(self) -> Vec<&'static str> {
        PINNED_SHA256
            .lines()
            .filter_map(|l| l.split_once("  "))
            .filter(|(_, name)| *name == self.file_name())
            .map(|(sha, _)| sha)
            .collect()
    }
}

/// Which of the `accepted` sha256s (hex, any case, surrounding blanks ignored) `found` is: its
/// index, or `None`.
pub fn accepted_as(found: &str, accepted: &[&str]) -> Option<usize> {
    accepted
        .iter()
        .position(|a| found.eq_ignore_ascii_case(a.trim()))
}

/// `[detect.blazeface]`: the BlazeFace detector's own settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BlazeFaceConfig {
    /// `short` (128x128, within ~2 m) or `full` (192x192, up to ~5 m).
    pub variant: BlazeFaceVariant,
    /// The converted ONNX file (`emotion-train convert-detector`), installed with the runtime
    /// (`deploy/install.sh --detector`), never downloaded at run time. Default: the variant's
    /// file in [`INSTALL_DIR`].
    pub model: Option<PathBuf>,
    /// Expected sha256 of `model` (hex). Default: the hash of MediaPipe's model of `variant` as
    /// converted by `emotion-train convert-detector` ([`BlazeFaceVariant::pinned_sha256`]), so
    /// any other file is refused unless its hash is written here.
    pub sha256: Option<String>,
    /// Minimum face score in `0..1` (MediaPipe: 0.5 short range, 0.6 full range).
    pub score_threshold: f32,
    /// IoU above which overlapping detections are merged (MediaPipe: 0.3).
    pub nms_iou: f32,
}

impl Default for BlazeFaceConfig {
    fn default() -> Self {
        BlazeFaceConfig {
            variant: BlazeFaceVariant::Short,
            model: None,
            sha256: None,
            score_threshold: 0.5,
            nms_iou: 0.3,
        }
    }
}

impl BlazeFaceConfig {
    /// The model file: `model`, or the variant's file in [`INSTALL_DIR`].
    pub fn model_path(&self) -> PathBuf {
        self.model
            .clone()
            .unwrap_or_else(|| Path::new(INSTALL_DIR).join(self.variant.file_name()))
    }

    /// The sha256s the model file may have: `sha256`, or the variant's pinned hashes.
    pub fn accepted_sha256(&self) -> Vec<&str> {
        match self.sha256.as_deref() {
            Some(sha) => vec![sha],
            None => self.variant.pinned_sha256s(),
        }
    }

    /// Loads and checks the configured model.
    pub fn open(&self) -> Result<BlazeFaceModel, BlazeFaceError> {
        BlazeFaceModel::open(&self.model_path(), &self.accepted_sha256(), self.variant)
    }
}

/// Why the BlazeFace model could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum BlazeFaceError {
    /// The model file could not be read.
    #[error(
        "cannot read BlazeFace model {path}: {source} (make it on the workstation with `emotion-train convert-detector` and install it with `deploy/install.sh --detector FILE`, or set `model = PATH` in [detect.blazeface])"
    )]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file's sha256 is not the configured one.
    #[error(
        "BlazeFace model {path} has sha256 {found}, expected {expected}: a damaged file or another model (a model you converted yourself and trust needs `sha256 = \"{found}\"` in [detect.blazeface])"
    )]
    Hash {
        /// The file.
        path: String,
        /// Its sha256.
        found: String,
        /// `[detect.blazeface] sha256`, or the pinned hashes (joined by " or ").
        expected: String,
    },
    /// The bytes are not a BlazeFace ONNX model of the configured variant.
    #[error("{origin} is not a {variant:?}-range BlazeFace ONNX model: {reason}")]
    Invalid {
        /// Which model.
        origin: String,
        /// The configured variant.
        variant: BlazeFaceVariant,
        /// Why.
        reason: String,
    },
}

/// A loaded, optimised BlazeFace network with its anchors; shareable between threads.
#[derive(Debug)]
pub struct BlazeFaceModel {
    plan: Arc<TypedRunnableModel>,
    variant: BlazeFaceVariant,
    anchors: Vec<[f32; 2]>,
}

impl BlazeFaceModel {
    /// Reads `path`, checks that its sha256 is one of `accepted` unless that is empty, and
    /// loads it.
    pub fn open(
        path: &Path,
        accepted: &[&str],
        variant: BlazeFaceVariant,
    ) -> Result<BlazeFaceModel, BlazeFaceError> {
        let bytes = std::fs::read(path).map_err(|source| BlazeFaceError::Read {
            path: path.display().to_string(),
            source,
        })?;
        if !accepted.is_empty() {
            let found = hex::encode(Sha256::digest(&bytes));
            if accepted_as(&found, accepted).is_none() {
                return Err(BlazeFaceError::Hash {
                    path: path.display().to_string(),
                    found,
                    expected: accepted.join(" or "),
                });
            }
        }
        Self::load(&bytes, variant, &path.display().to_string())
    }

    /// Parses and optimises ONNX `bytes` (`origin` names them in errors) for batch 1, checking
    /// the input `[1, 3, S, S]` and the outputs `[1, N, 16]` and `[1, N, 1]` of `variant`.
    pub fn load(
        bytes: &[u8],
        variant: BlazeFaceVariant,
        origin: &str,
    ) -> Result<BlazeFaceModel, BlazeFaceError> {
        let invalid = |reason: String| BlazeFaceError::Invalid {
            origin: origin.to_string(),
            variant,
            reason,
        };
        let s = variant.input_size();
        let anchors = variant.anchors();
        let n = anchors.len();
        let plan = catch_unwind(AssertUnwindSafe(|| -> TractResult<_> {
            let mut model = tract_onnx::onnx().model_for_read(&mut &bytes[..])?;
            model.set_input_fact(0, f32::fact([1, 3, s, s]).into())?;
            let typed = crate::kernels::into_plan(model.into_typed()?)?;
            let shapes: Vec<Option<Vec<usize>>> = (0..typed.outputs.len())
                .map(|i| {
                    typed
                        .output_fact(i)
                        .ok()
                        .and_then(|f| f.shape.as_concrete().map(|s| s.to_vec()))
                })
                .collect();
            Ok((shapes, typed.into_runnable()?))
        }))
        .map_err(|_| invalid("tract panicked while loading".into()))?
        .map_err(|e| invalid(format!("{e:#}")))?;
        let (shapes, plan) = plan;
        let want = [Some(vec![1, n, 16]), Some(vec![1, n, 1])];
        if shapes[..] != want[..] {
            return Err(invalid(format!(
                "outputs are {shapes:?}, expected [1, {n}, 16] and [1, {n}, 1]"
            )));
        }
        Ok(BlazeFaceModel {
            plan,
            variant,
            anchors,
        })
    }

    /// The variant loaded.
    pub fn variant(&self) -> BlazeFaceVariant {
        self.variant
    }

    /// Runs the network on an input tensor (`[1, 3, S, S]`, NCHW, values in `[-1, 1]`) and
    /// returns the raw regressors (`N * 16`) and score logits (`N`).
    pub fn run_raw(&self, input: Tensor) -> TractResult<(Vec<f32>, Vec<f32>)> {
        self.run_raw_in(&mut self.state()?, input)
    }

    /// Times the network node by node on a mid-grey input, `runs` times after a warm-up
    /// (`emotion-edge bench --profile`).
    pub fn profile(&self, runs: usize) -> TractResult<ModelProfile> {
        let s = self.variant.input_size();
        let input = Tensor::zero::<f32>(&[1, 3, s, s])?;
        model_profile::profile(&self.plan, &input, runs)
    }

    /// A tract run state for this network, kept by a detector between frames.
    pub fn state(&self) -> TractResult<TypedSimpleState> {
        TypedSimpleState::new(&self.plan)
    }

    /// [`BlazeFaceModel::run_raw`] in a kept run state.
    pub fn run_raw_in(
        &self,
        state: &mut TypedSimpleState,
        input: Tensor,
    ) -> TractResult<(Vec<f32>, Vec<f32>)> {
        let out = state.run(tvec!(input.into()))?;
        let flat = |i: usize| -> TractResult<Vec<f32>> {
            Ok(out[i]
                .to_plain_array_view::<f32>()?
                .iter()
                .copied()
                .collect())
        };
        Ok((flat(0)?, flat(1)?))
    }
}

/// One detected face: its box, score and six key points, in frame pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Detection {
    /// The face box, clipped to the frame.
    pub face: FaceBox,
    /// Score in `0..1`.
    pub score: f32,
    /// Key points as `(x, y)` in frame pixels (not clipped), in MediaPipe's order:
    /// [`RIGHT_EYE`], left eye, nose tip, mouth centre, right ear tragion, left ear tragion
    /// ("right" and "left" of the person).
    pub keypoints: [[f32; 2]; 6],
}

impl From<Detection> for Face {
    fn from(d: Detection) -> Face {
        Face {
            bbox: d.face,
            keypoints: Some(Keypoints::from_mediapipe(d.keypoints)),
        }
    }
}

/// Index of the person's right eye (left in an unmirrored image) in [`Detection::keypoints`].
pub const RIGHT_EYE: usize = 0;
/// Index of the person's left eye in [`Detection::keypoints`].
pub const LEFT_EYE: usize = 1;

/// A decoded detection in `[0, 1]` model-input coordinates: xmin, ymin, xmax, ymax, then
/// six key points (x, y).
type Raw = [f32; 16];

/// The letterbox of a `w x h` frame in an `s x s` input: scale and the offsets of the
/// picture inside the input, in input pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Letterbox {
    /// Input pixels per frame pixel, horizontally and vertically (equal but for rounding).
    sx: f32,
    sy: f32,
    width: u32,
    height: u32,
    left: u32,
    top: u32,
}

impl Letterbox {
    fn new(w: u32, h: u32, s: u32) -> Letterbox {
        let scale = s as f32 / w.max(h) as f32;
        let width = ((w as f32 * scale).round() as u32).clamp(1, s);
        let height = ((h as f32 * scale).round() as u32).clamp(1, s);
        Letterbox {
            sx: width as f32 / w as f32,
            sy: height as f32 / h as f32,
            width,
            height,
            left: (s - width) / 2,
            top: (s - height) / 2,
        }
    }

    /// A point in `[0, 1]` input coordinates, in frame pixels.
    fn to_frame(self, s: u32, [x, y]: [f32; 2]) -> [f32; 2] {
        [
            (x * s as f32 - self.left as f32) / self.sx,
            (y * s as f32 - self.top as f32) / self.sy,
        ]
    }
}

/// BlazeFace detection on whole frames.
pub struct BlazeFaceDetector {
    model: Arc<BlazeFaceModel>,
    score_threshold: f32,
    nms_iou: f32,
    min_face: u32,
    input: Vec<f32>,
    state: Option<TypedSimpleState>,
}

impl BlazeFaceDetector {
    /// A detector over a loaded model; `min_face` (frame pixels) drops smaller boxes.
    pub fn new(
        model: Arc<BlazeFaceModel>,
        score_threshold: f32,
        nms_iou: f32,
        min_face: u32,
    ) -> Self {
        BlazeFaceDetector {
            model,
            score_threshold,
            nms_iou,
            min_face,
            input: Vec::new(),
            state: None,
        }
    }

    /// The configured detector: loads and checks `config`'s model ([`BlazeFaceConfig::open`])
    /// and takes its thresholds; `min_face` as in [`BlazeFaceDetector::new`].
    pub fn from_config(config: &BlazeFaceConfig, min_face: u32) -> Result<Self, BlazeFaceError> {
        Ok(BlazeFaceDetector::new(
            Arc::new(config.open()?),
            config.score_threshold,
            config.nms_iou,
            min_face,
        ))
    }

    /// Letterboxes `frame` into the model input (NCHW, `[-1, 1]`, black borders).
    fn prepare(&mut self, frame: &RgbImage) -> Option<(Tensor, Letterbox)> {
        let (w, h) = frame.dimensions();
        if w == 0 || h == 0 {
            return None;
        }
        let s = self.model.variant.input_size() as u32;
        let lb = Letterbox::new(w, h, s);
        let plane = (s * s) as usize;
        self.input.clear();
        self.input.resize(3 * plane, -1.0);
        let factor = w / lb.width;
        if factor > 1 && (w, h) == (lb.width * factor, lb.height * factor) {
            // A whole-number reduction (640x480 into 128x96 is 5): the mean of each
            // factor x factor block, which is where a triangle filter centres too; the detect
            // stage on 640x480 frames went from 4.8 to 3.3 ms with it.
            box_reduce_into(frame, factor, lb, s, &mut self.input);
        } else {
            let resized;
            let pic = if (w, h) == (lb.width, lb.height) {
                frame
            } else {
                // A triangle filter as wide as the reduction. `imageops::thumbnail` (area sums
                // snapped to whole pixels) takes half its time but moves the key points enough
                // to turn a 15-degree face's aligned crop to another label
                // (tests/tests/aligned_crops.rs).
                resized = image::imageops::resize(frame, lb.width, lb.height, FilterType::Triangle);
                &resized
            };
            for (x, y, p) in pic.enumerate_pixels() {
                let at = ((y + lb.top) * s + x + lb.left) as usize;
                for c in 0..3 {
                    self.input[c * plane + at] = f32::from(p[c]) / 127.5 - 1.0;
                }
            }
        }
        let s = s as usize;
        let tensor = Tensor::from_shape(&[1, 3, s, s], &self.input).ok()?;
        Some((tensor, lb))
    }

    /// The faces in `frame` with their scores and key points, best first.
    pub fn detections(&mut self, frame: &RgbImage) -> Vec<Detection> {
        let Some((tensor, lb)) = self.prepare(frame) else {
            return vec![];
        };
        let state = match self.state.take() {
            Some(state) => state,
            None => match self.model.state() {
                Ok(state) => state,
                Err(e) => {
                    tracing::warn!(
                        "BlazeFace cannot make its run state; skipping the frame: {e:#}"
                    );
                    return vec![];
                }
            },
        };
        let state = self.state.insert(state);
        let (regressors, scores) = match self.model.run_raw_in(state, tensor) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("BlazeFace inference failed; skipping the frame: {e:#}");
                return vec![];
            }
        };
        let s = self.model.variant.input_size() as u32;
        let raw = decode(
            &regressors,
            &scores,
            &self.model.anchors,
            s as f32,
            self.score_threshold,
        );
        let (w, h) = frame.dimensions();
        weighted_nms(raw, self.nms_iou)
            .into_iter()
            .filter_map(|(r, score)| {
                let [x0, y0] = lb.to_frame(s, [r[0], r[1]]);
                let [x1, y1] = lb.to_frame(s, [r[2], r[3]]);
                let mut keypoints = [[0.0; 2]; 6];
                for (k, kp) in keypoints.iter_mut().enumerate() {
                    *kp = lb.to_frame(s, [r[4 + 2 * k], r[5 + 2 * k]]);
                }
                let (x0, y0) = (x0.max(0.0).floor(), y0.max(0.0).floor());
                let (x1, y1) = (x1.min(w as f32).ceil(), y1.min(h as f32).ceil());
                if x1 <= x0 || y1 <= y0 {
                    return None;
                }
                let face = FaceBox::new(x0 as u32, y0 as u32, (x1 - x0) as u32, (y1 - y0) as u32)
                    .clip(w, h)?;
                (face.w.min(face.h) >= self.min_face).then_some(Detection {
                    face,
                    score,
                    keypoints,
                })
            })
            .collect()
    }
}

impl FaceDetector for BlazeFaceDetector {
    fn detect(&mut self, frame: &RgbImage) -> Vec<Face> {
        self.detections(frame).into_iter().map(Face::from).collect()
    }

    fn name(&self) -> &'static str {
        "blazeface"
    }
}

/// Writes the `factor x factor` block means of `frame` (whose sides are `factor` times the
/// letterbox's) into the `s x s` NCHW input at the letterbox's place, scaled to `[-1, 1]`.
fn box_reduce_into(frame: &RgbImage, factor: u32, lb: Letterbox, s: u32, input: &mut [f32]) {
    let (f, out_w) = (factor as usize, lb.width as usize);
    let row_bytes = frame.width() as usize * 3;
    let plane = (s * s) as usize;
    let scale = 1.0 / (127.5 * (f * f) as f32);
    let mut sums = vec![0u32; out_w * 3];
    for (oy, rows) in frame.as_raw().chunks_exact(row_bytes * f).enumerate() {
        sums.fill(0);
        for row in rows.chunks_exact(row_bytes) {
            for (sum, block) in sums.chunks_exact_mut(3).zip(row.chunks_exact(3 * f)) {
                for px in block.chunks_exact(3) {
                    sum[0] += u32::from(px[0]);
                    sum[1] += u32::from(px[1]);
                    sum[2] += u32::from(px[2]);
                }
            }
        }
        let at = (oy as u32 + lb.top) as usize * s as usize + lb.left as usize;
        for (ox, sum) in sums.chunks_exact(3).enumerate() {
            for (c, &v) in sum.iter().enumerate() {
                input[c * plane + at + ox] = v as f32 * scale - 1.0;
            }
        }
    }
}

/// Decodes the raw outputs (MediaPipe's `TensorsToDetectionsCalculator` with the face
/// options): scores through a sigmoid of the logit clipped to ±100, kept when at least
/// `threshold`; boxes and key points from input pixels relative to the anchor to `[0, 1]`
/// input coordinates; boxes with no area dropped.
fn decode(
    regressors: &[f32],
    logits: &[f32],
    anchors: &[[f32; 2]],
    size: f32,
    threshold: f32,
) -> Vec<(Raw, f32)> {
    let mut out = Vec::new();
    for (i, ([ax, ay], r)) in anchors.iter().zip(regressors.chunks_exact(16)).enumerate() {
        let Some(&logit) = logits.get(i) else { break };
        let score = 1.0 / (1.0 + (-logit.clamp(-100.0, 100.0)).exp());
        if score < threshold || !score.is_finite() {
            continue;
        }
        let cx = r[0] / size + ax;
        let cy = r[1] / size + ay;
        let (bw, bh) = (r[2] / size, r[3] / size);
        if !(bw > 0.0 && bh > 0.0) {
            continue;
        }
        let mut d = [0.0; 16];
        d[..4].copy_from_slice(&[cx - bw / 2.0, cy - bh / 2.0, cx + bw / 2.0, cy + bh / 2.0]);
        for k in 0..6 {
            d[4 + 2 * k] = r[4 + 2 * k] / size + ax;
            d[5 + 2 * k] = r[5 + 2 * k] / size + ay;
        }
        out.push((d, score));
    }
    out
}

/// IoU of two `[xmin, ymin, xmax, ymax, ..]` boxes.
fn iou(a: &Raw, b: &Raw) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

/// MediaPipe's weighted non-maximum suppression: take the best remaining detection, merge
/// every remaining one that overlaps it by more than `threshold` (itself included) into a
/// score-weighted mean of boxes and key points with the best one's score, repeat.
fn weighted_nms(mut dets: Vec<(Raw, f32)>, threshold: f32) -> Vec<(Raw, f32)> {
    dets.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut out = Vec::new();
    while let Some(&(best, score)) = dets.first() {
        let (merge, rest): (Vec<_>, Vec<_>) = dets
            .into_iter()
            .partition(|(d, _)| iou(d, &best) > threshold);
        let total: f32 = merge.iter().map(|(_, s)| s).sum();
        let mut mean = [0.0f32; 16];
        if merge.is_empty() || total <= 0.0 {
            mean = best;
        } else {
            for (d, s) in &merge {
                for (m, v) in mean.iter_mut().zip(d) {
                    *m += v * s / total;
                }
            }
        }
        out.push((mean, score));
        dets = rest;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_match_mediapipe_counts_and_order() {
        let short = BlazeFaceVariant::Short.anchors();
        assert_eq!(short.len(), 896);
        // Stride 8: 16x16 cells, two anchors each; the first cell's centre is (1/32, 1/32).
        assert_eq!(short[0], [0.5 / 16.0, 0.5 / 16.0]);
        assert_eq!(short[1], short[0]);
        assert_eq!(short[2], [1.5 / 16.0, 0.5 / 16.0]);
        // Stride 16 from 512 on: 8x8 cells, six anchors each.
        assert_eq!(short[512], [0.5 / 8.0, 0.5 / 8.0]);
        assert_eq!(short[517], short[512]);
        assert_eq!(short[518], [1.5 / 8.0, 0.5 / 8.0]);
        assert_eq!(short[895], [7.5 / 8.0, 7.5 / 8.0]);
        let full = BlazeFaceVariant::Full.anchors();
        assert_eq!(full.len(), 2304);
        assert_eq!(full[1], [1.5 / 48.0, 0.5 / 48.0]);
        assert_eq!(full[2303], [47.5 / 48.0, 47.5 / 48.0]);
    }

    #[test]
    fn decode_places_boxes_on_their_anchor_and_thresholds_scores() {
        let anchors = [[0.25, 0.5], [0.75, 0.5]];
        let mut reg = vec![0.0; 32];
        // Anchor 0: centre shifted by 12.8 px (0.1) right, 25.6 px square.
        reg[0] = 12.8;
        reg[2] = 25.6;
        reg[3] = 25.6;
        reg[4] = -12.8; // first key point 0.1 left of the anchor
        reg[18] = 25.6; // anchor 1 has a box too, but a low score
        reg[19] = 25.6;
        let out = decode(&reg, &[2.0, -2.0], &anchors, 128.0, 0.5);
        assert_eq!(out.len(), 1);
        let (d, s) = out[0];
        assert!((s - 0.880_797).abs() < 1e-5);
        let want = [0.25, 0.4, 0.45, 0.6];
        for (a, b) in d[..4].iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{d:?}");
        }
        assert!((d[4] - 0.15).abs() < 1e-6 && (d[5] - 0.5).abs() < 1e-6);
        // A huge logit is clipped, not turned into NaN.
        let out = decode(&reg, &[1e30, f32::NEG_INFINITY], &anchors, 128.0, 0.5);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].1, 1.0);
    }

    #[test]
    fn weighted_nms_merges_overlaps_by_score_and_keeps_separate_faces() {
        let boxed = |x0: f32, x1: f32| {
            let mut d = [0.0; 16];
            d[..4].copy_from_slice(&[x0, 0.0, x1, 1.0]);
            d
        };
        let dets = vec![
            (boxed(0.0, 1.0), 0.9),
            (boxed(0.1, 1.1), 0.6), // IoU 0.82 with the first
            (boxed(5.0, 6.0), 0.7), // elsewhere
        ];
        let out = weighted_nms(dets, 0.3);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].1, 0.9);
        assert!((out[0].0[0] - 0.04).abs() < 1e-6, "{:?}", out[0]);
        assert_eq!(out[1], (boxed(5.0, 6.0), 0.7));
    }

    #[test]
    fn whole_number_reductions_average_blocks_into_the_letterbox() {
        // 16x8 into 8: factor 2, picture 8x4 with 2-row bars above and below.
        let frame = RgbImage::from_fn(16, 8, |x, y| image::Rgb([(x * 10 + y) as u8, 255, 0]));
        let lb = Letterbox::new(16, 8, 8);
        assert_eq!((lb.width, lb.height, lb.left, lb.top), (8, 4, 0, 2));
        let mut input = vec![-1.0f32; 3 * 64];
        box_reduce_into(&frame, 2, lb, 8, &mut input);
        for oy in 0..8usize {
            for ox in 0..8usize {
                let at = oy * 8 + ox;
                if !(2..6).contains(&oy) {
                    assert!(
                        input[at] == -1.0 && input[64 + at] == -1.0,
                        "bar at {ox},{oy}"
                    );
                    continue;
                }
                let (x, y) = ((2 * ox) as f32, (2 * (oy - 2)) as f32);
                // The mean of x*10 + y over the 2x2 block: (x + 0.5) * 10 + y + 0.5.
                let red = (x + 0.5) * 10.0 + y + 0.5;
                assert!((input[at] - (red / 127.5 - 1.0)).abs() < 1e-6, "{ox},{oy}");
                assert!((input[64 + at] - 1.0).abs() < 1e-6);
                assert!((input[128 + at] + 1.0).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn letterbox_maps_input_coordinates_back_to_the_frame() {
        // 640x480 into 128: scale 0.2, picture 128x96 with 16 px bars top and bottom.
        let lb = Letterbox::new(640, 480, 128);
        assert_eq!((lb.width, lb.height, lb.left, lb.top), (128, 96, 0, 16));
        let [x, y] = lb.to_frame(128, [0.5, 0.5]);
        assert!((x - 320.0).abs() < 1e-3 && (y - 240.0).abs() < 1e-3);
        let [x, y] = lb.to_frame(128, [0.0, 16.0 / 128.0]);
        assert!(x.abs() < 1e-3 && y.abs() < 1e-3);
    }
}
