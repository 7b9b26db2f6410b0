//! The synthetic camera: frames from the shared scene renderer with faces whose emotions
//! change on a schedule, and the ground truth of every frame (for the demo and tests).

use std::time::{Duration, Instant};

use emotion_shared::Emotion;
use emotion_shared::render::{SceneFace, render_scene};
use serde::{Deserialize, Serialize};

use super::{Frame, FrameSource, SourceError};
use crate::clock::{SharedClock, SystemClock};

/// Synthetic camera settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyntheticConfig {
    /// Frame width.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// Number of faces (1..=4), spread across the frame.
    pub faces: u32,
    /// Frames each emotion is held before the next one.
    pub hold_frames: u64,
    /// Scene seed.
    pub seed: u64,
    /// Frames to produce (0: endless).
    pub frames: u64,
    /// Frames per second to pace at (0: as fast as possible).
    pub fps: f32,
    /// One face filling the whole frame (a pre-cropped camera: for `full-frame` detection).
    pub fill: bool,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        SyntheticConfig {
            width: 640,
            height: 480,
            faces: 1,
            hold_frames: 30,
            seed: 7,
            frames: 0,
            fps: 0.0,
            fill: false,
        }
    }
}

/// The synthetic camera.
#[derive(Debug, Clone)]
pub struct SyntheticCamera {
    config: SyntheticConfig,
    index: u64,
    next_due: Option<Instant>,
    clock: SharedClock,
}

impl SyntheticCamera {
    /// A camera on the system clock; `faces` is clamped to 1..=4.
    pub fn new(config: SyntheticConfig) -> Self {
        Self::with_clock(config, SystemClock::shared())
    }

    /// A camera that paces `fps` and stamps its frames on `clock`.
    pub fn with_clock(config: SyntheticConfig, clock: SharedClock) -> Self {
        SyntheticCamera {
            config,
            index: 0,
            next_due: None,
            clock,
        }
    }

    /// The emotion face `face` shows in frame `frame`: it walks through all seven, each face
    /// starting at a different one.
    pub fn emotion_at(&self, face: u32, frame: u64) -> Emotion {
        let step = frame / self.config.hold_frames.max(1);
        let i = (step + u64::from(face) * 3) % Emotion::ALL.len() as u64;
        Emotion::ALL[i as usize]
    }

    /// The scene layout of frame `frame`.
    pub fn layout(&self, frame: u64) -> Vec<SceneFace> {
        let (w, h) = (self.config.width, self.config.height);
        if self.config.fill {
            return vec![SceneFace {
                emotion: self.emotion_at(0, frame),
                x: 0,
                y: 0,
                size: w.min(h).max(16),
            }];
        }
        let n = self.config.faces.clamp(1, 4);
        let size = (w / (n + 1)).min(h * 2 / 3).max(16);
        let gap = (w.saturating_sub(size * n)) / (n + 1);
        (0..n)
            .map(|i| SceneFace {
                emotion: self.emotion_at(i, frame),
                x: (gap + i * (size + gap)) as i32,
                y: (h.saturating_sub(size) / 2) as i32,
                size,
            })
            .collect()
    }
}

impl FrameSource for SyntheticCamera {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        if self.config.frames > 0 && self.index >= self.config.frames {
            return Ok(None);
        }
        if self.config.width == 0 || self.config.height == 0 {
            return Err(SourceError::Fatal(format!(
                "synthetic camera size {}x{} is empty",
                self.config.width, self.config.height
            )));
        }
        if self.config.fps > 0.0 {
            let period = Duration::from_secs_f32(1.0 / self.config.fps);
            let now = self.clock.now();
            let due = self.next_due.unwrap_or(now);
            if due > now {
                self.clock.sleep(due - now);
            }
            self.next_due = Some(due.max(now) + period);
        }
        let scene = render_scene(
            self.config.width,
            self.config.height,
            &self.layout(self.index),
            self.index,
            self.config.seed,
        );
        self.index += 1;
        Ok(Some(Frame {
            image: scene.image,
            captured: self.clock.now(),
            origin: format!("synthetic frame {}", self.index - 1),
            truth: Some(scene.faces),
        }))
    }

    fn describe(&self) -> String {
        format!(
            "synthetic camera {}x{} with {} face(s)",
            self.config.width, self.config.height, self.config.faces
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_truth_and_emotions_change_on_schedule() {
        let mut cam = SyntheticCamera::new(SyntheticConfig {
            width: 160,
            height: 120,
            faces: 2,
            hold_frames: 2,
            frames: 3,
            ..SyntheticConfig::default()
        });
        let f0 = cam.next_frame().expect("ok").expect("frame");
        assert_eq!(f0.image.dimensions(), (160, 120));
        let truth = f0.truth.expect("truth");
        assert_eq!(truth.len(), 2);
        assert_eq!(truth[0].emotion, cam.emotion_at(0, 0));
        assert_ne!(truth[0].emotion, truth[1].emotion);
        assert_eq!(cam.emotion_at(0, 1), cam.emotion_at(0, 0));
        assert_ne!(cam.emotion_at(0, 2), cam.emotion_at(0, 0));
        assert!(cam.next_frame().expect("ok").is_some());
        assert!(cam.next_frame().expect("ok").is_some());
        assert!(cam.next_frame().expect("ok").is_none());
    }

    #[test]
    fn paces_frames_on_its_clock() {
        let clock = crate::clock::ManualClock::new();
        let mut cam = SyntheticCamera::with_clock(
            SyntheticConfig {
                width: 32,
                height: 32,
                fps: 10.0,
                ..SyntheticConfig::default()
            },
            clock.shared(),
        );
        let captured: Vec<_> = (0..4)
            .map(|_| cam.next_frame().expect("frame").expect("endless").captured)
            .collect();
        let gaps: Vec<_> = captured.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(
            gaps.iter()
                .all(|g| g.abs_diff(std::time::Duration::from_millis(100))
                    < std::time::Duration::from_micros(1)),
            "{gaps:?}"
        );
        assert!(clock.elapsed() >= std::time::Duration::from_millis(300));
    }
}
