//! Checks `preprocess` against the PyTorch-generated vectors in `testdata/preprocess/`.
//!
//! Tolerance: each vector states its own absolute tolerance (1e-4 for all current files); the
//! largest error seen is printed so a drift shows before it fails.

use std::path::PathBuf;

use emotion_shared::preprocess::{ColorOrder, FaceCrop, PixelFormat, PreprocessSpec, Preprocessor};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Vector {
    name: String,
    #[allow(dead_code)]
    description: String,
    #[allow(dead_code)]
    generator: String,
    spec: PreprocessSpec,
    input: Input,
    expected: Expected,
    tolerance: f32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    width: u32,
    height: u32,
    format: PixelFormat,
    pixels: Vec<u8>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    shape: [usize; 4],
    values: Vec<f32>,
}

fn vectors() -> Vec<(PathBuf, Vector)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/preprocess");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("testdata/preprocess exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("readable vector");
            let v: Vector =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, v)
        })
        .collect()
}

#[test]
fn matches_pytorch_vectors() {
    let all = vectors();
    assert!(
        all.len() >= 10,
        "expected the checked-in vectors, found {}",
        all.len()
    );
    let mut failures = Vec::new();
    for (path, v) in &all {
        v.spec.validate().expect("vector spec is valid");
        assert_eq!(v.spec.input_shape(), v.expected.shape, "{}", v.name);
        assert_eq!(v.expected.values.len(), v.spec.output_len(), "{}", v.name);
        let crop = FaceCrop::from_raw(
            v.input.width,
            v.input.height,
            v.input.format,
            &v.input.pixels,
        )
        .expect("vector input is consistent");
        let got = v.spec.preprocess(crop).expect("preprocess");
        let (worst_i, worst) = got
            .iter()
            .zip(&v.expected.values)
            .map(|(a, b)| (a - b).abs())
            .enumerate()
            .fold(
                (0, 0.0f32),
                |acc, (i, e)| if e > acc.1 { (i, e) } else { acc },
            );
        println!("{:<40} max abs error {worst:.3e}", v.name);
        if worst > v.tolerance || got.iter().any(|x| !x.is_finite()) {
            let [_, _, h, w] = v.expected.shape;
            let (c, y, x) = (worst_i / (h * w), worst_i / w % h, worst_i % w);
            failures.push(format!(
                "{}: max abs error {worst:e} > {} at [0, {c}, {y}, {x}]: got {} expected {}",
                path.display(),
                v.tolerance,
                got[worst_i],
                v.expected.values[worst_i]
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn vectors_cover_the_contract() {
    let all = vectors();
    let has = |f: &dyn Fn(&Vector) -> bool| all.iter().any(|(_, v)| f(v));
    for (fmt, color) in [
        (PixelFormat::Grey, ColorOrder::Grey),
        (PixelFormat::Grey, ColorOrder::Rgb),
        (PixelFormat::Grey, ColorOrder::Bgr),
        (PixelFormat::Rgb, ColorOrder::Grey),
        (PixelFormat::Rgb, ColorOrder::Rgb),
        (PixelFormat::Rgb, ColorOrder::Bgr),
    ] {
        assert!(
            has(&|v| v.input.format == fmt && v.spec.color == color),
            "no vector for {fmt:?} -> {color:?}"
        );
    }
    assert!(has(
        &|v| v.spec.width > v.input.width && v.spec.height > v.input.height
    ));
    assert!(has(
        &|v| v.spec.width < v.input.width && v.spec.height < v.input.height
    ));
    assert!(has(
        &|v| v.spec.width == v.input.width && v.spec.height != v.input.height
    ));
    assert!(has(
        &|v| v.spec.width != v.spec.height && v.input.width != v.input.height
    ));
}

#[test]
fn preprocessor_and_image_buffers_agree_with_raw_crops() {
    for (_, v) in vectors() {
        let crop = FaceCrop::from_raw(
            v.input.width,
            v.input.height,
            v.input.format,
            &v.input.pixels,
        )
        .expect("crop");
        let want = v.spec.preprocess(crop).expect("preprocess");
        let mut p = Preprocessor::new(v.spec.clone()).expect("valid");
        let mut out = vec![f32::NAN; v.spec.output_len()];
        // twice: the second run reuses the cached tables
        for _ in 0..2 {
            p.run_into(crop, &mut out).expect("run");
            assert_eq!(out, want, "{}", v.name);
        }
        let (w, h, px) = (v.input.width, v.input.height, v.input.pixels.clone());
        let via_image = match v.input.format {
            PixelFormat::Grey => {
                let img = image::GrayImage::from_raw(w, h, px).expect("grey buffer");
                v.spec.preprocess(&img)
            }
            PixelFormat::Rgb => {
                let img = image::RgbImage::from_raw(w, h, px).expect("rgb buffer");
                v.spec.preprocess(&img)
            }
        };
        assert_eq!(via_image.expect("preprocess"), want, "{}", v.name);
    }
}

/// Rough timing, for `cargo test --release -- --ignored --nocapture`.
#[test]
#[ignore = "timing only"]
fn preprocess_speed() {
    use std::time::Instant;
    let cases = [
        (PreprocessSpec::fer2013_grey48(), 120, 140, false),
        (PreprocessSpec::fer2013_grey48(), 120, 140, true),
        (PreprocessSpec::vggface2_resnet50(), 180, 200, true),
    ];
    for (spec, w, h, rgb) in cases {
        let grey = image::GrayImage::from_fn(w, h, |x, y| image::Luma([(x ^ y) as u8]));
        let color = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let mut p = Preprocessor::new(spec.clone()).expect("valid");
        let mut out = vec![0.0; spec.output_len()];
        let n = 2000;
        let t = Instant::now();
        for _ in 0..n {
            if rgb {
                p.run_into(&color, &mut out).expect("run");
            } else {
                p.run_into(&grey, &mut out).expect("run");
            }
        }
        let per = t.elapsed() / n;
        println!(
            "{w}x{h} {} -> {:?}: {per:?} per crop",
            if rgb { "rgb" } else { "grey" },
            spec.input_shape()
        );
    }
}
