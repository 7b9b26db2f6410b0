//! Helpers for the end-to-end tests in `tests/tests/`: where the workspace's binaries are,
//! commands that must succeed, the reference Python, pseudo-terminals.

use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::assert::OutputAssertExt;

/// Path of a workspace binary (`emotion-train` or `emotion-edge`): `assert_cmd` finds it in
/// the target directory the tests were built into (`cargo test --workspace` builds both).
pub use assert_cmd::cargo::cargo_bin as bin_path;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The Python with the reference tools (`EMOTION_PYTHON`, else `.venv/bin/python` that
/// `scripts/bootstrap` creates). Panics with what to do when neither exists: the tests that
/// need it must not pass without running.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("EMOTION_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = repo_root().join(".venv/bin/python");
    assert!(
        venv.exists(),
        "{} is missing: run scripts/bootstrap (or set EMOTION_PYTHON) to install the Python \
         reference tools",
        venv.display()
    );
    venv
}

/// A child process killed when dropped, so a failing test never leaves it running.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until `path` exists (socat creates its links once both ends are open); panics after
/// ten seconds.
pub fn wait_for_path(path: &Path) {
    let start = std::time::Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A pseudo-terminal pair from socat (Debian package `socat`), linked as `dir/ttyA` and
/// `dir/ttyB`: a serial line without hardware. socat is killed when the guard drops.
pub fn pty_pair(dir: &Path) -> (KillOnDrop, PathBuf, PathBuf) {
    let (a, b) = (dir.join("ttyA"), dir.join("ttyB"));
    let socat = KillOnDrop(
        Command::new("socat")
            .arg(format!("pty,raw,echo=0,link={}", a.display()))
            .arg(format!("pty,raw,echo=0,link={}", b.display()))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("socat (Debian package socat; scripts/bootstrap installs it)"),
    );
    wait_for_path(&a);
    wait_for_path(&b);
    (socat, a, b)
}

/// Runs `cmd` to completion and returns what it printed on stdout; when it fails,
/// `assert_cmd` panics with the command line, its exit status and both streams.
pub fn run_ok(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&cmd.assert().success().get_output().stdout).into_owned()
}
