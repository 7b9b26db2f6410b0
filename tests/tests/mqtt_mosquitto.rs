//! The MQTT sink against a real Mosquitto broker (Debian `mosquitto`, `mosquitto-clients`;
//! `scripts/bootstrap` installs them) started by the test on a free port of 127.0.0.1 with a
//! config of its own (a system broker on 1883 is never touched), and an independent
//! subscriber (`mosquitto_sub`) that checks what a dashboard would see: Home Assistant
//! discovery configs, retained state and availability, events, re-announcement when Home
//! Assistant comes online, reconnection after the broker restarts (with the count of lost
//! messages), the last will when the device dies, and user/password authentication.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use emotion_edge::model_store::{CURRENT, INBOX};
use emotion_edge::testkit::{TinyNet, write_tiny_bundle};
use emotion_tests::{KillOnDrop, bin_path, run_ok};
use serde_json::Value;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Starts `mosquitto -c DIR/mosquitto.conf` on `port`; with `users`, only those may connect.
fn broker(dir: &Path, port: u16, users: &[(&str, &str)]) -> KillOnDrop {
    let mut conf =
        format!("listener {port} 127.0.0.1\npersistence false\nlog_dest stderr\nuser root\n");
    if users.is_empty() {
        conf.push_str("allow_anonymous true\n");
    } else {
        let file = dir.join("passwd");
        std::fs::write(&file, "").expect("passwd");
        for (user, password) in users {
            let ok = Command::new("mosquitto_passwd")
                .arg("-b")
                .arg(&file)
                .args([user, password])
                .status()
                .expect("mosquitto_passwd (Debian mosquitto)");
            assert!(ok.success());
        }
        conf.push_str(&format!(
            "allow_anonymous false\npassword_file {}\n",
            file.display()
        ));
    }
    run_broker(dir, port, &conf)
}

/// Writes `conf` to `DIR/mosquitto.conf`, starts mosquitto on it and waits until `port` takes
/// connections.
fn run_broker(dir: &Path, port: u16, conf: &str) -> KillOnDrop {
    let path = dir.join("mosquitto.conf");
    std::fs::write(&path, conf).expect("mosquitto.conf");
    let child = KillOnDrop(
        Command::new("mosquitto")
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("mosquitto.log")).expect("log"))
            .spawn()
            .expect("mosquitto (Debian package mosquitto; scripts/bootstrap installs it)"),
    );
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "mosquitto did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// `mosquitto_sub` on every topic, lines `RETAIN TOPIC PAYLOAD` into `file`.
fn subscriber(port: u16, file: &Path, login: Option<(&str, &str)>) -> KillOnDrop {
    let mut cmd = Command::new("mosquitto_sub");
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-t", "#", "-F", "%r %t %p", "-q", "1"]);
    if let Some((u, p)) = login {
        cmd.args(["-u", u, "-P", p]);
    }
    let child = KillOnDrop(
        cmd.stdout(std::fs::File::create(file).expect("sub file"))
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto_sub (Debian mosquitto-clients)"),
    );
    // Subscribed before anything is published.
    std::thread::sleep(Duration::from_millis(300));
    child
}

/// A message seen by a subscriber.
#[derive(Debug, Clone)]
struct Seen {
    retained: bool,
    topic: String,
    payload: String,
}

fn seen(file: &Path) -> Vec<Seen> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (r, rest) = l.split_once(' ')?;
            let (topic, payload) = rest.split_once(' ').unwrap_or((rest, ""));
            Some(Seen {
                retained: r == "1",
                topic: topic.into(),
                payload: payload.into(),
            })
        })
        .collect()
}

/// Waits (30 s at most) until the subscriber's messages satisfy `pred`; returns them.
fn wait_until(file: &Path, what: &str, pred: impl Fn(&[Seen]) -> bool) -> Vec<Seen> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = seen(file);
        if pred(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "never saw {what}; the subscriber got:\n{}",
            std::fs::read_to_string(file).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn has(s: &[Seen], topic: &str, payload: &str) -> bool {
    s.iter().any(|m| m.topic == topic && m.payload == payload)
}

fn count(s: &[Seen], topic_prefix: &str) -> usize {
    s.iter()
        .filter(|m| m.topic.starts_with(topic_prefix))
        .count()
}

/// The retained message of `topic`, as a fresh subscriber receives it.
fn retained(port: u16, topic: &str, login: Option<(&str, &str)>) -> String {
    let mut cmd = Command::new("mosquitto_sub");
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", topic])
        .args(["-C", "1", "-W", "5", "-F", "%r %p"]);
    if let Some((u, p)) = login {
        cmd.args(["-u", u, "-P", p]);
    }
    String::from_utf8_lossy(&cmd.output().expect("mosquitto_sub").stdout)
        .trim()
        .to_string()
}

/// A store with a tiny model, for an edge that runs on the synthetic camera.
fn store(dir: &Path) -> PathBuf {
    let store = dir.join("models");
    write_tiny_bundle(&store.join(CURRENT), &TinyNet::grey48(1), None).expect("bundle");
    std::fs::create_dir_all(store.join(INBOX)).expect("inbox");
    store
}

fn edge(store: &Path, extra: &[&str]) -> KillOnDrop {
    KillOnDrop(
        Command::new(bin_path("emotion-edge"))
            .args(["run", "--source", "synthetic", "--synthetic-faces", "1"])
            .args(["--synthetic-fps", "20", "--detector", "full-frame"])
            .args(["--allow-unsigned", "--store"])
            .arg(store)
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(store.with_file_name("edge.log")).expect("edge log"))
            .spawn()
            .expect("emotion-edge runs"),
    )
}

fn status(store: &Path) -> Value {
    let out = run_ok(
        Command::new(bin_path("emotion-edge"))
            .args(["status", "--store"])
            .arg(store),
    );
    serde_json::from_str(&out).expect("status is JSON")
}

/// The device's status once `pred` holds (10 s at most; then the last one read).
fn status_when(store: &Path, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let st = status(store);
        if pred(&st) || Instant::now() >= deadline {
            return st;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn mosquitto_sees_discovery_state_events_reconnection_and_the_last_will() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let port = free_port();
    let mut mosquitto = broker(d, port, &[]);
    let sub_file = d.join("sub1.txt");
    let sub = subscriber(port, &sub_file, None);
    let store = store(d);
    let port_arg = port.to_string();
    let mut edge = edge(
        &store,
        &[
            "--mqtt-host",
            "127.0.0.1",
            "--mqtt-port",
            &port_arg,
            "--mqtt-device",
            "lab-1",
            "--mqtt-frame-rate",
            "5",
        ],
    );
    let base = "emotion/lab-1";
    let disco = "homeassistant/sensor/emotion_edge_lab-1/";

    // 1. Availability, four discovery configs grouped as one device, state, frames, events.
    let s = wait_until(&sub_file, "the device's first messages", |s| {
        has(s, &format!("{base}/availability"), "online")
            && count(s, disco) >= 4
            && count(s, &format!("{base}/state")) >= 1
            && count(s, &format!("{base}/frame")) >= 2
            && count(s, &format!("{base}/status")) >= 1
    });
    let configs: Vec<Value> = s
        .iter()
        .filter(|m| m.topic.starts_with(disco))
        .map(|m| serde_json::from_str(&m.payload).expect("config JSON"))
        .collect();
    let objects: Vec<&str> = s
        .iter()
        .filter(|m| m.topic.starts_with(disco))
        .map(|m| {
            m.topic
                .trim_start_matches(disco)
                .trim_end_matches("/config")
        })
        .collect();
    assert_eq!(objects, ["dominant_emotion", "faces", "model", "fps"]);
    for c in &configs {
        assert_eq!(c["device"]["identifiers"][0], "emotion_edge_lab-1", "{c}");
        assert_eq!(c["state_topic"], format!("{base}/state"));
        assert_eq!(c["availability_topic"], format!("{base}/availability"));
        assert!(
            c["unique_id"]
                .as_str()
                .is_some_and(|u| u.starts_with("emotion_edge_lab-1_"))
        );
    }
    let state: Value = serde_json::from_str(
        &s.iter()
            .find(|m| m.topic == format!("{base}/state"))
            .expect("state")
            .payload,
    )
    .expect("state JSON");
    assert_eq!(state["faces"], 1, "{state}");
    assert!(
        state["model"]
            .as_str()
            .is_some_and(|m| m.starts_with("tiny-1")),
        "{state}"
    );
    let frame: Value = serde_json::from_str(
        &s.iter()
            .find(|m| m.topic == format!("{base}/frame"))
            .expect("frame")
            .payload,
    )
    .expect("frame JSON");
    assert_eq!(
        frame["faces"][0]["box"].as_array().map(Vec::len),
        Some(4),
        "{frame}"
    );
    let start: Value = serde_json::from_str(
        &s.iter()
            .find(|m| m.topic == format!("{base}/status"))
            .expect("status")
            .payload,
    )
    .expect("status JSON");
    assert_eq!(start["code"], "start", "{start}");
    assert_eq!(
        retained(port, &format!("{base}/availability"), None),
        "1 online"
    );
    let late_file = d.join("late.txt");
    let late = subscriber(port, &late_file, None);
    let s = wait_until(&late_file, "the retained configs", |s| count(s, disco) >= 4);
    assert!(
        s.iter()
            .filter(|m| m.topic.starts_with(disco))
            .all(|m| m.retained),
        "discovery configs are retained: {s:?}"
    );
    drop(late);
    assert!(retained(port, &format!("{base}/state"), None).starts_with("1 {"));

    // 2. Home Assistant restarts: the device announces itself again.
    let ok = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port_arg])
        .args(["-t", "homeassistant/status", "-m", "online"])
        .status()
        .expect("mosquitto_pub");
    assert!(ok.success());
    wait_until(&sub_file, "the discovery configs again", |s| {
        count(s, disco) >= 8
    });
    drop(sub);

    // 3. The broker goes away for a while and comes back (without its retained messages):
    //    the frame loop never stalls, the device reconnects, announces itself again and
    //    reports what it lost.
    let frames_before = status(&store)["frames"].as_u64().expect("frames");
    let _ = mosquitto.0.kill();
    let _ = mosquitto.0.wait();
    std::thread::sleep(Duration::from_millis(2500));
    let frames_down = status(&store)["frames"].as_u64().expect("frames");
    assert!(
        frames_down > frames_before,
        "frames stalled while the broker was away: {frames_before} -> {frames_down}"
    );
    let st = status_when(&store, |st| st["mqtt"]["connected"] == false);
    assert_eq!(st["mqtt"]["connected"], false, "{st}");
    mosquitto = broker(d, port, &[]);
    let sub_file = d.join("sub2.txt");
    let _sub = subscriber(port, &sub_file, None);
    let s = wait_until(&sub_file, "the device back after the restart", |s| {
        has(s, &format!("{base}/availability"), "online")
            && count(s, disco) >= 4
            && s.iter().any(|m| m.payload.contains("\"mqtt_lost\""))
    });
    let lost: Value = serde_json::from_str(
        &s.iter()
            .find(|m| m.payload.contains("\"mqtt_lost\""))
            .expect("lost")
            .payload,
    )
    .expect("JSON");
    assert_eq!(lost["level"], "warning", "{lost}");
    // status.json is rewritten once a second: it may still show the link down for a moment
    // after the broker has seen the device back.
    let st = status_when(&store, |st| st["mqtt"]["connected"] == true);
    assert_eq!(st["mqtt"]["connected"], true, "{st}");
    assert!(st["lost_messages"].as_u64().is_some_and(|n| n > 0), "{st}");
    assert!(
        st["mqtt"]["connections"].as_u64().is_some_and(|n| n >= 2),
        "{st}"
    );
    assert_eq!(st["healthy"], true, "{st}");
    assert_eq!(st["model"]["name"], "tiny-1", "{st}");

    // 4. The device dies without a word: the broker publishes its last will, retained.
    let _ = edge.0.kill();
    let _ = edge.0.wait();
    wait_until(&sub_file, "the last will", |s| {
        has(s, &format!("{base}/availability"), "offline")
    });
    assert_eq!(
        retained(port, &format!("{base}/availability"), None),
        "1 offline"
    );
    drop(mosquitto);
}

#[test]
fn a_broker_with_passwords_admits_the_configured_device_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let port = free_port();
    let _mosquitto = broker(d, port, &[("lab-2", "s3cret"), ("watcher", "w")]);
    let sub_file = d.join("sub.txt");
    let _sub = subscriber(port, &sub_file, Some(("watcher", "w")));

    // The right password, all from the TOML file's [mqtt] section.
    let good = d.join("good");
    std::fs::create_dir_all(&good).expect("dir");
    let store_good = store(&good);
    std::fs::write(good.join("mqtt.pass"), "s3cret\n").expect("pass");
    std::fs::write(
        good.join("config.toml"),
        format!(
            "[mqtt]\nhost = \"127.0.0.1\"\nport = {port}\ndevice = \"lab-2\"\nusername = \"lab-2\"\n\
             password_file = \"{}\"\ntopic_prefix = \"school/room4\"\ndiscovery = false\n",
            good.join("mqtt.pass").display()
        ),
    )
    .expect("config");
    let cfg = good.join("config.toml");
    let _edge_good = edge(&store_good, &["--config", cfg.to_str().expect("utf8")]);

    // A wrong password: refused by the broker, and the device carries on regardless.
    let bad = d.join("bad");
    std::fs::create_dir_all(&bad).expect("dir");
    let store_bad = store(&bad);
    std::fs::write(bad.join("mqtt.pass"), "guess\n").expect("pass");
    let port_arg = port.to_string();
    let pass_bad = bad.join("mqtt.pass");
    let _edge_bad = edge(
        &store_bad,
        &[
            "--mqtt-host",
            "127.0.0.1",
            "--mqtt-port",
            &port_arg,
            "--mqtt-device",
            "intruder",
            "--mqtt-username",
            "lab-2",
            "--mqtt-password-file",
            pass_bad.to_str().expect("utf8"),
        ],
    );

    let s = wait_until(&sub_file, "the authenticated device", |s| {
        has(s, "school/room4/lab-2/availability", "online")
            && count(s, "school/room4/lab-2/state") >= 1
    });
    assert_eq!(count(&s, "homeassistant/"), 0, "discovery = false");
    std::thread::sleep(Duration::from_secs(2));
    let s = seen(&sub_file);
    assert_eq!(count(&s, "emotion/intruder"), 0, "{s:?}");
    let before = status(&store_bad);
    std::thread::sleep(Duration::from_millis(1500));
    let after = status(&store_bad);
    assert_eq!(after["mqtt"]["connected"], false, "{after}");
    assert_eq!(after["mqtt"]["connections"], 0, "{after}");
    assert!(
        after["frames"].as_u64() > before["frames"].as_u64(),
        "the refused device kept running: {before} -> {after}"
    );
}

/// `openssl` (Debian openssl) with `args`, in `dir`; must succeed.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (Debian openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A throwaway certificate authority `NAME.crt`/`NAME.key` in `dir`.
fn make_ca(dir: &Path, name: &str) {
    let (crt, key) = (format!("{name}.crt"), format!("{name}.key"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=emotion test CA",
            "-keyout",
            &key,
            "-out",
            &crt,
        ],
    );
}

#[test]
fn a_tls_broker_is_reached_with_the_devices_ca_file_and_not_without_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let port = free_port();
    // A CA, and a server certificate for 127.0.0.1 signed by it; another CA the broker's
    // certificate does not chain to.
    make_ca(d, "ca");
    make_ca(d, "other-ca");
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(d.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").expect("san");
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.crt",
        ],
    );
    let conf = format!(
        "listener {port} 127.0.0.1\ncafile {0}/ca.crt\ncertfile {0}/server.crt\n\
             keyfile {0}/server.key\nallow_anonymous true\npersistence false\nlog_dest stderr\n\
             user root\n",
        d.display()
    );
    let _mosquitto = run_broker(d, port, &conf);
    let sub_file = d.join("sub.txt");
    let ca = d.join("ca.crt");
    let _sub = KillOnDrop(
        Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .arg("--cafile")
            .arg(&ca)
            .args(["-t", "#", "-F", "%r %t %p", "-q", "1"])
            .stdout(std::fs::File::create(&sub_file).expect("sub file"))
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto_sub (Debian mosquitto-clients)"),
    );
    std::thread::sleep(Duration::from_millis(300));

    let port_arg = port.to_string();
    let edge_with_ca = |name: &str, ca_file: &Path| {
        let sub = d.join(name);
        std::fs::create_dir_all(&sub).expect("dir");
        let store = store(&sub);
        let child = edge(
            &store,
            &[
                "--mqtt-host",
                "127.0.0.1",
                "--mqtt-port",
                &port_arg,
                "--mqtt-device",
                name,
                "--mqtt-ca-file",
                ca_file.to_str().expect("utf8"),
            ],
        );
        (child, store)
    };
    let (_trusting, _) = edge_with_ca("tls-1", &ca);
    let (_wrong, store_wrong) = edge_with_ca("tls-2", &d.join("other-ca.crt"));

    let s = wait_until(&sub_file, "the device over TLS", |s| {
        has(s, "emotion/tls-1/availability", "online") && count(s, "emotion/tls-1/state") >= 1
    });
    assert!(count(&s, "homeassistant/") >= 1, "{s:?}");
    // The device whose CA file does not vouch for the broker never gets in, and runs on.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(count(&seen(&sub_file), "emotion/tls-2"), 0);
    let before = status(&store_wrong);
    std::thread::sleep(Duration::from_millis(1500));
    let after = status(&store_wrong);
    assert_eq!(after["mqtt"]["connected"], false, "{after}");
    assert!(
        after["frames"].as_u64() > before["frames"].as_u64(),
        "the refused device kept running: {before} -> {after}"
    );
}
