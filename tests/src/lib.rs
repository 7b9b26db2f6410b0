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

/// A throwaway ed25519 key pair at `path` and `path.pub` (ssh-keygen, no passphrase).
pub fn ssh_keygen(path: &Path) {
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen (Debian openssh-client; scripts/bootstrap installs it)");
    assert!(ok.success());
}

/// Debian's OpenSSH server (`openssh-server`, installed by `scripts/bootstrap`; needs root for
/// `/run/sshd`) on a free port of 127.0.0.1 with throwaway keys in `d` and key-only
/// authentication, and an `ssh` wrapper script whose host `device` is that server. The server
/// is killed when the guard drops.
pub fn loopback_sshd(d: &Path) -> (KillOnDrop, PathBuf) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    ssh_keygen(&d.join("host_key"));
    ssh_keygen(&d.join("client_key"));
    std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).expect("keys");
    std::fs::create_dir_all("/run/sshd")
        .expect("/run/sshd (sshd's privilege separation directory; run as root)");
    std::fs::write(
        d.join("sshd_config"),
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {0}/host_key\nAuthorizedKeysFile {0}/authorized_keys\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n\
             StrictModes no\nUsePAM no\nPidFile {0}/sshd.pid\nMaxStartups 50\n",
            d.display()
        ),
    )
    .expect("sshd_config");
    let server = KillOnDrop(
        Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("sshd (Debian openssh-server; scripts/bootstrap installs it)"),
    );
    let start = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "sshd did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    std::fs::write(
        d.join("ssh_config"),
        format!(
            "Host device\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  IdentityFile {}/client_key\n  \
             StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n",
            d.display()
        ),
    )
    .expect("ssh_config");
    let wrapper = d.join("ssh");
    std::fs::write(
        &wrapper,
        format!("#!/bin/sh\nexec ssh -F {}/ssh_config \"$@\"\n", d.display()),
    )
    .expect("wrapper");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    (server, wrapper)
}
