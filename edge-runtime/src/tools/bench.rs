//! Latency of a bundle, stage by stage (`emotion-edge bench`): frames pre-encoded as JPEG so
//! decoding is measured as for a webcam's MJPEG, either a folder of real camera frames or the
//! synthetic camera's, through the whole pipeline on one thread; then the model alone on a
//! fixed crop.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use emotion_shared::preprocess::{FaceCrop, PixelFormat};

use crate::classify::{ClassifyError, LoadedModel};
use crate::detect::{self, DetectConfig, DetectError};
use crate::pipeline::Pipeline;
use crate::sink::Sinks;
use crate::sink::json::JsonSink;
use crate::smooth::SmoothConfig;
use crate::source::synthetic::{SyntheticCamera, SyntheticConfig};
use crate::source::{Frame, FrameSource, SourceError, decode};

/// Where the measured frames come from.
#[derive(Debug, Clone, PartialEq)]
pub enum BenchFrames {
    /// The synthetic camera (drawn faces), at this size.
    Synthetic {
        /// Frame width.
        width: u32,
        /// Frame height.
        height: u32,
    },
    /// Every `.jpg`/`.jpeg` file in this folder (real camera frames), in name order, cycled.
    Folder(PathBuf),
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Frames to measure.
    pub frames: u64,
    /// The frames.
    pub source: BenchFrames,
    /// Face detector, resolved (not `auto`), with its schedule (`every`).
    pub detect: DetectConfig,
    /// Also write the measured frames (JPEG) here, for the Python baseline.
    pub save_frames: Option<PathBuf>,
}

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The model cannot run.
    #[error(transparent)]
    Classify(#[from] ClassifyError),
    /// The detector cannot be built.
    #[error("face detector: {0}")]
    Detector(#[from] DetectError),
    /// The frames cannot be made.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A frame does not decode.
    #[error(transparent)]
    Decode(#[from] decode::DecodeError),
    /// The frame folder cannot be written.
    #[error("writing {path}: {source}")]
    Write {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The frame folder cannot be read, or holds no JPEG.
    #[error("frames folder {path}: {reason}")]
    Frames {
        /// The folder or file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// Min, median and p99 of one stage, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Spread {
    /// Fastest.
    pub min: f64,
    /// Median.
    pub median: f64,
    /// 99th percentile.
    pub p99: f64,
}

impl Spread {
    /// The spread of `durations` (all zero when empty).
    pub fn of(mut durations: Vec<Duration>) -> Spread {
        if durations.is_empty() {
            return Spread::default();
        }
        durations.sort();
        let ms = |x: Duration| x.as_secs_f64() * 1000.0;
        let p99 = ((durations.len() as f64 * 0.99).ceil() as usize).clamp(1, durations.len()) - 1;
        Spread {
            min: ms(durations[0]),
            median: ms(durations[durations.len() / 2]),
            p99: ms(durations[p99]),
        }
    }
}

/// Stage names in the order of [`BenchReport::stages`].
pub const STAGES: [&str; 7] = [
    "decode",
    "detect",
    "preprocess",
    "infer",
    "smooth",
    "sink",
    "total",
];

/// What [`bench`] measured.
#[derive(Debug, Clone)]
pub struct BenchReport {
    /// The model's id.
    pub model: String,
    /// The settings.
    pub options: BenchOptions,
    /// Distinct frames cycled through, and their size (of the first).
    pub distinct_frames: usize,
    /// Frame size (of the first frame).
    pub frame_size: (u32, u32),
    /// Faces found per frame.
    pub faces_per_frame: f64,
    /// Per stage, in the order of [`STAGES`].
    pub stages: [Spread; 7],
    /// Frames per second over the whole run (wall clock, one thread).
    pub fps: f64,
    /// Preprocess + infer of a 96x96 crop, the model alone.
    pub model_only: Spread,
    /// Infer alone on an input preprocessed once: what onnxruntime's `session.run` on a
    /// prepared tensor measures (`bench/onnxruntime_classifier.py`).
    pub network_only: Spread,
}

/// The JPEG files of `dir`, read, in name order.
fn read_jpegs(dir: &Path) -> Result<Vec<Vec<u8>>, BenchError> {
    let frames_err = |path: &Path, reason: String| BenchError::Frames {
        path: path.to_path_buf(),
        reason,
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| frames_err(dir, e.to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("jpeg"))
        })
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(frames_err(
            dir,
            "no .jpg or .jpeg files (bench/make_frames.py makes 640x480 frames from real photos)"
                .into(),
        ));
    }
    paths
        .iter()
        .map(|p| std::fs::read(p).map_err(|e| frames_err(p, e.to_string())))
        .collect()
}

/// Measures `model` as [`BenchOptions`] say.
pub fn bench(model: &Arc<LoadedModel>, options: &BenchOptions) -> Result<BenchReport, BenchError> {
    let n = options.frames.max(1);
    let jpegs = match &options.source {
        BenchFrames::Folder(dir) => read_jpegs(dir)?,
        BenchFrames::Synthetic { width, height } => {
            let mut cam = SyntheticCamera::new(SyntheticConfig {
                width: *width,
                height: *height,
                faces: 1,
                frames: n.min(50),
                ..SyntheticConfig::default()
            });
            let mut jpegs = Vec::new();
            while let Some(f) = cam.next_frame()? {
                jpegs.push(decode::encode_jpeg(&f.image, 85));
            }
            jpegs
        }
    };
    // Decoded once up front too: a frame that does not decode stops the run before timing.
    let first = jpegs.first().ok_or_else(|| BenchError::Frames {
        path: PathBuf::from("synthetic camera"),
        reason: "made no frames".into(),
    })?;
    let frame_size = decode::decode_jpeg(first)?.dimensions();
    if let Some(dir) = &options.save_frames {
        let write_err = |path: PathBuf| move |source| BenchError::Write { path, source };
        std::fs::create_dir_all(dir).map_err(write_err(dir.clone()))?;
        for (i, jpeg) in jpegs.iter().enumerate() {
            let path = dir.join(format!("frame-{i:03}.jpg"));
            std::fs::write(&path, jpeg).map_err(write_err(path.clone()))?;
        }
    }
    let det = detect::from_config(&options.detect)?;
    let mut sinks = Sinks::new();
    sinks.push(Box::new(JsonSink::new(std::io::sink(), "null")));
    let mut pipeline =
        Pipeline::with_model(det, Arc::clone(model), SmoothConfig::default(), sinks)?
            .with_align(options.detect.align);
    let mut stages: [Vec<Duration>; 7] = Default::default();
    let mut faces = 0usize;
    let start = Instant::now();
    for i in 0..n {
        let jpeg = &jpegs[(i as usize) % jpegs.len()];
        let t = Instant::now();
        let image = decode::decode_jpeg(jpeg)?;
        let decode_time = t.elapsed();
        let frame = Frame {
            image,
            captured: Instant::now(),
            origin: "bench".into(),
            truth: None,
        };
        let p = pipeline.process(&frame);
        faces += p.faces.len();
        let total = decode_time
            + p.times.detect
            + p.times.preprocess
            + p.times.infer
            + p.times.smooth
            + p.times.sink;
        for (v, d) in stages.iter_mut().zip([
            decode_time,
            p.times.detect,
            p.times.preprocess,
            p.times.infer,
            p.times.smooth,
            p.times.sink,
            total,
        ]) {
            v.push(d);
        }
    }
    let wall = start.elapsed();
    let mut c = model.classifier()?;
    let crop = image::RgbImage::from_pixel(96, 96, image::Rgb([128, 128, 128]));
    let mut infer = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        let face = FaceCrop::from_raw(96, 96, PixelFormat::Rgb, crop.as_raw())
            .map_err(ClassifyError::from)?;
        c.classify(face)?;
        infer.push(t.elapsed());
    }
    let mut network = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        c.infer()?;
        network.push(t.elapsed());
    }
    Ok(BenchReport {
        model: model.id().to_string(),
        options: options.clone(),
        distinct_frames: jpegs.len(),
        frame_size,
        faces_per_frame: faces as f64 / n as f64,
        stages: stages.map(Spread::of),
        fps: n as f64 / wall.as_secs_f64(),
        model_only: Spread::of(infer),
        network_only: Spread::of(network),
    })
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.options;
        let source = match &o.source {
            BenchFrames::Synthetic { .. } => "synthetic camera".to_string(),
            BenchFrames::Folder(dir) => dir.display().to_string(),
        };
        let detector = match o.detect.detector {
            detect::DetectorKind::Blazeface => {
                format!("blazeface ({:?} range)", o.detect.blazeface.variant).to_lowercase()
            }
            other => format!("{other:?}").to_lowercase(),
        };
        writeln!(
            f,
            "model {} | {} frames {}x{} ({} distinct, {source}) | detector {detector} every {} | {:.2} faces/frame",
            self.model,
            o.frames.max(1),
            self.frame_size.0,
            self.frame_size.1,
            self.distinct_frames,
            o.detect.every.max(1),
            self.faces_per_frame
        )?;
        writeln!(
            f,
            "{:<11} {:>9} {:>9} {:>9}",
            "stage (ms)", "min", "median", "p99"
        )?;
        for (name, s) in STAGES.iter().zip(self.stages) {
            writeln!(
                f,
                "{name:<11} {:>9.3} {:>9.3} {:>9.3}",
                s.min, s.median, s.p99
            )?;
        }
        writeln!(f, "throughput {:.1} FPS (wall clock, one thread)", self.fps)?;
        writeln!(
            f,
            "tract matrix kernels: {}",
            crate::kernel_choice::describe()
        )?;
        writeln!(
            f,
            "{}: {}",
            crate::kernels::LAYERS,
            crate::kernels::describe()
        )?;
        let m = self.model_only;
        writeln!(
            f,
            "model only (preprocess+infer, 96x96 crop): min {:.3} median {:.3} p99 {:.3} ms",
            m.min, m.median, m.p99
        )?;
        let m = self.network_only;
        write!(
            f,
            "network only (infer on a prepared input): min {:.3} median {:.3} p99 {:.3} ms",
            m.min, m.median, m.p99
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_picks_min_median_and_p99() {
        let d: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let s = Spread::of(d);
        assert_eq!((s.min, s.median, s.p99), (1.0, 51.0, 99.0));
        assert_eq!(Spread::of(vec![]), Spread::default());
    }
}
