//! Helpers for the end-to-end tests in `tests/tests/`: where the workspace's binaries are, and
//! building them when `cargo test -p emotion-tests` runs before they exist.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// The package that owns each binary the tests run.
fn package_of(bin: &str) -> &'static str {
    match bin {
        "emotion-train" => "emotion-trainer",
        "emotion-edge" => "emotion-edge",
        other => panic!("unknown workspace binary {other}"),
    }
}

/// `target/<profile>`: the directory the running test executable was built into.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test>-<hash>
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile> directory")
        .to_path_buf()
}

static BUILD: Mutex<()> = Mutex::new(());

/// Path of a workspace binary (`emotion-train` or `emotion-edge`), built with the same profile
/// as the tests if `cargo test` did not build it (it does with `--workspace`).
pub fn bin_path(name: &str) -> PathBuf {
    let dir = profile_dir();
    let path = dir.join(name);
    let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    if !path.exists() {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "-p", package_of(name), "--bin", name]);
        if dir.file_name().is_some_and(|p| p == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("running cargo build");
        assert!(status.success(), "cargo build of {name} failed");
    }
    path
}
