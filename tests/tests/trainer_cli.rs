//! The trainer's command line end to end: synthetic data in, a malformed CSV refused with its
//! line number, skipped rows counted.

use std::process::Command;

use emotion_tests::{bin_path, run_ok};

fn train() -> Command {
    Command::new(bin_path("emotion-train"))
}

#[test]
fn synth_writes_a_fer2013_csv_with_the_official_splits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("s.csv");
    run_ok(
        train()
            .args(["synth", "--count", "200", "--seed", "3", "--out"])
            .arg(&csv),
    );
    let text = std::fs::read_to_string(&csv).expect("csv written");
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("emotion,pixels,Usage"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 200);
    let usage = |u: &str| rows.iter().filter(|r| r.ends_with(u)).count();
    assert_eq!(
        (
            usage(",Training"),
            usage(",PublicTest"),
            usage(",PrivateTest")
        ),
        (160, 20, 20)
    );
    let first: Vec<&str> = rows[0].split(',').collect();
    assert_eq!(first[1].split(' ').count(), 48 * 48);
    // Same seed, same bytes.
    let again = dir.path().join("again.csv");
    run_ok(
        train()
            .args(["synth", "--count", "200", "--seed", "3", "--out"])
            .arg(&again),
    );
    assert_eq!(std::fs::read(&again).expect("read"), text.into_bytes());
}

#[test]
fn a_malformed_row_is_named_and_nothing_is_dropped_silently() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = vec!["128"; 48 * 48].join(" ");
    let short = vec!["128"; 47].join(" ");
    let csv = dir.path().join("bad.csv");
    let mut text = String::from("emotion,pixels,Usage\n");
    for i in 0..20 {
        let usage = ["Training", "PublicTest", "PrivateTest"][i % 3];
        text.push_str(&format!("{},{good},{usage}\n", i % 7));
    }
    text.push_str(&format!("3,{short},Training\n"));
    std::fs::write(&csv, text).expect("write");

    let out = train()
        .args(["train", "--epochs", "1", "--device", "cpu", "--data"])
        .arg(&csv)
        .arg("--out")
        .arg(dir.path().join("run"))
        .output()
        .expect("runs");
    assert!(
        !out.status.success(),
        "a malformed row must stop training by default"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.csv:22"),
        "the error must name the line:\n{err}"
    );
    assert!(err.contains("47 pixel values, expected 2304"), "{err}");

    let out = train()
        .args([
            "train",
            "--epochs",
            "1",
            "--device",
            "cpu",
            "--on-bad-row",
            "skip",
            "--data",
        ])
        .arg(&csv)
        .arg("--out")
        .arg(dir.path().join("run"))
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("skipped rows: 1"),
        "the summary must count skipped rows:\n{err}"
    );
    assert!(
        err.contains("bad.csv:22"),
        "the skipped row must be listed:\n{err}"
    );
}
