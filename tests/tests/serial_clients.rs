//! The other end of the serial line, with clients that are not the runtime's own code: the
//! Python client in `deploy/clients/` checks itself against the shared test vectors, and reads
//! a live `emotion-edge run` through a socat pseudo-terminal pair.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use emotion_edge::testkit::{TinyNet, write_tiny_bundle};
use emotion_tests::{KillOnDrop, bin_path, pty_pair, python, repo_root, run_ok};

fn client() -> std::path::PathBuf {
    repo_root().join("deploy/clients/emotion_serial.py")
}

#[test]
fn python_client_passes_every_shared_test_vector() {
    let vectors = repo_root().join("shared/testdata/protocol/vectors.tsv");
    let stdout = run_ok(
        Command::new(python())
            .arg(client())
            .arg("--check-vectors")
            .arg(&vectors),
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    let passed: usize = stdout
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a count");
    assert!(passed >= 50, "only {passed} vectors checked");
}

#[test]
fn python_client_reads_a_running_edge_over_a_pty_pair() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_socat, a, b) = pty_pair(dir.path());

    let bundle = dir.path().join("bundle");
    write_tiny_bundle(&bundle, &TinyNet::grey48(3), None).expect("bundle");

    // Start the reader first: pyserial's open() drops pending input.
    let mut reader = KillOnDrop(
        Command::new(python())
            .arg(client())
            .arg(&b)
            .args(["--count", "40", "--idle-timeout", "60"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python client"),
    );
    let stdout = reader.0.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let ready = lines.next().expect("a first line").expect("utf-8");
    assert!(ready.contains("\"ready\""), "{ready}");

    // The edge runs until the client has its lines (or 60 s pass), then is stopped.
    let mut edge = KillOnDrop(
        Command::new(bin_path("emotion-edge"))
            .args(["run", "--source", "synthetic", "--synthetic-faces", "1"])
            .args([
                "--synthetic-fps",
                "20",
                "--max-frames",
                "1200",
                "--detector",
                "full-frame",
            ])
            .arg("--bundle")
            .arg(&bundle)
            .arg("--allow-unsigned")
            .arg("--serial")
            .arg(&a)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("emotion-edge runs"),
    );
    let msgs: Vec<serde_json::Value> = lines
        .map_while(Result::ok)
        .map(|l| serde_json::from_str(&l).expect("client prints JSON"))
        .collect();
    let status = reader.0.wait().expect("client exits");
    let mut err = String::new();
    if let Some(mut e) = reader.0.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    let _ = edge.0.kill();
    let _ = edge.0.wait();
    let mut edge_log = String::new();
    if let Some(mut e) = edge.0.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut edge_log);
    }
    assert!(
        status.success(),
        "client failed: {err}\nemotion-edge said:\n{edge_log}"
    );
    assert_eq!(msgs.len(), 40, "{msgs:#?}\n{err}");
    assert!(err.is_empty(), "the client skipped lines: {err}");
    assert_eq!(
        msgs[0]["kind"], "S",
        "the first line is the start status: {:?}",
        msgs[0]
    );
    let seqs: Vec<u64> = msgs
        .iter()
        .map(|m| m["seq"].as_u64().expect("seq"))
        .collect();
    for w in seqs.windows(2) {
        assert_eq!(w[1], w[0] + 1, "seq must count every line: {seqs:?}");
    }
    let faces = msgs.iter().filter(|m| m["kind"] == "F").count();
    let frames = msgs.iter().filter(|m| m["kind"] == "N").count();
    assert!(
        faces >= 10 && frames >= 10,
        "{faces} face and {frames} frame lines"
    );
    for m in msgs.iter().filter(|m| m["kind"] == "F") {
        assert!(m["conf"].as_u64().expect("conf") <= 1000);
        assert!(m["w"].as_u64().expect("w") > 0);
    }
}
