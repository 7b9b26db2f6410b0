//! `emotion-train push` over a real SSH connection: an OpenSSH server (Debian
//! `openssh-server`, installed by `scripts/bootstrap`) started on a free port of 127.0.0.1 with
//! a throwaway host key and key-only authentication, and the system's `ssh` client through a
//! `-F` config wrapper. The bundle arrives complete in the inbox under its name.

use std::process::Command;

use emotion_edge::testkit::{TinyNet, signing_key, write_tiny_bundle};
use emotion_shared::bundle::{Bundle, TrustPolicy, write_public_key};
use emotion_tests::{bin_path, loopback_sshd, run_ok};

#[test]
fn push_over_a_real_sshd_lands_a_complete_bundle() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (_sshd, wrapper) = loopback_sshd(d);

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
