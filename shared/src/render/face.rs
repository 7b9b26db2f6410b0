//! One face: who it is ([`FaceIdentity`]), how it is held ([`Pose`]) and photographed
//! ([`Capture`]), and the drawing of all of it, with an expression, onto a canvas.
//!
//! Face units: `x` to the right and `y` down, origin near the nose; a crop at pose scale 1
//! spans `[-1, 1] / 1.15` in both axes. The eyes sit near `y = -0.2`, the nose tip near
//! `0.15`, the mouth near `0.42` and the chin near `0.85`.

use std::f32::consts::TAU;

use rand::Rng;

use super::expression::Expression;
use super::raster::{
    Affine, Canvas, bezier_points, gauss, sd_ellipse, sd_round_box, sd_stroke, segment, smin,
    stroke_bbox, uniform,
};

/// How the hair is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HairStyle {
    /// A buzz cut that barely differs from the skin.
    Bald,
    /// Short hair with a curved hairline.
    Short,
    /// Short hair with a fringe over the forehead.
    Fringe,
    /// Long hair framing the face down to the shoulders.
    Long,
}

/// The person: face proportions, tones and resting expression. Fixed for a person, whatever
/// the expression. Lengths are in face units (see the module docs), tones are grey levels in
/// `0..1`.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceIdentity {
    /// Half-width of the cranium.
    pub head_width: f32,
    /// Half-height of the cranium.
    pub head_height: f32,
    /// Jaw half-width as a fraction of `head_width` (small: pointed chin).
    pub jaw_width: f32,
    /// Half-height of the jaw ellipse (chin length).
    pub chin_length: f32,
    /// Skin grey level.
    pub skin: f32,
    /// Hair cut.
    pub hair_style: HairStyle,
    /// Hair grey level.
    pub hair_tone: f32,
    /// Height of the hairline at the middle of the forehead.
    pub hairline: f32,
    /// Where the hair is parted, -1..1.
    pub hair_part: f32,
    /// Height of the eye centres.
    pub eye_y: f32,
    /// Half the distance between the eye centres.
    pub eye_spacing: f32,
    /// Half-width of an eye.
    pub eye_size: f32,
    /// Iris grey level.
    pub iris_tone: f32,
    /// Distance from eye centre up to the brow.
    pub brow_gap: f32,
    /// Brow stroke radius at its inner end.
    pub brow_thickness: f32,
    /// Brow grey level.
    pub brow_tone: f32,
    /// How much the brow arches.
    pub brow_arch: f32,
    /// Height of the nose tip.
    pub nose_tip: f32,
    /// Half-width of the nose wings.
    pub nose_width: f32,
    /// Height of the mouth line.
    pub mouth_y: f32,
    /// Half-width of the neutral mouth.
    pub mouth_width: f32,
    /// Lip thickness.
    pub lip_thickness: f32,
    /// Lip grey level as a fraction of the skin's.
    pub lip_tone: f32,
    /// Clothing grey level.
    pub clothing: f32,
    /// Background grey level (crops only).
    pub background: f32,
    /// Wears glasses.
    pub glasses: bool,
    /// The resting face: a small offset added to every expression of this person (some look
    /// a little sad or cross at rest).
    pub resting: Expression,
}

impl FaceIdentity {
    /// A random person.
    pub fn random<R: Rng + ?Sized>(rng: &mut R) -> FaceIdentity {
        let head_width = uniform(rng, 0.63, 0.76);
        let skin = uniform(rng, 0.32, 0.86);
        let hair_style = match rng.random_range(0..10u32) {
            0 => HairStyle::Bald,
            1..=4 => HairStyle::Short,
            5..=6 => HairStyle::Fringe,
            _ => HairStyle::Long,
        };
        // Hair mostly darker than skin, sometimes fair.
        let hair_tone = if rng.random::<f32>() < 0.8 {
            uniform(rng, 0.04, (skin - 0.15).max(0.1))
        } else {
            uniform(rng, 0.45, 0.8)
        };
        let eye_size = uniform(rng, 0.115, 0.145);
        let background = uniform(rng, 0.05, 0.95);
        let mut resting = Expression::NEUTRAL;
        resting.brow_height += gauss(rng) * 0.1;
        resting.brow_angle += gauss(rng) * 0.08;
        resting.mouth_curve += gauss(rng) * 0.08;
        resting.eye_open += gauss(rng) * 0.06;
        FaceIdentity {
            head_width,
            head_height: uniform(rng, 0.84, 0.93),
            jaw_width: uniform(rng, 0.6, 0.86),
            chin_length: uniform(rng, 0.55, 0.64),
            skin,
            hair_style,
            hair_tone,
            hairline: uniform(rng, -0.74, -0.56),
            hair_part: uniform(rng, -1.0, 1.0),
            eye_y: uniform(rng, -0.25, -0.17),
            eye_spacing: uniform(rng, 0.27, 0.32),
            eye_size,
            iris_tone: uniform(rng, 0.04, 0.3),
            brow_gap: uniform(rng, 0.13, 0.17),
            brow_thickness: uniform(rng, 0.022, 0.036),
            brow_tone: (hair_tone * uniform(rng, 0.7, 1.0)).min(skin * 0.55),
            brow_arch: uniform(rng, 0.0, 0.035),
            nose_tip: uniform(rng, 0.1, 0.19),
            nose_width: uniform(rng, 0.075, 0.11),
            mouth_y: uniform(rng, 0.4, 0.47),
            mouth_width: uniform(rng, 0.2, 0.25),
            lip_thickness: uniform(rng, 0.028, 0.045),
            lip_tone: uniform(rng, 0.68, 0.9),
            clothing: uniform(rng, 0.05, 0.9),
            background,
            glasses: rng.random::<f32>() < 0.07,
            resting,
        }
    }
}

/// Head pose relative to the crop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pose {
    /// In-plane rotation, radians (positive: clockwise on screen).
    pub roll: f32,
    /// A little turning left/right, -1..1 (shifts the inner features sideways).
    pub yaw: f32,
    /// Horizontal shift, face units.
    pub dx: f32,
    /// Vertical shift, face units.
    pub dy: f32,
    /// Zoom (1: the face fills the crop as described in the module docs).
    pub scale: f32,
}

impl Default for Pose {
    fn default() -> Self {
        Pose {
            roll: 0.0,
            yaw: 0.0,
            dx: 0.0,
            dy: 0.0,
            scale: 1.0,
        }
    }
}

impl Pose {
    /// A random pose; `amount` scales the variation (0: frontal, centred).
    pub fn random<R: Rng + ?Sized>(rng: &mut R, amount: f32) -> Pose {
        Pose {
            roll: (gauss(rng) * 0.1).clamp(-0.25, 0.25) * amount,
            yaw: uniform(rng, -0.35, 0.35) * amount,
            dx: uniform(rng, -0.08, 0.08) * amount,
            dy: uniform(rng, -0.08, 0.08) * amount,
            scale: 1.0 + uniform(rng, -0.08, 0.1) * amount,
        }
    }
}

/// How the picture was taken: lighting, contrast, focus and sensor noise.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Capture {
    /// Direction the light comes from, radians in image space.
    pub light_angle: f32,
    /// Strength of the linear lighting gradient across the image.
    pub light_strength: f32,
    /// Contrast gain around mid-grey.
    pub contrast: f32,
    /// Brightness offset.
    pub brightness: f32,
    /// Gaussian blur, standard deviation in face units.
    pub blur: f32,
    /// Gaussian pixel noise, standard deviation in grey levels `0..1`.
    pub noise: f32,
    /// A soft blob in the background: centre `x`, `y`, radius and value change.
    pub backdrop: [f32; 4],
}

impl Default for Capture {
    fn default() -> Self {
        Capture {
            light_angle: 0.0,
            light_strength: 0.0,
            contrast: 1.0,
            brightness: 0.0,
            blur: 0.015,
            noise: 0.0,
            backdrop: [0.0, 0.0, 0.0, 0.0],
        }
    }
}

impl Capture {
    /// Random capture conditions; `amount` scales the variation (0: clean studio shot).
    pub fn random<R: Rng + ?Sized>(rng: &mut R, amount: f32) -> Capture {
        Capture {
            light_angle: uniform(rng, 0.0, TAU),
            light_strength: uniform(rng, 0.0, 0.3) * amount,
            contrast: 1.0 + uniform(rng, -0.25, 0.15) * amount,
            brightness: uniform(rng, -0.07, 0.07) * amount,
            blur: 0.012 + uniform(rng, 0.0, 0.028) * amount,
            noise: uniform(rng, 0.003, 0.02) * amount,
            backdrop: [
                uniform(rng, -1.2, 1.2),
                uniform(rng, -1.2, 0.5),
                uniform(rng, 0.2, 0.8),
                uniform(rng, -0.25, 0.25) * amount,
            ],
        }
    }
}

/// Everything that determines one rendered face, apart from pixel noise.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceSpec {
    /// The person.
    pub identity: FaceIdentity,
    /// The expression (already including the person's resting offset).
    pub expression: Expression,
    /// The head pose.
    pub pose: Pose,
    /// The capture conditions.
    pub capture: Capture,
    /// Gaze direction, each component -1..1 (right, down).
    pub gaze: (f32, f32),
}

/// Positions derived from identity, expression and pose, shared by the drawing steps.
struct Layout {
    skin: f32,
    hw: f32,
    hh: f32,
    cranium_cy: f32,
    jaw_cy: f32,
    jaw_hw: f32,
    jaw_hh: f32,
    feature_dx: f32,
    nose_dx: f32,
    brow_base: f32,
}

fn smoothstep(e0: f32, e1: f32, x: f32) -> f32 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// Distance of `(u, v)` to the head outline (cranium and jaw blended).
fn head_distance(l: &Layout, u: f32, v: f32) -> f32 {
    let d1 = sd_ellipse(u, v - l.cranium_cy, l.hw, l.hh);
    let d2 = sd_ellipse(u, v - l.jaw_cy, l.jaw_hw, l.jaw_hh);
    smin(d1, d2, 0.22)
}

/// Draws the face (and, if `background`, the crop's backdrop) onto `canvas`.
pub(crate) fn draw_face(canvas: &mut Canvas, spec: &FaceSpec, background: bool) {
    let id = &spec.identity;
    let ex = &spec.expression;
    let yaw = spec.pose.yaw;
    let l = Layout {
        skin: id.skin,
        hw: id.head_width,
        hh: id.head_height,
        cranium_cy: -0.15,
        jaw_cy: 0.25 + ex.jaw_drop * 0.05,
        jaw_hw: id.head_width * id.jaw_width,
        jaw_hh: id.chin_length + ex.jaw_drop * 0.05,
        feature_dx: yaw * 0.08,
        nose_dx: yaw * 0.13,
        brow_base: id.eye_y - id.brow_gap,
    };
    if background {
        draw_backdrop(canvas, spec);
    }
    draw_body(canvas, spec, &l);
    draw_head(canvas, &l);
    draw_forehead_wrinkles(canvas, spec, &l);
    draw_shading(canvas, spec, &l);
    draw_nose(canvas, spec, &l);
    draw_mouth(canvas, spec, &l);
    for side in [-1.0f32, 1.0] {
        draw_eye(canvas, spec, &l, side);
    }
    draw_hair_front(canvas, spec, &l);
    draw_brows(canvas, spec, &l);
    if id.glasses {
        draw_glasses(canvas, spec, &l);
    }
}

fn draw_backdrop(canvas: &mut Canvas, spec: &FaceSpec) {
    let b = spec.identity.background;
    canvas.fill(b);
    let [x, y, r, dv] = spec.capture.backdrop;
    if r > 0.0 && dv != 0.0 {
        let c = (b + dv).clamp(0.0, 1.0);
        canvas.paint([x - r, y - r, x + r, y + r], 1.0, r * 0.7, |u, v| {
            (((u - x).powi(2) + (v - y).powi(2)).sqrt() - r * 0.5, c)
        });
    }
}

fn draw_body(canvas: &mut Canvas, spec: &FaceSpec, l: &Layout) {
    let id = &spec.identity;
    // Long hair behind the head, down to the shoulders.
    if id.hair_style == HairStyle::Long {
        let (hw, hh, cy) = (l.hw + 0.13, l.hh + 0.1, l.cranium_cy);
        let tone = id.hair_tone * 0.85;
        canvas.paint([-hw - 0.05, cy - hh, hw + 0.05, 1.0], 1.0, 0.0, |u, v| {
            let d1 = sd_ellipse(u, v - cy, hw, hh);
            let d2 = sd_round_box(u, v - 0.45, hw + 0.03, 0.55, 0.15);
            (smin(d1, d2, 0.1), tone)
        });
    }
    // Shoulders.
    let cloth = id.clothing;
    canvas.paint([-1.6, 0.8, 1.6, 40.0], 1.0, 0.0, |u, v| {
        let top = sd_ellipse(u, v - 1.78, 1.45, 0.85);
        let torso = (u.abs() - 1.45).max(1.78 - v);
        (top.min(torso), cloth)
    });
    // Neck, shadowed under the jaw.
    let nw = l.hw * 0.42;
    let skin = l.skin;
    let neck_top = l.jaw_cy;
    let chin = l.jaw_cy + l.jaw_hh;
    canvas.paint([-nw - 0.1, neck_top, nw + 0.1, 1.1], 1.0, 0.0, |u, v| {
        let flare = (v - 0.85).max(0.0) * 0.5;
        let d = (u.abs() - nw - flare).max(neck_top - v);
        let shade = 0.62 + 0.2 * smoothstep(chin, chin + 0.25, v);
        (d, skin * shade)
    });
    // Ears.
    if id.hair_style != HairStyle::Long {
        for side in [-1.0f32, 1.0] {
            let cx = side * (l.hw * 0.97) + spec.pose.yaw * 0.02;
            let cy = id.eye_y + 0.12;
            let tone = skin * 0.85;
            canvas.paint(
                [cx - 0.1, cy - 0.18, cx + 0.1, cy + 0.18],
                1.0,
                0.0,
                |u, v| (sd_ellipse(u - cx, v - cy, 0.085, 0.15), tone),
            );
        }
    }
}

fn draw_head(canvas: &mut Canvas, l: &Layout) {
    let skin = l.skin;
    let top = l.cranium_cy - l.hh;
    let bottom = l.jaw_cy + l.jaw_hh;
    canvas.paint([-l.hw, top, l.hw, bottom], 1.0, 0.0, |u, v| {
        let d = head_distance(l, u, v);
        // Darker towards the outline, a touch darker on the lower face.
        let edge = smoothstep(-0.24, 0.0, d);
        let low = smoothstep(0.5, 0.9, v) * 0.06;
        (d, skin * (1.0 - 0.26 * edge - low))
    });
}

fn draw_forehead_wrinkles(canvas: &mut Canvas, spec: &FaceSpec, l: &Layout) {
    let ex = &spec.expression;
    let strength = ((ex.brow_height - 0.3) * 0.55).clamp(0.0, 0.35);
    if strength <= 0.0 {
        return;
    }
    let tone = l.skin * 0.62;
    let mut pts = [(0.0, 0.0, 0.0); 9];
    for k in 0..2 {
        let y = l.brow_base - ex.brow_height * 0.09 - 0.13 - k as f32 * 0.075;
        bezier_points(
            (-0.32 + l.feature_dx, y + 0.03),
            (l.feature_dx, y - 0.03),
            (0.32 + l.feature_dx, y + 0.03),
            0.006,
            0.006,
            0.004,
            &mut pts,
        );
        canvas.paint(stroke_bbox(&pts), strength, 0.012, |u, v| {
            (sd_stroke((u, v), &pts).0, tone)
        });
    }
}

fn draw_shading(canvas: &mut Canvas, spec: &FaceSpec, l: &Layout) {
    let id = &spec.identity;
    let ex = &spec.expression;
    let skin = l.skin;
    // Eye sockets: the brow ridge shades the eyes, more so when the brows come down.
    let socket_strength = 0.32 + 0.18 * (-ex.brow_height).max(0.0);
    for side in [-1.0f32, 1.0] {
        let cx = side * id.eye_spacing + l.feature_dx;
        let cy = id.eye_y - 0.02 - ex.brow_height * 0.02;
        let (rx, ry) = (id.eye_size * 1.55, 0.11);
        canvas.paint(
            [cx - rx, cy - ry, cx + rx, cy + ry],
            socket_strength,
            0.09,
            |u, v| (sd_ellipse(u - cx, v - cy, rx * 0.7, ry * 0.6), skin * 0.55),
        );
    }
    // Raised cheeks catch the light (smiles).
    if ex.cheek_raise > 0.02 {
        let bright = (skin * 1.25 + 0.05).min(1.0);
        for side in [-1.0f32, 1.0] {
            let cx = side * (id.eye_spacing + 0.05) + l.feature_dx;
            let cy = id.eye_y + 0.27 - 0.04 * ex.cheek_raise;
            canvas.paint(
                [cx - 0.16, cy - 0.12, cx + 0.16, cy + 0.12],
                0.4 * ex.cheek_raise,
                0.08,
                |u, v| (sd_ellipse(u - cx, v - cy, 0.09, 0.05), bright),
            );
        }
    }
}

fn draw_nose(canvas: &mut Canvas, spec: &FaceSpec, l: &Layout) {
    let id = &spec.identity;
    let ex = &spec.expression;
    let skin = l.skin;
    let nx = l.nose_dx;
    let wrinkle = ex.nose_wrinkle;
    let tip = id.nose_tip - wrinkle * 0.025;
    let nw = id.nose_width * (1.0 + 0.25 * wrinkle);
    // Side of the nose away from the light.
    let light_x = spec.capture.light_angle.cos();
    let shade_side = if light_x >= 0.0 { -1.0 } else { 1.0 };
    let mut pts = [(0.0, 0.0, 0.0); 6];
    bezier_points(
        (nx + shade_side * 0.05, id.eye_y + 0.06),
        (nx + shade_side * 0.06, tip - 0.08),
        (nx + shade_side * nw * 0.95, tip - 0.01),
        0.012,
        0.02,
        0.0,
        &mut pts,
    );
    canvas.paint(stroke_bbox(&pts), 0.28, 0.045, |u, v| {
        (sd_stroke((u, v), &pts).0, skin * 0.6)
    });
    // Shadow under the nose.
    canvas.paint(
        [nx - nw * 1.3, tip, nx + nw * 1.3, tip + 0.1],
        0.4,
        0.035,
        |u, v| {
            (
                sd_ellipse(u - nx, v - tip - 0.045, nw * 0.9, 0.022),
                skin * 0.55,
            )
        },
    );
    // Tip highlight.
    let hi = (skin * 1.15 + 0.04).min(1.0);
    canvas.paint(
        [nx - 0.08, tip - 0.1, nx + 0.08, tip + 0.02],
        0.35,
        0.04,
        |u, v| (sd_ellipse(u - nx, v - tip + 0.035, 0.03, 0.03), hi),
    );
    // Nostrils.
    let dark = skin * 0.3;
    for side in [-1.0f32, 1.0] {
        let cx = nx + side * nw * 0.55;
        let cy = tip + 0.012;
        let rx = 0.034 * (1.0 + 0.3 * wrinkle);
        canvas.paint(
            [cx - 0.05, cy - 0.04, cx + 0.05, cy + 0.04],
            0.75,
            0.0,
            |u, v| (sd_ellipse(u - cx, v - cy, rx, 0.019), dark),
        );
    }
    // Wrinkles across the bridge and beside it (disgust).
    if wrinkle > 0.02 {
        let tone = skin * 0.35;
        let op = (0.9 * wrinkle).min(0.9);
        for k in 0..3 {
            let y = id.eye_y + 0.02 + k as f32 * 0.04;
            let (a, b) = ((nx - 0.055, y + 0.01), (nx + 0.055, y + 0.01));
            let c = (nx, y - 0.012);
            let mut p = [(0.0, 0.0, 0.0); 5];
            bezier_points(a, c, b, 0.008, 0.008, 0.002, &mut p);
            canvas.paint(stroke_bbox(&p), op, 0.012, |u, v| {
                (sd_stroke((u, v), &p).0, tone)
            });
        }
        for side in [-1.0f32, 1.0] {
            let a = (nx + side * 0.06, id.eye_y + 0.05);
            let b = (nx + side * 0.12, id.eye_y + 0.14);
            canvas.paint(
                [
                    a.0.min(b.0) - 0.02,
                    a.1 - 0.02,
                    a.0.max(b.0) + 0.02,
                    b.1 + 0.02,
                ],
                op * 0.8,
                0.012,
                |u, v| (segment((u, v), a, b).0 - 0.008, tone),
            );
        }
    }
}

/// The mouth's curves at position `t` (-1..1 across the mouth).
struct MouthShape {
    cx: f32,
    half_width: f32,
    y: f32,
    curve: f32,
    asym: f32,
    open_h: f32,
    exponent: f32,
    upper_frac: f32,
    lip_raise: f32,
    pout: f32,
    lip_upper: f32,
    lip_lower: f32,
}

impl MouthShape {
    fn new(spec: &FaceSpec) -> MouthShape {
        let id = &spec.identity;
        let ex = &spec.expression;
        let press = ex.lip_press;
        MouthShape {
            cx: spec.pose.yaw * 0.09,
            half_width: id.mouth_width * ex.mouth_width,
            y: id.mouth_y + ex.jaw_drop * 0.05,
            curve: ex.mouth_curve,
            asym: ex.mouth_asym,
            open_h: ex.mouth_open * 0.3,
            exponent: 0.2 + 0.4 * ex.mouth_round,
            upper_frac: 0.5 - 0.32 * ex.mouth_curve.max(0.0),
            lip_raise: ex.upper_lip_raise,
            pout: ex.lip_pout,
            lip_upper: id.lip_thickness * 0.8 * (1.0 - 0.7 * press) * (1.0 - 0.3 * ex.mouth_open),
            lip_lower: id.lip_thickness
                * (1.1 - 0.65 * press + 0.5 * ex.lip_pout)
                * (1.0 - 0.3 * ex.mouth_open),
        }
    }

    /// Mid line, upper inner edge and lower inner edge at `t`.
    fn curves(&self, t: f32) -> (f32, f32, f32) {
        let t = t.clamp(-1.0, 1.0);
        let t2 = t * t;
        let frown_arch = if self.curve < 0.0 { 0.7 } else { 0.0 };
        // Corners up for a smile, down for a frown (a frown is more of an arch).
        let amp = if self.curve > 0.0 { 0.1 } else { 0.085 };
        let mid = self.y
            - self.curve * amp * (t2 * (1.0 - frown_arch) + t.abs() * frown_arch)
            - self.asym * 0.04 * t
            - self.pout * 0.025 * (1.0 - t2);
        let p = (1.0 - t2).max(0.0).powf(self.exponent);
        let raise = self.lip_raise
            * 0.06
            * (1.0 - t2).max(0.0).sqrt()
            * (1.0 + 0.8 * self.asym.clamp(-1.0, 1.0) * t);
        let upper = mid - self.open_h * p * self.upper_frac - raise;
        let lower = mid + self.open_h * p * (1.0 - self.upper_frac);
        (mid, upper, lower)
    }
}

fn draw_mouth(canvas: &mut Canvas, spec: &FaceSpec, l: &Layout) {
    let id = &spec.identity;
    let ex = &spec.expression;
    let skin = l.skin;
    let m = MouthShape::new(spec);
    let hw = m.half_width;
    let bbox = [
        m.cx - hw - 0.06,
        m.y - 0.2,
        m.cx + hw + 0.06,
        m.y + m.open_h + 0.12,
    ];
    // Nasolabial folds, from the nose wings to beyond the mouth corners.
    let fold = 0.1 + 0.55 * ex.cheek_raise + 0.3 * ex.upper_lip_raise;
    for side in [-1.0f32, 1.0] {
        let (cmid, _, _) = m.curves(side);
        let start = (
            l.nose_dx + side * (id.nose_width + 0.035),
            id.nose_tip - 0.01,
        );
        let end = (m.cx + side * (hw + 0.045), cmid + 0.05);
        let ctrl = (
            side * (start.0.abs().max(end.0.abs()) + 0.04) + m.cx,
            (start.1 + end.1) * 0.5,
        );
        let op = fold * (1.0 + 0.6 * ex.upper_lip_raise * ex.mouth_asym * side).max(0.2);
        let mut p = [(0.0, 0.0, 0.0); 7];
        bezier_points(start, ctrl, end, 0.01, 0.006, 0.004, &mut p);
        canvas.paint(stroke_bbox(&p), op.min(0.8), 0.02, |u, v| {
            (sd_stroke((u, v), &p).0, skin * 0.5)
        });
    }
    // Shadow under the lower lip.
    let (_, _, low0) = m.curves(0.0);
    let sy = low0 + m.lip_lower + 0.035;
    canvas.paint(
        [m.cx - hw, sy - 0.05, m.cx + hw, sy + 0.05],
        0.3,
        0.03,
        |u, v| (sd_ellipse(u - m.cx, v - sy, hw * 0.45, 0.014), skin * 0.55),
    );
    // Lips.
    let lip = skin * id.lip_tone;
    canvas.paint(bbox, 1.0, 0.0, |u, v| {
        let t = (u - m.cx) / hw;
        let (_, up, lo) = m.curves(t);
        let s = (1.0 - t * t).max(0.0).sqrt();
        let d = (up - m.lip_upper * s - v)
            .max(v - lo - m.lip_lower * s)
            .max((u - m.cx).abs() - hw);
        (d, lip)
    });
    // Where the lips meet.
    let line = skin * 0.28;
    let press = ex.lip_press;
    canvas.paint(bbox, 0.9, 0.0, |u, v| {
        let t = (u - m.cx) / hw;
        let (_, up, lo) = m.curves(t);
        let mid = (up + lo) * 0.5;
        let th = 0.01 * (1.0 - 0.4 * t * t) + 0.004 * press;
        let d = ((v - mid).abs() - th).max((u - m.cx).abs() - hw * 1.02);
        (d, line)
    });
    // Corner dimples.
    for side in [-1.0f32, 1.0] {
        let (cy, _, _) = m.curves(side);
        let cx = m.cx + side * hw;
        canvas.paint(
            [cx - 0.05, cy - 0.05, cx + 0.05, cy + 0.05],
            0.3 + 0.3 * ex.mouth_curve.abs(),
            0.02,
            |u, v| {
                (
                    ((u - cx).powi(2) + (v - cy).powi(2)).sqrt() - 0.012,
                    skin * 0.4,
                )
            },
        );
    }
    if m.open_h < 0.005 && m.lip_raise < 0.05 {
        return;
    }
    // The open mouth: dark inside, teeth at the top and bottom.
    let cavity = 0.06 + 0.08 * skin;
    let inside = |u: f32, v: f32| {
        let t = (u - m.cx) / hw;
        let (_, up, lo) = m.curves(t);
        (
            (up - v).max(v - lo).max((u - m.cx).abs() - hw * 0.98),
            up,
            lo,
            t,
        )
    };
    canvas.paint(bbox, 1.0, 0.0, |u, v| (inside(u, v).0, cavity));
    let teeth_tone = (0.55 + 0.35 * skin).min(0.95);
    if ex.teeth > 0.02 {
        let amount = ex.teeth;
        canvas.paint(bbox, 1.0, 0.0, |u, v| {
            let (d, up, lo, t) = inside(u, v);
            let h = ((lo - up) * 0.55).min(0.05) * amount;
            let d_teeth = (v - up - h).max(d).max(t.abs() - 0.82);
            (d_teeth, teeth_tone)
        });
    }
    if ex.lower_teeth > 0.02 {
        let amount = ex.lower_teeth;
        canvas.paint(bbox, 1.0, 0.0, |u, v| {
            let (d, up, lo, t) = inside(u, v);
            let h = ((lo - up) * 0.35).min(0.035) * amount;
            let d_teeth = (lo - h - v).max(d).max(t.abs() - 0.7);
            (d_teeth, teeth_tone * 0.9)
        });
    }
}

fn draw_eye(canvas: &mut Canvas, spec: &FaceSpec, l: &Layout, side: f32) {
    let id = &spec.identity;
    let ex = &spec.expression;
    let skin = l.skin;
    let cx = side * id.eye_spacing + l.feature_dx;
    let cy = id.eye_y;
    let hw = id.eye_size;
    let up_h = hw * 0.4 * ex.eye_open;
    let lo_h = hw * 0.3 * (1.0 - 0.6 * ex.lower_lid_raise);
    // The lower lid's curve flattens (and rises) when pushed up.
    let lo_y = cy - 0.012 * ex.lower_lid_raise;
    let upper = move |u: f32| {
        let q = ((u - cx) / hw).clamp(-1.0, 1.0);
        // Peak slightly towards the outer corner in a relaxed eye.
        let skew = 1.0 + 0.15 * q * side;
        cy - up_h * (1.0 - q * q).max(0.0).powf(0.75) * skew
    };
    let lower = move |u: f32| {
        let q = ((u - cx) / hw).clamp(-1.0, 1.0);
        lo_y + lo_h * (1.0 - q * q).max(0.0).powf(0.9)
    };
    let almond = move |u: f32, v: f32| (upper(u) - v).max(v - lower(u)).max((u - cx).abs() - hw);
    let bbox = [
        cx - hw * 1.3,
        cy - up_h - 0.06,
        cx + hw * 1.3,
        cy + lo_h + 0.06,
    ];
    // Sclera.
    let sclera = (skin * 0.35 + 0.6).min(0.95);
    canvas.paint(bbox, 1.0, 0.0, |u, v| (almond(u, v), sclera));
    // Iris and pupil, clipped by the lids.
    let ri = hw * 0.5;
    let ix = cx + spec.gaze.0 * hw * 0.35;
    let iy = cy + 0.008 + spec.gaze.1 * hw * 0.12;
    let iris = id.iris_tone;
    canvas.paint(bbox, 1.0, 0.0, |u, v| {
        let d = ((u - ix).powi(2) + (v - iy).powi(2)).sqrt() - ri;
        (d.max(almond(u, v)), iris)
    });
    canvas.paint(bbox, 1.0, 0.0, |u, v| {
        let d = ((u - ix).powi(2) + (v - iy).powi(2)).sqrt() - ri * 0.45;
        (d.max(almond(u, v)), iris * 0.3)
    });
    // Upper lid line with lashes, running a little past the outer corner.
    let lash = 0.06 + 0.1 * skin * 0.5;
    let mut pts = [(0.0, 0.0, 0.0); 9];
    for (i, p) in pts.iter_mut().enumerate() {
        let q = -1.0 + 2.0 * i as f32 / 8.0;
        let u = cx + q * hw;
        let r = 0.017 + 0.01 * (1.0 - q * q) * ex.eye_open.min(1.0);
        *p = (u, upper(u) - 0.004, r);
    }
    // Wing at the outer corner.
    let outer = if side > 0.0 { 8 } else { 0 };
    pts[outer].0 += side * 0.012;
    canvas.paint(stroke_bbox(&pts), 0.95, 0.0, |u, v| {
        (sd_stroke((u, v), &pts).0, lash)
    });
    // Lower lid, fainter.
    let mut low = [(0.0, 0.0, 0.0); 7];
    for (i, p) in low.iter_mut().enumerate() {
        let q = -0.95 + 1.9 * i as f32 / 6.0;
        let u = cx + q * hw;
        *p = (u, lower(u) + 0.004, 0.008);
    }
    canvas.paint(stroke_bbox(&low), 0.45, 0.0, |u, v| {
        (sd_stroke((u, v), &low).0, skin * 0.45)
    });
    // Lid crease above a relaxed eye; it disappears when the eye opens wide.
    let crease = (1.25 - ex.eye_open).clamp(0.0, 0.6) * 0.5;
    if crease > 0.0 {
        let mut c = [(0.0, 0.0, 0.0); 7];
        for (i, p) in c.iter_mut().enumerate() {
            let q = -0.8 + 1.6 * i as f32 / 6.0;
            let u = cx + q * hw;
            let y = cy - hw * 0.4 - 0.03 * (1.0 - q * q) - 0.012;
            *p = (u, y, 0.007);
        }
        canvas.paint(stroke_bbox(&c), crease, 0.01, |u, v| {
            (sd_stroke((u, v), &c).0, skin * 0.45)
        });
    }
    // Bulge below a squinting eye.
    if ex.lower_lid_raise > 0.05 {
        let mut c = [(0.0, 0.0, 0.0); 7];
        for (i, p) in c.iter_mut().enumerate() {
            let q = -0.9 + 1.8 * i as f32 / 6.0;
            let u = cx + q * hw;
            *p = (u, lower(u) + 0.045 + 0.01 * (1.0 - q * q), 0.008);
        }
        canvas.paint(stroke_bbox(&c), 0.45 * ex.lower_lid_raise, 0.015, |u, v| {
            (sd_stroke((u, v), &c).0, skin * 0.5)
        });
    }
}

fn draw_brows(canvas: &mut Canvas, spec: &FaceSpec, l: &Layout) {
    let id = &spec.identity;
    let ex = &spec.expression;
    let base = l.brow_base - ex.brow_height * 0.085;
    let tone = id.brow_tone;
    let mut inner_ys = [0.0f32; 2];
    for (k, side) in [-1.0f32, 1.0].into_iter().enumerate() {
        let xi =
            side * (id.eye_spacing - id.eye_size * 0.9 - ex.brow_furrow * 0.025) + l.feature_dx;
        let xo = side * (id.eye_spacing + id.eye_size * 1.25) + l.feature_dx;
        let yi = base + ex.brow_angle * 0.065 - ex.brow_inner_raise * 0.04;
        let yo = base - ex.brow_angle * 0.025 + 0.02 + ex.brow_inner_raise * 0.012;
        inner_ys[k] = yi;
        let f = 0.5 - 0.2 * ex.brow_inner_raise;
        let arch = id.brow_arch + ex.brow_height.max(0.0) * 0.03;
        let ctrl = (
            xi + (xo - xi) * f,
            yi + (yo - yi) * f - arch - 0.01 + ex.brow_inner_raise * 0.015,
        );
        let mut pts = [(0.0, 0.0, 0.0); 9];
        let r = id.brow_thickness;
        bezier_points(
            (xi, yi),
            ctrl,
            (xo, yo),
            r * 1.05,
            r * 0.55,
            r * 0.15,
            &mut pts,
        );
        canvas.paint(stroke_bbox(&pts), 0.92, 0.0, |u, v| {
            (sd_stroke((u, v), &pts).0, tone)
        });
    }
    // Vertical furrows between the brows.
    if ex.brow_furrow > 0.05 {
        let skin = l.skin;
        let y0 = inner_ys[0].min(inner_ys[1]) - 0.01;
        for side in [-1.0f32, 1.0] {
            let x = l.feature_dx + side * 0.035;
            let (a, b) = ((x, y0), (x - side * 0.008, y0 + 0.09));
            canvas.paint(
                [x - 0.03, y0 - 0.03, x + 0.03, y0 + 0.12],
                0.55 * ex.brow_furrow,
                0.014,
                |u, v| (segment((u, v), a, b).0 - 0.009, skin * 0.45),
            );
        }
    }
}

fn draw_hair_front(canvas: &mut Canvas, spec: &FaceSpec, l: &Layout) {
    let id = &spec.identity;
    let ex = &spec.expression;
    let (hw, hh, cy) = (l.hw + 0.045, l.hh + 0.06, l.cranium_cy);
    // Keep the forehead above the highest brow position free.
    let brow_top = l.brow_base - 0.085 * ex.brow_height.max(0.0) - 0.1;
    let (line, tone, opacity, side_drop) = match id.hair_style {
        HairStyle::Bald => (
            id.hairline - 0.15,
            id.skin * 0.55 + id.hair_tone * 0.2,
            0.45,
            3.0,
        ),
        HairStyle::Short => (id.hairline, id.hair_tone, 1.0, 4.5),
        HairStyle::Fringe => ((id.hairline + 0.2).min(brow_top), id.hair_tone, 1.0, 2.5),
        HairStyle::Long => (id.hairline, id.hair_tone, 1.0, 6.0),
    };
    let part = id.hair_part * 0.06;
    let fringe = id.hair_style == HairStyle::Fringe;
    let long = id.hair_style == HairStyle::Long;
    canvas.paint([-hw, cy - hh, hw, 0.7], opacity, 0.0, |u, v| {
        let d1 = sd_ellipse(u, v - cy, hw, hh);
        let side = (u.abs() - 0.3).max(0.0);
        let mut hl = line + side_drop * side * side + part * u;
        if fringe {
            hl += 0.012 * (u * 21.0).sin();
        }
        if long {
            // Long hair covers the sides of the face down to the jaw.
            let edge = (u.abs() - (l.hw - 0.09)).max(0.0);
            hl += edge * 8.0;
        }
        let d2 = (v - hl) * 0.8;
        (d1.max(d2), tone)
    });
}

fn draw_glasses(canvas: &mut Canvas, spec: &FaceSpec, l: &Layout) {
    let id = &spec.identity;
    let tone = 0.08;
    let (bx, by) = (id.eye_size * 1.4, id.eye_size * 0.95);
    for side in [-1.0f32, 1.0] {
        let cx = side * id.eye_spacing + l.feature_dx;
        let cy = id.eye_y + 0.015;
        canvas.paint(
            [
                cx - bx - 0.02,
                cy - by - 0.02,
                cx + bx + 0.02,
                cy + by + 0.02,
            ],
            0.85,
            0.0,
            |u, v| {
                (
                    sd_round_box(u - cx, v - cy, bx, by, 0.05).abs() - 0.011,
                    tone,
                )
            },
        );
        let a = (cx + side * bx, cy - by * 0.4);
        let b = (side * (l.hw - 0.02), cy - by * 0.5);
        canvas.paint(
            [
                a.0.min(b.0) - 0.02,
                a.1 - 0.03,
                a.0.max(b.0) + 0.02,
                a.1 + 0.03,
            ],
            0.85,
            0.0,
            |u, v| (segment((u, v), a, b).0 - 0.01, tone),
        );
    }
    let a = (-(id.eye_spacing - bx) + l.feature_dx, id.eye_y - 0.02);
    let b = (id.eye_spacing - bx + l.feature_dx, id.eye_y - 0.02);
    canvas.paint(
        [a.0 - 0.02, a.1 - 0.04, b.0 + 0.02, a.1 + 0.02],
        0.85,
        0.0,
        |u, v| {
            let mid = (0.0 + l.feature_dx, a.1 - 0.02);
            (
                segment((u, v), a, mid).0.min(segment((u, v), mid, b).0) - 0.01,
                tone,
            )
        },
    );
}

/// How much a crop magnifies face units: `[-1/CROP_ZOOM, 1/CROP_ZOOM]` fills the crop.
pub(crate) const CROP_ZOOM: f32 = 1.15;

/// The map from face units to the pixels of a `size` x `size` crop under `pose`.
pub(crate) fn crop_transform(size: f32, pose: &Pose) -> Affine {
    let half = size * 0.5;
    Affine::similarity(
        half * pose.scale * CROP_ZOOM,
        pose.roll,
        half + pose.dx * half,
        half + pose.dy * half,
    )
}

/// Lighting, contrast, blur and noise, applied after drawing.
pub(crate) fn apply_capture<R: Rng + ?Sized>(canvas: &mut Canvas, capture: &Capture, rng: &mut R) {
    let (s, c) = capture.light_angle.sin_cos();
    let k = capture.light_strength;
    let gain = capture.contrast;
    let offset = capture.brightness;
    canvas.map_pixels(|v, x, y| {
        let lit = v * (1.0 + k * (x * c + y * s));
        (lit - 0.5) * gain + 0.5 + offset
    });
    let sigma_px = capture.blur / canvas.px;
    canvas.blur(sigma_px);
    canvas.add_noise(capture.noise, rng);
}
