//! Facial expressions as continuous parameters, one prototype per emotion, and how a sample's
//! expression is drawn from its class: prototype, blended towards neutral by an intensity,
//! plus per-sample jitter.
//!
//! The prototypes follow the facial action units usually associated with each emotion, and
//! keep the confusions that real data has: fear and surprise both have wide eyes, raised brows
//! and an open mouth (fear: inner brows raised and drawn together, a wide stretched mouth;
//! surprise: high arched brows, a round dropped-jaw mouth); angry and disgust both lower the
//! brows (angry: a V with a furrow and pressed lips or a bared-teeth shout; disgust: a wrinkled
//! nose, a raised, asymmetric upper lip and a squint); sad differs from neutral by a down-turned
//! mouth, inner brows raised and heavy lids, which at low intensity is subtle.

use rand::Rng;

use super::raster::{gauss, uniform};
use crate::Emotion;

/// The continuous parameters of a facial expression. Zero (with `eye_open` and `mouth_width`
/// at 1) is the neutral face.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Expression {
    /// Mouth-corner curvature: -1 frown (corners down) .. +1 smile (corners up).
    pub mouth_curve: f32,
    /// Mouth opening: 0 closed .. 1 wide open.
    pub mouth_open: f32,
    /// Mouth width relative to the identity's: 1 neutral, 0.7 pursed .. 1.35 stretched.
    pub mouth_width: f32,
    /// Shape of an open mouth: 0 stretched, box-like .. 1 round 'O'.
    pub mouth_round: f32,
    /// Upper teeth shown in an open mouth, 0..1.
    pub teeth: f32,
    /// Lower teeth shown in an open mouth, 0..1.
    pub lower_teeth: f32,
    /// Upper-lip raise (disgust), 0..1.
    pub upper_lip_raise: f32,
    /// Mouth asymmetry: -1..1, which corner is raised and by how much.
    pub mouth_asym: f32,
    /// Lips pressed together and thinned (anger), 0..1.
    pub lip_press: f32,
    /// Lower lip pushed up and out (sadness pout), 0..1.
    pub lip_pout: f32,
    /// Brow height: -1 lowered .. +1 raised.
    pub brow_height: f32,
    /// Brow slant: -1 inner ends up ("/ \", sad, fear) .. +1 inner ends down ("\ /", angry).
    pub brow_angle: f32,
    /// Bend of the inner third of the brow upwards (sad, fear), 0..1.
    pub brow_inner_raise: f32,
    /// Brows drawn together with vertical furrow lines between them, 0..1.
    pub brow_furrow: f32,
    /// Upper-lid opening: 0 closed .. 1 neutral .. 1.6 wide.
    pub eye_open: f32,
    /// Lower lid pushed up (smile, squint), 0..1.
    pub lower_lid_raise: f32,
    /// Nose wrinkling (disgust), 0..1.
    pub nose_wrinkle: f32,
    /// Cheeks raised, with deeper nasolabial folds (smile), 0..1.
    pub cheek_raise: f32,
    /// Jaw dropped: the chin moves down (surprise), 0..1.
    pub jaw_drop: f32,
}

impl Default for Expression {
    fn default() -> Self {
        Expression::NEUTRAL
    }
}

/// Number of parameters in [`Expression`].
const N: usize = 19;

impl Expression {
    /// The neutral face.
    pub const NEUTRAL: Expression = Expression {
        mouth_curve: 0.0,
        mouth_open: 0.0,
        mouth_width: 1.0,
        mouth_round: 0.5,
        teeth: 0.0,
        lower_teeth: 0.0,
        upper_lip_raise: 0.0,
        mouth_asym: 0.0,
        lip_press: 0.0,
        lip_pout: 0.0,
        brow_height: 0.0,
        brow_angle: 0.0,
        brow_inner_raise: 0.0,
        brow_furrow: 0.0,
        eye_open: 1.0,
        lower_lid_raise: 0.0,
        nose_wrinkle: 0.0,
        cheek_raise: 0.0,
        jaw_drop: 0.0,
    };

    fn to_array(self) -> [f32; N] {
        [
            self.mouth_curve,
            self.mouth_open,
            self.mouth_width,
            self.mouth_round,
            self.teeth,
            self.lower_teeth,
            self.upper_lip_raise,
            self.mouth_asym,
            self.lip_press,
            self.lip_pout,
            self.brow_height,
            self.brow_angle,
            self.brow_inner_raise,
            self.brow_furrow,
            self.eye_open,
            self.lower_lid_raise,
            self.nose_wrinkle,
            self.cheek_raise,
            self.jaw_drop,
        ]
    }

    fn from_array(a: [f32; N]) -> Expression {
        Expression {
            mouth_curve: a[0],
            mouth_open: a[1],
            mouth_width: a[2],
            mouth_round: a[3],
            teeth: a[4],
            lower_teeth: a[5],
            upper_lip_raise: a[6],
            mouth_asym: a[7],
            lip_press: a[8],
            lip_pout: a[9],
            brow_height: a[10],
            brow_angle: a[11],
            brow_inner_raise: a[12],
            brow_furrow: a[13],
            eye_open: a[14],
            lower_lid_raise: a[15],
            nose_wrinkle: a[16],
            cheek_raise: a[17],
            jaw_drop: a[18],
        }
    }

    /// Valid range of each parameter, in `to_array` order.
    const RANGES: [(f32, f32); N] = [
        (-1.0, 1.0),  // mouth_curve
        (0.0, 1.0),   // mouth_open
        (0.65, 1.4),  // mouth_width
        (0.0, 1.0),   // mouth_round
        (0.0, 1.0),   // teeth
        (0.0, 1.0),   // lower_teeth
        (0.0, 1.0),   // upper_lip_raise
        (-1.0, 1.0),  // mouth_asym
        (0.0, 1.0),   // lip_press
        (0.0, 1.0),   // lip_pout
        (-1.0, 1.2),  // brow_height
        (-1.0, 1.0),  // brow_angle
        (0.0, 1.0),   // brow_inner_raise
        (0.0, 1.0),   // brow_furrow
        (0.05, 1.65), // eye_open
        (0.0, 1.0),   // lower_lid_raise
        (0.0, 1.0),   // nose_wrinkle
        (0.0, 1.0),   // cheek_raise
        (0.0, 1.0),   // jaw_drop
    ];

    /// Per-sample jitter (standard deviation) of each parameter, in `to_array` order.
    const JITTER: [f32; N] = [
        0.08, // mouth_curve
        0.05, // mouth_open
        0.06, // mouth_width
        0.10, // mouth_round
        0.10, // teeth
        0.10, // lower_teeth
        0.06, // upper_lip_raise
        0.08, // mouth_asym
        0.08, // lip_press
        0.06, // lip_pout
        0.10, // brow_height
        0.10, // brow_angle
        0.08, // brow_inner_raise
        0.08, // brow_furrow
        0.08, // eye_open
        0.06, // lower_lid_raise
        0.06, // nose_wrinkle
        0.08, // cheek_raise
        0.06, // jaw_drop
    ];

    /// Clamps every parameter to its valid range (NaN becomes the neutral value).
    pub fn clamped(self) -> Expression {
        let neutral = Expression::NEUTRAL.to_array();
        let mut a = self.to_array();
        for (i, x) in a.iter_mut().enumerate() {
            let (lo, hi) = Expression::RANGES[i];
            *x = if x.is_nan() {
                neutral[i]
            } else {
                x.clamp(lo, hi)
            };
        }
        Expression::from_array(a)
    }

    /// Linear blend: `self` at `t = 0`, `other` at `t = 1`.
    pub fn lerp(self, other: Expression, t: f32) -> Expression {
        let (a, b) = (self.to_array(), other.to_array());
        let mut out = [0.0; N];
        for i in 0..N {
            out[i] = a[i] + (b[i] - a[i]) * t;
        }
        Expression::from_array(out)
    }

    /// Adds `delta - NEUTRAL` of another expression (a resting-face offset) to this one.
    pub fn offset_by(self, delta: Expression) -> Expression {
        let (a, d, n) = (
            self.to_array(),
            delta.to_array(),
            Expression::NEUTRAL.to_array(),
        );
        let mut out = [0.0; N];
        for i in 0..N {
            out[i] = a[i] + d[i] - n[i];
        }
        Expression::from_array(out).clamped()
    }

    /// The full-intensity prototypes of an emotion. Some emotions have more than one (a smile
    /// with closed or open mouth, an angry glare or shout); the weights say how often each is
    /// used.
    pub fn prototypes(emotion: Emotion) -> &'static [(f32, Expression)] {
        match emotion {
            Emotion::Angry => &ANGRY,
            Emotion::Disgust => &DISGUST,
            Emotion::Fear => &FEAR,
            Emotion::Happy => &HAPPY,
            Emotion::Sad => &SAD,
            Emotion::Surprise => &SURPRISE,
            Emotion::Neutral => &NEUTRAL,
        }
    }

    /// The first (most common) full-intensity prototype of an emotion.
    pub fn prototype(emotion: Emotion) -> Expression {
        Expression::prototypes(emotion)
            .first()
            .map_or(Expression::NEUTRAL, |p| p.1)
    }

    /// An expression of `emotion` at `intensity` (0 = neutral, 1 = full prototype; clamped
    /// to 0..1), with one of the emotion's prototypes chosen at random and per-parameter
    /// jitter scaled by `jitter` (1 = the default amount).
    pub fn sample<R: Rng + ?Sized>(
        emotion: Emotion,
        intensity: f32,
        jitter: f32,
        rng: &mut R,
    ) -> Expression {
        let protos = Expression::prototypes(emotion);
        let total: f32 = protos.iter().map(|p| p.0).sum();
        let mut pick = rng.random::<f32>() * total;
        let mut proto = Expression::NEUTRAL;
        for &(w, p) in protos {
            proto = p;
            if pick < w {
                break;
            }
            pick -= w;
        }
        let intensity = if intensity.is_nan() {
            1.0
        } else {
            intensity.clamp(0.0, 1.0)
        };
        // Mouth-shape parameters are not "amounts", so they do not fade with intensity.
        let mut e = Expression::NEUTRAL.lerp(proto, intensity);
        e.mouth_round = proto.mouth_round;
        // Which side an asymmetric mouth favours is random.
        if rng.random::<bool>() {
            e.mouth_asym = -e.mouth_asym;
        }
        let jitter = if jitter.is_finite() {
            jitter.max(0.0)
        } else {
            1.0
        };
        let mut a = e.to_array();
        for (i, x) in a.iter_mut().enumerate() {
            *x += gauss(rng) * Expression::JITTER[i] * jitter;
        }
        // A little random asymmetry for everybody.
        a[7] += uniform(rng, -0.05, 0.05) * jitter;
        Expression::from_array(a).clamped()
    }
}

const N0: Expression = Expression::NEUTRAL;

static ANGRY: [(f32, Expression); 2] = [
    // Glare: lowered V brows, furrow, narrowed upper lids, pressed lips turned down.
    (
        0.65,
        Expression {
            mouth_curve: -0.35,
            mouth_width: 0.92,
            lip_press: 0.9,
            brow_height: -0.75,
            brow_angle: 0.95,
            brow_furrow: 0.9,
            eye_open: 0.72,
            lower_lid_raise: 0.3,
            mouth_round: 0.5,
            ..N0
        },
    ),
    // Shout: the same brows, a wide box-shaped open mouth baring teeth.
    (
        0.35,
        Expression {
            mouth_curve: -0.3,
            mouth_open: 0.55,
            mouth_width: 1.12,
            mouth_round: 0.0,
            teeth: 0.9,
            lower_teeth: 0.8,
            brow_height: -0.75,
            brow_angle: 0.95,
            brow_furrow: 0.9,
            eye_open: 0.85,
            lower_lid_raise: 0.2,
            ..N0
        },
    ),
];

static DISGUST: [(f32, Expression); 2] = [
    // Wrinkled nose, raised asymmetric upper lip, squint, lowered (not V) brows.
    (
        0.6,
        Expression {
            mouth_curve: -0.45,
            mouth_open: 0.12,
            mouth_width: 1.0,
            mouth_round: 0.2,
            teeth: 0.6,
            upper_lip_raise: 0.95,
            mouth_asym: 0.75,
            brow_height: -0.5,
            brow_angle: 0.15,
            brow_furrow: 0.2,
            eye_open: 0.55,
            lower_lid_raise: 0.65,
            nose_wrinkle: 1.0,
            cheek_raise: 0.45,
            ..N0
        },
    ),
    // Closed-mouth disgust: pursed, pushed-up lower lip, strong frown, wrinkled nose.
    (
        0.4,
        Expression {
            mouth_curve: -0.75,
            mouth_width: 0.85,
            upper_lip_raise: 0.6,
            lip_pout: 0.7,
            mouth_asym: 0.55,
            brow_height: -0.55,
            brow_angle: 0.15,
            brow_furrow: 0.3,
            eye_open: 0.55,
            lower_lid_raise: 0.6,
            nose_wrinkle: 0.95,
            cheek_raise: 0.35,
            ..N0
        },
    ),
];

static FEAR: [(f32, Expression); 1] = [
    // Raised and drawn-together brows with the inner ends up, wide eyes, a wide stretched
    // mouth with the corners pulled sideways and down, lower teeth showing.
    (
        1.0,
        Expression {
            mouth_curve: -0.3,
            mouth_open: 0.42,
            mouth_width: 1.28,
            mouth_round: 0.05,
            teeth: 0.35,
            lower_teeth: 0.8,
            brow_height: 0.55,
            brow_angle: -0.75,
            brow_inner_raise: 0.85,
            brow_furrow: 0.35,
            eye_open: 1.5,
            ..N0
        },
    ),
];

static HAPPY: [(f32, Expression); 2] = [
    // Open smile showing the upper teeth.
    (
        0.6,
        Expression {
            mouth_curve: 1.0,
            mouth_open: 0.6,
            mouth_width: 1.22,
            mouth_round: 0.3,
            teeth: 1.0,
            brow_height: 0.1,
            eye_open: 0.7,
            lower_lid_raise: 0.8,
            cheek_raise: 1.0,
            ..N0
        },
    ),
    // Closed-mouth smile.
    (
        0.4,
        Expression {
            mouth_curve: 1.0,
            mouth_width: 1.2,
            brow_height: 0.05,
            eye_open: 0.75,
            lower_lid_raise: 0.7,
            cheek_raise: 0.9,
            ..N0
        },
    ),
];

static SAD: [(f32, Expression); 1] = [
    // Inner brows up, heavy lids, corners down, lower lip pushed up.
    (
        1.0,
        Expression {
            mouth_curve: -0.8,
            mouth_width: 0.92,
            lip_pout: 0.55,
            brow_height: -0.05,
            brow_angle: -0.8,
            brow_inner_raise: 0.75,
            brow_furrow: 0.2,
            eye_open: 0.62,
            ..N0
        },
    ),
];

static SURPRISE: [(f32, Expression); 2] = [
    // High arched brows, very wide eyes, dropped jaw with a round mouth.
    (
        0.75,
        Expression {
            mouth_open: 0.85,
            mouth_width: 0.8,
            mouth_round: 1.0,
            teeth: 0.1,
            brow_height: 1.05,
            brow_angle: 0.0,
            eye_open: 1.55,
            jaw_drop: 0.85,
            ..N0
        },
    ),
    // Smaller round mouth.
    (
        0.25,
        Expression {
            mouth_open: 0.45,
            mouth_width: 0.72,
            mouth_round: 1.0,
            brow_height: 1.0,
            brow_angle: 0.05,
            eye_open: 1.5,
            jaw_drop: 0.4,
            ..N0
        },
    ),
];

static NEUTRAL: [(f32, Expression); 1] = [(1.0, N0)];

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn samples_stay_in_range() {
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(7);
        for e in Emotion::ALL {
            for _ in 0..50 {
                let x = Expression::sample(e, 1.0, 2.0, &mut rng);
                assert_eq!(x, x.clamped());
            }
        }
    }

    #[test]
    fn zero_intensity_is_near_neutral() {
        let mut rng = rand_pcg::Pcg64Mcg::seed_from_u64(1);
        let x = Expression::sample(Emotion::Happy, 0.0, 0.0, &mut rng);
        assert_eq!(x.mouth_curve, 0.0);
        assert_eq!(x.eye_open, 1.0);
    }
}
