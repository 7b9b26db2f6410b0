//! Helpers shared by the trainer's integration tests.

use std::path::PathBuf;

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
