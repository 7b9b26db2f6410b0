//! The SeetaFace detector on real photographs that ship in registry packages: the group
//! photo in the `rustface` crate (1927 Solvay conference, 29 people), and a region of the
//! same photo with only pavement and printed captions (no face).

use std::path::PathBuf;

use emotion_edge::detect::{self, DetectConfig, DetectorKind, FaceDetector};
use emotion_edge::geometry::{Face, FaceBox};

fn photo() -> Option<image::RgbImage> {
    let dir = option_env!("EMOTION_EDGE_RUSTFACE_DIR")?;
    let path = PathBuf::from(dir).join("test.png");
    Some(
        image::open(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .to_rgb8(),
    )
}

fn detector(max_width: u32, min_face: u32) -> Box<dyn FaceDetector> {
    detect::from_config(&DetectConfig {
        detector: DetectorKind::Seeta,
        min_face,
        max_width,
        every: 1,
        ..DetectConfig::default()
    })
    .expect("built-in SeetaFace model loads")
}

/// The boxes of SeetaFace's faces (it gives no key points).
fn boxes(faces: Vec<Face>) -> Vec<FaceBox> {
    assert!(faces.iter().all(|f| f.keypoints.is_none()), "{faces:?}");
    faces.into_iter().map(|f| f.bbox).collect()
}

#[test]
fn finds_the_people_in_a_group_photo() {
    detect::load_seeta_model(None)
        .expect("build.rs embedded the SeetaFace model of the rustface crate");
    let Some(img) = photo() else {
        panic!("the rustface crate folder was not found at build time")
    };
    let faces: Vec<FaceBox> = boxes(detector(0, 20).detect(&img));
    // The photo has 29 faces in the upper 45% of the frame.
    assert!(
        (24..=32).contains(&faces.len()),
        "{} faces: {faces:?}",
        faces.len()
    );
    let h = img.height();
    assert!(faces.iter().all(|f| f.y + f.h < h * 45 / 100), "{faces:?}");
    assert!(faces.iter().all(|f| (20..120).contains(&f.w)), "{faces:?}");
}

#[test]
fn downscaled_detection_maps_boxes_to_the_full_frame() {
    let Some(img) = photo() else { return };
    let full = boxes(detector(0, 40).detect(&img));
    let small = boxes(detector(833, 40).detect(&img));
    // At half resolution the smallest faces (20-25 px there) fall below what SeetaFace finds,
    // so fewer are found; the ones found must land on real faces.
    assert!(
        (10..=full.len()).contains(&small.len()),
        "{} vs {}",
        small.len(),
        full.len()
    );
    // Every downscaled box overlaps a full-resolution one.
    let best = |b: &FaceBox| full.iter().map(|f| f.iou(b)).fold(0.0f32, f32::max);
    assert!(small.iter().all(|b| best(b) > 0.3), "{small:?} vs {full:?}");
}

#[test]
fn finds_no_face_where_there_is_none() {
    let Some(img) = photo() else { return };
    // Pavement and printed captions: the bottom 40% of the photo.
    let (w, h) = img.dimensions();
    let bottom = image::imageops::crop_imm(&img, 0, h * 60 / 100, w, h * 40 / 100).to_image();
    assert_eq!(detector(0, 20).detect(&bottom), vec![]);
    // A plain frame.
    let plain = image::RgbImage::from_pixel(320, 240, image::Rgb([120, 130, 140]));
    assert_eq!(detector(0, 20).detect(&plain), vec![]);
}
