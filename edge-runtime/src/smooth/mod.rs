//! Steadiness: per-face tracks across frames (greedy IoU association, stable ids), an
//! exponential moving average of each track's probabilities, hysteresis on the reported
//! label, and expiry of tracks not seen for a while.
//!
//! A reported label changes only when another label's smoothed probability leads the current
//! one by at least [`SmoothConfig::switch_margin`] for [`SmoothConfig::switch_frames`]
//! consecutive updates, so a flicker of one or two frames never reaches the serial line.

use emotion_shared::{Emotion, NUM_CLASSES};
use serde::{Deserialize, Serialize};

use crate::classify::Prediction;
use crate::geometry::FaceBox;

/// Tracking and smoothing settings. The defaults feel steady on a live camera at 10-30 FPS.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmoothConfig {
    /// Smallest IoU for a detection to continue a track (0..1).
    pub iou_threshold: f32,
    /// Weight of the newest probabilities in the moving average (0 < alpha <= 1; 1 = none).
    pub ema_alpha: f32,
    /// How far a new label must lead the reported one (in probability) to count.
    pub switch_margin: f32,
    /// For how many consecutive updates it must lead before the label changes (>= 1).
    pub switch_frames: u32,
    /// A track not matched for more than this many updates is dropped.
    pub max_missed: u32,
}

impl Default for SmoothConfig {
    fn default() -> Self {
        SmoothConfig {
            iou_threshold: 0.3,
            ema_alpha: 0.35,
            switch_margin: 0.1,
            switch_frames: 4,
            max_missed: 15,
        }
    }
}

impl SmoothConfig {
    /// No smoothing at all: every frame's top label is reported (for one-shot classification).
    pub fn none() -> Self {
        SmoothConfig {
            iou_threshold: 0.3,
            ema_alpha: 1.0,
            switch_margin: 0.0,
            switch_frames: 1,
            max_missed: 0,
        }
    }

    /// Checks the ranges; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.iou_threshold) {
            return Err(format!(
                "smooth.iou_threshold is {}, must be in 0..=1",
                self.iou_threshold
            ));
        }
        if !(self.ema_alpha > 0.0 && self.ema_alpha <= 1.0) {
            return Err(format!(
                "smooth.ema_alpha is {}, must be in (0, 1]",
                self.ema_alpha
            ));
        }
        if !(0.0..=1.0).contains(&self.switch_margin) {
            return Err(format!(
                "smooth.switch_margin is {}, must be in 0..=1",
                self.switch_margin
            ));
        }
        if self.switch_frames == 0 {
            return Err("smooth.switch_frames must be >= 1".into());
        }
        Ok(())
    }
}

/// One face of the current frame as the detector and classifier saw it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// Where the face is.
    pub bbox: FaceBox,
    /// What the classifier said for this frame alone.
    pub prediction: Prediction,
}

/// A face as reported: its track id, box, the steady label and smoothed probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TrackedFace {
    /// Stable id while the face is followed.
    pub id: u32,
    /// Box in this frame.
    pub bbox: FaceBox,
    /// The reported (hysteresis) label.
    pub label: Emotion,
    /// Smoothed probability of `label`.
    pub confidence: f32,
    /// Smoothed probabilities, FER2013 order.
    pub probabilities: [f32; NUM_CLASSES],
    /// This frame's own top label, before smoothing.
    pub raw_label: Emotion,
}

#[derive(Debug, Clone)]
struct Track {
    id: u32,
    bbox: FaceBox,
    probs: [f32; NUM_CLASSES],
    label: Emotion,
    pending: Option<(Emotion, u32)>,
    missed: u32,
}

/// Follows faces from frame to frame. Feed it every frame's observations with
/// [`Tracker::update`].
#[derive(Debug, Clone)]
pub struct Tracker {
    config: SmoothConfig,
    tracks: Vec<Track>,
    next_id: u32,
}

impl Tracker {
    /// A tracker with no tracks. Ids start at 1.
    pub fn new(config: SmoothConfig) -> Tracker {
        Tracker {
            config,
            tracks: Vec::new(),
            next_id: 1,
        }
    }

    /// The settings.
    pub fn config(&self) -> &SmoothConfig {
        &self.config
    }

    /// Number of live tracks (including ones missed recently).
    pub fn live_tracks(&self) -> usize {
        self.tracks.len()
    }

    /// Forgets every track (e.g. after a model swap changes what probabilities mean).
    pub fn reset(&mut self) {
        self.tracks.clear();
    }

    /// Associates `observations` with tracks, updates them and returns one [`TrackedFace`]
    /// per observation, in the same order. Unmatched tracks age and expire.
    pub fn update(&mut self, observations: &[Observation]) -> Vec<TrackedFace> {
        // Greedy association: best IoU pairs first.
        let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
        for (oi, o) in observations.iter().enumerate() {
            for (ti, t) in self.tracks.iter().enumerate() {
                let iou = o.bbox.iou(&t.bbox);
                if iou >= self.config.iou_threshold && iou > 0.0 {
                    pairs.push((iou, oi, ti));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut obs_track: Vec<Option<usize>> = vec![None; observations.len()];
        let mut track_taken = vec![false; self.tracks.len()];
        for (_, oi, ti) in pairs {
            if obs_track[oi].is_none() && !track_taken[ti] {
                obs_track[oi] = Some(ti);
                track_taken[ti] = true;
            }
        }

        // Age unmatched tracks.
        for (t, taken) in self.tracks.iter_mut().zip(&track_taken) {
            if !taken {
                t.missed = t.missed.saturating_add(1);
            }
        }

        let mut out = Vec::with_capacity(observations.len());
        for (oi, o) in observations.iter().enumerate() {
            let ti = match obs_track[oi] {
                Some(ti) => {
                    let cfg = self.config;
                    let t = &mut self.tracks[ti];
                    t.bbox = o.bbox;
                    t.missed = 0;
                    for (p, n) in t.probs.iter_mut().zip(o.prediction.probabilities) {
                        *p += cfg.ema_alpha * (sanitize(n) - *p);
                    }
                    normalize(&mut t.probs);
                    apply_hysteresis(t, &cfg);
                    ti
                }
                None => {
                    let mut probs = o.prediction.probabilities.map(sanitize);
                    normalize(&mut probs);
                    let label = Prediction::from_probabilities(probs).label;
                    let id = self.next_id;
                    self.next_id = self.next_id.checked_add(1).unwrap_or(1);
                    self.tracks.push(Track {
                        id,
                        bbox: o.bbox,
                        probs,
                        label,
                        pending: None,
                        missed: 0,
                    });
                    self.tracks.len() - 1
                }
            };
            let t = &self.tracks[ti];
            out.push(TrackedFace {
                id: t.id,
                bbox: t.bbox,
                label: t.label,
                confidence: t.probs[t.label.index()],
                probabilities: t.probs,
                raw_label: o.prediction.label,
            });
        }
        let max_missed = self.config.max_missed;
        self.tracks.retain(|t| t.missed <= max_missed);
        out
    }
}

fn sanitize(p: f32) -> f32 {
    if p.is_finite() {
        p.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

fn normalize(p: &mut [f32; NUM_CLASSES]) {
    let sum: f32 = p.iter().sum();
    if sum > 0.0 {
        for v in p.iter_mut() {
            *v /= sum;
        }
    } else {
        *p = [1.0 / NUM_CLASSES as f32; NUM_CLASSES];
    }
}

fn apply_hysteresis(t: &mut Track, cfg: &SmoothConfig) {
    let leader = Prediction::from_probabilities(t.probs).label;
    if leader == t.label {
        t.pending = None;
        return;
    }
    let lead = t.probs[leader.index()] - t.probs[t.label.index()];
    if lead < cfg.switch_margin {
        t.pending = None;
        return;
    }
    let count = match t.pending {
        Some((e, n)) if e == leader => n + 1,
        _ => 1,
    };
    if count >= cfg.switch_frames {
        t.label = leader;
        t.pending = None;
    } else {
        t.pending = Some((leader, count));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn one_hot(e: Emotion, p: f32) -> Prediction {
        let mut probs = [(1.0 - p) / 6.0; NUM_CLASSES];
        probs[e.index()] = p;
        Prediction::from_probabilities(probs)
    }

    fn obs(x: u32, e: Emotion) -> Observation {
        Observation {
            bbox: FaceBox::new(x, 10, 40, 40),
            prediction: one_hot(e, 0.9),
        }
    }

    #[test]
    fn ids_are_stable_for_a_moving_face_and_new_for_a_new_one() {
        let mut t = Tracker::new(SmoothConfig::default());
        let a = t.update(&[obs(10, Emotion::Happy)]);
        let b = t.update(&[obs(14, Emotion::Happy), obs(200, Emotion::Sad)]);
        assert_eq!(b[0].id, a[0].id);
        assert_ne!(b[1].id, a[0].id);
        let c = t.update(&[obs(205, Emotion::Sad), obs(18, Emotion::Happy)]);
        assert_eq!(
            (c[0].id, c[1].id),
            (b[1].id, b[0].id),
            "order of observations does not matter"
        );
    }

    #[test]
    fn label_switches_only_after_n_frames_of_lead() {
        let cfg = SmoothConfig {
            ema_alpha: 1.0,
            switch_frames: 3,
            ..SmoothConfig::default()
        };
        let mut t = Tracker::new(cfg);
        assert_eq!(
            t.update(&[obs(10, Emotion::Happy)])[0].label,
            Emotion::Happy
        );
        // Two frames of sad, then happy again: no switch.
        for _ in 0..2 {
            let f = t.update(&[obs(10, Emotion::Sad)]);
            assert_eq!(f[0].label, Emotion::Happy);
            assert_eq!(f[0].raw_label, Emotion::Sad);
        }
        t.update(&[obs(10, Emotion::Happy)]);
        let labels: Vec<_> = (0..3)
            .map(|_| t.update(&[obs(10, Emotion::Sad)])[0].label)
            .collect();
        assert_eq!(labels, [Emotion::Happy, Emotion::Happy, Emotion::Sad]);
    }

    #[test]
    fn tracks_expire_after_max_missed() {
        let cfg = SmoothConfig {
            max_missed: 2,
            ..SmoothConfig::default()
        };
        let mut t = Tracker::new(cfg);
        let id = t.update(&[obs(10, Emotion::Fear)])[0].id;
        t.update(&[]);
        t.update(&[]);
        assert_eq!(t.live_tracks(), 1);
        assert_eq!(
            t.update(&[obs(10, Emotion::Fear)])[0].id,
            id,
            "back within 2 frames"
        );
        for _ in 0..3 {
            t.update(&[]);
        }
        assert_eq!(t.live_tracks(), 0);
        assert_ne!(t.update(&[obs(10, Emotion::Fear)])[0].id, id);
    }

    #[test]
    fn config_validation_names_the_field() {
        let bad = SmoothConfig {
            ema_alpha: 0.0,
            ..SmoothConfig::default()
        };
        assert!(bad.validate().unwrap_err().contains("ema_alpha"));
        assert!(SmoothConfig::default().validate().is_ok());
        assert!(SmoothConfig::none().validate().is_ok());
    }

    fn arb_probs() -> impl Strategy<Value = [f32; NUM_CLASSES]> {
        proptest::array::uniform7(0.0f32..1.0)
    }

    proptest! {
        #[test]
        fn smoothed_probabilities_stay_a_distribution(
            frames in proptest::collection::vec(
                proptest::collection::vec((0u32..400, 0u32..300, 10u32..120, arb_probs()), 0..5),
                1..40),
        ) {
            let mut t = Tracker::new(SmoothConfig::default());
            for frame in frames {
                let observations: Vec<_> = frame.iter().map(|&(x, y, s, p)| Observation {
                    bbox: FaceBox::new(x, y, s, s),
                    prediction: Prediction::from_probabilities(p),
                }).collect();
                let out = t.update(&observations);
                prop_assert_eq!(out.len(), observations.len());
                let mut ids: Vec<u32> = out.iter().map(|f| f.id).collect();
                ids.sort_unstable();
                ids.dedup();
                prop_assert_eq!(ids.len(), out.len(), "two faces of one frame share an id");
                for f in &out {
                    let sum: f32 = f.probabilities.iter().sum();
                    prop_assert!((sum - 1.0).abs() < 1e-4, "sum {}", sum);
                    prop_assert!(f.probabilities.iter().all(|p| (0.0..=1.0).contains(p)));
                    prop_assert_eq!(f.confidence, f.probabilities[f.label.index()]);
                }
            }
        }

        #[test]
        fn label_never_changes_faster_than_switch_frames(
            seq in proptest::collection::vec((0usize..7, 0.3f32..1.0), 1..80),
            switch_frames in 1u32..6,
        ) {
            let cfg = SmoothConfig { switch_frames, ..SmoothConfig::default() };
            let mut t = Tracker::new(cfg);
            let mut last: Option<Emotion> = None;
            let mut since_change = u32::MAX;
            for (i, p) in seq {
                let e = Emotion::from_index(i).unwrap_or(Emotion::Neutral);
                let f = t.update(&[Observation { bbox: FaceBox::new(5, 5, 50, 50), prediction: one_hot(e, p) }]);
                let label = f[0].label;
                since_change = since_change.saturating_add(1);
                if let Some(prev) = last && prev != label {
                    prop_assert!(since_change >= switch_frames, "changed after {} frames", since_change);
                    since_change = 0;
                }
                if last.is_none() { since_change = 0; }
                last = Some(label);
            }
        }

        #[test]
        fn a_steady_face_never_flips(p in 0.2f32..1.0, n in 1usize..50, e in 0usize..7) {
            let e = Emotion::from_index(e).unwrap_or(Emotion::Happy);
            let mut t = Tracker::new(SmoothConfig::default());
            for _ in 0..n {
                let f = t.update(&[Observation { bbox: FaceBox::new(0, 0, 30, 30), prediction: one_hot(e, p) }]);
                prop_assert_eq!(f[0].id, 1);
                let top = Prediction::from_probabilities(one_hot(e, p).probabilities).label;
                prop_assert_eq!(f[0].label, top);
            }
        }
    }
}
