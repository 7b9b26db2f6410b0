//! `emotion-train import-weights --format keras-h5` on files with exactly the layout
//! keras-vggface publishes (written by `testdata/keras_vggface/make_fixture.py` with seeded
//! random values: the real files cannot be downloaded here). The imported ResNet50 in tch
//! must give the same 2048-d features as an independent numpy forward pass of the same file
//! (`reference_forward.py`, checked itself against onnxruntime and tf.keras) within 1e-4
//! relative; broken files give clear errors.

mod common;
use common::python;

use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::prelude::*;

use emotion_trainer::model::Arch;
use emotion_trainer::model::checkpoint::ModelMeta;
use tch::{Device, Kind, Tensor};

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/keras_vggface")
}

fn run_python(args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new(python()).args(args).assert().success();
    String::from_utf8_lossy(&out.get_output().stdout).into_owned()
}

fn import(file: &Path, out: &Path) -> std::process::Output {
    common::import_weights("keras-h5", file, out)
}

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .expect("read")
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Makes the input and the reference features: (NHWC input, features), both `[2, ...]`.
const REFERENCE_PY: &str = r#"
import subprocess, sys
import numpy as np
d, script, weights = sys.argv[1:4]
rng = np.random.default_rng(7)
x = (rng.standard_normal((2, 224, 224, 3)) * 40).astype(np.float32)
np.save(f"{d}/input.npy", x)
x.astype("<f4").tofile(f"{d}/input.f32")
subprocess.run([sys.executable, script, weights, f"{d}/input.npy", f"{d}/ref.npz"], check=True,
               stdout=subprocess.DEVNULL)
r = np.load(f"{d}/ref.npz")
r["features"].astype("<f4").tofile(f"{d}/features.f32")
print(r["features"].shape)
"#;

/// Imports `fixture`, runs the model in tch and compares with the numpy reference.
fn parity(fixture: &Path, dir: &Path) {
    let weights = dir.join("backbone.safetensors");
    let out = import(fixture, &weights);
    assert!(
        out.status.success(),
        "import failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{}", String::from_utf8_lossy(&out.stdout).trim());

    let script = dir.join("reference.py");
    std::fs::write(&script, REFERENCE_PY).expect("script");
    run_python(&[
        script.as_os_str(),
        dir.as_os_str(),
        testdata().join("reference_forward.py").as_os_str(),
        fixture.as_os_str(),
    ]);
    let x = Tensor::from_slice(&read_f32(&dir.join("input.f32")))
        .view([2, 224, 224, 3])
        .permute([0, 3, 1, 2])
        .contiguous();
    let want = read_f32(&dir.join("features.f32"));

    let mut model = ModelMeta::for_arch(Arch::VggFace2Resnet50)
        .build(Device::Cpu)
        .expect("model");
    let missing = model.vs.load_partial(&weights).expect("loads");
    assert!(
        missing.iter().all(|n| n.starts_with("head/")),
        "backbone tensors not imported: {missing:?}"
    );
    let got = tch::no_grad(|| model.net.features_t(&x, false)).to_kind(Kind::Float);
    let got = Vec::<f32>::try_from(got.flatten(0, -1)).expect("features");
    assert_eq!(got.len(), want.len());
    let max_abs = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let rel = max_abs / scale;
    println!(
        "tch vs numpy reference: max |diff| {max_abs:.3e}, relative {rel:.3e} (features up to {scale:.3})"
    );
    assert!(rel <= 1e-4, "relative difference {rel:.3e} > 1e-4");
}

#[test]
fn keras_vggface_files_import_and_match_the_reference_forward_pass() {
    tch::set_num_threads(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let make = testdata().join("make_fixture.py");

    // notop: the file `RESNET50(include_top=False)` loads.
    let notop = d.join("rcmalli_vggface_tf_notop_resnet50.h5");
    run_python(&[
        make.as_os_str(),
        notop.as_os_str(),
        "--notop".as_ref(),
        "--seed".as_ref(),
        "1".as_ref(),
    ]);
    parity(&notop, d);

    // With top: 8631 identity classes, skipped on import.
    let top = d.join("rcmalli_vggface_tf_resnet50.h5");
    run_python(&[
        make.as_os_str(),
        top.as_os_str(),
        "--seed".as_ref(),
        "2".as_ref(),
    ]);
    let out = import(&top, &d.join("top.safetensors"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A truncated download: a clear error naming the file, not a panic.
    let bytes = std::fs::read(&notop).expect("read");
    let cut = d.join("truncated.h5");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
    let out = import(&cut, &d.join("cut.safetensors"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("truncated.h5"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    // Not HDF5 at all.
    let junk = d.join("junk.h5");
    std::fs::write(&junk, b"<html>404 Not Found</html>").expect("write");
    let out = import(&junk, &d.join("junk.safetensors"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("cannot open as HDF5"), "{err}");

    // A weight removed from a layer: the error names it.
    let broken = d.join("broken.h5");
    std::fs::copy(&notop, &broken).expect("copy");
    run_python(&[
        "-c".as_ref(),
        "import h5py,sys; f=h5py.File(sys.argv[1],'r+'); g=f['conv5_3_3x3/bn']; del g['conv5_3_3x3/bn/moving_variance:0']; f.close()".as_ref(),
        broken.as_os_str(),
    ]);
    let out = import(&broken, &d.join("broken.safetensors"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("conv5_3_3x3/bn") && err.contains("moving_variance"),
        "{err}"
    );
}
