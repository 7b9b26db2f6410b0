//! Random bytes as bundles, frames and serial input: errors, never panics.

use emotion_edge::classify::LoadedModel;
use emotion_edge::model_store::verify_bundle;
use emotion_edge::source::decode::{decode_jpeg, yuyv_to_rgb};
use emotion_edge::testkit::TinyNet;
use emotion_shared::bundle::TrustPolicy;
use emotion_shared::protocol::StreamDecoder;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_model_bytes_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let net = TinyNet::grey48(1);
        let manifest = net.manifest(&net.onnx());
        prop_assert!(LoadedModel::load(manifest, &bytes).is_err());
    }

    #[test]
    fn corrupted_models_never_panic(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let net = TinyNet::grey48(2);
        let mut onnx = net.onnx();
        let manifest = net.manifest(&onnx);
        for (i, b) in flips {
            let k = i.index(onnx.len());
            onnx[k] = b;
        }
        // Either an error or a model that still runs; never a panic.
        if let Ok(m) = LoadedModel::load(manifest, &onnx) {
            let m = std::sync::Arc::new(m);
            let _ = m.classifier().and_then(|mut c| c.self_test());
        }
    }

    #[test]
    fn random_bundle_files_are_refused(
        manifest in proptest::collection::vec(any::<u8>(), 0..512),
        onnx in proptest::collection::vec(any::<u8>(), 0..512),
        sig in proptest::collection::vec(any::<u8>(), 0..160),
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("manifest.json"), &manifest).expect("write");
        std::fs::write(dir.path().join("model.onnx"), &onnx).expect("write");
        std::fs::write(dir.path().join("manifest.sig"), &sig).expect("write");
        prop_assert!(verify_bundle(dir.path(), &TrustPolicy::AllowUnsigned).is_err());
        let key = emotion_edge::testkit::signing_key(3).verifying_key();
        prop_assert!(verify_bundle(dir.path(), &TrustPolicy::require(key)).is_err());
    }

    #[test]
    fn random_frames_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096), w in 0u32..64, h in 0u32..64) {
        let _ = decode_jpeg(&bytes);
        let mut jpeg = vec![0xFF, 0xD8];
        jpeg.extend_from_slice(&bytes);
        let _ = decode_jpeg(&jpeg);
        let _ = yuyv_to_rgb(&bytes, w, h);
    }

    #[test]
    fn random_serial_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let mut d = StreamDecoder::new();
        let _ = d.feed(&bytes);
        let _ = d.finish();
        prop_assert!(d.buffered() < 128);
    }
}
