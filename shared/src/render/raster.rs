//! The rasteriser under the face renderer: a float canvas with an alpha channel, painted with
//! signed-distance shapes given in face units, plus blur and noise.
//!
//! Every shape is a closure that returns, for a point `(u, v)` in face units, its signed
//! distance to the shape's edge (negative inside) and the grey value to paint there. Coverage
//! comes from the distance, so edges are anti-aliased at any resolution without supersampling.

use rand::Rng;

/// A 2-D affine map `(x, y) -> (a x + b y + c, d x + e y + f)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Affine {
    a: f32,
    b: f32,
    c: f32,
    d: f32,
    e: f32,
    f: f32,
}

impl Affine {
    /// Rotation by `angle` radians and uniform `scale`, then translation by `(tx, ty)`.
    pub(crate) fn similarity(scale: f32, angle: f32, tx: f32, ty: f32) -> Affine {
        let (s, c) = angle.sin_cos();
        Affine {
            a: scale * c,
            b: -scale * s,
            c: tx,
            d: scale * s,
            e: scale * c,
            f: ty,
        }
    }

    pub(crate) fn apply(&self, x: f32, y: f32) -> (f32, f32) {
        (
            self.a * x + self.b * y + self.c,
            self.d * x + self.e * y + self.f,
        )
    }

    /// The inverse map; a degenerate map inverts to the identity.
    pub(crate) fn inverse(&self) -> Affine {
        let det = self.a * self.e - self.b * self.d;
        if det.abs() < 1e-12 || !det.is_finite() {
            return Affine::similarity(1.0, 0.0, 0.0, 0.0);
        }
        let inv = 1.0 / det;
        let a = self.e * inv;
        let b = -self.b * inv;
        let d = -self.d * inv;
        let e = self.a * inv;
        Affine {
            a,
            b,
            c: -(a * self.c + b * self.f),
            d,
            e,
            f: -(d * self.c + e * self.f),
        }
    }

    /// The length one unit of the source space has in the target space.
    pub(crate) fn scale(&self) -> f32 {
        (self.a * self.e - self.b * self.d).abs().sqrt()
    }
}

/// An axis-aligned box in face units: `[u0, v0, u1, v1]`.
pub(crate) type BBox = [f32; 4];

/// A grey canvas with premultiplied value and alpha, addressed in face units.
pub(crate) struct Canvas {
    pub(crate) width: usize,
    pub(crate) height: usize,
    /// Premultiplied grey value, row-major.
    pub(crate) value: Vec<f32>,
    /// Coverage, row-major.
    pub(crate) alpha: Vec<f32>,
    to_face: Affine,
    to_px: Affine,
    /// Face units per pixel.
    pub(crate) px: f32,
}

impl Canvas {
    /// An empty (transparent) canvas; `face_to_px` maps face units to pixel coordinates
    /// (pixel `(i, j)` covers `[i, i+1) x [j, j+1)`).
    pub(crate) fn new(width: usize, height: usize, face_to_px: Affine) -> Canvas {
        let n = width * height;
        let scale = face_to_px.scale();
        Canvas {
            width,
            height,
            value: vec![0.0; n],
            alpha: vec![0.0; n],
            to_face: face_to_px.inverse(),
            to_px: face_to_px,
            px: if scale > 0.0 { 1.0 / scale } else { 1.0 },
        }
    }

    /// Fills the whole canvas with an opaque value.
    pub(crate) fn fill(&mut self, value: f32) {
        self.value.fill(value);
        self.alpha.fill(1.0);
    }

    /// Pixel range `[x0, x1) x [y0, y1)` covering a face-unit box, clipped to the canvas.
    fn pixel_range(&self, bbox: BBox) -> Option<(usize, usize, usize, usize)> {
        let corners = [
            self.to_px.apply(bbox[0], bbox[1]),
            self.to_px.apply(bbox[2], bbox[1]),
            self.to_px.apply(bbox[0], bbox[3]),
            self.to_px.apply(bbox[2], bbox[3]),
        ];
        let mut lo = (f32::INFINITY, f32::INFINITY);
        let mut hi = (f32::NEG_INFINITY, f32::NEG_INFINITY);
        for (x, y) in corners {
            lo = (lo.0.min(x), lo.1.min(y));
            hi = (hi.0.max(x), hi.1.max(y));
        }
        if !(lo.0.is_finite() && lo.1.is_finite() && hi.0.is_finite() && hi.1.is_finite()) {
            return None;
        }
        let x0 = (lo.0 - 1.0).floor().max(0.0) as usize;
        let y0 = (lo.1 - 1.0).floor().max(0.0) as usize;
        let x1 = ((hi.0 + 1.0).ceil().max(0.0) as usize).min(self.width);
        let y1 = ((hi.1 + 1.0).ceil().max(0.0) as usize).min(self.height);
        (x0 < x1 && y0 < y1).then_some((x0, y0, x1, y1))
    }

    /// Paints a shape over the canvas ("over" compositing).
    ///
    /// `shape(u, v)` returns `(signed distance in face units, value)`. The edge is
    /// anti-aliased over one pixel, or over `feather` face units if that is wider (soft
    /// shapes such as shadows). Only pixels inside `bbox` (face units, grown by `feather`) are
    /// visited.
    pub(crate) fn paint<F>(&mut self, bbox: BBox, opacity: f32, feather: f32, mut shape: F)
    where
        F: FnMut(f32, f32) -> (f32, f32),
    {
        if opacity <= 0.0 {
            return;
        }
        let opacity = opacity.min(1.0);
        let grow = feather.max(self.px);
        let bbox = [
            bbox[0] - grow,
            bbox[1] - grow,
            bbox[2] + grow,
            bbox[3] + grow,
        ];
        let Some((x0, y0, x1, y1)) = self.pixel_range(bbox) else {
            return;
        };
        let edge = feather.max(self.px);
        let inv_edge = 1.0 / edge;
        let (du_dx, dv_dx) = {
            let (u0, v0) = self.to_face.apply(0.0, 0.0);
            let (u1, v1) = self.to_face.apply(1.0, 0.0);
            (u1 - u0, v1 - v0)
        };
        for y in y0..y1 {
            let (mut u, mut v) = self.to_face.apply(x0 as f32 + 0.5, y as f32 + 0.5);
            let row = y * self.width;
            for x in x0..x1 {
                let (d, c) = shape(u, v);
                u += du_dx;
                v += dv_dx;
                let t = 0.5 - d * inv_edge;
                if t <= 0.0 {
                    continue;
                }
                let cov = if feather > self.px {
                    // Smooth falloff for soft shapes.
                    let s = t.min(1.0);
                    s * s * (3.0 - 2.0 * s)
                } else {
                    t.min(1.0)
                };
                let a = cov * opacity;
                let i = row + x;
                self.value[i] += (c - self.value[i]) * a;
                self.alpha[i] += (1.0 - self.alpha[i]) * a;
            }
        }
    }

    /// Replaces each covered pixel's (un-premultiplied) value by `f(value, x, y)`, with `x`,
    /// `y` in `[-1, 1]` across the canvas.
    pub(crate) fn map_pixels(&mut self, mut f: impl FnMut(f32, f32, f32) -> f32) {
        let sx = 2.0 / self.width.max(1) as f32;
        let sy = 2.0 / self.height.max(1) as f32;
        for y in 0..self.height {
            let ny = (y as f32 + 0.5) * sy - 1.0;
            for x in 0..self.width {
                let nx = (x as f32 + 0.5) * sx - 1.0;
                let i = y * self.width + x;
                let a = self.alpha[i];
                if a > 1e-6 {
                    self.value[i] = f(self.value[i] / a, nx, ny) * a;
                }
            }
        }
    }

    /// Gaussian blur of value and alpha with standard deviation `sigma` pixels.
    pub(crate) fn blur(&mut self, sigma: f32) {
        if sigma.is_nan() || sigma <= 0.05 || self.width == 0 || self.height == 0 {
            return;
        }
        let kernel = gaussian_kernel(sigma);
        let mut tmp = vec![0.0; self.value.len()];
        blur_plane(&mut self.value, &mut tmp, self.width, self.height, &kernel);
        blur_plane(&mut self.alpha, &mut tmp, self.width, self.height, &kernel);
    }

    /// Adds zero-mean Gaussian noise of standard deviation `sigma` to the value.
    pub(crate) fn add_noise<R: Rng + ?Sized>(&mut self, sigma: f32, rng: &mut R) {
        if sigma <= 0.0 {
            return;
        }
        // An approximately normal variate from four 16-bit uniforms (Irwin-Hall), which is
        // much cheaper per pixel than Box-Muller.
        const SCALE: f32 = 1.732_050_8 / 65_536.0;
        for (v, a) in self.value.iter_mut().zip(&self.alpha) {
            let bits: u64 = rng.random();
            let sum =
                (bits & 0xffff) + ((bits >> 16) & 0xffff) + ((bits >> 32) & 0xffff) + (bits >> 48);
            let n = (sum as f32 - 2.0 * 65_535.0) * SCALE;
            *v += n * sigma * a;
        }
    }
}

/// A normalised 1-D Gaussian kernel of radius `ceil(3 sigma)`.
pub(crate) fn gaussian_kernel(sigma: f32) -> Vec<f32> {
    let radius = (3.0 * sigma).ceil().clamp(1.0, 64.0) as usize;
    let mut k: Vec<f32> = (0..=2 * radius)
        .map(|i| {
            let x = i as f32 - radius as f32;
            (-x * x / (2.0 * sigma * sigma)).exp()
        })
        .collect();
    let sum: f32 = k.iter().sum();
    for w in &mut k {
        *w /= sum;
    }
    k
}

/// Separable blur of one plane in place, clamping at the borders; `tmp` is scratch space of
/// the same size.
pub(crate) fn blur_plane(plane: &mut [f32], tmp: &mut [f32], w: usize, h: usize, k: &[f32]) {
    let r = k.len() / 2;
    // Horizontal pass: plane -> tmp.
    for y in 0..h {
        let row = &plane[y * w..(y + 1) * w];
        let out = &mut tmp[y * w..(y + 1) * w];
        for (x, o) in out.iter_mut().enumerate() {
            *o = if x >= r && x + r < w {
                row[x - r..=x + r].iter().zip(k).map(|(a, b)| a * b).sum()
            } else {
                k.iter()
                    .enumerate()
                    .map(|(j, kw)| row[(x + j).saturating_sub(r).min(w - 1)] * kw)
                    .sum()
            };
        }
    }
    // Vertical pass: tmp -> plane, a row at a time.
    for y in 0..h {
        let out = &mut plane[y * w..(y + 1) * w];
        out.fill(0.0);
        for (j, kw) in k.iter().enumerate() {
            let yy = (y + j).saturating_sub(r).min(h - 1);
            let src = &tmp[yy * w..(yy + 1) * w];
            for (o, s) in out.iter_mut().zip(src) {
                *o += s * kw;
            }
        }
    }
}

/// A standard normal sample (Box-Muller).
pub(crate) fn gauss<R: Rng + ?Sized>(rng: &mut R) -> f32 {
    let u1: f32 = rng.random::<f32>().max(1e-7);
    let u2: f32 = rng.random::<f32>();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// A uniform sample in `[lo, hi)`.
pub(crate) fn uniform<R: Rng + ?Sized>(rng: &mut R, lo: f32, hi: f32) -> f32 {
    lo + (hi - lo) * rng.random::<f32>()
}

// ---- signed distance helpers (face units) ----

/// Approximate signed distance to an axis-aligned ellipse centred at the origin.
pub(crate) fn sd_ellipse(u: f32, v: f32, a: f32, b: f32) -> f32 {
    let (a, b) = (a.max(1e-4), b.max(1e-4));
    let k0 = ((u / a).powi(2) + (v / b).powi(2)).sqrt();
    let k1 = ((u / (a * a)).powi(2) + (v / (b * b)).powi(2)).sqrt();
    if k1 < 1e-9 {
        -a.min(b)
    } else {
        k0 * (k0 - 1.0) / k1
    }
}

/// Distance from `p` to the segment `a`-`b`, and the segment parameter of the closest point.
pub(crate) fn segment(p: (f32, f32), a: (f32, f32), b: (f32, f32)) -> (f32, f32) {
    let (pax, pay) = (p.0 - a.0, p.1 - a.1);
    let (bax, bay) = (b.0 - a.0, b.1 - a.1);
    let len2 = bax * bax + bay * bay;
    let t = if len2 > 0.0 {
        ((pax * bax + pay * bay) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (dx, dy) = (pax - bax * t, pay - bay * t);
    ((dx * dx + dy * dy).sqrt(), t)
}

/// Signed distance to an axis-aligned rounded box of half-size `(hx, hy)` and corner radius
/// `r`, centred at the origin.
pub(crate) fn sd_round_box(u: f32, v: f32, hx: f32, hy: f32, r: f32) -> f32 {
    let qx = u.abs() - hx + r;
    let qy = v.abs() - hy + r;
    let outside = (qx.max(0.0).powi(2) + qy.max(0.0).powi(2)).sqrt();
    outside + qx.max(qy).min(0.0) - r
}

/// Polynomial smooth minimum of two distances (blends shapes over width `k`).
pub(crate) fn smin(a: f32, b: f32, k: f32) -> f32 {
    let h = (0.5 + 0.5 * (b - a) / k).clamp(0.0, 1.0);
    b + (a - b) * h - k * h * (1.0 - h)
}

/// A stroke along a polyline with a radius that varies along it: the polyline's points with
/// their radii. Returns the signed distance of `p` to the stroke's outline and the position
/// (0..1) along the stroke of the closest point.
pub(crate) fn sd_stroke(p: (f32, f32), pts: &[(f32, f32, f32)]) -> (f32, f32) {
    let mut best = f32::INFINITY;
    let mut best_t = 0.0;
    let n = pts.len();
    if n == 0 {
        return (best, 0.0);
    }
    if n == 1 {
        let d = ((p.0 - pts[0].0).powi(2) + (p.1 - pts[0].1).powi(2)).sqrt() - pts[0].2;
        return (d, 0.0);
    }
    for i in 0..n - 1 {
        let (a, b) = (pts[i], pts[i + 1]);
        let (d, t) = segment(p, (a.0, a.1), (b.0, b.1));
        let d = d - (a.2 + (b.2 - a.2) * t);
        if d < best {
            best = d;
            best_t = (i as f32 + t) / (n - 1) as f32;
        }
    }
    (best, best_t)
}

/// Points along a quadratic Bezier curve `p0`-`c`-`p1` with radius interpolated from `r0` to
/// `r1` (with an optional bulge `rmid` added in the middle), written into `out`.
pub(crate) fn bezier_points(
    p0: (f32, f32),
    c: (f32, f32),
    p1: (f32, f32),
    r0: f32,
    r1: f32,
    rmid: f32,
    out: &mut [(f32, f32, f32)],
) {
    let n = out.len();
    for (i, o) in out.iter_mut().enumerate() {
        let t = if n > 1 {
            i as f32 / (n - 1) as f32
        } else {
            0.0
        };
        let mt = 1.0 - t;
        let x = mt * mt * p0.0 + 2.0 * mt * t * c.0 + t * t * p1.0;
        let y = mt * mt * p0.1 + 2.0 * mt * t * c.1 + t * t * p1.1;
        let r = r0 + (r1 - r0) * t + rmid * 4.0 * t * mt;
        *o = (x, y, r);
    }
}

/// The bounding box of stroke points, grown by their radii.
pub(crate) fn stroke_bbox(pts: &[(f32, f32, f32)]) -> BBox {
    let mut b = [
        f32::INFINITY,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NEG_INFINITY,
    ];
    for &(x, y, r) in pts {
        b[0] = b[0].min(x - r);
        b[1] = b[1].min(y - r);
        b[2] = b[2].max(x + r);
        b[3] = b[3].max(y + r);
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affine_inverse_round_trips() {
        let m = Affine::similarity(24.0, 0.2, 24.0, 20.0);
        let inv = m.inverse();
        let (x, y) = m.apply(0.3, -0.7);
        let (u, v) = inv.apply(x, y);
        assert!((u - 0.3).abs() < 1e-4 && (v + 0.7).abs() < 1e-4);
        assert!((m.scale() - 24.0).abs() < 1e-3);
    }

    #[test]
    fn ellipse_distance_sign() {
        assert!(sd_ellipse(0.0, 0.0, 1.0, 0.5) < 0.0);
        assert!(sd_ellipse(1.5, 0.0, 1.0, 0.5) > 0.0);
        assert!((sd_ellipse(2.0, 0.0, 1.0, 0.5) - 1.0).abs() < 1e-3);
    }

    #[test]
    fn blur_preserves_mean() {
        let mut plane: Vec<f32> = (0..64).map(|i| (i % 7) as f32).collect();
        let mean0: f32 = plane.iter().sum::<f32>() / 64.0;
        let mut tmp = vec![0.0; 64];
        blur_plane(&mut plane, &mut tmp, 8, 8, &gaussian_kernel(0.8));
        let mean1: f32 = plane.iter().sum::<f32>() / 64.0;
        assert!((mean0 - mean1).abs() < 0.3);
    }
}
