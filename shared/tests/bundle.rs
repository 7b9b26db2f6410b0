//! Bundle directories: signed and unsigned bundles open, every kind of tampering is refused
//! with a message that names the file and the reason, and random files never panic.

use std::fs;
use std::path::{Path, PathBuf};

use emotion_shared::bundle::{
    Bundle, BundleError, KeyError, MANIFEST_FILE, ONNX_FILE, SIGNATURE_FILE, SignatureStatus,
    SigningKey, TrustPolicy, key_fingerprint, read_public_key, read_secret_key, sign_manifest,
    write_bundle, write_public_key, write_secret_key,
};
use emotion_shared::manifest::{Manifest, OnnxFile};
use proptest::prelude::*;
use tempfile::TempDir;

const ONNX: &[u8] = b"\x08\x07\x12\x0cfake-onnx-graph-bytes-for-tests";

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn manifest_for(onnx: &[u8]) -> Manifest {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/manifest/valid.json");
    let mut m = Manifest::from_json(&fs::read(path).expect("fixture")).expect("valid fixture");
    m.onnx = OnnxFile::describe(onnx);
    m
}

/// A bundle in a fresh directory, signed with `key(1)` when `signed`.
fn bundle(signed: bool) -> (TempDir, PathBuf) {
    let tmp = TempDir::new().expect("tempdir");
    let dir = tmp.path().join("bundle");
    let k = key(1);
    write_bundle(&dir, &manifest_for(ONNX), ONNX, signed.then_some(&k)).expect("write");
    (tmp, dir)
}

fn require() -> TrustPolicy {
    TrustPolicy::require(key(1).verifying_key())
}

fn open_err(dir: &Path, policy: &TrustPolicy) -> BundleError {
    match Bundle::open(dir, policy) {
        Ok(b) => panic!("bundle was accepted: {b:?}"),
        Err(e) => e,
    }
}

fn flip_byte(path: &Path, at: usize) {
    let mut bytes = fs::read(path).expect("read");
    let i = at.min(bytes.len() - 1);
    bytes[i] ^= 0x01;
    fs::write(path, bytes).expect("write");
}

fn assert_mentions(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "error {msg:?} does not mention {p:?}");
    }
}

#[test]
fn signed_bundle_opens() {
    let (_tmp, dir) = bundle(true);
    let b = Bundle::open(&dir, &require()).expect("opens");
    assert!(b.is_signed());
    let fp = key_fingerprint(&key(1).verifying_key());
    assert_eq!(b.key_fingerprint(), Some(fp.as_str()));
    assert_eq!(b.signature().to_string(), format!("signed by {fp}"));
    assert_eq!(b.onnx_bytes(), ONNX);
    assert_eq!(b.manifest(), &manifest_for(ONNX));
    assert_eq!(
        b.manifest_bytes(),
        fs::read(dir.join(MANIFEST_FILE)).expect("read")
    );
    assert_eq!(b.dir(), dir);
    // the files are exactly the three documented ones
    let mut names: Vec<_> = fs::read_dir(&dir)
        .expect("ls")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf8"))
        .collect();
    names.sort();
    assert_eq!(names, [MANIFEST_FILE, SIGNATURE_FILE, ONNX_FILE]);
    let (manifest, onnx) = b.into_parts();
    assert_eq!(onnx, ONNX);
    assert_eq!(manifest.onnx.size_bytes, ONNX.len() as u64);
}

#[test]
fn any_trusted_key_may_verify() {
    let (_tmp, dir) = bundle(true);
    let policy = TrustPolicy::Require(vec![key(9).verifying_key(), key(1).verifying_key()]);
    assert!(Bundle::open(&dir, &policy).expect("opens").is_signed());
    let policy = TrustPolicy::Require(vec![key(9).verifying_key(), key(8).verifying_key()]);
    let e = open_err(&dir, &policy).to_string();
    assert_mentions(
        &e,
        &["any of the installed public keys ed25519:", ", ed25519:"],
    );
}

#[test]
fn changed_model_byte_is_refused_by_hash() {
    let (_tmp, dir) = bundle(true);
    flip_byte(&dir.join(ONNX_FILE), 10);
    let e = open_err(&dir, &require());
    assert!(matches!(e, BundleError::HashMismatch { .. }), "{e}");
    assert_mentions(
        &e.to_string(),
        &[
            "model.onnx sha256 is",
            "but the manifest pins",
            &manifest_for(ONNX).onnx.sha256.to_hex(),
            "the model file was changed or truncated",
        ],
    );
    // also without signature checking: the hash is always checked
    assert!(matches!(
        open_err(&dir, &TrustPolicy::AllowUnsigned),
        BundleError::HashMismatch { .. }
    ));
}

#[test]
fn truncated_or_extended_model_is_refused_by_size() {
    let (_tmp, dir) = bundle(true);
    let onnx = dir.join(ONNX_FILE);
    fs::write(&onnx, &ONNX[..ONNX.len() - 1]).expect("truncate");
    let e = open_err(&dir, &require());
    assert_mentions(
        &e.to_string(),
        &[
            &format!(
                "model.onnx is {} bytes but the manifest pins {}",
                ONNX.len() - 1,
                ONNX.len()
            ),
            "changed or truncated",
        ],
    );
    fs::write(&onnx, [ONNX, b"extra".as_slice()].concat()).expect("extend");
    let e = open_err(&dir, &require());
    assert!(
        matches!(
            e,
            BundleError::SizeMismatch { actual, pinned, .. }
                if actual == ONNX.len() as u64 + 5 && pinned == ONNX.len() as u64
        ),
        "{e}"
    );
    fs::write(&onnx, b"").expect("empty");
    assert!(matches!(
        open_err(&dir, &require()),
        BundleError::SizeMismatch { actual: 0, .. }
    ));
}

#[test]
fn changed_manifest_byte_is_refused_by_signature() {
    let (_tmp, dir) = bundle(true);
    // a byte inside the model description: still valid JSON, so only the signature catches it
    let text = fs::read_to_string(dir.join(MANIFEST_FILE)).expect("read");
    let at = text.find("Reference example").expect("description");
    flip_byte(&dir.join(MANIFEST_FILE), at);
    let e = open_err(&dir, &require());
    assert!(matches!(e, BundleError::SignatureInvalid { .. }), "{e}");
    let fp = key_fingerprint(&key(1).verifying_key());
    assert_mentions(
        &e.to_string(),
        &[
            &format!("manifest.sig does not verify with the installed public key {fp}"),
            "the bundle was tampered with or signed by another key",
        ],
    );
    assert!(!e.to_string().contains("names signer"), "{e}");
    // AllowUnsigned does not look at the signature, and the edit left the manifest valid
    let b = Bundle::open(&dir, &TrustPolicy::AllowUnsigned).expect("opens unchecked");
    assert_eq!(b.signature(), &SignatureStatus::Unchecked);
}

#[test]
fn other_key_is_refused_and_the_signer_is_named() {
    let (_tmp, dir) = bundle(true);
    let e = open_err(&dir, &TrustPolicy::require(key(2).verifying_key()));
    let msg = e.to_string();
    assert_mentions(
        &msg,
        &[
            &key_fingerprint(&key(2).verifying_key()),
            "signed by another key",
            &format!(
                "manifest.sig names signer {}",
                key_fingerprint(&key(1).verifying_key())
            ),
        ],
    );
}

#[test]
fn unsigned_bundle_needs_allow_unsigned() {
    let (_tmp, dir) = bundle(false);
    assert!(!dir.join(SIGNATURE_FILE).exists());
    let e = open_err(&dir, &require());
    assert!(matches!(e, BundleError::SignatureMissing { .. }), "{e}");
    assert_mentions(
        &e.to_string(),
        &["manifest.sig is missing", "only accepts signed bundles"],
    );
    let b = Bundle::open(&dir, &TrustPolicy::AllowUnsigned).expect("accepted");
    assert!(!b.is_signed());
    assert_eq!(b.signature(), &SignatureStatus::Unsigned);
    assert_eq!(b.signature().to_string(), "UNSIGNED");
    assert_eq!(b.key_fingerprint(), None);
}

#[test]
fn no_trusted_keys_accepts_nothing() {
    let (_tmp, dir) = bundle(true);
    assert!(matches!(
        open_err(&dir, &TrustPolicy::Require(vec![])),
        BundleError::NoTrustedKeys
    ));
}

#[test]
fn truncated_or_garbage_signature_is_malformed() {
    let (_tmp, dir) = bundle(true);
    let sig = dir.join(SIGNATURE_FILE);
    let text = fs::read_to_string(&sig).expect("read");
    fs::write(&sig, &text[..40]).expect("truncate");
    let e = open_err(&dir, &require());
    assert!(matches!(e, BundleError::SignatureMalformed { .. }), "{e}");
    assert_mentions(
        &e.to_string(),
        &["manifest.sig is not a bundle signature", "128 hex digits"],
    );
    fs::write(&sig, [0xffu8, 0x00, 0x13]).expect("garbage");
    assert_mentions(&open_err(&dir, &require()).to_string(), &["not text"]);
    // a well-formed line with a wrong signature
    fs::write(&sig, format!("ed25519-sig {}\n", "ab".repeat(64))).expect("zeros");
    assert!(matches!(
        open_err(&dir, &require()),
        BundleError::SignatureInvalid { .. }
    ));
}

#[test]
fn garbage_or_truncated_manifest_is_invalid() {
    let (_tmp, dir) = bundle(true);
    let manifest = dir.join(MANIFEST_FILE);
    let text = fs::read(&manifest).expect("read");
    fs::write(&manifest, &text[..text.len() / 2]).expect("truncate");
    // signed policy: the signature no longer matches
    assert!(matches!(
        open_err(&dir, &require()),
        BundleError::SignatureInvalid { .. }
    ));
    // unsigned policy: the manifest itself is refused
    let e = open_err(&dir, &TrustPolicy::AllowUnsigned);
    assert!(matches!(e, BundleError::ManifestInvalid { .. }), "{e}");
    assert_mentions(
        &e.to_string(),
        &["manifest.json is not a valid manifest", "not valid JSON"],
    );
    // garbage signed with the trusted key: signature fine, manifest refused
    fs::write(&manifest, b"garbage").expect("garbage");
    fs::write(dir.join(SIGNATURE_FILE), sign_manifest(b"garbage", &key(1))).expect("sign");
    let e = open_err(&dir, &require());
    assert!(matches!(e, BundleError::ManifestInvalid { .. }), "{e}");
}

#[test]
fn missing_files_are_named() {
    let (tmp, dir) = bundle(true);
    fs::remove_file(dir.join(ONNX_FILE)).expect("rm");
    let e = open_err(&dir, &require());
    assert!(matches!(e, BundleError::MissingFile { .. }), "{e}");
    assert_mentions(
        &e.to_string(),
        &["model.onnx is missing", "copy the complete bundle"],
    );
    fs::remove_file(dir.join(MANIFEST_FILE)).expect("rm");
    assert_mentions(
        &open_err(&dir, &require()).to_string(),
        &["manifest.json is missing"],
    );
    let e = open_err(&tmp.path().join("nope"), &require());
    assert!(matches!(e, BundleError::NotADirectory { .. }), "{e}");
}

#[test]
fn write_bundle_refuses_unpinned_model_and_invalid_manifest() {
    let tmp = TempDir::new().expect("tempdir");
    let m = manifest_for(ONNX);
    let e = write_bundle(tmp.path(), &m, b"other bytes", Some(&key(1))).unwrap_err();
    assert!(matches!(e, BundleError::ModelNotPinned { .. }), "{e}");
    assert_mentions(&e.to_string(), &["OnnxFile::describe"]);
    let mut bad = m.clone();
    bad.labels.reverse();
    let e = write_bundle(tmp.path(), &bad, ONNX, None).unwrap_err();
    assert!(matches!(e, BundleError::ManifestInvalid { .. }), "{e}");
    assert_eq!(
        fs::read_dir(tmp.path()).expect("ls").count(),
        0,
        "nothing written"
    );
}

#[test]
fn rewriting_unsigned_removes_a_stale_signature() {
    let (_tmp, dir) = bundle(true);
    let mut m = manifest_for(ONNX);
    m.model.version = "1.2.1".into();
    write_bundle(&dir, &m, ONNX, None).expect("rewrite");
    assert!(!dir.join(SIGNATURE_FILE).exists());
    let b = Bundle::open(&dir, &TrustPolicy::AllowUnsigned).expect("opens");
    assert_eq!(b.manifest().model.version, "1.2.1");
    assert_eq!(
        fs::read_dir(&dir).expect("ls").count(),
        2,
        "no temporary files left"
    );
}

#[test]
fn key_files_round_trip_with_safe_permissions() {
    let tmp = TempDir::new().expect("tempdir");
    let k = key(5);
    let secret = tmp.path().join("bundle.key");
    let public = tmp.path().join("bundle.pub");
    write_secret_key(&secret, &k).expect("write secret");
    write_public_key(&public, &k.verifying_key()).expect("write public");
    assert_eq!(
        read_secret_key(&secret).expect("read secret").to_bytes(),
        k.to_bytes()
    );
    assert_eq!(
        read_public_key(&public).expect("read public"),
        k.verifying_key()
    );
    assert!(
        fs::read_to_string(&public)
            .expect("text")
            .starts_with("ed25519-pub ")
    );
    let e = write_secret_key(&secret, &key(6)).unwrap_err();
    assert!(matches!(e, KeyError::Exists { .. }), "{e}");
    assert!(matches!(
        read_public_key(&secret).unwrap_err(),
        KeyError::Format { .. }
    ));
    assert!(matches!(
        read_public_key(tmp.path().join("missing.pub")).unwrap_err(),
        KeyError::Io { .. }
    ));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&secret).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        fs::set_permissions(&secret, fs::Permissions::from_mode(0o644)).expect("chmod");
        let e = read_secret_key(&secret).unwrap_err();
        assert!(
            matches!(e, KeyError::InsecurePermissions { mode: 0o644, .. }),
            "{e}"
        );
        assert_mentions(&e.to_string(), &["chmod 600"]);
    }
}

#[test]
fn generated_key_signs_a_bundle() {
    let k = emotion_shared::bundle::generate_keypair().expect("os random");
    let tmp = TempDir::new().expect("tempdir");
    write_bundle(tmp.path(), &manifest_for(ONNX), ONNX, Some(&k)).expect("write");
    let b = Bundle::open(tmp.path(), &TrustPolicy::require(k.verifying_key())).expect("open");
    assert!(b.is_signed());
}

#[derive(Debug, Clone, Copy)]
enum Target {
    Manifest,
    Signature,
    Onnx,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Replacing any one file with random bytes gives an error (or, for a coincidentally
    /// identical file, success), never a panic, under both policies.
    #[test]
    fn random_files_never_panic(
        target in prop_oneof![Just(Target::Manifest), Just(Target::Signature), Just(Target::Onnx)],
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let (_tmp, dir) = bundle(true);
        let name = match target {
            Target::Manifest => MANIFEST_FILE,
            Target::Signature => SIGNATURE_FILE,
            Target::Onnx => ONNX_FILE,
        };
        fs::write(dir.join(name), &bytes).expect("write");
        let signed = Bundle::open(&dir, &require());
        let unsigned = Bundle::open(&dir, &TrustPolicy::AllowUnsigned);
        prop_assert!(signed.is_err() || bytes == fs::read(dir.join(name)).expect("read"));
        if let Target::Signature = target {
            // the signature is not read without a key, so the rest of the bundle still opens
            prop_assert!(unsigned.is_ok());
        } else {
            prop_assert!(unsigned.is_err());
        }
    }

    /// Flipping any single bit of any file is always detected under the signed policy.
    #[test]
    fn any_bit_flip_is_detected(
        target in prop_oneof![Just(Target::Manifest), Just(Target::Signature), Just(Target::Onnx)],
        at in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let (_tmp, dir) = bundle(true);
        let name = match target {
            Target::Manifest => MANIFEST_FILE,
            Target::Signature => SIGNATURE_FILE,
            Target::Onnx => ONNX_FILE,
        };
        let path = dir.join(name);
        let mut bytes = fs::read(&path).expect("read");
        let i = at.index(bytes.len());
        bytes[i] ^= 1 << bit;
        fs::write(&path, &bytes).expect("write");
        let result = Bundle::open(&dir, &require());
        // The fingerprint at the end of manifest.sig is an unauthenticated hint, and a flip
        // in the trailing newline or an uppercase/lowercase flip of a hex digit leaves the
        // signature itself intact.
        let harmless = matches!(target, Target::Signature) && {
            let text = fs::read_to_string(&path).unwrap_or_default();
            let original = sign_manifest(
                &fs::read(dir.join(MANIFEST_FILE)).expect("manifest"),
                &key(1),
            );
            let sig_of = |t: &str| t.split_whitespace().nth(1).map(str::to_ascii_lowercase);
            text.starts_with("ed25519-sig ") && sig_of(&text) == sig_of(&original)
        };
        prop_assert!(result.is_err() || harmless, "flip at {i} bit {bit} of {name} accepted");
    }
}
