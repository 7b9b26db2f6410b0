//! Face crops for the classifier. The classifiers are trained on FER2013-style crops: the face
//! box, upright, resized to the model input. [`crop_rgb`] cuts the detector's box out as it is;
//! [`aligned_crop`] cuts the same box (same centre, same size) turned by the angle of the eye
//! line, so a tilted face comes out upright, as in the training crops. [`face_crop`] picks one.

use image::{Rgb, RgbImage};

use crate::geometry::{Face, FaceBox, Keypoints};

/// The part of `image` inside the box (clipped; at least 1x1).
pub fn crop_rgb(image: &RgbImage, x: u32, y: u32, w: u32, h: u32) -> RgbImage {
    let (iw, ih) = image.dimensions();
    if iw == 0 || ih == 0 {
        return RgbImage::new(1, 1);
    }
    let x = x.min(iw.saturating_sub(1));
    let y = y.min(ih.saturating_sub(1));
    let w = w.clamp(1, iw - x);
    let h = h.clamp(1, ih - y);
    image::imageops::crop_imm(image, x, y, w, h).to_image()
}

/// The angle of the eye line in radians: 0 when the person's left eye is straight to the right
/// of their right eye in the image (an upright, unmirrored face), positive when the line runs
/// down to the right (the face turned clockwise in the image). `None` when the eyes are less
/// than a pixel apart or not finite.
pub fn eye_angle(k: &Keypoints) -> Option<f32> {
    let dx = k.left_eye[0] - k.right_eye[0];
    let dy = k.left_eye[1] - k.right_eye[1];
    let d = dx.hypot(dy);
    (d.is_finite() && d >= 1.0).then(|| dy.atan2(dx))
}

/// The box of `bbox` (clipped to `image`) turned by the eye line's angle about the box's
/// centre, sampled bilinearly into an upright crop of the box's size: the face as
/// [`crop_rgb`] frames it, with the eye line horizontal. Points outside the image take the
/// nearest edge pixel. Without a usable eye line (see [`eye_angle`]) it is [`crop_rgb`];
/// at angle 0 it is exactly [`crop_rgb`].
pub fn aligned_crop(image: &RgbImage, bbox: FaceBox, keypoints: &Keypoints) -> RgbImage {
    let plain = || crop_rgb(image, bbox.x, bbox.y, bbox.w, bbox.h);
    let (iw, ih) = image.dimensions();
    let (Some(angle), Some(b)) = (eye_angle(keypoints), bbox.clip(iw, ih)) else {
        return plain();
    };
    if angle == 0.0 {
        return plain();
    }
    let (sin, cos) = angle.sin_cos();
    let (cx, cy) = (b.x as f32 + b.w as f32 / 2.0, b.y as f32 + b.h as f32 / 2.0);
    let mut out = RgbImage::new(b.w, b.h);
    for (u, v, px) in out.enumerate_pixels_mut() {
        // The output pixel's centre relative to the box centre, turned into the frame; the
        // frame's pixel (i, j) has its centre at (i + 0.5, j + 0.5).
        let ox = u as f32 + 0.5 - b.w as f32 / 2.0;
        let oy = v as f32 + 0.5 - b.h as f32 / 2.0;
        let sx = cx + cos * ox - sin * oy - 0.5;
        let sy = cy + sin * ox + cos * oy - 0.5;
        *px = bilinear(image, sx, sy);
    }
    out
}

/// The crop of one face: [`aligned_crop`] when `align` is set and the detector gave key
/// points, else [`crop_rgb`] of the box.
pub fn face_crop(image: &RgbImage, face: &Face, align: bool) -> RgbImage {
    let b = face.bbox;
    match &face.keypoints {
        Some(k) if align => aligned_crop(image, b, k),
        _ => crop_rgb(image, b.x, b.y, b.w, b.h),
    }
}

/// `image` at the continuous pixel position `(x, y)` (pixel centres on integers), bilinear,
/// clamped to the edges.
fn bilinear(image: &RgbImage, x: f32, y: f32) -> Rgb<u8> {
    let (w, h) = image.dimensions();
    let x = x.clamp(0.0, (w - 1) as f32);
    let y = y.clamp(0.0, (h - 1) as f32);
    // Both are finite and in range here, so the casts are floors.
    let (x0, y0) = (x as u32, y as u32);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let (a, b) = (image.get_pixel(x0, y0), image.get_pixel(x1, y0));
    let (c, d) = (image.get_pixel(x0, y1), image.get_pixel(x1, y1));
    let mut out = [0u8; 3];
    for (k, o) in out.iter_mut().enumerate() {
        let top = f32::from(a[k]) * (1.0 - fx) + f32::from(b[k]) * fx;
        let bottom = f32::from(c[k]) * (1.0 - fx) + f32::from(d[k]) * fx;
        *o = (top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8;
    }
    Rgb(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A smooth pattern with no rotational symmetry, in grey levels, at a point given relative
    /// to the face centre in the face's own upright coordinates.
    fn pattern(x: f32, y: f32) -> u8 {
        let tau = std::f32::consts::TAU;
        let v = 128.0 + 55.0 * (tau * x / 37.0).sin() + 45.0 * (tau * y / 23.0).cos() - 0.4 * y;
        v.round().clamp(0.0, 255.0) as u8
    }

    /// A `w x h` frame showing the pattern centred on `(cx, cy)` and turned by `angle`
    /// (radians, clockwise in the image as y points down), and where the eyes of a face there
    /// are (±20 px along the turned eye line, 15 px above the centre).
    fn frame(w: u32, h: u32, cx: f32, cy: f32, angle: f32) -> (RgbImage, Keypoints) {
        let (sin, cos) = angle.sin_cos();
        let img = RgbImage::from_fn(w, h, |i, j| {
            // Frame pixel centre -> face coordinates: the inverse turn.
            let (dx, dy) = (i as f32 + 0.5 - cx, j as f32 + 0.5 - cy);
            let g = pattern(cos * dx + sin * dy, -sin * dx + cos * dy);
            Rgb([g, g, g])
        });
        let at = |fx: f32, fy: f32| [cx + cos * fx - sin * fy, cy + sin * fx + cos * fy];
        let eyes = with_eyes(at(-20.0, -15.0), at(20.0, -15.0));
        (img, eyes)
    }

    /// Key points with these eyes (the rest unused by alignment).
    fn with_eyes(right: [f32; 2], left: [f32; 2]) -> Keypoints {
        let mut k = Keypoints::from_mediapipe([[0.0; 2]; 6]);
        k.right_eye = right;
        k.left_eye = left;
        k
    }

    fn mean_abs_diff(a: &RgbImage, b: &RgbImage) -> f32 {
        assert_eq!(a.dimensions(), b.dimensions());
        let sum: u64 = a
            .as_raw()
            .iter()
            .zip(b.as_raw())
            .map(|(x, y)| u64::from(x.abs_diff(*y)))
            .sum();
        sum as f32 / a.as_raw().len() as f32
    }

    #[test]
    fn a_turned_face_comes_out_upright() {
        let bbox = FaceBox::new(100, 80, 96, 96);
        let (cx, cy) = (148.0, 128.0);
        let (upright, upright_eyes) = frame(300, 260, cx, cy, 0.0);
        let want = crop_rgb(&upright, bbox.x, bbox.y, bbox.w, bbox.h);
        assert!(eye_angle(&upright_eyes).expect("eyes").abs() < 1e-6);
        for degrees in [-30.0f32, -15.0, 15.0, 30.0] {
            let (turned, eyes) = frame(300, 260, cx, cy, degrees.to_radians());
            let angle = eye_angle(&eyes).expect("eyes");
            assert!((angle.to_degrees() - degrees).abs() < 1e-3, "{angle}");
            let aligned = aligned_crop(&turned, bbox, &eyes);
            let plain = crop_rgb(&turned, bbox.x, bbox.y, bbox.w, bbox.h);
            let (a, p) = (mean_abs_diff(&aligned, &want), mean_abs_diff(&plain, &want));
            // Two bilinear resamplings of a smooth pattern: within a grey level or two of the
            // upright crop, while the crop as it is differs by tens of levels.
            assert!(a < 2.0, "{degrees} degrees: aligned differs by {a}");
            assert!(p > 20.0, "{degrees} degrees: plain differs by only {p}");
        }
    }

    #[test]
    fn upright_or_eyeless_faces_are_cropped_as_they_are() {
        let (img, eyes) = frame(120, 100, 60.0, 50.0, 0.0);
        let bbox = FaceBox::new(20, 10, 70, 80);
        let plain = crop_rgb(&img, 20, 10, 70, 80);
        assert_eq!(aligned_crop(&img, bbox, &eyes), plain);
        let face = |keypoints| Face { bbox, keypoints };
        assert_eq!(face_crop(&img, &face(Some(eyes)), true), plain);
        let (turned, eyes) = frame(120, 100, 60.0, 50.0, 0.3);
        let plain = crop_rgb(&turned, 20, 10, 70, 80);
        assert_eq!(face_crop(&turned, &face(Some(eyes)), false), plain);
        assert_eq!(face_crop(&turned, &face(None), true), plain);
        assert_ne!(face_crop(&turned, &face(Some(eyes)), true), plain);
        // Eyes on one point, or not numbers: no angle, the plain crop.
        let same = with_eyes([50.0, 40.0], [50.2, 40.0]);
        assert_eq!(eye_angle(&same), None);
        assert_eq!(aligned_crop(&turned, bbox, &same), plain);
        let nan = with_eyes([f32::NAN, 0.0], [3.0, 0.0]);
        assert_eq!(eye_angle(&nan), None);
    }

    #[test]
    fn a_box_at_the_edge_keeps_its_size_and_takes_edge_pixels() {
        let (img, _) = frame(80, 60, 40.0, 30.0, 0.0);
        let eyes = with_eyes([10.0, 10.0], [30.0, 30.0]);
        let out = aligned_crop(&img, FaceBox::new(50, 30, 40, 40), &eyes);
        // Clipped to the frame first: 30x30, as crop_rgb would cut it.
        assert_eq!(out.dimensions(), (30, 30));
        let empty = RgbImage::new(0, 0);
        assert_eq!(
            aligned_crop(&empty, FaceBox::new(0, 0, 5, 5), &eyes).dimensions(),
            (1, 1)
        );
    }
}
