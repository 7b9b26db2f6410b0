//! Demo camera frames: a colour room-like background with faces at given boxes, moving and
//! blinking a little from frame to frame, plus the ground-truth boxes.
//!
//! A face's person depends on `(seed, face index)`, so a face keeps its identity when the
//! caller changes its emotion; its expression depends on `(seed, face index, emotion)`. The
//! background depends on `seed` only; sensor noise on `(seed, frame)`.

use image::RgbImage;
use rand::Rng;

use super::expression::Expression;
use super::face::{self, Capture, FaceIdentity, FaceSpec, Pose};
use super::raster::{Affine, Canvas, sd_ellipse, sd_round_box, uniform};
use super::{mix64, sample_rng};
use crate::Emotion;

/// Where a face goes in a scene: the top-left corner and side of its square crop box, in
/// pixels (the box is the face crop as [`super::render_face`] frames it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SceneFace {
    /// The emotion shown.
    pub emotion: Emotion,
    /// Left edge of the box (may be partly outside the frame).
    pub x: i32,
    /// Top edge of the box.
    pub y: i32,
    /// Side of the box.
    pub size: u32,
}

impl From<(Emotion, i32, i32, u32)> for SceneFace {
    fn from((emotion, x, y, size): (Emotion, i32, i32, u32)) -> Self {
        SceneFace {
            emotion,
            x,
            y,
            size,
        }
    }
}

/// A face as drawn in a frame: its box after this frame's motion, clipped to the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SceneTruth {
    /// Index of the face in the `faces` argument of [`render_scene`].
    pub index: usize,
    /// The emotion shown.
    pub emotion: Emotion,
    /// Left edge, pixels.
    pub x: u32,
    /// Top edge, pixels.
    pub y: u32,
    /// Width, pixels (at least 1).
    pub width: u32,
    /// Height, pixels (at least 1).
    pub height: u32,
    /// Whether the eyes are (mostly) closed in this frame.
    pub blinking: bool,
}

/// One rendered frame.
#[derive(Debug, Clone)]
pub struct Scene {
    /// The frame.
    pub image: RgbImage,
    /// The faces at least partly inside the frame, in the order given.
    pub faces: Vec<SceneTruth>,
}

const SCENE_SALT: u64 = 0x5ce4_e5ce_4e5c_e4e5;

/// A demo camera: a fixed background for a seed and frame size, rendered once, onto which
/// each [`SceneCamera::frame`] draws the faces of that frame.
#[derive(Debug, Clone)]
pub struct SceneCamera {
    width: u32,
    height: u32,
    seed: u64,
    background: Vec<f32>,
    light_angle: f32,
}

impl SceneCamera {
    /// A camera producing `width` x `height` frames of the room chosen by `seed`.
    pub fn new(width: u32, height: u32, seed: u64) -> SceneCamera {
        let (w, h) = (width as usize, height as usize);
        let mut background = vec![0.0f32; w * h * 3];
        let mut bg_rng = sample_rng(seed ^ SCENE_SALT, u64::MAX);
        draw_background(&mut background, w, h, &mut bg_rng);
        let light_angle = uniform(&mut bg_rng, 0.0, std::f32::consts::TAU);
        SceneCamera {
            width,
            height,
            seed,
            background,
            light_angle,
        }
    }

    /// Frame size in pixels.
    pub fn dimensions(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// Renders frame `frame_index` with `faces`; the same as [`render_scene`] with this
    /// camera's size and seed.
    pub fn frame(&self, faces: &[SceneFace], frame_index: u64) -> Scene {
        let (w, h) = (self.width as usize, self.height as usize);
        let mut rgb = self.background.clone();
        let mut truths = Vec::new();
        for (index, f) in faces.iter().enumerate() {
            let drawn = draw_scene_face(
                &mut rgb,
                w,
                h,
                f,
                index,
                frame_index,
                self.seed,
                self.light_angle,
            );
            truths.extend(drawn);
        }

        // Sensor noise and a slight flicker, different every frame.
        let mut noise_rng = sample_rng(self.seed ^ SCENE_SALT ^ 0x00f1_1c4e, frame_index);
        let flicker = 1.0 + uniform(&mut noise_rng, -0.015, 0.015);
        let mut bytes = Vec::with_capacity(rgb.len());
        let mut bits = 0u64;
        let mut left = 0;
        for c in &rgb {
            if left == 0 {
                bits = noise_rng.random::<u64>();
                left = 4;
            }
            // Triangular noise from two 8-bit uniforms, about +-3 grey levels.
            let a = (bits & 0xff) as f32;
            let b = ((bits >> 8) & 0xff) as f32;
            bits >>= 16;
            left -= 1;
            let n = (a + b - 255.0) / 255.0 * 0.012;
            bytes.push(((c * flicker + n).clamp(0.0, 1.0) * 255.0 + 0.5) as u8);
        }
        let image = RgbImage::from_raw(self.width, self.height, bytes)
            .unwrap_or_else(|| RgbImage::new(self.width, self.height));
        Scene {
            image,
            faces: truths,
        }
    }
}

/// Renders frame `frame_index` of a `width` x `height` scene with `faces`. A camera that
/// renders many frames should use [`SceneCamera`], which draws the background only once.
pub fn render_scene(
    width: u32,
    height: u32,
    faces: &[SceneFace],
    frame_index: u64,
    seed: u64,
) -> Scene {
    SceneCamera::new(width, height, seed).frame(faces, frame_index)
}

fn paint_rgb<F>(rgb: &mut [f32], w: usize, h: usize, bbox: [f32; 4], color: [f32; 3], sdf: F)
where
    F: Fn(f32, f32) -> f32,
{
    let x0 = (bbox[0].floor() - 1.0).max(0.0) as usize;
    let y0 = (bbox[1].floor() - 1.0).max(0.0) as usize;
    let x1 = ((bbox[2].ceil() + 1.0).max(0.0) as usize).min(w);
    let y1 = ((bbox[3].ceil() + 1.0).max(0.0) as usize).min(h);
    for y in y0..y1 {
        for x in x0..x1 {
            let d = sdf(x as f32 + 0.5, y as f32 + 0.5);
            let a = (0.5 - d).clamp(0.0, 1.0);
            if a > 0.0 {
                let i = (y * w + x) * 3;
                for k in 0..3 {
                    rgb[i + k] += (color[k] - rgb[i + k]) * a;
                }
            }
        }
    }
}

fn random_color<R: Rng + ?Sized>(rng: &mut R, lo: f32, hi: f32) -> [f32; 3] {
    let base = uniform(rng, lo, hi);
    [
        (base * uniform(rng, 0.8, 1.2)).min(1.0),
        (base * uniform(rng, 0.8, 1.2)).min(1.0),
        (base * uniform(rng, 0.8, 1.2)).min(1.0),
    ]
}

fn draw_background<R: Rng + ?Sized>(rgb: &mut [f32], w: usize, h: usize, rng: &mut R) {
    if w == 0 || h == 0 {
        return;
    }
    let (wf, hf) = (w as f32, h as f32);
    let top = random_color(rng, 0.45, 0.8);
    let bottom = random_color(rng, 0.3, 0.6);
    let floor = random_color(rng, 0.15, 0.45);
    let horizon = hf * uniform(rng, 0.72, 0.85);
    for y in 0..h {
        let t = y as f32 / hf;
        for x in 0..w {
            let i = (y * w + x) * 3;
            let vignette = 1.0 - 0.25 * ((x as f32 / wf - 0.5).powi(2) + (t - 0.5).powi(2));
            for k in 0..3 {
                let c = if (y as f32) < horizon {
                    top[k] + (bottom[k] - top[k]) * t
                } else {
                    floor[k] * (0.85 + 0.3 * t)
                };
                rgb[i + k] = c * vignette;
            }
        }
    }
    // A window: bright panes with a frame.
    let (wx, wy) = (uniform(rng, 0.05, 0.7) * wf, uniform(rng, 0.05, 0.2) * hf);
    let (ww, wh) = (uniform(rng, 0.15, 0.28) * wf, uniform(rng, 0.25, 0.4) * hf);
    let frame = random_color(rng, 0.7, 0.95);
    let sky = [0.85, 0.9, 0.97];
    let (cx, cy) = (wx + ww / 2.0, wy + wh / 2.0);
    paint_rgb(rgb, w, h, [wx, wy, wx + ww, wy + wh], frame, |x, y| {
        sd_round_box(x - cx, y - cy, ww / 2.0, wh / 2.0, 2.0)
    });
    let bar = (wf * 0.006).max(1.0);
    for (qx, qy) in [(-1.0f32, -1.0f32), (1.0, -1.0), (-1.0, 1.0), (1.0, 1.0)] {
        let pw = ww / 4.0 - bar;
        let ph = wh / 4.0 - bar;
        let (px, py) = (cx + qx * ww / 4.0, cy + qy * wh / 4.0);
        paint_rgb(
            rgb,
            w,
            h,
            [px - pw, py - ph, px + pw, py + ph],
            sky,
            |x, y| sd_round_box(x - px, y - py, pw, ph, 0.5),
        );
    }
    // Pictures and shelves on the wall.
    let n = rng.random_range(2..5u32);
    for _ in 0..n {
        let (rx, ry) = (uniform(rng, 0.0, 0.9) * wf, uniform(rng, 0.05, 0.6) * hf);
        let (rw, rh) = (uniform(rng, 0.05, 0.18) * wf, uniform(rng, 0.03, 0.2) * hf);
        let outer = random_color(rng, 0.05, 0.5);
        let inner = random_color(rng, 0.2, 0.9);
        let (cx, cy) = (rx + rw / 2.0, ry + rh / 2.0);
        paint_rgb(rgb, w, h, [rx, ry, rx + rw, ry + rh], outer, |x, y| {
            sd_round_box(x - cx, y - cy, rw / 2.0, rh / 2.0, 1.0)
        });
        let m = (rw.min(rh) * 0.12).max(1.0);
        paint_rgb(rgb, w, h, [rx, ry, rx + rw, ry + rh], inner, |x, y| {
            sd_round_box(x - cx, y - cy, rw / 2.0 - m, rh / 2.0 - m, 0.5)
        });
    }
    // A lamp: a round shade on a pole.
    let lx = uniform(rng, 0.05, 0.95) * wf;
    let ly = uniform(rng, 0.3, 0.55) * hf;
    let lr = uniform(rng, 0.03, 0.06) * wf;
    let pole = random_color(rng, 0.05, 0.3);
    paint_rgb(
        rgb,
        w,
        h,
        [lx - 3.0, ly, lx + 3.0, horizon + 10.0],
        pole,
        |x, y| {
            sd_round_box(
                x - lx,
                y - (ly + horizon) / 2.0,
                1.5,
                (horizon - ly) / 2.0,
                0.5,
            )
        },
    );
    let shade = random_color(rng, 0.75, 1.0);
    paint_rgb(
        rgb,
        w,
        h,
        [lx - lr, ly - lr, lx + lr, ly + lr],
        shade,
        |x, y| sd_ellipse(x - lx, y - ly, lr, lr * 0.8),
    );
}

/// The per-face state that does not change from frame to frame.
fn scene_face_spec(face: &SceneFace, index: usize, seed: u64, light_angle: f32) -> FaceSpec {
    let mut id_rng = sample_rng(seed ^ SCENE_SALT, index as u64);
    let identity = FaceIdentity::random(&mut id_rng);
    let mut ex_rng = sample_rng(
        mix64(seed ^ SCENE_SALT ^ (face.emotion.index() as u64 + 1)),
        index as u64,
    );
    let expression = Expression::sample(face.emotion, 0.9, 0.4, &mut ex_rng)
        .offset_by(identity.resting.lerp(Expression::NEUTRAL, 0.5));
    FaceSpec {
        identity,
        expression,
        pose: Pose::default(),
        capture: Capture {
            light_angle,
            light_strength: 0.15,
            blur: 0.0,
            ..Capture::default()
        },
        gaze: (0.0, 0.0),
    }
}

#[allow(clippy::too_many_arguments)]
fn draw_scene_face(
    rgb: &mut [f32],
    w: usize,
    h: usize,
    face: &SceneFace,
    index: usize,
    frame: u64,
    seed: u64,
    light_angle: f32,
) -> Option<SceneTruth> {
    if face.size == 0 || w == 0 || h == 0 {
        return None;
    }
    let mut spec = scene_face_spec(face, index, seed, light_angle);
    // Motion: slow sways with per-face phases; a blink every few seconds.
    let mut motion_rng = sample_rng(seed ^ SCENE_SALT ^ 0x0b1e_55ed, index as u64);
    let phases: [f32; 5] =
        std::array::from_fn(|_| uniform(&mut motion_rng, 0.0, std::f32::consts::TAU));
    let blink_period = motion_rng.random_range(45..80u64);
    let blink_phase = motion_rng.random_range(0..blink_period);
    let t = (frame % 1_000_000) as f32;
    spec.pose = Pose {
        roll: 0.05 * (t * 0.071 + phases[0]).sin(),
        yaw: 0.2 * (t * 0.053 + phases[1]).sin(),
        dx: 0.035 * (t * 0.089 + phases[2]).sin(),
        dy: 0.025 * (t * 0.113 + phases[3]).sin(),
        scale: 1.0 + 0.02 * (t * 0.061 + phases[4]).sin(),
    };
    spec.gaze = (0.3 * (t * 0.037 + phases[2]).sin(), 0.0);
    let blink_step = (frame + blink_phase) % blink_period;
    let blinking = blink_step < 2;
    if blink_step == 0 {
        spec.expression.eye_open = 0.08;
    } else if blink_step == 1 {
        spec.expression.eye_open *= 0.35;
    }

    let size = face.size as f32;
    let half = size * 0.5;
    let cx = face.x as f32 + half + spec.pose.dx * half;
    let cy = face.y as f32 + half + spec.pose.dy * half;
    // The canvas covers the head, hair and shoulders around the box.
    let left = (cx - size * 0.95).floor().max(0.0);
    let top = (cy - size * 0.8).floor().max(0.0);
    let right = (cx + size * 0.95).ceil().min(w as f32);
    let bottom = h as f32;
    if right <= left || bottom <= top {
        return None;
    }
    let (cw, ch) = ((right - left) as usize, (bottom - top) as usize);
    let transform = Affine::similarity(
        half * spec.pose.scale * face::CROP_ZOOM,
        spec.pose.roll,
        cx - left,
        cy - top,
    );
    let mut canvas = Canvas::new(cw, ch, transform);
    face::draw_face(&mut canvas, &spec, false);
    let mut no_noise = sample_rng(0, 0);
    face::apply_capture(&mut canvas, &spec.capture, &mut no_noise);

    // Tint the grey face: warm for skin, per person.
    let mut tint_rng = sample_rng(seed ^ SCENE_SALT ^ 0x7147, index as u64);
    let warm = uniform(&mut tint_rng, 0.05, 0.16);
    let tint = [1.0 + warm, 1.0 - warm * 0.1, 1.0 - warm * 1.1];
    let (ox, oy) = (left as usize, top as usize);
    for y in 0..ch {
        for x in 0..cw {
            let j = y * cw + x;
            let a = canvas.alpha[j].clamp(0.0, 1.0);
            if a <= 0.0 {
                continue;
            }
            let v = canvas.value[j];
            let i = ((oy + y) * w + ox + x) * 3;
            for k in 0..3 {
                rgb[i + k] = rgb[i + k] * (1.0 - a) + v * tint[k];
            }
        }
    }

    let bx0 = (cx - half * spec.pose.scale).round();
    let by0 = (cy - half * spec.pose.scale).round();
    let bx1 = (cx + half * spec.pose.scale).round();
    let by1 = (cy + half * spec.pose.scale).round();
    let (x0, y0) = (bx0.max(0.0), by0.max(0.0));
    let (x1, y1) = (bx1.min(w as f32), by1.min(h as f32));
    if x1 - x0 < 1.0 || y1 - y0 < 1.0 {
        return None;
    }
    Some(SceneTruth {
        index,
        emotion: face.emotion,
        x: x0 as u32,
        y: y0 as u32,
        width: (x1 - x0) as u32,
        height: (y1 - y0) as u32,
        blinking,
    })
}
