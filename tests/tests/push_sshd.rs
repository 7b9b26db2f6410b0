//! `emotion-train push` over a real SSH connection: an OpenSSH server (Debian
//! `openssh-server`, installed by `scripts/bootstrap`) started on a free port of 127.0.0.1 with
//! a throwaway host key and key-only authentication, and the system's `ssh` client through a
//! `-F` config wrapper. The bundle arrives complete in the inbox under its name.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use emotion_edge::testkit::{TinyNet, signing_key, write_tiny_bundle};
use emotion_shared::bundle::{Bundle, TrustPolicy, write_public_key};
use emotion_tests::{KillOnDrop, bin_path, run_ok};

fn keygen(path: &std::path::Path) {
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen (Debian openssh-client; scripts/bootstrap installs it)");
    assert!(ok.success());
}

#[test]
fn push_over_a_real_sshd_lands_a_complete_bundle() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    keygen(&d.join("host_key"));
    keygen(&d.join("client_key"));
    std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).expect("keys");
    std::fs::create_dir_all("/run/sshd")
        .expect("/run/sshd (sshd's privilege separation directory; run as root)");
    std::fs::write(
        d.join("sshd_config"),
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {0}/host_key\nAuthorizedKeysFile {0}/authorized_keys\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n\
             StrictModes no\nUsePAM no\nPidFile {0}/sshd.pid\n",
            d.display()
        ),
    )
    .expect("sshd_config");
    let _sshd = KillOnDrop(
        Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sshd (Debian openssh-server; scripts/bootstrap installs it)"),
    );
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "sshd did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
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
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    let key = signing_key(1);
    let bundle = d.join("bundle");
    write_tiny_bundle(&bundle, &TinyNet::grey48(2), Some(&key)).expect("bundle");
    let public = d.join("bundle.pub");
    write_public_key(&public, &key.verifying_key()).expect("key");
    let inbox = d.join("inbox");
    std::fs::create_dir_all(&inbox).expect("inbox");
    run_ok(
        Command::new(bin_path("emotion-train"))
            .args(["push"])
            .arg(&bundle)
            .arg("--to")
            .arg(format!("device:{}", inbox.display()))
            .arg("--public-key")
            .arg(&public)
            .arg("--ssh")
            .arg(&wrapper)
            .args(["--name", "v2"])
            .env("RUST_LOG", "warn"),
    );
    let landed = Bundle::open(inbox.join("v2"), &TrustPolicy::require(key.verifying_key()))
        .expect("the pushed bundle opens and verifies");
    assert_eq!(landed.manifest().model.name, "tiny-2");
    let names: Vec<_> = std::fs::read_dir(&inbox)
        .expect("inbox")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("v2")],
        "leftovers in the inbox"
    );
}
