//! The shared preprocessing contract ([`emotion_shared::preprocess`]) in libtorch tensor ops.
//!
//! Same steps and numbers as the edge's implementation: colour conversion (RGB to grey with
//! BT.601 luma, grey replicated to three channels, RGB reordered to BGR), bilinear resize with
//! `align_corners = false` and no antialias, then `(v * scale - mean[c]) / std[c]`. The test
//! vectors under `shared/testdata/preprocess/` prove both sides agree.

use emotion_shared::preprocess::{ColorOrder, PreprocessSpec};
use tch::{Kind, Tensor};

use crate::data::augment::{Augment, resize};

/// Converts `x` (`[B, 1 or 3, h, w]` floats in 0..255; three channels in R, G, B order) to the
/// colour layout of `spec` without resizing.
pub fn convert_color(x: &Tensor, spec: &PreprocessSpec) -> Tensor {
    let c_in = x.size()[1];
    match (c_in, spec.color) {
        (1, ColorOrder::Grey) => x.shallow_clone(),
        (1, ColorOrder::Rgb | ColorOrder::Bgr) => x.repeat([1, 3, 1, 1]),
        (_, ColorOrder::Grey) => {
            let r = x.narrow(1, 0, 1);
            let g = x.narrow(1, 1, 1);
            let b = x.narrow(1, 2, 1);
            r * 0.299 + g * 0.587 + b * 0.114
        }
        (_, ColorOrder::Rgb) => x.shallow_clone(),
        (_, ColorOrder::Bgr) => x.flip([1]),
    }
}

/// Normalises `x` (`[B, C, H, W]` in 0..255, channels already in the spec's order).
pub fn normalize(x: &Tensor, spec: &PreprocessSpec) -> Tensor {
    let device = x.device();
    let c = spec.mean.len() as i64;
    let mean = Tensor::from_slice(&spec.mean)
        .to_device(device)
        .view([1, c, 1, 1]);
    let std = Tensor::from_slice(&spec.std)
        .to_device(device)
        .view([1, c, 1, 1]);
    (x * f64::from(spec.scale) - mean) / std
}

/// The whole contract on a batch: colour, resize, normalise.
pub fn model_input(x: &Tensor, spec: &PreprocessSpec) -> Tensor {
    let x = convert_color(&x.to_kind(Kind::Float), spec);
    normalize(
        &resize(&x, i64::from(spec.height), i64::from(spec.width)),
        spec,
    )
}

/// Training input: colour, augmentation warp (which also resizes), normalise.
pub fn augmented_input<R: rand::Rng + ?Sized>(
    x: &Tensor,
    spec: &PreprocessSpec,
    augment: &Augment,
    rng: &mut R,
) -> Tensor {
    let x = convert_color(&x.to_kind(Kind::Float), spec);
    normalize(
        &augment.apply(&x, i64::from(spec.height), i64::from(spec.width), rng),
        spec,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[derive(serde::Deserialize)]
    struct Input {
        width: i64,
        height: i64,
        format: String,
        pixels: Vec<u8>,
    }

    #[derive(serde::Deserialize)]
    struct Expected {
        shape: Vec<i64>,
        values: Vec<f32>,
    }

    #[derive(serde::Deserialize)]
    struct Vector {
        name: String,
        spec: PreprocessSpec,
        input: Input,
        expected: Expected,
        tolerance: f64,
    }

    /// Every shared test vector, computed with libtorch here, matches the expected tensor that
    /// PyTorch produced when the vectors were generated.
    #[test]
    fn agrees_with_the_shared_test_vectors() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/preprocess");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).expect("test vector folder") {
            let path = entry.expect("entry").path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let v: Vector =
                serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("parse");
            let c = if v.input.format == "rgb" { 3 } else { 1 };
            let hwc = Tensor::from_slice(&v.input.pixels)
                .view([v.input.height, v.input.width, c])
                .permute([2, 0, 1])
                .unsqueeze(0);
            let out = model_input(&hwc, &v.spec);
            assert_eq!(out.size(), v.expected.shape, "{}", v.name);
            let expected = Tensor::from_slice(&v.expected.values).view(v.expected.shape.as_slice());
            let diff = f64::try_from((out - expected).abs().max()).expect("scalar");
            assert!(
                diff <= v.tolerance,
                "{}: max abs difference {diff} > {}",
                v.name,
                v.tolerance
            );
            checked += 1;
        }
        assert!(
            checked >= 5,
            "only {checked} test vectors found in {}",
            dir.display()
        );
    }
}
