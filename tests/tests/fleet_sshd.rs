//! `emotion-train push --inventory`: a staged rollout to three running `emotion-edge`
//! services, each with its own model store, reached through a real OpenSSH server (Debian
//! `openssh-server`) on a free port of 127.0.0.1, as in `push_sshd.rs`. The rollout reads
//! each device's `emotion-edge status` over SSH. First every device takes a bundle; then a
//! bundle that the third device refuses (signed by a key it does not trust, while the other
//! two accept any intact bundle) stops the rollout there, the two updated devices are rolled
//! back over SSH, and the JSON report says who refused what, why, and what runs where.

use std::path::Path;
use std::process::{Command, Stdio};

use emotion_edge::model_store::{CURRENT, INBOX};
use emotion_edge::testkit::{TinyNet, signing_key, write_tiny_bundle};
use emotion_shared::bundle::write_public_key;
use emotion_tests::{KillOnDrop, bin_path, loopback_sshd, run_ok, wait_for_path};
use serde_json::Value;

fn status(store: &Path) -> Value {
    let out = run_ok(
        Command::new(bin_path("emotion-edge"))
            .args(["status", "--store"])
            .arg(store),
    );
    serde_json::from_str(&out).expect("status JSON")
}

fn push(bundle: &Path, key: &Path, inventory: &Path, report: &Path) -> std::process::Output {
    Command::new(bin_path("emotion-train"))
        .arg("push")
        .arg(bundle)
        .arg("--public-key")
        .arg(key)
        .arg("--inventory")
        .arg(inventory)
        .arg("--report")
        .arg(report)
        .args(["--timeout", "60"])
        .env("RUST_LOG", "warn")
        .output()
        .expect("emotion-train runs")
}

fn outcomes(report: &Value) -> Vec<(String, String)> {
    report["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .map(|d| {
            (
                d["host"].as_str().unwrap_or_default().to_string(),
                d["outcome"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_staged_rollout_over_ssh_updates_three_devices_then_stops_at_a_refusal_and_rolls_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (_sshd, ssh) = loopback_sshd(d);

    let key_a = signing_key(1);
    let key_b = signing_key(2);
    let pub_a = d.join("a.pub");
    let pub_b = d.join("b.pub");
    write_public_key(&pub_a, &key_a.verifying_key()).expect("key");
    write_public_key(&pub_b, &key_b.verifying_key()).expect("key");

    // Three devices: dev1 (the canary) and dev2 accept any intact bundle, dev3 only key A's.
    let mut edges = Vec::new();
    let mut stores = Vec::new();
    for n in 1..=3 {
        let store = d.join(format!("dev{n}/models"));
        write_tiny_bundle(&store.join(CURRENT), &TinyNet::grey48(1), Some(&key_a)).expect("bundle");
        std::fs::create_dir_all(store.join(INBOX)).expect("inbox");
        let mut cmd = Command::new(bin_path("emotion-edge"));
        cmd.args(["run", "--source", "synthetic", "--synthetic-faces", "1"])
            .args([
                "--synthetic-fps",
                "10",
                "--detector",
                "full-frame",
                "--store",
            ])
            .arg(&store);
        if n == 3 {
            cmd.arg("--public-key").arg(&pub_a);
        } else {
            cmd.arg("--allow-unsigned");
        }
        edges.push(KillOnDrop(
            cmd.env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("emotion-edge runs"),
        ));
        stores.push(store);
    }
    for store in &stores {
        wait_for_path(&store.with_file_name("status.json"));
    }

    let mut inventory = format!(
        "[defaults]\nssh = \"{}\"\nedge = \"{}\"\nssh_options = [\"ConnectTimeout=5\"]\n\
         [rollout]\ncanary = \"canary\"\nwave_size = 1\nrollback = true\n",
        ssh.display(),
        bin_path("emotion-edge").display()
    );
    for (n, store) in stores.iter().enumerate() {
        inventory.push_str(&format!(
            "[[host]]\nname = \"dev{}\"\naddress = \"device\"\nstore = \"{}\"\ngroups = [{}]\n",
            n + 1,
            store.display(),
            if n == 0 { "\"canary\"" } else { "" }
        ));
    }
    let inv = d.join("fleet.toml");
    std::fs::write(&inv, inventory).expect("inventory");

    // 1. tiny-2, signed by A: every device runs it.
    let v2 = d.join("v2");
    write_tiny_bundle(&v2, &TinyNet::grey48(2), Some(&key_a)).expect("bundle");
    let r1 = d.join("r1.json");
    let out = push(&v2, &pub_a, &inv, &r1);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{table}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(table.contains("complete"), "{table}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&r1).expect("report")).expect("JSON");
    assert_eq!(report["complete"], true);
    assert_eq!(
        outcomes(&report),
        [
            ("dev1", "updated"),
            ("dev2", "updated"),
            ("dev3", "updated")
        ]
        .map(|(h, o)| (h.to_string(), o.to_string()))
    );
    let sha2 = report["release"]["sha256"]
        .as_str()
        .expect("sha")
        .to_string();
    for store in &stores {
        assert_eq!(status(store)["model"]["sha256"], sha2.as_str());
    }

    // 2. tiny-3, signed by B: dev1 and dev2 take it, dev3 refuses it. The rollout stops at
    //    dev3 and rolls dev1 and dev2 back to tiny-2.
    let v3 = d.join("v3");
    write_tiny_bundle(&v3, &TinyNet::grey48(3), Some(&key_b)).expect("bundle");
    let r2 = d.join("r2.json");
    let out = push(&v3, &pub_b, &inv, &r2);
    let table = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the rollout must fail: {table}");
    assert!(stderr.contains("stopped at dev3"), "{stderr}");
    assert!(table.contains("STOPPED at dev3"), "{table}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&r2).expect("report")).expect("JSON");
    assert_eq!(report["complete"], false);
    assert_eq!(report["stopped_at"]["host"], "dev3");
    assert_eq!(report["stopped_at"]["outcome"], "rejected");
    let reason = report["stopped_at"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("does not verify"), "{reason}");
    assert_eq!(
        outcomes(&report),
        [
            ("dev1", "rolled_back"),
            ("dev2", "rolled_back"),
            ("dev3", "rejected")
        ]
        .map(|(h, o)| (h.to_string(), o.to_string()))
    );
    for dev in report["devices"].as_array().expect("devices") {
        let after = dev["after"].as_str().unwrap_or_default();
        assert!(after.starts_with("tiny-2"), "what it left where: {dev}");
    }
    for store in &stores {
        let s = status(store);
        assert_eq!(s["model"]["sha256"], sha2.as_str(), "{s}");
    }
    let rejected = stores[2].join("rejected");
    assert!(
        std::fs::read_dir(&rejected).expect("rejected/").count() == 1,
        "dev3 keeps the refused bundle in rejected/"
    );
}
