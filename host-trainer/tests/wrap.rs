//! `emotion-train wrap` on small ONNX classifiers built by `testdata/wrap/models.py` in the
//! published interfaces of the ONNX Model Zoo's emotion-ferplus-8 (1x1x64x64 raw grey, eight
//! FER+ logits, opset 8) and of a 3-channel 224x224 AffectNet model (eight probabilities):
//! the bundle's outputs are the model's own (onnxruntime) outputs picked in our order,
//! contempt dropped and probabilities renormalised; a model whose output does not fit the
//! label set is refused with the reason.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use emotion_shared::bundle::{Bundle, TrustPolicy, VerifiedBundle};
use emotion_shared::manifest::OutputKind;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn script() -> PathBuf {
    root().join("host-trainer/testdata/wrap/models.py")
}

fn chips() -> PathBuf {
    root().join("host-trainer/testdata/dlib/chips")
}

fn wrap(args: &[&str], model: &Path, out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_emotion-train"))
        .arg("wrap")
        .arg(model)
        .args(args)
        .arg("--self-test-images")
        .arg(chips())
        .arg("--out")
        .arg(out)
        .env("RUST_LOG", "error")
        .output()
        .expect("emotion-train runs")
}

fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The original model's output (onnxruntime) for the bundle's first self-test input,
/// preprocessed by the shared code.
fn original_output(model: &Path, bundle: &VerifiedBundle, dir: &Path) -> Vec<f32> {
    let m = bundle.manifest();
    let case = &m.self_test[0];
    let x = m
        .preprocess
        .preprocess(case.input.crop().expect("crop"))
        .expect("preprocesses");
    let path = dir.join("x.f32");
    std::fs::write(
        &path,
        x.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>(),
    )
    .expect("write");
    let out = Command::new(common::python())
        .arg(script())
        .arg("run")
        .arg(model)
        .arg(&path)
        .output()
        .expect("python runs");
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).expect("JSON floats")
}

#[test]
fn wraps_ferplus_and_affectnet_models_and_refuses_misfits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let made = Command::new(common::python())
        .arg(script())
        .arg("make")
        .arg(d)
        .output()
        .expect("python runs");
    assert!(made.status.success(), "{}", text(&made));

    // emotion-ferplus-8's interface: raw grey 0..255, eight logits.
    let ferplus = d.join("ferplus8.onnx");
    let out = wrap(
        &[
            "--input", "64x64", "--color", "grey", "--scale", "1", "--output", "logits",
            "--labels", "fer-plus",
        ],
        &ferplus,
        &d.join("b-ferplus"),
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("dropped contempt"), "{}", text(&out));
    let b = Bundle::open(d.join("b-ferplus"), &TrustPolicy::AllowUnsigned).expect("opens");
    let m = b.manifest();
    assert_eq!(m.input.name, "Input3");
    assert_eq!(m.input.shape, [1, 1, 64, 64]);
    assert_eq!(m.output.shape, [1, 7]);
    assert_eq!(m.output.kind, OutputKind::Logits);
    assert_eq!(m.training.mode, "wrapped");
    let orig = original_output(&ferplus, &b, d);
    assert_eq!(orig.len(), 8);
    // angry<-anger(4), disgust<-disgust(5), fear<-fear(6), happy<-happiness(1),
    // sad<-sadness(3), surprise<-surprise(2), neutral<-neutral(0).
    let want: Vec<f32> = [4, 5, 6, 1, 3, 2, 0].iter().map(|&i| orig[i]).collect();
    let got = &m.self_test[0].expected;
    for (g, w) in got.iter().zip(&want) {
        assert!(
            (g - w).abs() <= 1e-3 * w.abs().max(1.0),
            "ferplus: {got:?} vs {want:?}"
        );
    }

    // An AffectNet model: 224x224 RGB with ImageNet normalisation, eight probabilities.
    let affectnet = d.join("affectnet8.onnx");
    let out = wrap(
        &[
            "--input",
            "224x224",
            "--color",
            "rgb",
            "--scale",
            "0.003921569",
            "--mean",
            "0.485,0.456,0.406",
            "--std",
            "0.229,0.224,0.225",
            "--output",
            "probabilities",
            "--labels",
            "affectnet",
        ],
        &affectnet,
        &d.join("b-affectnet"),
    );
    assert!(out.status.success(), "{}", text(&out));
    let b = Bundle::open(d.join("b-affectnet"), &TrustPolicy::AllowUnsigned).expect("opens");
    let m = b.manifest();
    assert_eq!(m.input.shape, [1, 3, 224, 224]);
    assert_eq!(m.output.kind, OutputKind::Probabilities);
    let orig = original_output(&affectnet, &b, d);
    let picked: Vec<f32> = [6, 5, 4, 1, 2, 3, 0].iter().map(|&i| orig[i]).collect();
    let total: f32 = picked.iter().sum();
    let got = &m.self_test[0].expected;
    assert!(
        (got.iter().sum::<f32>() - 1.0).abs() < 1e-5,
        "renormalised: {got:?}"
    );
    for (g, p) in got.iter().zip(&picked) {
        assert!(
            (g - p / total).abs() < 1e-5,
            "affectnet: {got:?} vs {picked:?} / {total}"
        );
    }

    // Refusals, with the reason.
    let out = wrap(
        &[
            "--input", "64x64", "--color", "grey", "--scale", "1", "--output", "logits",
            "--labels", "fer-plus",
        ],
        &d.join("five.onnx"),
        &d.join("b-five"),
    );
    assert!(!out.status.success());
    let err = text(&out);
    assert!(
        err.contains("does not fit") && err.contains("8 classes"),
        "{err}"
    );
    assert!(
        !d.join("b-five").exists(),
        "nothing is written for a refused model"
    );
    let out = wrap(
        &[
            "--input", "48x48", "--color", "grey", "--scale", "1", "--output", "logits",
            "--labels", "fer-plus",
        ],
        &ferplus,
        &d.join("b-size"),
    );
    assert!(!out.status.success());
    let err = text(&out);
    assert!(
        err.contains("input `Input3`") && err.contains("[1, 1, 48, 48]"),
        "{err}"
    );
    let out = wrap(
        &[
            "--input",
            "224x224",
            "--color",
            "grey",
            "--scale",
            "1",
            "--output",
            "probabilities",
            "--labels",
            "affectnet",
        ],
        &affectnet,
        &d.join("b-colour"),
    );
    assert!(
        !out.status.success(),
        "a grey spec for an RGB model is refused"
    );
}
