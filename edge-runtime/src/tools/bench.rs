//! Latency of a bundle, stage by stage (`emotion-edge bench`): synthetic frames, pre-encoded
//! as JPEG so decoding is measured as for a webcam's MJPEG, through the whole pipeline on one
//! thread; then the model alone on a fixed crop.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use emotion_shared::preprocess::{FaceCrop, PixelFormat};

use crate::classify::{ClassifyError, LoadedModel};
use crate::detect::{self, DetectConfig, DetectError, DetectorKind};
use crate::pipeline::Pipeline;
use crate::sink::Sinks;
use crate::sink::json::JsonSink;
use crate::smooth::SmoothConfig;
use crate::source::synthetic::{SyntheticCamera, SyntheticConfig};
use crate::source::{Frame, FrameSource, SourceError, decode};

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Frames to measure.
    pub frames: u64,
    /// Frame size.
    pub width: u32,
    /// Frame size.
    pub height: u32,
    /// Face detector.
    pub detector: DetectorKind,
    /// Detect every N frames.
    pub detect_every: u32,
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
    /// Faces found per frame.
    pub faces_per_frame: f64,
    /// Per stage, in the order of [`STAGES`].
    pub stages: [Spread; 7],
    /// Frames per second over the whole run (wall clock, one thread).
    pub fps: f64,
    /// Preprocess + infer of a 96x96 crop, the model alone.
    pub model_only: Spread,
}

/// Measures `model` as [`BenchOptions`] say.
pub fn bench(model: &Arc<LoadedModel>, options: &BenchOptions) -> Result<BenchReport, BenchError> {
    let n = options.frames.max(1);
    let mut cam = SyntheticCamera::new(SyntheticConfig {
        width: options.width,
        height: options.height,
        faces: 1,
        frames: n.min(50),
        ..SyntheticConfig::default()
    });
    let mut jpegs = Vec::new();
    while let Some(f) = cam.next_frame()? {
        jpegs.push(decode::encode_jpeg(&f.image, 85));
    }
    if let Some(dir) = &options.save_frames {
        let write_err = |path: PathBuf| move |source| BenchError::Write { path, source };
        std::fs::create_dir_all(dir).map_err(write_err(dir.clone()))?;
        for (i, jpeg) in jpegs.iter().enumerate() {
            let path = dir.join(format!("frame-{i:03}.jpg"));
            std::fs::write(&path, jpeg).map_err(write_err(path.clone()))?;
        }
    }
    let det = detect::from_config(&DetectConfig {
        detector: options.detector,
        every: options.detect_every,
        ..DetectConfig::default()
    })?;
    let mut sinks = Sinks::new();
    sinks.push(Box::new(JsonSink::new(std::io::sink(), "null")));
    let mut pipeline =
        Pipeline::with_model(det, Arc::clone(model), SmoothConfig::default(), sinks)?;
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
    Ok(BenchReport {
        model: model.id().to_string(),
        options: options.clone(),
        faces_per_frame: faces as f64 / n as f64,
        stages: stages.map(Spread::of),
        fps: n as f64 / wall.as_secs_f64(),
        model_only: Spread::of(infer),
    })
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.options;
        writeln!(
            f,
            "model {} | {} frames {}x{} | detector {:?} every {} | {:.2} faces/frame",
            self.model,
            o.frames.max(1),
            o.width,
            o.height,
            o.detector,
            o.detect_every,
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
        let m = self.model_only;
        write!(
            f,
            "model only (preprocess+infer, 96x96 crop): min {:.3} median {:.3} p99 {:.3} ms",
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
