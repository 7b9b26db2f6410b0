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

/// Runs `cmd` to completion and returns what it printed on stdout; panics with the command,
/// its exit status and both streams when it fails.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("could not start {:?}: {e}", cmd.get_program()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{:?} {:?} failed ({}):\n{stdout}\n{}",
        cmd.get_program(),
        cmd.get_args().collect::<Vec<_>>(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
