//! The classifier against an independent reference: a tiny ONNX net written with tract's
//! protobuf types, loaded by tract and compared with a plain-Rust forward pass; and the
//! refusals of bad models.

use std::sync::Arc;

use emotion_edge::classify::{ClassifyError, LoadedModel};
use emotion_edge::testkit::{TinyNet, pattern};
use emotion_shared::NUM_CLASSES;
use emotion_shared::manifest::OutputKind;
use emotion_shared::preprocess::{FaceCrop, PixelFormat};

fn load(net: &TinyNet) -> Arc<LoadedModel> {
    let onnx = net.onnx();
    Arc::new(LoadedModel::load(net.manifest(&onnx), &onnx).expect("tiny net loads"))
}

#[test]
fn tract_matches_the_reference_forward_pass() {
    for net in [
        TinyNet::grey48(1),
        TinyNet {
            channels: 3,
            height: 32,
            width: 24,
            ..TinyNet::grey48(2)
        },
        TinyNet {
            symbolic_batch: true,
            ..TinyNet::grey48(3)
        },
    ] {
        let model = load(&net);
        let mut c = model.classifier().expect("classifier");
        let spec = net.preprocess_spec();
        for salt in 0..6 {
            let (w, h, fmt) = (
                30 + salt * 9,
                40 + salt * 3,
                if salt % 2 == 0 {
                    PixelFormat::Rgb
                } else {
                    PixelFormat::Grey
                },
            );
            let px = pattern(w, h, fmt, salt);
            let crop = FaceCrop::from_raw(w, h, fmt, &px).expect("crop");
            let got = c.raw(crop).expect("runs");
            let want = net.reference(&spec.preprocess(crop).expect("preprocess"));
            assert_eq!(got.len(), NUM_CLASSES);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() < 1e-4,
                    "net {net:?} salt {salt} output {i}: tract {g} vs reference {w}"
                );
            }
            let p = c.classify(crop).expect("classify");
            let sum: f32 = p.probabilities.iter().sum();
            assert!((sum - 1.0).abs() < 1e-5, "softmax sums to {sum}");
            assert_eq!(p.confidence, p.probabilities[p.label.index()]);
        }
        let outcomes = c.self_test().expect("self-test passes");
        assert!(!outcomes.is_empty());
        assert!(
            outcomes.iter().all(|o| o.max_abs_error < 1e-4),
            "{outcomes:?}"
        );
    }
}

#[test]
fn probability_models_are_not_softmaxed_twice() {
    let net = TinyNet {
        output: OutputKind::Probabilities,
        ..TinyNet::grey48(9)
    };
    let model = load(&net);
    let mut c = model.classifier().expect("classifier");
    let px = pattern(48, 48, PixelFormat::Grey, 4);
    let crop = FaceCrop::from_raw(48, 48, PixelFormat::Grey, &px).expect("crop");
    let raw = c.raw(crop).expect("raw");
    let p = c.classify(crop).expect("classify");
    for (a, b) in raw.iter().zip(p.probabilities) {
        assert!((a - b).abs() < 1e-6);
    }
    c.self_test().expect("self-test on probabilities");
}

#[test]
fn refuses_bytes_that_are_not_onnx_or_are_truncated() {
    let net = TinyNet::grey48(5);
    let onnx = net.onnx();
    let manifest = net.manifest(&onnx);
    let err = LoadedModel::load(manifest.clone(), b"definitely not a protobuf model").unwrap_err();
    assert!(matches!(err, ClassifyError::NotOnnx { .. }), "{err}");
    assert!(
        err.to_string().contains("not a loadable ONNX model"),
        "{err}"
    );
    for cut in [1, onnx.len() / 3, onnx.len() - 7] {
        let err =
            LoadedModel::load(manifest.clone(), &onnx[..cut]).expect_err("truncated model refused");
        let msg = err.to_string();
        assert!(msg.contains("model.onnx"), "cut {cut}: {msg}");
    }
    assert!(LoadedModel::load(manifest, &[]).is_err());
}

#[test]
fn refuses_a_model_whose_input_shape_contradicts_the_manifest() {
    // The graph takes 32x32, the manifest (and its preprocessing) says 48x48.
    let small = TinyNet {
        height: 32,
        width: 32,
        ..TinyNet::grey48(6)
    };
    let onnx = small.onnx();
    let manifest = TinyNet::grey48(6).manifest(&onnx);
    let err = LoadedModel::load(manifest, &onnx).unwrap_err();
    assert!(matches!(err, ClassifyError::InputShape { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("[1, 1, 32, 32]") && msg.contains("[1, 1, 48, 48]"),
        "{msg}"
    );

    // Three channels in the graph, one in the manifest.
    let rgb = TinyNet {
        channels: 3,
        ..TinyNet::grey48(6)
    };
    let onnx = rgb.onnx();
    let err = LoadedModel::load(TinyNet::grey48(6).manifest(&onnx), &onnx).unwrap_err();
    assert!(matches!(err, ClassifyError::InputShape { .. }), "{err}");
}

#[test]
fn a_self_test_that_does_not_reproduce_fails_with_the_case_name() {
    let net = TinyNet::grey48(7);
    let onnx = net.onnx();
    let mut manifest = net.manifest(&onnx);
    manifest.self_test[0].expected[0] += 0.5;
    let name = manifest.self_test[0].name.clone();
    let model = Arc::new(LoadedModel::load(manifest, &onnx).expect("loads"));
    let err = model
        .classifier()
        .expect("classifier")
        .self_test()
        .unwrap_err();
    assert!(matches!(err, ClassifyError::SelfTest(_)), "{err}");
    assert!(err.to_string().contains(&name), "{err}");
}
