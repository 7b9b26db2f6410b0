//! The whole pipeline over a pseudo-terminal pair, no hardware: synthetic camera ->
//! full-frame detection -> tiny model -> smoothing -> serial sink on the master end; the
//! slave end is read by the protocol decoder and by the `emotion-edge listen` binary.

use std::io::{self, Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use emotion_edge::classify::LoadedModel;
use emotion_edge::detect::FullFrame;
use emotion_edge::pipeline::Pipeline;
use emotion_edge::sink::Sinks;
use emotion_edge::sink::serial::{PortOpener, SerialLimits, SerialSink};
use emotion_edge::smooth::SmoothConfig;
use emotion_edge::source::synthetic::{SyntheticCamera, SyntheticConfig};
use emotion_edge::testkit::TinyNet;
use emotion_shared::protocol::{Body, Message, StreamDecoder};
use serialport::{SerialPort, TTYPort};

/// Opens (clones) the master end of a pty pair.
struct PtyOpener(TTYPort);

impl PortOpener for PtyOpener {
    fn open(&mut self) -> io::Result<Box<dyn Write + Send>> {
        Ok(Box::new(
            self.0.try_clone_native().map_err(io::Error::from)?,
        ))
    }
    fn name(&self) -> String {
        "pty".into()
    }
}

fn model() -> Arc<LoadedModel> {
    let net = TinyNet::grey48(11);
    let onnx = net.onnx();
    Arc::new(LoadedModel::load(net.manifest(&onnx), &onnx).expect("model"))
}

/// Runs `frames` synthetic frames into the master end; returns what the pipeline saw. The
/// caller keeps `master` open until it has read everything: closing a pty's last master
/// handle hangs up the slave, and Linux may drop bytes still on their way to it.
fn run_pipeline(master: &TTYPort, frames: u64, faces: u32) -> emotion_edge::pipeline::RunStats {
    let mut sinks = Sinks::new();
    sinks.push(Box::new(SerialSink::new(
        PtyOpener(master.try_clone_native().expect("clone the pty master")),
        SerialLimits {
            baud: 1_000_000,
            max_fps: 0.0,
        },
    )));
    let mut p = Pipeline::with_model(Box::new(FullFrame), model(), SmoothConfig::default(), sinks)
        .expect("pipeline");
    p.status(
        emotion_shared::protocol::Level::Info,
        "start",
        "emotion-edge started",
    );
    let mut cam = SyntheticCamera::new(SyntheticConfig {
        width: 128,
        height: 96,
        faces,
        frames,
        ..SyntheticConfig::default()
    });
    let stop = AtomicBool::new(false);
    let stats = p.run(&mut cam, &stop, 0, None);
    p.finish();
    stats
}

fn read_until_quiet(port: &mut TTYPort, quiet: Duration) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let mut last = Instant::now();
    port.set_timeout(Duration::from_millis(50))
        .expect("timeout");
    while last.elapsed() < quiet {
        match port.read(&mut buf) {
            Ok(n) if n > 0 => {
                out.extend_from_slice(&buf[..n]);
                last = Instant::now();
            }
            _ => {}
        }
    }
    out
}

#[test]
fn every_line_over_the_pty_decodes_with_consecutive_seq() {
    let (master, mut slave) = TTYPort::pair().expect("pty pair");
    let reader =
        std::thread::spawn(move || read_until_quiet(&mut slave, Duration::from_millis(800)));
    let stats = run_pipeline(&master, 20, 1);
    assert_eq!(stats.frames, 20);
    let bytes = reader.join().expect("reader");
    drop(master);
    let messages: Vec<Message> = StreamDecoder::new()
        .feed(&bytes)
        .into_iter()
        .map(|r| r.expect("every line decodes and its checksum verifies"))
        .collect();
    // start + 20 x (F + N).
    assert_eq!(messages.len(), 41, "{messages:?}");
    assert!(matches!(&messages[0].body, Body::Status(s) if s.code == "start"));
    for (i, m) in messages.iter().enumerate() {
        assert_eq!(m.seq, i as u32);
    }
    let ids: Vec<u32> = messages
        .iter()
        .filter_map(|m| match &m.body {
            Body::Face(f) => Some(f.face_id),
            _ => None,
        })
        .collect();
    assert_eq!(ids.len(), 20);
    assert!(
        ids.iter().all(|&id| id == ids[0]),
        "one steady track: {ids:?}"
    );
    let frames = messages
        .iter()
        .filter(|m| matches!(m.body, Body::Frame(f) if f.faces == 1))
        .count();
    assert_eq!(frames, 20);
}

#[test]
fn the_listen_command_decodes_the_stream() {
    let (master, slave) = TTYPort::pair().expect("pty pair");
    let slave_path = slave.name().expect("slave has a path");
    let child = Command::new(env!("CARGO_BIN_EXE_emotion-edge"))
        .args([
            "listen",
            &slave_path,
            "--count",
            "11",
            "--idle-timeout",
            "20",
            "--log",
            "warn",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn emotion-edge listen");
    // Let the listener open the port before anything is written.
    std::thread::sleep(Duration::from_millis(500));
    let stats = run_pipeline(&master, 5, 1);
    assert_eq!(stats.frames, 5);
    let out = child
        .wait_with_output()
        .expect("listen exits after --count lines");
    drop((master, slave));
    assert!(
        out.status.success(),
        "listen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("listen prints JSON"))
        .collect();
    assert_eq!(lines.len(), 11, "start + 5 x (F + N)");
    let seqs: Vec<u64> = lines.iter().filter_map(|l| l["seq"].as_u64()).collect();
    assert_eq!(seqs, (0..11).collect::<Vec<u64>>());
}
