//! The frame loop: source -> detect -> crop (aligned on the eyes when the detector gives them,
//! [`crate::align`]) + preprocess + infer (per face) -> smooth -> sinks, with per-stage
//! timings, corrupt-frame counting, model swaps between frames and a clean stop.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

pub use crate::align::crop_rgb;
use crate::align::face_crop;
use crate::classify::{Classifier, ClassifyError, LoadedModel};
use crate::clock::{Clock, SharedClock, SystemClock};
use crate::detect::FaceDetector;
use crate::model_store::{ModelSlot, StoreEvent};
use crate::sink::{FrameReport, Sinks};
use crate::smooth::{Observation, SmoothConfig, TrackedFace, Tracker};
use crate::source::{Frame, FrameSource, SourceError};
use emotion_shared::preprocess::{FaceCrop, PixelFormat};
use emotion_shared::protocol::Level;

/// How long each stage of one frame took.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageTimes {
    /// Finding faces.
    pub detect: Duration,
    /// Cropping and preprocessing all faces.
    pub preprocess: Duration,
    /// Running the model on all faces.
    pub infer: Duration,
    /// Tracking and smoothing.
    pub smooth: Duration,
    /// Reporting to the sinks.
    pub sink: Duration,
}

/// Counters of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Frames processed.
    pub frames: u64,
    /// Frames that did not decode (skipped).
    pub corrupt: u64,
    /// Faces whose classification failed (skipped).
    pub failed_faces: u64,
    /// Model swaps done.
    pub swaps: u64,
}

/// The result of one processed frame.
#[derive(Debug, Clone)]
pub struct Processed {
    /// The smoothed faces.
    pub faces: Vec<TrackedFace>,
    /// Stage timings.
    pub times: StageTimes,
    /// The model generation that classified every face of this frame.
    pub generation: u64,
    /// That model's id.
    pub model: String,
}

/// Detector, classifier (from a [`ModelSlot`]), tracker and sinks.
pub struct Pipeline {
    detector: Box<dyn FaceDetector>,
    slot: Arc<ModelSlot>,
    generation: u64,
    classifier: Classifier,
    tracker: Tracker,
    sinks: Sinks,
    start: Instant,
    clock: SharedClock,
    stats: RunStats,
    fps: FpsMeter,
    watchdog: crate::service::Watchdog,
    align: bool,
}

impl Pipeline {
    /// A pipeline reading models from `slot`.
    pub fn new(
        detector: Box<dyn FaceDetector>,
        slot: Arc<ModelSlot>,
        smooth: SmoothConfig,
        sinks: Sinks,
    ) -> Result<Pipeline, ClassifyError> {
        let (generation, model) = slot.get();
        Ok(Pipeline {
            detector,
            classifier: model.classifier()?,
            slot,
            generation,
            tracker: Tracker::new(smooth),
            sinks,
            start: Instant::now(),
            clock: SystemClock::shared(),
            stats: RunStats::default(),
            fps: FpsMeter::default(),
            watchdog: crate::service::Watchdog::inactive(),
            align: true,
        })
    }

    /// Whether faces with eye key points are cropped upright ([`crate::align::aligned_crop`]);
    /// on by default (`[detect] align`).
    pub fn with_align(mut self, align: bool) -> Pipeline {
        self.align = align;
        self
    }

    /// A pipeline over one fixed model.
    pub fn with_model(
        detector: Box<dyn FaceDetector>,
        model: Arc<LoadedModel>,
        smooth: SmoothConfig,
        sinks: Sinks,
    ) -> Result<Pipeline, ClassifyError> {
        Self::new(detector, Arc::new(ModelSlot::new(model)), smooth, sinks)
    }

    /// This pipeline with its protocol times (`t_ms`) and camera retry waits on `clock`,
    /// starting now. Stage timings stay on the real clock: they measure work.
    pub fn with_clock(mut self, clock: SharedClock) -> Pipeline {
        self.start = clock.now();
        self.clock = clock;
        self
    }

    /// Counters so far.
    pub fn stats(&self) -> RunStats {
        self.stats
    }

    /// Milliseconds since the pipeline started, modulo 2^32 (the protocol's `t_ms`).
    pub fn t_ms(&self, at: Instant) -> u32 {
        (at.saturating_duration_since(self.start).as_millis() % (1u128 << 32)) as u32
    }

    /// Sends a status event to every sink and the log.
    pub fn status(&mut self, level: Level, code: &str, text: &str) {
        let t = self.t_ms(self.clock.now());
        self.sinks.status(t, level, code, text);
    }

    /// Switches to a newly published model, if any (only ever between frames).
    fn refresh_model(&mut self) {
        if self.slot.generation() == self.generation {
            return;
        }
        let (generation, model) = self.slot.get();
        match model.classifier() {
            Ok(c) => {
                self.classifier = c;
                self.generation = generation;
                self.stats.swaps += 1;
                // Probabilities of another model are not comparable: start tracks afresh.
                self.tracker.reset();
            }
            Err(e) => tracing::error!("new model unusable, keeping the old one: {e}"),
        }
    }

    /// Detects, classifies, smooths and reports one frame.
    pub fn process(&mut self, frame: &Frame) -> Processed {
        self.refresh_model();
        let mut times = StageTimes::default();
        let t0 = Instant::now();
        let found = self.detector.detect(&frame.image);
        times.detect = t0.elapsed();

        let mut observations = Vec::with_capacity(found.len());
        for face in found {
            let b = face.bbox;
            let t = Instant::now();
            let crop = face_crop(&frame.image, &face, self.align);
            let prepared =
                FaceCrop::from_raw(crop.width(), crop.height(), PixelFormat::Rgb, crop.as_raw())
                    .map_err(ClassifyError::from)
                    .and_then(|c| self.classifier.preprocess(c));
            times.preprocess += t.elapsed();
            let t = Instant::now();
            let result = prepared.and_then(|()| self.classifier.infer());
            times.infer += t.elapsed();
            match result {
                Ok(prediction) => observations.push(Observation {
                    bbox: b,
                    prediction,
                }),
                Err(e) => {
                    self.stats.failed_faces += 1;
                    tracing::warn!(origin = %frame.origin, "face at {b:?} skipped: {e}");
                }
            }
        }
        let t = Instant::now();
        let faces = self.tracker.update(&observations);
        times.smooth = t.elapsed();

        let t = Instant::now();
        let fps = self.fps.tick(frame.captured);
        let model = self.classifier.model().id().to_string();
        let report = FrameReport {
            t_ms: self.t_ms(frame.captured),
            frame: self.stats.frames,
            faces: &faces,
            fps,
            model: &model,
        };
        self.sinks.frame(&report);
        times.sink = t.elapsed();
        self.stats.frames += 1;
        Processed {
            faces,
            times,
            generation: self.generation,
            model,
        }
    }

    /// Feeds `watchdog` from the frame loop (see [`crate::service`]).
    pub fn set_watchdog(&mut self, watchdog: crate::service::Watchdog) {
        self.watchdog = watchdog;
    }

    /// Runs until `stop` is set, the source ends or `max_frames` (0: no limit) frames were
    /// processed. Store events (model swaps, refusals) go to the sinks as status lines.
    pub fn run(
        &mut self,
        source: &mut dyn FrameSource,
        stop: &AtomicBool,
        max_frames: u64,
        events: Option<&Receiver<StoreEvent>>,
    ) -> RunStats {
        let mut lost_camera = false;
        while !stop.load(Ordering::Relaxed) {
            self.watchdog.beat(Instant::now());
            if max_frames > 0 && self.stats.frames >= max_frames {
                break;
            }
            if let Some(rx) = events {
                while let Ok(e) = rx.try_recv() {
                    self.report_store_event(&e);
                }
            }
            match source.next_frame() {
                Ok(Some(frame)) => {
                    if lost_camera {
                        lost_camera = false;
                        self.status(Level::Info, "camera_back", &source.describe());
                    }
                    self.process(&frame);
                }
                Ok(None) => {
                    tracing::info!("{} ended", source.describe());
                    break;
                }
                Err(SourceError::Corrupt { origin, reason }) => {
                    self.stats.corrupt += 1;
                    tracing::warn!(%origin, corrupt = self.stats.corrupt, "frame skipped: {reason}");
                }
                Err(SourceError::Unavailable {
                    origin,
                    reason,
                    retry_in,
                }) => {
                    if !lost_camera {
                        lost_camera = true;
                        self.status(Level::Error, "camera_lost", &format!("{origin}: {reason}"));
                    }
                    sleep_unless_stopped(
                        self.clock.as_ref(),
                        retry_in.min(Duration::from_secs(1)),
                        stop,
                    );
                }
                Err(SourceError::Fatal(msg)) => {
                    self.status(Level::Error, "source_failed", &msg);
                    break;
                }
            }
        }
        // A swap that arrived at the very end still goes to the log and serial line.
        if let Some(rx) = events {
            while let Ok(e) = rx.try_recv() {
                self.report_store_event(&e);
            }
        }
        self.stats
    }

    fn report_store_event(&mut self, e: &StoreEvent) {
        match e {
            StoreEvent::Installed { name, model } => {
                self.status(Level::Info, "model", &format!("loaded {model} from {name}"))
            }
            StoreEvent::Rejected { name, reason } => self.status(
                Level::Error,
                "model_rejected",
                &format!("{name} refused: {reason}"),
            ),
            StoreEvent::RolledBack { model } => self.status(
                Level::Warning,
                "model_rollback",
                &format!("rolled back to {model}"),
            ),
            StoreEvent::RollbackFailed { reason } => {
                self.status(Level::Error, "rollback_failed", reason)
            }
        }
    }

    /// Flushes and closes the sinks.
    pub fn finish(&mut self) {
        self.sinks.finish();
    }
}

fn sleep_unless_stopped(clock: &dyn Clock, total: Duration, stop: &AtomicBool) {
    let mut slept = Duration::ZERO;
    while slept < total && !stop.load(Ordering::Relaxed) {
        let step = Duration::from_millis(20).min(total - slept);
        clock.sleep(step);
        slept += step;
    }
}

/// Frames per second over the last few frames.
#[derive(Debug, Default)]
struct FpsMeter {
    times: std::collections::VecDeque<Instant>,
}

impl FpsMeter {
    fn tick(&mut self, at: Instant) -> f32 {
        self.times.push_back(at);
        while self.times.len() > 30 {
            self.times.pop_front();
        }
        match (self.times.front(), self.times.back()) {
            (Some(a), Some(b)) if self.times.len() > 1 => {
                let secs = b.saturating_duration_since(*a).as_secs_f32();
                if secs > 0.0 {
                    (self.times.len() - 1) as f32 / secs
                } else {
                    0.0
                }
            }
            _ => 0.0,
        }
    }
}
