//! `emotion-edge run` under systemd's notification protocol, without systemd: the test binds
//! the `NOTIFY_SOCKET` datagram socket itself, sets `WATCHDOG_USEC`, and reads what the
//! runtime sends: `READY=1` once the model is loaded, `WATCHDOG=1` from the frame loop and
//! `STOPPING=1` at the end.

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use emotion_edge::testkit::{TinyNet, write_tiny_bundle};
use emotion_tests::{bin_path, run_ok};

#[test]
fn run_notifies_ready_feeds_the_watchdog_and_says_stopping() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = dir.path().join("bundle");
    write_tiny_bundle(&bundle, &TinyNet::grey48(3), None).expect("bundle");
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind the notify socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    // Read while the runtime runs: the kernel queues only a few datagrams
    // (net.unix.max_dgram_qlen, 10 by default) and a sender blocks when the queue is full, so
    // reading only after the run would hang a slow run (a loaded machine beats more often than
    // 60 frames' worth of 20 fps).
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let mut messages = Vec::new();
            let mut buf = [0u8; 512];
            loop {
                match socket.recv(&mut buf) {
                    Ok(n) => messages.push(String::from_utf8_lossy(&buf[..n]).trim().to_string()),
                    Err(_) if done.load(Ordering::Acquire) => return messages,
                    Err(_) => {}
                }
            }
        })
    };

    // 60 frames at 20 fps: three seconds, with a 1 s watchdog fed every 0.5 s. systemd names
    // the watched process in WATCHDOG_PID: a shell sets its own PID and execs the runtime.
    run_ok(
        Command::new("sh")
            .arg("-c")
            .arg("WATCHDOG_PID=$$ exec \"$0\" \"$@\"")
            .arg(bin_path("emotion-edge"))
            .args(["run", "--source", "synthetic", "--synthetic-faces", "1"])
            .args([
                "--synthetic-fps",
                "20",
                "--max-frames",
                "60",
                "--allow-unsigned",
            ])
            .args(["--detector", "full-frame"])
            .arg("--bundle")
            .arg(&bundle)
            .env("NOTIFY_SOCKET", &socket_path)
            .env("WATCHDOG_USEC", "1000000")
            .stdout(Stdio::null()),
    );

    done.store(true, Ordering::Release);
    let messages = reader.join().expect("reader thread");
    println!("{messages:?}");
    let first = |m: &str| messages.iter().position(|x| x == m);
    let ready = first("READY=1").expect("READY=1 sent");
    let stopping = first("STOPPING=1").expect("STOPPING=1 sent");
    let beats = messages.iter().filter(|m| *m == "WATCHDOG=1").count();
    assert!(ready < stopping);
    assert!(
        (3..=12).contains(&beats),
        "{beats} watchdog beats in about three seconds at a 1 s watchdog: {messages:?}"
    );
    assert_eq!(messages.last().map(String::as_str), Some("STOPPING=1"));
}
