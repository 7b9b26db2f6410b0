//! Bundles and the model store: full verification, refusals with reasons, hot swap between
//! frames of a running stream, rollback.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use emotion_edge::detect::FullFrame;
use emotion_edge::model_store::{
    CURRENT, INBOX, ModelStore, PREVIOUS, REASON_FILE, REJECTED, ROLLBACK_TRIGGER, StoreEvent,
    verify_bundle,
};
use emotion_edge::pipeline::Pipeline;
use emotion_edge::sink::Sinks;
use emotion_edge::smooth::SmoothConfig;
use emotion_edge::source::FrameSource;
use emotion_edge::source::synthetic::{SyntheticCamera, SyntheticConfig};
use emotion_edge::testkit::{TinyNet, signing_key, write_tiny_bundle};
use emotion_shared::bundle::TrustPolicy;

fn policy() -> TrustPolicy {
    TrustPolicy::require(signing_key(1).verifying_key())
}

fn store_with_current(root: &std::path::Path, seed: u64) {
    write_tiny_bundle(
        &root.join(CURRENT),
        &TinyNet::grey48(seed),
        Some(&signing_key(1)),
    )
    .expect("bundle");
}

/// Polls until the inbox entry settles and is handled.
fn poll_until_event(store: &mut ModelStore) -> Vec<StoreEvent> {
    for _ in 0..5 {
        let e = store.poll();
        if !e.is_empty() {
            return e;
        }
    }
    panic!("the store never acted on its inbox");
}

fn rejected_reasons(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(root.join(REJECTED))
        .expect("rejected dir")
        .flatten()
    {
        out.push(std::fs::read_to_string(e.path().join(REASON_FILE)).expect("reason file"));
    }
    out
}

#[test]
fn verify_accepts_a_signed_bundle_and_refuses_tampering() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = dir.path().join("b");
    write_tiny_bundle(&b, &TinyNet::grey48(1), Some(&signing_key(1))).expect("bundle");
    let v = verify_bundle(&b, &policy()).expect("verifies");
    assert!(v.signature.contains("signed by"), "{}", v.signature);
    assert!(v.self_tests > 0);

    // Signed with another key.
    let other = dir.path().join("other");
    write_tiny_bundle(&other, &TinyNet::grey48(1), Some(&signing_key(2))).expect("bundle");
    let err = verify_bundle(&other, &policy()).unwrap_err().to_string();
    assert!(err.contains("does not verify"), "{err}");

    // A model file changed after signing.
    let mut onnx = std::fs::read(b.join("model.onnx")).expect("read");
    let last = onnx.len() - 1;
    onnx[last] ^= 1;
    std::fs::write(b.join("model.onnx"), &onnx).expect("write");
    let err = verify_bundle(&b, &policy()).unwrap_err().to_string();
    assert!(
        err.to_lowercase().contains("sha") || err.contains("hash"),
        "{err}"
    );
}

#[test]
fn hot_swap_installs_a_good_bundle_and_refuses_a_tampered_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    store_with_current(root, 1);
    let (mut store, v) = ModelStore::open(root, policy()).expect("store opens");
    let slot = store.slot();
    let first = v.model.id().to_string();
    assert_eq!(slot.generation(), 0);

    // A good new bundle.
    write_tiny_bundle(
        &root.join(INBOX).join("v2"),
        &TinyNet::grey48(2),
        Some(&signing_key(1)),
    )
    .expect("bundle");
    let events = poll_until_event(&mut store);
    assert!(
        matches!(&events[..], [StoreEvent::Installed { name, .. }] if name == "v2"),
        "{events:?}"
    );
    assert_eq!(slot.generation(), 1);
    assert_eq!(slot.get().1.id(), "tiny-2 0.1.0 (fp32)");
    assert!(root.join(PREVIOUS).join("manifest.json").exists());
    assert!(!root.join(INBOX).join("v2").exists());

    // A tampered one: the running model stays, the bundle goes to rejected/ with a reason.
    let bad = root.join(INBOX).join("v3");
    write_tiny_bundle(&bad, &TinyNet::grey48(3), Some(&signing_key(1))).expect("bundle");
    let manifest = std::fs::read_to_string(bad.join("manifest.json")).expect("read");
    std::fs::write(
        bad.join("manifest.json"),
        manifest.replace("tiny-3", "tiny-9"),
    )
    .expect("write");
    let events = poll_until_event(&mut store);
    assert!(
        matches!(&events[..], [StoreEvent::Rejected { name, .. }] if name == "v3"),
        "{events:?}"
    );
    assert_eq!(slot.generation(), 1);
    assert_eq!(slot.get().1.id(), "tiny-2 0.1.0 (fp32)");
    let reasons = rejected_reasons(root);
    assert_eq!(reasons.len(), 1);
    assert!(reasons[0].contains("does not verify"), "{}", reasons[0]);

    // Not ONNX at all, but correctly signed and pinned: refused at load.
    let junk = root.join(INBOX).join("junk");
    let net = TinyNet::grey48(4);
    let mut manifest = net.manifest(&net.onnx());
    let bytes = b"this is not an onnx model".to_vec();
    manifest.onnx = emotion_shared::manifest::OnnxFile::describe(&bytes);
    emotion_shared::bundle::write_bundle(&junk, &manifest, &bytes, Some(&signing_key(1)))
        .expect("write");
    let events = poll_until_event(&mut store);
    assert!(
        matches!(&events[..], [StoreEvent::Rejected { reason, .. }] if reason.contains("not a loadable ONNX")),
        "{events:?}"
    );

    // Rollback brings the first model back.
    std::fs::write(root.join(INBOX).join(ROLLBACK_TRIGGER), b"").expect("trigger");
    let events = store.poll();
    assert_eq!(
        events,
        vec![StoreEvent::RolledBack {
            model: first.clone()
        }]
    );
    assert_eq!(slot.get().1.id(), first);
}

#[test]
fn a_stream_switches_models_only_between_frames() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().to_path_buf();
    store_with_current(&root, 1);
    let (store, _) = ModelStore::open(&root, policy()).expect("store");
    let slot = store.slot();
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel();
    let watcher = emotion_edge::model_store::spawn_watcher(
        store,
        Duration::from_millis(20),
        emotion_edge::clock::SystemClock::shared(),
        Arc::clone(&stop),
        tx,
    );

    let mut pipeline = Pipeline::new(
        Box::new(FullFrame),
        Arc::clone(&slot),
        SmoothConfig::default(),
        Sinks::new(),
    )
    .expect("pipeline");
    let mut cam = SyntheticCamera::new(SyntheticConfig {
        width: 96,
        height: 96,
        ..SyntheticConfig::default()
    });
    let mut seen = Vec::new();
    let mut dropped = false;
    for i in 0..400 {
        let frame = cam.next_frame().expect("frame").expect("endless");
        let p = pipeline.process(&frame);
        // Every face of a frame was classified by the model of one generation.
        seen.push((p.generation, p.model.clone()));
        if i == 5 {
            write_tiny_bundle(
                &root.join(INBOX).join("v2"),
                &TinyNet::grey48(2),
                Some(&signing_key(1)),
            )
            .expect("bundle");
            dropped = true;
        }
        if dropped && p.generation == 1 && i > 10 {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    watcher.join().expect("watcher thread");
    let events: Vec<_> = rx.try_iter().collect();
    assert!(
        matches!(&events[..], [StoreEvent::Installed { .. }]),
        "{events:?}"
    );
    let ids: Vec<&str> = seen.iter().map(|(_, m)| m.as_str()).collect();
    let switch = ids
        .iter()
        .position(|m| *m == "tiny-2 0.1.0 (fp32)")
        .expect("the new model ran");
    assert!(switch > 5);
    assert!(ids[..switch].iter().all(|m| *m == "tiny-1 0.1.0 (fp32)"));
    assert!(ids[switch..].iter().all(|m| *m == "tiny-2 0.1.0 (fp32)"));
    assert_eq!(pipeline.stats().swaps, 1);
}

#[test]
fn a_tar_bundle_in_the_inbox_is_unpacked_and_installed_and_a_bad_one_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    store_with_current(root, 1);
    let (mut store, _) = ModelStore::open(root, policy()).expect("store opens");
    let slot = store.slot();

    let staged = dir.path().join("staged");
    write_tiny_bundle(&staged, &TinyNet::grey48(5), Some(&signing_key(1))).expect("bundle");
    emotion_shared::bundle_tar::pack(&staged, &root.join(INBOX).join("v5.tar")).expect("tar");
    let events = poll_until_event(&mut store);
    assert!(
        matches!(&events[..], [StoreEvent::Installed { name, .. }] if name == "v5"),
        "{events:?}"
    );
    assert_eq!(slot.get().1.id(), "tiny-5 0.1.0 (fp32)");
    assert!(!root.join(INBOX).join("v5.tar").exists());

    // A truncated archive: refused with its reason, the running model stays.
    let mut bytes = Vec::new();
    emotion_shared::bundle_tar::pack_to(&staged, &mut bytes).expect("tar");
    bytes.truncate(bytes.len() / 3);
    std::fs::write(root.join(INBOX).join("cut.tar"), &bytes).expect("write");
    let events = poll_until_event(&mut store);
    assert!(
        matches!(&events[..], [StoreEvent::Rejected { name, .. }] if name == "cut.tar"),
        "{events:?}"
    );
    assert_eq!(slot.get().1.id(), "tiny-5 0.1.0 (fp32)");
    let reasons = rejected_reasons(root);
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(reasons[0].contains("cut.tar"), "{}", reasons[0]);
    assert!(!root.join(INBOX).join("cut").exists());
}

#[test]
fn a_rollback_request_waits_for_the_service_and_stays_pending_without_one() {
    use emotion_edge::clock::{ManualClock, SystemClock};
    use emotion_edge::model_store::{RollbackRequest, StoreLayout};

    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().to_path_buf();
    let layout = StoreLayout::new(&root);
    // Nothing to go back to: a named error, no trigger left behind.
    store_with_current(&root, 1);
    let (mut store, _) = ModelStore::open(&root, policy()).expect("store");
    let e = ModelStore::request_rollback(&layout, Duration::ZERO, &SystemClock)
        .expect_err("no previous/");
    assert!(e.to_string().contains("nothing to roll back to"), "{e}");
    assert!(!layout.rollback_trigger().exists());

    // A second model arrives, so previous/ holds the first.
    write_tiny_bundle(
        &root.join(INBOX).join("v2"),
        &TinyNet::grey48(2),
        Some(&signing_key(1)),
    )
    .expect("bundle");
    assert!(matches!(
        poll_until_event(&mut store)[..],
        [StoreEvent::Installed { .. }]
    ));

    // No service polls: the request times out on the manual clock (no real waiting) and the
    // trigger stays for the next start.
    let clock = ManualClock::new();
    let r =
        ModelStore::request_rollback(&layout, Duration::from_secs(10), &clock).expect("request");
    assert!(matches!(r, RollbackRequest::Pending { .. }), "{r:?}");
    assert!(clock.elapsed() >= Duration::from_secs(10));
    assert!(layout.rollback_trigger().exists());

    // A service polling its inbox acts on it: the request sees the first model running.
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel();
    let watcher = emotion_edge::model_store::spawn_watcher(
        store,
        Duration::from_millis(20),
        SystemClock::shared(),
        Arc::clone(&stop),
        tx,
    );
    let r = ModelStore::request_rollback(&layout, Duration::from_secs(20), &SystemClock)
        .expect("request");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    watcher.join().expect("watcher");
    let RollbackRequest::Done { from, to } = r else {
        panic!("the running store did not roll back: {r:?}")
    };
    assert_ne!(from.as_deref(), Some(to.as_str()));
    assert!(
        rx.try_iter()
            .any(|e| matches!(e, StoreEvent::RolledBack { .. })),
        "no RolledBack event"
    );
    assert!(!layout.rollback_trigger().exists());
}
