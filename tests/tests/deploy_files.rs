//! The device deployment files, checked without a device by `deploy/check`: shellcheck on
//! every script, a staged install run twice with `systemd-analyze verify` of the unit, the
//! Arduino/ESP32 sketch's C protocol parser against the shared test vectors, and the example
//! config as TOML. The example config is also loaded by the real edge config parser.

use std::process::Command;

use emotion_tests::{repo_root, run_ok};

#[test]
fn deploy_check_passes() {
    let root = repo_root();
    let stdout = run_ok(
        Command::new("bash")
            .arg(root.join("deploy/check"))
            .current_dir(&root),
    );
    println!("{stdout}");
    // The C parser really ran over every vector, and the unit was verified.
    assert!(
        stdout.contains("100 vectors"),
        "C parser test did not run:\n{stdout}"
    );
    assert!(stdout.contains("0 failed"), "{stdout}");
    assert!(stdout.contains("systemd-analyze"), "{stdout}");
}

#[test]
fn example_config_is_what_the_edge_accepts() {
    let path = repo_root().join("deploy/config.example.toml");
    let config = emotion_edge::config::Config::from_file(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    config.validate().expect("the example config validates");
    assert_eq!(
        config.model.store.as_deref(),
        Some(std::path::Path::new("/var/lib/emotion-edge/models"))
    );
    assert_eq!(config.serial.port.as_deref(), Some("/dev/ttyUSB0"));
}
