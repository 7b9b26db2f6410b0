//! Per-batch augmentation and resizing on the training device.
//!
//! A batch of 48x48 floats becomes the model's input size in one resampling step: a random
//! affine transform (rotation, scale, shift, horizontal flip) through `affine_grid` +
//! `grid_sample` when augmenting, or the exact bilinear resize of the shared preprocessing
//! contract (`align_corners = false`, no antialias) when not. Brightness and contrast jitter
//! follow. The random parameters (a few numbers per image) come from a seeded Rust generator
//! passed in by the caller, so a run repeats exactly whatever else uses libtorch's global
//! generator.

use rand::Rng;
use tch::{Kind, Tensor};

/// How strongly to augment. [`Augment::none`] turns it off (evaluation, feature caching).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Augment {
    /// Probability of a horizontal flip.
    pub flip: f64,
    /// Largest rotation, degrees (uniform in +-).
    pub rotate_deg: f64,
    /// Largest relative scale change (uniform in 1 +- this).
    pub scale: f64,
    /// Largest shift as a fraction of the image side (uniform in +-).
    pub shift: f64,
    /// Largest brightness offset in 0..255 units (uniform in +-).
    pub brightness: f64,
    /// Largest relative contrast change (uniform in 1 +- this).
    pub contrast: f64,
}

impl Default for Augment {
    /// Moderate augmentation that keeps expressions intact.
    fn default() -> Self {
        Augment {
            flip: 0.5,
            rotate_deg: 10.0,
            scale: 0.1,
            shift: 0.08,
            brightness: 20.0,
            contrast: 0.2,
        }
    }
}

impl Augment {
    /// No augmentation.
    pub fn none() -> Augment {
        Augment {
            flip: 0.0,
            rotate_deg: 0.0,
            scale: 0.0,
            shift: 0.0,
            brightness: 0.0,
            contrast: 0.0,
        }
    }

    /// True when every knob is off.
    pub fn is_none(&self) -> bool {
        *self == Augment::none()
    }

    /// `x`: `[B, C, h, w]` floats in 0..255. Returns `[B, C, height, width]` in 0..255.
    pub fn apply<R: Rng + ?Sized>(
        &self,
        x: &Tensor,
        height: i64,
        width: i64,
        rng: &mut R,
    ) -> Tensor {
        let b = x.size()[0] as usize;
        let geometric =
            self.flip > 0.0 || self.rotate_deg > 0.0 || self.scale > 0.0 || self.shift > 0.0;
        let mut y = if geometric {
            self.warp(x, height, width, rng)
        } else {
            resize(x, height, width)
        };
        if self.brightness > 0.0 || self.contrast > 0.0 {
            let mut gain = Vec::with_capacity(b);
            let mut offset = Vec::with_capacity(b);
            for _ in 0..b {
                gain.push((1.0 + self.contrast * rng.random_range(-1.0..=1.0)) as f32);
                offset.push((self.brightness * rng.random_range(-1.0..=1.0)) as f32);
            }
            let per_image = |v: Vec<f32>| {
                Tensor::from_slice(&v)
                    .view([b as i64, 1, 1, 1])
                    .to_device(x.device())
            };
            let mean = y.mean_dim([1i64, 2, 3].as_slice(), true, Kind::Float);
            y = ((y - &mean) * per_image(gain) + mean + per_image(offset)).clamp(0.0, 255.0);
        }
        y
    }

    fn warp<R: Rng + ?Sized>(&self, x: &Tensor, height: i64, width: i64, rng: &mut R) -> Tensor {
        let size = x.size();
        let (b, c) = (size[0], size[1]);
        let mut theta = Vec::with_capacity(b as usize * 6);
        for _ in 0..b {
            let mut uniform = |range: f64| range * rng.random_range(-1.0..=1.0);
            let angle = uniform(self.rotate_deg.to_radians());
            let scale = 1.0 + uniform(self.scale);
            let (tx, ty) = (uniform(self.shift * 2.0), uniform(self.shift * 2.0));
            let flip = if rng.random_bool(self.flip.clamp(0.0, 1.0)) {
                -1.0
            } else {
                1.0
            };
            // Output -> input sampling matrix in normalised coordinates: rotate, scale, flip x.
            let (cos, sin) = (angle.cos() / scale, angle.sin() / scale);
            theta.extend([cos * flip, -sin, tx, sin * flip, cos, ty].map(|v| v as f32));
        }
        let theta = Tensor::from_slice(&theta)
            .view([b, 2, 3])
            .to_device(x.device());
        let grid = Tensor::affine_grid_generator(&theta, [b, c, height, width], false);
        // bilinear (0), border padding (1), align_corners = false
        x.grid_sampler(&grid, 0, 1, false)
    }
}

/// The contract's resize: bilinear, `align_corners = false`, no antialias.
pub fn resize(x: &Tensor, height: i64, width: i64) -> Tensor {
    let size = x.size();
    if size[2] == height && size[3] == width {
        return x.shallow_clone();
    }
    x.upsample_bilinear2d([height, width], false, None, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    use rand::SeedableRng;

    fn rng(seed: u64) -> rand_pcg::Pcg64Mcg {
        rand_pcg::Pcg64Mcg::seed_from_u64(seed)
    }

    #[test]
    fn no_augmentation_is_a_plain_resize() {
        let x = Tensor::arange(2 * 48 * 48, (Kind::Float, tch::Device::Cpu))
            .view([2, 1, 48, 48])
            .remainder(256);
        let y = Augment::none().apply(&x, 64, 64, &mut rng(0));
        assert_eq!(y.size(), vec![2, 1, 64, 64]);
        let same = Augment::none().apply(&x, 48, 48, &mut rng(0));
        assert_eq!(f64::try_from((same - &x).abs().max()).expect("scalar"), 0.0);
    }

    #[test]
    fn augmentation_is_random_bounded_and_seeded() {
        let x = Tensor::rand([4, 1, 48, 48], (Kind::Float, tch::Device::Cpu)) * 255.0;
        let mut r = rng(7);
        let a = Augment::default().apply(&x, 48, 48, &mut r);
        let c = Augment::default().apply(&x, 48, 48, &mut r);
        let b = Augment::default().apply(&x, 48, 48, &mut rng(7));
        assert_eq!(f64::try_from((&a - &b).abs().max()).expect("scalar"), 0.0);
        assert!(f64::try_from((&a - &c).abs().max()).expect("scalar") > 1.0);
        assert!(f64::try_from(a.min()).expect("scalar") >= 0.0);
        assert!(f64::try_from(a.max()).expect("scalar") <= 255.0);
    }

    #[test]
    fn a_certain_flip_mirrors_the_image() {
        let x = Tensor::arange(48, (Kind::Float, tch::Device::Cpu))
            .view([1, 1, 1, 48])
            .expand([1, 1, 48, 48], false)
            .contiguous();
        let flip_only = Augment {
            flip: 1.0,
            ..Augment::none()
        };
        let y = flip_only.apply(&x, 48, 48, &mut rng(1));
        let expected = x.flip([3]);
        let diff = f64::try_from((y - expected).abs().max()).expect("scalar");
        assert!(diff < 1e-3, "flip differs by {diff}");
    }
}
