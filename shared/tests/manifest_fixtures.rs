//! The manifest schema against the fixtures in `testdata/manifest/`: the valid example parses
//! and round-trips, each invalid one fails with a message that names the problem.

use std::path::PathBuf;

use emotion_shared::Emotion;
use emotion_shared::manifest::{
    Manifest, ManifestError, OutputKind, Quantization, SCHEMA_VERSION, SelfTestFailure,
};
use emotion_shared::preprocess::{PixelFormat, PreprocessSpec};
use proptest::prelude::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/manifest")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn valid() -> Manifest {
    Manifest::from_json(&fixture("valid.json")).expect("valid.json is valid")
}

fn error_of(name: &str) -> String {
    match Manifest::from_json(&fixture(name)) {
        Ok(_) => panic!("{name} was accepted"),
        Err(e) => e.to_string(),
    }
}

fn assert_mentions(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "error {msg:?} does not mention {p:?}");
    }
}

#[test]
fn valid_example_parses_with_the_documented_content() {
    let m = valid();
    assert_eq!(m.schema_version, SCHEMA_VERSION);
    assert_eq!(m.labels, Emotion::names());
    assert_eq!(m.preprocess, PreprocessSpec::fer2013_grey48());
    assert_eq!(m.input.shape, m.preprocess.input_shape());
    assert_eq!(m.output.kind, OutputKind::Logits);
    assert!(matches!(m.quantization, Quantization::Int8 { .. }));
    assert_eq!(m.onnx.file, "model.onnx");
    assert_eq!(m.self_test[0].input.format, PixelFormat::Grey);
    assert_eq!(m.self_test[0].input.pixels.len(), 36);
    assert_eq!(m.self_test[0].top_label, Emotion::Happy);
    assert_eq!(m.label(3), Some(Emotion::Happy));
}

#[test]
fn valid_example_is_canonical_and_round_trips() {
    let m = valid();
    let text = m.to_json_pretty().expect("serialise");
    // valid.json is exactly what to_json_pretty writes, so it documents the real output.
    assert_eq!(text.as_bytes(), fixture("valid.json").as_slice());
    assert_eq!(Manifest::from_json(text.as_bytes()), Ok(m));
}

#[test]
fn newer_version_says_update_the_runtime() {
    assert_eq!(
        error_of("invalid_newer_version.json"),
        "manifest schema version 2 is newer than this runtime supports (1): update emotion-edge"
    );
    let e = Manifest::from_json(br#"{"schema_version": 0}"#).unwrap_err();
    assert!(
        matches!(e, ManifestError::OlderVersion { found: 0, .. }),
        "{e}"
    );
    let e = Manifest::from_json(br#"{"schema_version": "1"}"#).unwrap_err();
    assert_eq!(e, ManifestError::BadVersion("\"1\"".into()));
    let e = Manifest::from_json(br#"{"model": {}}"#).unwrap_err();
    assert_eq!(e, ManifestError::MissingVersion);
}

#[test]
fn missing_fields_are_named() {
    assert_eq!(
        error_of("invalid_missing_labels.json"),
        "manifest.json: missing field `labels`"
    );
    assert_eq!(
        error_of("invalid_missing_onnx_sha256.json"),
        "manifest.json field `onnx`: missing field `sha256`"
    );
}

#[test]
fn unknown_fields_are_named() {
    assert_mentions(
        &error_of("invalid_unknown_field.json"),
        &[
            "field `preprocess.colour`",
            "unknown field `colour`",
            "expected one of",
            "`color`",
        ],
    );
    assert_mentions(
        &error_of("invalid_unknown_top_level_field.json"),
        &["manifest.json field `comment`: unknown field `comment`"],
    );
}

#[test]
fn bad_sha_is_explained() {
    assert_mentions(
        &error_of("invalid_bad_sha256.json"),
        &[
            "field `onnx.sha256`",
            "sha256 must be 64 hex digits",
            "63 characters",
        ],
    );
}

#[test]
fn cross_field_errors_are_explained() {
    assert_mentions(
        &error_of("invalid_labels_order.json"),
        &[
            "field `labels`",
            "FER2013 order",
            "labels[3] is \"sad\" where \"happy\"",
        ],
    );
    assert_mentions(
        &error_of("invalid_shape_mismatch.json"),
        &["field `input.shape`", "[1, 3, 48, 48]", "[1, 1, 48, 48]"],
    );
    assert_mentions(
        &error_of("invalid_self_test_length.json"),
        &["field `self_test[0].expected`", "6 values", "7 outputs"],
    );
    assert_mentions(
        &error_of("invalid_bad_created_at.json"),
        &["field `created_at`", "RFC 3339", "2025-02-30"],
    );
    assert_mentions(
        &error_of("invalid_not_json.json"),
        &["not valid JSON", "line"],
    );
}

#[test]
fn not_an_object_or_empty() {
    assert_eq!(
        Manifest::from_json(b"[]").unwrap_err(),
        ManifestError::NotAnObject("an array")
    );
    assert!(matches!(
        Manifest::from_json(b"").unwrap_err(),
        ManifestError::Syntax(_)
    ));
    assert!(matches!(
        Manifest::from_json(&[0xff, 0xfe]).unwrap_err(),
        ManifestError::Syntax(_)
    ));
}

fn validation_error(edit: impl FnOnce(&mut Manifest)) -> String {
    let mut m = valid();
    edit(&mut m);
    let direct = m
        .validate()
        .expect_err("edit must make the manifest invalid");
    // the same error through JSON, where it can be written at all
    if let Ok(text) = m.to_json_pretty() {
        assert_eq!(Manifest::from_json(text.as_bytes()).unwrap_err(), direct);
    }
    direct.to_string()
}

#[test]
fn validation_rules() {
    type Edit = Box<dyn FnOnce(&mut Manifest)>;
    let cases: Vec<(Edit, &[&str])> = vec![
        (
            Box::new(|m| m.model.version = "1.2".into()),
            &["model.version", "MAJOR.MINOR.PATCH"],
        ),
        (
            Box::new(|m| m.model.name = " ".into()),
            &["model.name", "empty"],
        ),
        (
            Box::new(|m| m.model.architecture = "mini xception".into()),
            &["model.architecture"],
        ),
        (
            Box::new(|m| m.preprocess.std = vec![0.0]),
            &["preprocess", "std[0] is 0"],
        ),
        (
            Box::new(|m| m.output.shape = [1, 8]),
            &["output.shape", "[1, 7]"],
        ),
        (Box::new(|m| m.labels.truncate(6)), &["labels", "6 labels"]),
        (
            Box::new(|m| m.onnx.file = "../model.onnx".into()),
            &["onnx.file", "model.onnx"],
        ),
        (Box::new(|m| m.onnx.size_bytes = 0), &["onnx.size_bytes"]),
        (
            Box::new(|m| m.training.best_epoch = 61),
            &["training.best_epoch", "1..=60"],
        ),
        (Box::new(|m| m.training.epochs = 0), &["training.epochs"]),
        (
            Box::new(|m| m.lineage.git_commit = Some("xyz".into())),
            &["lineage.git_commit"],
        ),
        (
            Box::new(|m| m.self_test.clear()),
            &["self_test", "at least one case"],
        ),
        (
            Box::new(|m| m.self_test[0].tolerance = 0.0),
            &["self_test[0].tolerance"],
        ),
        (
            Box::new(|m| m.self_test[0].top_label = Emotion::Sad),
            &[
                "self_test[0].top_label",
                "is sad",
                "largest expected value is happy",
            ],
        ),
        (
            Box::new(|m| m.self_test[0].expected[6] = 4.1),
            &["self_test[0].expected", "not a stable check"],
        ),
        (
            Box::new(|m| {
                m.self_test[0]
                    .input
                    .pixels
                    .pop()
                    .map(drop)
                    .unwrap_or_default()
            }),
            &["self_test[0].input.pixels_hex", "needs 36 bytes but 35"],
        ),
        (
            Box::new(|m| {
                m.output.kind = OutputKind::Probabilities;
            }),
            &["self_test[0].expected", "probability outside [0, 1]"],
        ),
        (
            Box::new(|m| {
                if let Quantization::Int8 { accuracy, .. } = &mut m.quantization {
                    accuracy.int8 = 65.2;
                }
            }),
            &["quantization.accuracy.int8", "fractions in [0, 1]"],
        ),
    ];
    for (edit, parts) in cases {
        assert_mentions(&validation_error(edit), parts);
    }
}

#[test]
fn non_finite_numbers_are_refused() {
    // (JSON cannot carry NaN: serde_json writes it as null, so only validate() sees it.)
    let mut m = valid();
    m.metrics[1].value = f64::NAN;
    let e = m.validate().unwrap_err().to_string();
    assert_mentions(&e, &["metrics[1].value", "finite"]);
    let mut m = valid();
    m.self_test[0].expected[2] = f32::INFINITY;
    let e = m.validate().unwrap_err().to_string();
    assert_mentions(&e, &["self_test[0].expected", "value 2 is not finite"]);
}

#[test]
fn probabilities_must_sum_to_one() {
    let msg = validation_error(|m| {
        m.output.kind = OutputKind::Probabilities;
        m.self_test[0].expected = vec![0.1, 0.0, 0.0, 0.6, 0.1, 0.0, 0.1];
    });
    assert_mentions(&msg, &["sum to 0.9"]);
    let mut m = valid();
    m.output.kind = OutputKind::Probabilities;
    m.self_test[0].expected = vec![0.1, 0.0, 0.0, 0.6, 0.1, 0.0, 0.2];
    assert_eq!(m.validate(), Ok(()));
}

#[test]
fn unquantized_and_backbone_variants_are_valid() {
    let mut m = valid();
    m.quantization = Quantization::none();
    m.lineage.backbone = Some("vggface2-resnet50".into());
    m.model.description = None;
    m.metrics.clear();
    m.training.extra.clear();
    m.preprocess = PreprocessSpec::vggface2_resnet50();
    m.input.shape = m.preprocess.input_shape();
    let text = m.to_json_pretty().expect("serialise");
    assert!(text.contains("\"kind\": \"none\""), "{text}");
    assert!(!text.contains("description"));
    assert_eq!(Manifest::from_json(text.as_bytes()), Ok(m));
}

#[test]
fn optional_fields_may_be_omitted() {
    let mut v: serde_json::Value = serde_json::from_slice(&fixture("valid.json")).expect("json");
    let lineage = v["lineage"].as_object_mut().expect("object");
    for k in [
        "backbone",
        "backbone_sha256",
        "dataset_sha256",
        "git_commit",
    ] {
        lineage.remove(k);
    }
    v["training"]
        .as_object_mut()
        .expect("object")
        .remove("extra");
    v["model"]
        .as_object_mut()
        .expect("object")
        .remove("description");
    let m = Manifest::from_json(v.to_string().as_bytes()).expect("still valid");
    assert_eq!(m.lineage.git_commit, None);
}

#[test]
fn quantization_variants_are_strict() {
    let mut v: serde_json::Value = serde_json::from_slice(&fixture("valid.json")).expect("json");
    v["quantization"] = serde_json::json!({"kind": "int4"});
    let e = Manifest::from_json(v.to_string().as_bytes())
        .unwrap_err()
        .to_string();
    assert_mentions(&e, &["field `quantization.kind`", "int4"]);
    v["quantization"] = serde_json::json!({"kind": "none", "scheme": "x"});
    let e = Manifest::from_json(v.to_string().as_bytes())
        .unwrap_err()
        .to_string();
    assert_mentions(&e, &["field `quantization`"]);
    v["quantization"] = serde_json::json!({"kind": "none"});
    assert!(Manifest::from_json(v.to_string().as_bytes()).is_ok());
}

#[test]
fn list_errors_carry_the_index() {
    let mut v: serde_json::Value = serde_json::from_slice(&fixture("valid.json")).expect("json");
    v["metrics"][2]["value"] = serde_json::json!("high");
    let e = Manifest::from_json(v.to_string().as_bytes())
        .unwrap_err()
        .to_string();
    assert_mentions(&e, &["field `metrics[2].value`", "invalid type"]);
    v = serde_json::from_slice(&fixture("valid.json")).expect("json");
    v["self_test"][0]["input"]["pixels_hex"] = serde_json::json!("zz");
    let e = Manifest::from_json(v.to_string().as_bytes())
        .unwrap_err()
        .to_string();
    assert_mentions(
        &e,
        &["field `self_test[0].input.pixels_hex`", "invalid hex"],
    );
    v = serde_json::from_slice(&fixture("valid.json")).expect("json");
    v["self_test"][0]["top_label"] = serde_json::json!("joy");
    let e = Manifest::from_json(v.to_string().as_bytes())
        .unwrap_err()
        .to_string();
    assert_mentions(&e, &["field `self_test[0].top_label`", "joy"]);
}

#[test]
fn self_test_check_compares_values_and_label() {
    let case = &valid().self_test[0];
    let mut out = case.expected.clone();
    out[0] += 0.04;
    let ok = case.check(&out).expect("within tolerance");
    assert_eq!(ok.top_label, Emotion::Happy);
    assert!((ok.max_abs_error - 0.04).abs() < 1e-6);

    out[0] += 0.02;
    let e = case.check(&out).unwrap_err();
    assert!(matches!(e, SelfTestFailure::Value { index: 0, .. }), "{e}");
    assert_mentions(
        &e.to_string(),
        &["synthetic-happy-6x6", "output 0", "preprocessing"],
    );

    assert!(matches!(
        case.check(&out[..6]).unwrap_err(),
        SelfTestFailure::Length {
            expected: 7,
            actual: 6,
            ..
        }
    ));
    let mut nan = case.expected.clone();
    nan[2] = f32::NAN;
    assert!(case.check(&nan).is_err());
}

#[test]
fn self_test_input_preprocesses() {
    let m = valid();
    let crop = m.self_test[0].input.crop().expect("crop");
    let x = m.preprocess.preprocess(crop).expect("preprocess");
    assert_eq!(x.len(), 48 * 48);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Manifest::from_json(&bytes);
    }

    #[test]
    fn corrupted_valid_manifest_never_panics(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)
    ) {
        let mut bytes = fixture("valid.json");
        for (i, b) in edits {
            let i = i.index(bytes.len());
            bytes[i] = b;
        }
        if let Ok(m) = Manifest::from_json(&bytes) {
            prop_assert_eq!(m.validate(), Ok(()));
        }
    }

    #[test]
    fn truncated_valid_manifest_is_refused(cut in 0usize..4000) {
        let bytes = fixture("valid.json");
        let cut = cut.min(bytes.len() - 2);
        prop_assert!(Manifest::from_json(&bytes[..cut]).is_err());
    }
}

/// The int8 speed measured at export (issue #12): absent in older manifests (valid.json has
/// none and loads), written and read back when present, refused when not a positive time.
#[test]
fn int8_speed_is_optional_round_trips_and_is_validated() {
    use emotion_shared::manifest::QuantizationSpeed;
    let mut m = valid();
    let Quantization::Int8 { speed, .. } = &mut m.quantization else {
        panic!("valid.json is an int8 manifest");
    };
    assert!(speed.is_none(), "valid.json predates the speed field");
    *speed = Some(QuantizationSpeed {
        fp32_ms: 0.55,
        int8_ms: 3.7,
        machine: "x86_64 linux, tract-onnx 0.23.9, one thread, batch 1".into(),
        verdict: "int8 is slower than fp32 in tract here: deploy the fp32 bundle".into(),
    });
    let text = m.to_json_pretty().expect("serialise");
    assert!(text.contains("\"int8_ms\": 3.7"), "{text}");
    let back = Manifest::from_json(text.as_bytes()).expect("reads back");
    assert_eq!(back, m);
    let Quantization::Int8 {
        speed: Some(speed), ..
    } = &back.quantization
    else {
        panic!("speed lost");
    };
    assert!(!speed.int8_is_faster());

    let e = validation_error(|m| {
        if let Quantization::Int8 { speed, .. } = &mut m.quantization {
            *speed = Some(QuantizationSpeed {
                fp32_ms: 1.0,
                int8_ms: 0.0,
                machine: "x86_64".into(),
                verdict: "none".into(),
            });
        }
    });
    assert_mentions(&e, &["quantization.speed.int8_ms", "positive"]);
}
