//! Helpers shared by the trainer's integration tests.

// Each test file compiles this module on its own and uses only some of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The Python with the reference tools (numpy, h5py, onnx, onnxruntime): `EMOTION_PYTHON`, else
/// the workspace's `.venv` that `scripts/bootstrap` makes. Panics with what to do when it is
/// missing: the tests that need it must not pass without running.
pub fn python() -> PathBuf {
    let path = std::env::var_os("EMOTION_PYTHON").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python"),
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "the Python reference tools are missing ({} does not exist): run scripts/bootstrap, \
         which makes the .venv with numpy, h5py, onnx and onnxruntime",
        path.display()
    );
    path
}

/// `emotion-train import-weights --format FORMAT FILE --out OUT`.
pub fn import_weights(format: &str, file: &Path, out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_emotion-train"))
        .args(["import-weights", "--format", format])
        .arg(file)
        .arg("--out")
        .arg(out)
        .env("RUST_LOG", "warn")
        .output()
        .expect("emotion-train runs")
}
