//! The retrain-and-push loop without a device: `emotion-train push` into a running
//! `emotion-edge`'s model inbox, through a local directory and through an SSH transport (a
//! fake `ssh` that runs the remote command locally, so the exact remote script and tar stream
//! are exercised), and the running edge swaps the new model in and says so on its status
//! stream. Broken bundles never leave the workstation.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use emotion_edge::model_store::{CURRENT, INBOX};
use emotion_edge::testkit::{TinyNet, signing_key, write_tiny_bundle};
use emotion_shared::bundle::write_public_key;
use emotion_tests::{KillOnDrop, bin_path, run_ok};

/// A stand-in for `ssh`: skips options, takes the host, runs the remote command locally.
const FAKE_SSH: &str = r#"#!/bin/sh
while [ $# -gt 0 ]; do
    case $1 in
        -o|-p|-i|-l) shift 2 ;;
        -*) shift ;;
        *) break ;;
    esac
done
echo "$1" >> "$(dirname "$0")/hosts.log"
shift
exec sh -c "$*"
"#;

fn push_command(args: &[&std::ffi::OsStr]) -> Command {
    let mut cmd = Command::new(bin_path("emotion-train"));
    cmd.arg("push").args(args).env("RUST_LOG", "warn");
    cmd
}

/// A push that must fail: its output, to read the reason from.
fn push(args: &[&std::ffi::OsStr]) -> std::process::Output {
    push_command(args).output().expect("emotion-train runs")
}

fn fake_ssh(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("fake-ssh");
    std::fs::write(&path, FAKE_SSH).expect("write fake ssh");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    path
}

#[test]
fn pushed_bundles_reach_a_running_edge_and_broken_ones_stay_home() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    let key = signing_key(1);
    write_tiny_bundle(&store.join(CURRENT), &TinyNet::grey48(1), Some(&key)).expect("bundle");
    std::fs::create_dir_all(store.join(INBOX)).expect("inbox");
    let public = dir.path().join("bundle.pub");
    write_public_key(&public, &key.verifying_key()).expect("public key");

    // The edge runs on the synthetic camera with the store, JSON lines on stdout.
    let mut edge = KillOnDrop(
        Command::new(bin_path("emotion-edge"))
            .args(["run", "--source", "synthetic", "--synthetic-faces", "1"])
            .args([
                "--synthetic-fps",
                "20",
                "--detector",
                "full-frame",
                "--json",
                "-",
            ])
            .arg("--store")
            .arg(&store)
            .arg("--public-key")
            .arg(&public)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("emotion-edge runs"),
    );
    let mut lines = BufReader::new(edge.0.stdout.take().expect("stdout")).lines();
    let mut wait_for = |what: &str| -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let Some(Ok(line)) = lines.next() else { break };
            if line.contains(what) {
                return line;
            }
        }
        panic!("the edge never printed {what}");
    };
    wait_for("\"start\"");

    // 1. A signed bundle pushed to the local inbox is swapped in.
    let v2 = dir.path().join("v2");
    write_tiny_bundle(&v2, &TinyNet::grey48(2), Some(&key)).expect("bundle");
    let said = run_ok(&mut push_command(&[
        v2.as_os_str(),
        "--to".as_ref(),
        store.join(INBOX).as_os_str(),
        "--public-key".as_ref(),
        public.as_os_str(),
    ]));
    assert!(said.contains("pushed tiny-2 0.1.0"), "{said}");
    let line = wait_for("tiny-2");
    assert!(line.contains("\"model\""), "{line}");

    // 2. A signed bundle as a .tar, over the SSH transport, is swapped in too.
    let v3 = dir.path().join("v3");
    write_tiny_bundle(&v3, &TinyNet::grey48(3), Some(&key)).expect("bundle");
    let tar = dir.path().join("v3.tar");
    emotion_shared::bundle_tar::pack(&v3, &tar).expect("tar");
    let ssh = fake_ssh(dir.path());
    let to = format!("pi@device:{}", store.join(INBOX).display());
    run_ok(&mut push_command(&[
        tar.as_os_str(),
        "--to".as_ref(),
        to.as_ref(),
        "--ssh".as_ref(),
        ssh.as_os_str(),
        "-o".as_ref(),
        "ConnectTimeout=5".as_ref(),
    ]));
    wait_for("tiny-3");
    let hosts = std::fs::read_to_string(dir.path().join("hosts.log")).expect("hosts.log");
    assert_eq!(hosts.trim(), "pi@device");
    // Nothing half-written is left in the inbox.
    let leftovers: Vec<_> = std::fs::read_dir(store.join(INBOX))
        .expect("inbox")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // 3. `emotion-edge rollback` brings tiny-2 back in the running service.
    let said = run_ok(
        Command::new(bin_path("emotion-edge"))
            .arg("rollback")
            .arg("--store")
            .arg(&store)
            .args(["--wait", "30"]),
    );
    assert!(said.contains("rolled back: running tiny-2 0.1.0"), "{said}");
    wait_for("rollback");

    // 4. Broken bundles are refused before anything is copied.
    let bad = dir.path().join("bad");
    write_tiny_bundle(&bad, &TinyNet::grey48(4), Some(&key)).expect("bundle");
    let mut onnx = std::fs::read(bad.join("model.onnx")).expect("read");
    onnx[10] ^= 0x55;
    std::fs::write(bad.join("model.onnx"), onnx).expect("write");
    let out = push(&[
        bad.as_os_str(),
        "--to".as_ref(),
        store.join(INBOX).as_os_str(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sha256") || err.contains("hash"), "{err}");

    let unsigned = dir.path().join("unsigned");
    write_tiny_bundle(&unsigned, &TinyNet::grey48(5), None).expect("bundle");
    let out = push(&[
        unsigned.as_os_str(),
        "--to".as_ref(),
        store.join(INBOX).as_os_str(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not signed"));

    let other_key = signing_key(2);
    let foreign = dir.path().join("foreign");
    write_tiny_bundle(&foreign, &TinyNet::grey48(6), Some(&other_key)).expect("bundle");
    let out = push(&[
        foreign.as_os_str(),
        "--to".as_ref(),
        store.join(INBOX).as_os_str(),
        "--public-key".as_ref(),
        public.as_os_str(),
    ]);
    assert!(!out.status.success());

    // An unreachable host: the SSH client's own error comes back.
    let out = push(&[
        v2.as_os_str(),
        "--to".as_ref(),
        "nobody@host.invalid:".as_ref(),
        "--ssh".as_ref(),
        "/bin/false".as_ref(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("host.invalid"));
    let entries = std::fs::read_dir(store.join(INBOX)).expect("inbox").count();
    assert_eq!(entries, 0, "refused pushes left something in the inbox");
}
