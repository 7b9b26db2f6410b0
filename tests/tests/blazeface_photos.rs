//! The BlazeFace detector end to end on real photographs from registry packages: MediaPipe's
//! models (`.cache/blazeface/`, fetched by `scripts/bootstrap`) converted by
//! `emotion-train convert-detector`, then run by the edge's `[detect.blazeface]` on whole
//! frames of any size.
//!
//! Photos: scikit-image's data (in `.venv`): `astronaut.png` (one face), `coffee.png`,
//! `rocket.jpg` and `chelsea.png` (a cat) with none; and a 640x480 camera-like frame with the
//! six face chips of `host-trainer/testdata/dlib/chips/` (scikit-image's astronaut and the
//! `face-recognition` package's test photos) laid out in a grid: six faces where they were put.
//! And the 18 photos of `tests/photos/faces.json` (hand-drawn face boxes; photos fetched by
//! tests/photos/fetch_photos.sh): no false positives, and the faces of the portraits, the
//! astronaut and the cameraman found.

use std::path::{Path, PathBuf};
use std::process::Command;

use emotion_edge::detect::blazeface::{
    BlazeFaceModel, BlazeFaceVariant, Detection, LEFT_EYE, RIGHT_EYE,
};
use emotion_edge::detect::{self, BlazeFaceConfig, DetectConfig, DetectorKind};
use emotion_edge::geometry::FaceBox;
use emotion_tests::{bin_path, python, repo_root, run_ok};

fn tflite(name: &str) -> PathBuf {
    let path = repo_root().join(".cache/blazeface").join(name);
    assert!(
        path.exists(),
        "{} is missing: scripts/bootstrap fetches it (host-trainer/testdata/blazeface/fetch_models.sh)",
        path.display()
    );
    path
}

/// Converts the variant's model into `dir` and returns its path and sha256 (as printed).
fn convert(dir: &Path, variant: BlazeFaceVariant) -> (PathBuf, String) {
    let name = match variant {
        BlazeFaceVariant::Short => "face_detection_short_range",
        BlazeFaceVariant::Full => "face_detection_full_range",
    };
    let out = dir.join(format!("{name}.onnx"));
    let stdout = run_ok(
        Command::new(bin_path("emotion-train"))
            .args(["convert-detector", "--tflite"])
            .arg(tflite(&format!("{name}.tflite")))
            .arg("--out")
            .arg(&out),
    );
    let sha = stdout
        .lines()
        .find_map(|l| l.strip_prefix("onnx sha256 "))
        .expect("the sha256 is printed")
        .to_string();
    (out, sha)
}

fn config(model: PathBuf, sha256: Option<String>, variant: BlazeFaceVariant) -> DetectConfig {
    DetectConfig {
        detector: DetectorKind::Blazeface,
        every: 1,
        min_face: 20,
        blazeface: BlazeFaceConfig {
            variant,
            model: Some(model),
            sha256,
            score_threshold: match variant {
                BlazeFaceVariant::Short => 0.5,
                BlazeFaceVariant::Full => 0.6,
            },
            ..BlazeFaceConfig::default()
        },
        ..DetectConfig::default()
    }
}

/// The converted model of `variant`, written into `dir`, as a detector with the settings of
/// `config` (its pinned hash, MediaPipe's threshold, the default minimum face).
fn detector(dir: &Path, variant: BlazeFaceVariant) -> detect::blazeface::BlazeFaceDetector {
    let (model, sha) = convert(dir, variant);
    let c = config(model, Some(sha), variant);
    detect::blazeface::BlazeFaceDetector::from_config(&c.blazeface, c.min_face)
        .expect("the converted model loads")
}

fn skimage(name: &str) -> image::RgbImage {
    let out = run_ok(Command::new(python()).args([
        "-c",
        "import os, skimage; print(os.path.join(os.path.dirname(skimage.__file__), 'data'))",
    ]));
    let dir = PathBuf::from(out.trim());
    let path = dir.join(name);
    image::open(&path)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (scikit-image is in scripts/python-requirements.txt)",
                path.display()
            )
        })
        .to_rgb8()
}

/// The six chips in a 3x2 grid on a grey 640x480 frame; returns the frame and where each
/// chip went (x, y, side).
fn chip_grid() -> (image::RgbImage, Vec<(u32, u32, u32)>) {
    let dir = repo_root().join("host-trainer/testdata/dlib/chips");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("chips")
        .map(|e| e.expect("entry").path())
        .collect();
    names.sort();
    let mut frame = image::RgbImage::from_pixel(640, 480, image::Rgb([110, 110, 110]));
    let mut placed = Vec::new();
    for (i, path) in names.iter().enumerate() {
        let chip = image::open(path).expect("chip").to_rgb8();
        let (x, y) = (30 + (i as u32 % 3) * 205, 40 + (i as u32 / 3) * 220);
        image::imageops::overlay(&mut frame, &chip, i64::from(x), i64::from(y));
        placed.push((x, y, 150));
    }
    (frame, placed)
}

fn describe(d: &[Detection]) -> String {
    d.iter()
        .map(|d| format!("{:?} {:.2}", d.face, d.score))
        .collect::<Vec<_>>()
        .join("; ")
}

#[test]
fn blazeface_counts_faces_on_real_photos() {
    let dir = tempfile::tempdir().expect("tempdir");
    let astronaut = skimage("astronaut.png");
    let (grid, placed) = chip_grid();
    let empty = [
        ("coffee.png", skimage("coffee.png")),
        ("rocket.jpg", skimage("rocket.jpg")),
        ("chelsea.png (a cat)", skimage("chelsea.png")),
    ];
    for variant in [BlazeFaceVariant::Short, BlazeFaceVariant::Full] {
        let mut det = detector(dir.path(), variant);

        // Astronaut (512x512): Eileen Collins' face, upper middle of the photo.
        let found = det.detections(&astronaut);
        println!("{variant:?} astronaut: {}", describe(&found));
        assert_eq!(
            found.len(),
            1,
            "{variant:?} astronaut: {}",
            describe(&found)
        );
        let f = found[0].face;
        let (cx, cy) = (f.x + f.w / 2, f.y + f.h / 2);
        assert!((180..300).contains(&cx) && (50..170).contains(&cy), "{f:?}");
        assert!((50..160).contains(&f.w), "{f:?}");
        // The eyes are inside the box, the person's right eye left of the left one.
        let [re, le] = [found[0].keypoints[RIGHT_EYE], found[0].keypoints[LEFT_EYE]];
        assert!(re[0] < le[0], "{re:?} {le:?}");
        for [x, y] in [re, le] {
            assert!(x > f.x as f32 && x < (f.x + f.w) as f32, "{x} in {f:?}");
            assert!(y > f.y as f32 && y < (f.y + f.h) as f32, "{y} in {f:?}");
        }

        // Six chips on a camera-sized frame: six faces, one on each chip.
        let found = det.detections(&grid);
        println!("{variant:?} grid: {}", describe(&found));
        assert_eq!(found.len(), 6, "{variant:?} grid: {}", describe(&found));
        for &(x, y, side) in &placed {
            let hit = found.iter().any(|d| {
                let (cx, cy) = (d.face.x + d.face.w / 2, d.face.y + d.face.h / 2);
                (x..x + side).contains(&cx) && (y..y + side).contains(&cy)
            });
            assert!(hit, "{variant:?}: no face on the chip at ({x}, {y})");
        }

        // Time per 640x480 frame (letterbox, inference, decoding), for the log only: this is
        // a test build, `bench/run` measures release builds.
        let mut times: Vec<f64> = (0..10)
            .map(|_| {
                let t = std::time::Instant::now();
                det.detections(&grid);
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        times.sort_by(f64::total_cmp);
        println!(
            "{variant:?} 640x480 frame: median {:.2} ms (test build)",
            times[5]
        );

        // Photos without a person.
        for (name, img) in &empty {
            let found = det.detections(img);
            println!("{variant:?} {name}: {}", describe(&found));
            assert!(found.is_empty(), "{variant:?} {name}: {}", describe(&found));
        }
    }
}

#[test]
fn from_config_checks_the_models_sha256() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (model, sha) = convert(dir.path(), BlazeFaceVariant::Short);
    let mut det = detect::from_config(&config(
        model.clone(),
        Some(sha.clone()),
        BlazeFaceVariant::Short,
    ))
    .expect("the right file loads");
    assert_eq!(det.name(), "blazeface");
    assert_eq!(det.detect(&skimage("astronaut.png")).len(), 1);
    let wrong = "0".repeat(64);
    let err = detect::from_config(&config(
        model.clone(),
        Some(wrong.clone()),
        BlazeFaceVariant::Short,
    ))
    .err()
    .expect("a wrong sha256 is refused");
    assert!(err.to_string().contains("sha256"), "{err}");
    // A file whose hash is any of the accepted ones loads (the pinned list keeps the files of
    // earlier converters); none of them, and the error names them all.
    let other = "1".repeat(64);
    BlazeFaceModel::open(&model, &[&wrong, &sha], BlazeFaceVariant::Short)
        .expect("one accepted hash is enough");
    let Err(err) = BlazeFaceModel::open(&model, &[&wrong, &other], BlazeFaceVariant::Short) else {
        panic!("a file with no accepted hash loaded");
    };
    assert!(
        err.to_string().contains(&format!("{wrong} or {other}")),
        "{err}"
    );
    // Without a sha256 in the config, the variant's pinned hash (deploy/detectors.sha256)
    // is expected: the converter's output is that file, byte for byte.
    assert_eq!(sha, BlazeFaceVariant::Short.pinned_sha256());
    let mut det = detect::from_config(&config(model.clone(), None, BlazeFaceVariant::Short))
        .expect("the pinned file loads");
    assert_eq!(det.detect(&skimage("astronaut.png")).len(), 1);
    // The short-range file is not the full-range model: refused by its hash ...
    let err = detect::from_config(&config(model.clone(), None, BlazeFaceVariant::Full))
        .err()
        .expect("the short-range file is not the pinned full-range model");
    assert!(
        err.to_string()
            .contains(BlazeFaceVariant::Full.pinned_sha256()),
        "{err}"
    );
    // ... and, with its own hash vouched for, by its shapes.
    let err = detect::from_config(&config(model, Some(sha.clone()), BlazeFaceVariant::Full))
        .err()
        .expect("a model of the other variant is refused");
    assert!(err.to_string().contains("Full-range BlazeFace"), "{err}");
    // A missing file: the error names it and says how to install one.
    let missing = config(dir.path().join("none.onnx"), None, BlazeFaceVariant::Short);
    let err = detect::from_config(&missing).err().expect("no model");
    assert!(err.to_string().contains("none.onnx"), "{err}");
    assert!(err.to_string().contains("install.sh --detector"), "{err}");
}

/// The photos of `tests/photos/faces.json` with their hand-drawn face boxes and ignore regions.
fn annotated_photos() -> Vec<(String, image::RgbImage, Vec<FaceBox>, Vec<FaceBox>)> {
    let path = repo_root().join("tests/photos/faces.json");
    let text = std::fs::read_to_string(&path).expect("tests/photos/faces.json");
    let spec: serde_json::Value = serde_json::from_str(&text).expect("faces.json is JSON");
    let boxes = |v: &serde_json::Value| -> Vec<FaceBox> {
        v.as_array()
            .expect("a list of boxes")
            .iter()
            .map(|b| {
                let n = |i: usize| b[i].as_u64().expect("box values are pixels") as u32;
                FaceBox::new(n(0), n(1), n(2), n(3))
            })
            .collect()
    };
    let photos = repo_root().join(".cache/photos");
    spec["images"]
        .as_object()
        .expect("images")
        .iter()
        .map(|(name, e)| {
            let img = match e["source"].as_str() {
                Some("skimage") => skimage(name),
                _ => {
                    let p = photos.join(name);
                    image::open(&p)
                        .unwrap_or_else(|err| {
                            panic!(
                                "{}: {err} (tests/photos/fetch_photos.sh fetches it)",
                                p.display()
                            )
                        })
                        .to_rgb8()
                }
            };
            (name.clone(), img, boxes(&e["faces"]), boxes(&e["ignore"]))
        })
        .collect()
}

#[test]
fn blazeface_finds_the_annotated_faces_without_false_positives() {
    let dir = tempfile::tempdir().expect("tempdir");
    let photos = annotated_photos();
    assert_eq!(photos.len(), 18);
    // Faces both variants find (IoU >= 0.3 with the hand-drawn box); the full-range model
    // also finds the small face of messi5.jpg. Not found by either, and not asserted: the
    // 33 x 47 px face of the basketball frames, 7 px wide in the short-range model's 128 x 128
    // input (letterboxed whole frame) and 10 px in the full-range one's 192 x 192.
    let found_by_both = [
        "astronaut.png",
        "camera.png",
        "obama.jpg",
        "obama2.jpg",
        "obama3.jpg",
        "biden.jpg",
        "obama_partial_face.jpg",
    ];
    for variant in [BlazeFaceVariant::Short, BlazeFaceVariant::Full] {
        let mut det = detector(dir.path(), variant);
        let mut must_find: Vec<&str> = found_by_both.to_vec();
        if variant == BlazeFaceVariant::Full {
            must_find.push("messi5.jpg");
        }
        for (name, img, faces, ignore) in &photos {
            let found = det.detections(img);
            println!("{variant:?} {name}: {}", describe(&found));
            // Every detection is a hand-drawn face or lies in an ignore region.
            for d in &found {
                let (cx, cy) = (d.face.x + d.face.w / 2, d.face.y + d.face.h / 2);
                let face = faces.iter().any(|f| f.iou(&d.face) >= 0.3);
                let ignored = ignore
                    .iter()
                    .any(|r| (r.x..r.x + r.w).contains(&cx) && (r.y..r.y + r.h).contains(&cy));
                assert!(
                    face || ignored,
                    "{variant:?} {name}: false positive {:?}",
                    d.face
                );
            }
            if must_find.contains(&name.as_str()) {
                for f in faces {
                    assert!(
                        found.iter().any(|d| f.iou(&d.face) >= 0.3),
                        "{variant:?} {name}: the face at {f:?} is missed: {}",
                        describe(&found)
                    );
                }
            }
            if faces.is_empty() {
                assert!(found.is_empty(), "{variant:?} {name}: {}", describe(&found));
            }
        }
    }
}
