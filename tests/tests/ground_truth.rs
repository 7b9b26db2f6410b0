//! The whole loop on synthetic faces, with a model that was really trained: `emotion-train`
//! draws a data set, trains mini-Xception and exports a signed bundle; `emotion-edge run`
//! classifies the synthetic camera (one face filling each frame, `full-frame` detection) and
//! reports over a socat pseudo-terminal pair to `emotion-edge listen` and as JSON lines. Every
//! serial line decodes with a valid checksum, the serial labels are the JSON lines' labels, and
//! the labels match the camera's ground truth close to the model's own test accuracy (the
//! camera draws whole scenes at 96x96 that are shrunk to the model's 48x48, the data set draws
//! 48x48 faces directly: a small domain shift, measured here at about 0.1).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use emotion_edge::source::synthetic::{SyntheticCamera, SyntheticConfig};
use emotion_shared::bundle::{Bundle, TrustPolicy};
use emotion_tests::{KillOnDrop, bin_path, pty_pair, run_ok};

fn emotion_train(args: &[&std::ffi::OsStr]) {
    run_ok(
        Command::new(bin_path("emotion-train"))
            .args(args)
            .env("RUST_LOG", "warn")
            .env("OMP_NUM_THREADS", "1"),
    );
}

#[test]
fn labels_over_serial_match_the_synthetic_ground_truth() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let os = |p: &Path| p.as_os_str().to_owned();
    let (csv, run, bundle, key) = (
        d.join("faces.csv"),
        d.join("run"),
        d.join("bundle"),
        d.join("signing.key"),
    );
    emotion_train(&[
        "synth".as_ref(),
        "--out".as_ref(),
        &os(&csv),
        "--count".as_ref(),
        "4000".as_ref(),
        "--seed".as_ref(),
        "5".as_ref(),
    ]);
    emotion_train(&[
        "train".as_ref(),
        "--data".as_ref(),
        &os(&csv),
        "--arch".as_ref(),
        "mini-xception".as_ref(),
        "--epochs".as_ref(),
        "8".as_ref(),
        "--lr".as_ref(),
        "5e-3".as_ref(),
        "--seed".as_ref(),
        "1".as_ref(),
        "--out".as_ref(),
        &os(&run),
    ]);
    emotion_train(&["keygen".as_ref(), "--out".as_ref(), &os(&key)]);
    emotion_train(&[
        "export".as_ref(),
        "--checkpoint".as_ref(),
        &os(&run),
        "--data".as_ref(),
        &os(&csv),
        "--sign-key".as_ref(),
        &os(&key),
        "--out".as_ref(),
        &os(&bundle),
    ]);
    let public = d.join("signing.key.pub");
    let opened = Bundle::open(
        &bundle,
        &TrustPolicy::require(emotion_shared::bundle::read_public_key(&public).expect("key")),
    )
    .expect("bundle");
    let test_accuracy = opened
        .manifest()
        .metrics
        .iter()
        .find(|m| m.name == "accuracy" && m.split.ends_with("private-test"))
        .map(|m| m.value)
        .expect("PrivateTest accuracy in the manifest");
    println!("model PrivateTest accuracy {test_accuracy:.4}");

    // The serial line: a socat pty pair, `emotion-edge listen` on one end.
    let (_socat, a, b) = pty_pair(d);
    let mut listen = KillOnDrop(
        Command::new(bin_path("emotion-edge"))
            .arg("listen")
            .arg(&b)
            .args(["--idle-timeout", "20"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("listen"),
    );
    std::thread::sleep(Duration::from_millis(500));

    // The edge: synthetic camera, one face filling each 96x96 frame, 20 frames per emotion.
    let frames = 210u64;
    let synthetic = SyntheticConfig {
        width: 96,
        height: 96,
        faces: 1,
        fill: true,
        hold_frames: 20,
        seed: 3,
        frames,
        fps: 30.0,
    };
    let json = d.join("edge.jsonl");
    let config = d.join("edge.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\nkind = \"synthetic\"\n[source.synthetic]\n{}\n[detect]\ndetector = \"full-frame\"\n\
             [model]\nbundle = \"{}\"\npublic_key = \"{}\"\n[serial]\nport = \"{}\"\nmax_fps = 0.0\n\
             [json]\npath = \"{}\"\n",
            format_args!(
                "width = {}\nheight = {}\nfaces = 1\nfill = true\nhold_frames = {}\nseed = {}\n\
                 frames = {}\nfps = {:.1}",
                synthetic.width,
                synthetic.height,
                synthetic.hold_frames,
                synthetic.seed,
                synthetic.frames,
                synthetic.fps
            ),
            bundle.display(),
            public.display(),
            a.display(),
            json.display()
        ),
    )
    .expect("config");
    run_ok(
        Command::new(bin_path("emotion-edge"))
            .arg("run")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null()),
    );

    // JSON lines against the camera's schedule.
    let camera = SyntheticCamera::new(synthetic);
    let text = std::fs::read_to_string(&json).expect("json lines");
    let (mut raw_hits, mut smooth_hits, mut smooth_n, mut n) = (0u64, 0u64, 0u64, 0u64);
    let mut reported: Vec<String> = Vec::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        let Some(frame) = v["frame"].as_u64() else {
            continue;
        };
        let faces = v["faces"].as_array().expect("faces");
        assert_eq!(faces.len(), 1, "frame {frame}: {line}");
        let truth = camera.emotion_at(0, frame).name();
        reported.push(
            faces[0]["label"]
                .as_str()
                .unwrap_or_default()
                .to_lowercase(),
        );
        n += 1;
        raw_hits += u64::from(faces[0]["raw_label"] == truth);
        // The reported label follows after the hysteresis: skip the first frames of a hold.
        if frame % 20 >= 10 {
            smooth_n += 1;
            smooth_hits += u64::from(faces[0]["label"] == truth);
        }
    }
    assert_eq!(n, frames, "every frame reported");
    let raw = raw_hits as f64 / n as f64;
    let smooth = smooth_hits as f64 / smooth_n as f64;
    println!("frame labels vs ground truth: {raw:.3} raw, {smooth:.3} smoothed (settled frames)");
    assert!(
        raw >= test_accuracy - 0.1,
        "raw accuracy {raw:.3} vs model {test_accuracy:.3}"
    );
    assert!(
        smooth >= test_accuracy - 0.1,
        "smoothed accuracy {smooth:.3}"
    );

    // The serial side: every line listen printed decodes (it prints only valid lines and
    // reports bad ones on stderr), one F line per frame, labels as in the JSON.
    let stdout = listen.0.stdout.take().expect("stdout");
    let mut serial_labels: Vec<String> = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("utf-8");
        let v: serde_json::Value = serde_json::from_str(&line).expect("listen prints JSON");
        if let Some(label) = v["body"]["Face"]["label"].as_str() {
            serial_labels.push(label.to_lowercase());
        }
        if serial_labels.len() as u64 >= frames {
            break;
        }
    }
    let _ = listen.0.kill();
    let err = {
        let mut s = String::new();
        if let Some(mut e) = listen.0.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut s);
        }
        s
    };
    println!("listen: {} face lines; stderr: {err}", serial_labels.len());
    assert_eq!(
        serial_labels.len() as u64,
        frames,
        "one face line per frame"
    );
    assert_eq!(
        serial_labels, reported,
        "serial labels differ from the JSON lines"
    );
    assert!(!err.contains("bad line"), "bad lines: {err}");
}
