//! Face boxes in frame pixels and the overlap measure (IoU) that tracking uses; a detected
//! [`Face`]: its box and, from detectors that find them, its [`Keypoints`].

use emotion_shared::protocol::BoundingBox;
use serde::{Deserialize, Serialize};

/// An axis-aligned box in pixels of the source frame: top-left corner and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct FaceBox {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width (> 0 for a real face).
    pub w: u32,
    /// Height (> 0 for a real face).
    pub h: u32,
}

impl FaceBox {
    /// A box from its corner and size.
    pub fn new(x: u32, y: u32, w: u32, h: u32) -> Self {
        Self { x, y, w, h }
    }

    /// Area in pixels (as `u64`, so it never overflows).
    pub fn area(&self) -> u64 {
        u64::from(self.w) * u64::from(self.h)
    }

    /// Intersection over union, in `0..=1`; 0 when either box is empty.
    pub fn iou(&self, other: &FaceBox) -> f32 {
        let x0 = u64::from(self.x.max(other.x));
        let y0 = u64::from(self.y.max(other.y));
        let x1 =
            (u64::from(self.x) + u64::from(self.w)).min(u64::from(other.x) + u64::from(other.w));
        let y1 =
            (u64::from(self.y) + u64::from(self.h)).min(u64::from(other.y) + u64::from(other.h));
        if x1 <= x0 || y1 <= y0 {
            return 0.0;
        }
        let inter = (x1 - x0) * (y1 - y0);
        let union = self.area() + other.area() - inter;
        if union == 0 {
            0.0
        } else {
            (inter as f64 / union as f64) as f32
        }
    }

    /// The box clipped to a `width x height` frame; `None` if nothing is left.
    pub fn clip(&self, width: u32, height: u32) -> Option<FaceBox> {
        let x0 = self.x.min(width);
        let y0 = self.y.min(height);
        let x1 = self.x.saturating_add(self.w).min(width);
        let y1 = self.y.saturating_add(self.h).min(height);
        (x1 > x0 && y1 > y0).then(|| FaceBox::new(x0, y0, x1 - x0, y1 - y0))
    }

    /// The box scaled by `factor` (e.g. from a downscaled detection frame back to the frame).
    pub fn scaled(&self, factor: f32) -> FaceBox {
        let s = |v: u32| (v as f32 * factor).round().max(0.0) as u32;
        FaceBox::new(s(self.x), s(self.y), s(self.w).max(1), s(self.h).max(1))
    }

    /// The box for the serial protocol (values saturate at 65535).
    pub fn to_protocol(&self) -> BoundingBox {
        let c = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
        BoundingBox {
            x: c(self.x),
            y: c(self.y),
            w: c(self.w),
            h: c(self.h),
        }
    }
}

/// Six points of a face in frame pixels, `[x, y]` each (not clipped to the frame), as
/// MediaPipe's BlazeFace gives them. "Right" and "left" are the person's: in an upright,
/// unmirrored image the right eye is the one on the left.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Keypoints {
    /// Centre of the person's right eye.
    pub right_eye: [f32; 2],
    /// Centre of the person's left eye.
    pub left_eye: [f32; 2],
    /// Tip of the nose.
    pub nose_tip: [f32; 2],
    /// Centre of the mouth.
    pub mouth: [f32; 2],
    /// The right ear's tragion.
    pub right_ear: [f32; 2],
    /// The left ear's tragion.
    pub left_ear: [f32; 2],
}

impl Keypoints {
    /// From the six points in MediaPipe's order: right eye, left eye, nose tip, mouth centre,
    /// right ear tragion, left ear tragion.
    pub fn from_mediapipe(p: [[f32; 2]; 6]) -> Keypoints {
        Keypoints {
            right_eye: p[0],
            left_eye: p[1],
            nose_tip: p[2],
            mouth: p[3],
            right_ear: p[4],
            left_ear: p[5],
        }
    }
}

/// One face a detector found: its box and, when the detector finds them, its key points.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Face {
    /// The box, in frame pixels, clipped to the frame.
    pub bbox: FaceBox,
    /// Eyes, nose, mouth and ears (BlazeFace); `None` from detectors that give only a box
    /// (SeetaFace, full-frame).
    pub keypoints: Option<Keypoints>,
}

impl Face {
    /// A face known only by its box.
    pub fn boxed(bbox: FaceBox) -> Face {
        Face {
            bbox,
            keypoints: None,
        }
    }
}

impl From<FaceBox> for Face {
    fn from(bbox: FaceBox) -> Face {
        Face::boxed(bbox)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_of_identical_disjoint_and_half_overlapping_boxes() {
        let a = FaceBox::new(10, 10, 20, 20);
        assert_eq!(a.iou(&a), 1.0);
        assert_eq!(a.iou(&FaceBox::new(100, 100, 5, 5)), 0.0);
        // Shifted by half its width: intersection 200, union 600.
        let b = FaceBox::new(20, 10, 20, 20);
        assert!((a.iou(&b) - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(FaceBox::default().iou(&FaceBox::default()), 0.0);
    }

    #[test]
    fn clip_and_scale() {
        assert_eq!(
            FaceBox::new(90, 90, 20, 20).clip(100, 100),
            Some(FaceBox::new(90, 90, 10, 10))
        );
        assert_eq!(FaceBox::new(100, 0, 20, 20).clip(100, 100), None);
        assert_eq!(
            FaceBox::new(5, 6, 7, 8).scaled(2.0),
            FaceBox::new(10, 12, 14, 16)
        );
        assert_eq!(
            FaceBox::new(70000, 1, 2, 3).to_protocol(),
            BoundingBox {
                x: 65535,
                y: 1,
                w: 2,
                h: 3
            }
        );
    }
}
