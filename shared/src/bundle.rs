//! Model bundles on disk: reading a bundle directory and checking its signature and hashes,
//! writing one, and the ed25519 key files that sign them.
//!
//! # Layout
//!
//! A bundle is a directory holding three files:
//!
//! | file            | content                                                            |
//! |-----------------|--------------------------------------------------------------------|
//! | `model.onnx`    | the model                                                          |
//! | `manifest.json` | the [`Manifest`]; pins `model.onnx` by SHA-256 and byte size        |
//! | `manifest.sig`  | an ed25519 signature over the exact bytes of `manifest.json`       |
//!
//! The signature covers the manifest, and the manifest pins the model, so together they cover
//! everything. [`Bundle::open`] checks, in this order: the signature (before the manifest is
//! even parsed), the manifest (schema and cross-field rules), then the model's size and hash
//! computed on the very bytes it returns, so nothing can change between check and use.
//!
//! # Text formats
//!
//! All three are one line of ASCII, `<tag> <hex> [comment]`; blank lines, lines starting with
//! `#` and a trailing newline are ignored, hex digits may be upper or lower case:
//!
//! | file                          | line                                              |
//! |-------------------------------|---------------------------------------------------|
//! | public key (`*.pub`)          | `ed25519-pub <64 hex: 32-byte public key>`         |
//! | secret key (mode 0600)        | `ed25519-secret <64 hex: 32-byte seed>`            |
//! | `manifest.sig`                | `ed25519-sig <128 hex: 64-byte signature> <fingerprint of the signer>` |
//!
//! A key's fingerprint ([`key_fingerprint`]) is `ed25519:` followed by the first 16 hex digits
//! of the SHA-256 of the public key; the one in `manifest.sig` is only a hint for messages,
//! verification tries every trusted key.
//!
//! # Example
//!
//! ```no_run
//! use emotion_shared::bundle::{Bundle, TrustPolicy, read_public_key};
//!
//! let key = read_public_key("/etc/emotion-edge/bundle.pub")?;
//! let bundle = Bundle::open("/var/lib/emotion-edge/models/current", &TrustPolicy::require(key))?;
//! println!("{} {}", bundle.manifest().model.name, bundle.signature());
//! let onnx: &[u8] = bundle.onnx_bytes(); // hand these exact bytes to the runtime
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer};
pub use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::manifest::{Manifest, ManifestError, ONNX_FILE_NAME, OnnxFile, Sha256Digest};

/// The manifest's file name in a bundle.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The signature's file name in a bundle.
pub const SIGNATURE_FILE: &str = "manifest.sig";
/// The model's file name in a bundle.
pub const ONNX_FILE: &str = ONNX_FILE_NAME;
/// Largest `manifest.json` read (self-test crops make it a few hundred KiB at most).
pub const MAX_MANIFEST_BYTES: u64 = 16 << 20;
/// Largest `manifest.sig` read.
pub const MAX_SIGNATURE_BYTES: u64 = 4 << 10;
/// Largest key file read.
const MAX_KEY_FILE_BYTES: u64 = 4 << 10;
/// Largest `model.onnx` accepted.
pub const MAX_ONNX_BYTES: u64 = 1 << 30;

const PUBLIC_TAG: &str = "ed25519-pub";
const SECRET_TAG: &str = "ed25519-secret";
const SIGNATURE_TAG: &str = "ed25519-sig";

/// Which bundles [`Bundle::open`] accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustPolicy {
    /// Only bundles whose `manifest.sig` verifies with one of these keys. An empty list
    /// accepts nothing.
    Require(Vec<VerifyingKey>),
    /// Also bundles without a valid signature; `manifest.sig` is not read. For development:
    /// callers should log a loud warning. The manifest and model hash are still checked.
    AllowUnsigned,
}

impl TrustPolicy {
    /// Require a signature by `key`.
    pub fn require(key: VerifyingKey) -> Self {
        TrustPolicy::Require(vec![key])
    }
}

/// How a bundle's signature was established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureStatus {
    /// `manifest.sig` verified with the trusted key with this fingerprint.
    Verified {
        /// [`key_fingerprint`] of the key that verified.
        key_fingerprint: String,
    },
    /// No `manifest.sig`; accepted under [`TrustPolicy::AllowUnsigned`].
    Unsigned,
    /// `manifest.sig` exists but was not checked ([`TrustPolicy::AllowUnsigned`] has no key).
    Unchecked,
}

impl fmt::Display for SignatureStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignatureStatus::Verified { key_fingerprint } => {
                write!(f, "signed by {key_fingerprint}")
            }
            SignatureStatus::Unsigned => f.write_str("UNSIGNED"),
            SignatureStatus::Unchecked => f.write_str("signature NOT CHECKED"),
        }
    }
}

/// Why a bundle was refused or could not be written.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The bundle directory does not exist or is not a directory.
    #[error(
        "model bundle {path} is not a directory: point to the folder that holds manifest.json, manifest.sig and model.onnx"
    )]
    NotADirectory {
        /// The path given.
        path: PathBuf,
    },
    /// A required file is absent.
    #[error(
        "{path} is missing: a model bundle needs manifest.json, model.onnx and (when signed) manifest.sig; copy the complete bundle directory"
    )]
    MissingFile {
        /// The missing file.
        path: PathBuf,
    },
    /// A file exists but could not be read.
    #[error("cannot read {path}: {source}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A file larger than this runtime accepts.
    #[error("{path} is larger than {limit} bytes: this is not a model bundle file")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit.
        limit: u64,
    },
    /// The manifest does not parse or validate.
    #[error("{path} is not a valid manifest: {source}")]
    ManifestInvalid {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: ManifestError,
    },
    /// No signature, and the policy requires one.
    #[error(
        "{path} is missing and this runtime only accepts signed bundles: sign the bundle with the trainer's secret key, or allow unsigned bundles explicitly (development only)"
    )]
    SignatureMissing {
        /// The expected signature file.
        path: PathBuf,
    },
    /// The signature file is not in the `ed25519-sig <128 hex>` format.
    #[error(
        "{path} is not a bundle signature: {reason}; expected one line `ed25519-sig <128 hex digits> <key fingerprint>`"
    )]
    SignatureMalformed {
        /// The signature file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The signature does not verify with any trusted key.
    #[error("{path} does not verify with {}: the bundle was tampered with or signed by another key{}", installed_keys(.trusted), signer_hint(.claimed_signer.as_deref(), .trusted))]
    SignatureInvalid {
        /// The signature file.
        path: PathBuf,
        /// Fingerprints of the trusted keys, comma-separated.
        trusted: String,
        /// The signer fingerprint written in the signature file (unauthenticated).
        claimed_signer: Option<String>,
    },
    /// [`TrustPolicy::Require`] with no keys.
    #[error(
        "no trusted public key is installed, so no signed bundle can be accepted: install the trainer's public key (ed25519-pub file)"
    )]
    NoTrustedKeys,
    /// The model file's size differs from the manifest's pin.
    #[error(
        "{path} is {actual} bytes but the manifest pins {pinned}: the model file was changed or truncated"
    )]
    SizeMismatch {
        /// The model file.
        path: PathBuf,
        /// Its size (a lower bound when it is larger than the pin).
        actual: u64,
        /// The size in the manifest.
        pinned: u64,
    },
    /// The model file's SHA-256 differs from the manifest's pin.
    #[error(
        "{path} sha256 is {actual} but the manifest pins {pinned}: the model file was changed or truncated"
    )]
    HashMismatch {
        /// The model file.
        path: PathBuf,
        /// SHA-256 of the bytes read.
        actual: Sha256Digest,
        /// SHA-256 in the manifest.
        pinned: Sha256Digest,
    },
    /// [`write_bundle`] was given model bytes that the manifest does not pin.
    #[error(
        "the manifest pins {ONNX_FILE} as sha256 {pinned} ({pinned_size} bytes) but the model bytes given are sha256 {actual} ({actual_size} bytes): set manifest.onnx = OnnxFile::describe(&onnx_bytes) before writing"
    )]
    ModelNotPinned {
        /// Pinned hash.
        pinned: Sha256Digest,
        /// Pinned size.
        pinned_size: u64,
        /// Hash of the bytes given.
        actual: Sha256Digest,
        /// Size of the bytes given.
        actual_size: u64,
    },
    /// Writing a bundle file failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

fn installed_keys(trusted: &str) -> String {
    if trusted.contains(',') {
        format!("any of the installed public keys {trusted}")
    } else {
        format!("the installed public key {trusted}")
    }
}

fn signer_hint(claimed: Option<&str>, trusted: &str) -> String {
    match claimed {
        Some(c) if !trusted.contains(c) => format!(" (manifest.sig names signer {c})"),
        _ => String::new(),
    }
}

/// Why a key file could not be read, parsed or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// I/O failure on a key file.
    #[error("cannot access key file {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// Not in the expected one-line format, or not a valid key.
    #[error(
        "{path}: not an ed25519 {kind} key file: {reason}; expected one line `{tag} <64 hex digits>`"
    )]
    Format {
        /// The key file (or `<text>` when parsed from a string).
        path: PathBuf,
        /// `public` or `secret`.
        kind: &'static str,
        /// The expected tag.
        tag: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// [`write_secret_key`] refuses to replace a key.
    #[error(
        "refusing to overwrite the existing secret key {path}: move it away first if you really mean to replace it"
    )]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// A secret key file that others can read.
    #[error(
        "secret key {path} is accessible by other users (mode {mode:04o}): run `chmod 600 {path}`"
    )]
    InsecurePermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The operating system's random number source failed.
    #[error("cannot get random bytes from the operating system for a new key: {0}")]
    Random(#[source] io::Error),
}

/// Namespace for [`Bundle::open`]; an opened bundle is a [`VerifiedBundle`].
#[derive(Debug)]
pub struct Bundle;

impl Bundle {
    /// Opens the bundle directory `dir` and checks it against `policy`: signature (if the
    /// policy requires one), manifest, then the size and SHA-256 of `model.onnx`. The model is
    /// read once; the returned bytes are the ones that were hashed.
    pub fn open(
        dir: impl AsRef<Path>,
        policy: &TrustPolicy,
    ) -> Result<VerifiedBundle, BundleError> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(BundleError::NotADirectory {
                path: dir.to_path_buf(),
            });
        }
        let manifest_path = dir.join(MANIFEST_FILE);
        let sig_path = dir.join(SIGNATURE_FILE);
        let onnx_path = dir.join(ONNX_FILE);

        let manifest_bytes = read_limited(&manifest_path, MAX_MANIFEST_BYTES)?;

        let signature = match policy {
            TrustPolicy::Require(keys) => {
                if keys.is_empty() {
                    return Err(BundleError::NoTrustedKeys);
                }
                let sig = match read_limited(&sig_path, MAX_SIGNATURE_BYTES) {
                    Err(BundleError::MissingFile { path }) => {
                        return Err(BundleError::SignatureMissing { path });
                    }
                    other => other?,
                };
                let key = verify_at(&sig_path, &manifest_bytes, &sig, keys)?;
                SignatureStatus::Verified {
                    key_fingerprint: key_fingerprint(&key),
                }
            }
            TrustPolicy::AllowUnsigned => {
                if sig_path.exists() {
                    SignatureStatus::Unchecked
                } else {
                    SignatureStatus::Unsigned
                }
            }
        };

        let manifest = Manifest::from_json(&manifest_bytes).map_err(|source| {
            BundleError::ManifestInvalid {
                path: manifest_path.clone(),
                source,
            }
        })?;

        let pinned = &manifest.onnx;
        if pinned.size_bytes > MAX_ONNX_BYTES {
            return Err(BundleError::TooLarge {
                path: onnx_path,
                limit: MAX_ONNX_BYTES,
            });
        }
        // Read at most one byte more than pinned: enough to tell "too long" without reading
        // an arbitrarily large file.
        let onnx = match read_limited(&onnx_path, pinned.size_bytes) {
            Err(BundleError::TooLarge { path, .. }) => {
                let actual = fs::metadata(&path)
                    .map(|m| m.len())
                    .unwrap_or(pinned.size_bytes + 1);
                return Err(BundleError::SizeMismatch {
                    path,
                    actual,
                    pinned: pinned.size_bytes,
                });
            }
            other => other?,
        };
        if onnx.len() as u64 != pinned.size_bytes {
            return Err(BundleError::SizeMismatch {
                path: onnx_path,
                actual: onnx.len() as u64,
                pinned: pinned.size_bytes,
            });
        }
        let actual = Sha256Digest::of(&onnx);
        if actual != pinned.sha256 {
            return Err(BundleError::HashMismatch {
                path: onnx_path,
                actual,
                pinned: pinned.sha256,
            });
        }

        Ok(VerifiedBundle {
            dir: dir.to_path_buf(),
            manifest,
            manifest_bytes,
            onnx,
            signature,
        })
    }
}

/// A bundle that passed [`Bundle::open`]: only that function makes one.
pub struct VerifiedBundle {
    dir: PathBuf,
    manifest: Manifest,
    manifest_bytes: Vec<u8>,
    onnx: Vec<u8>,
    signature: SignatureStatus,
}

impl fmt::Debug for VerifiedBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedBundle")
            .field("dir", &self.dir)
            .field("model", &self.manifest.model)
            .field("onnx_bytes", &self.onnx.len())
            .field("signature", &self.signature)
            .finish_non_exhaustive()
    }
}

impl VerifiedBundle {
    /// The bundle directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The parsed and validated manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The exact bytes of `manifest.json` that were verified and parsed.
    pub fn manifest_bytes(&self) -> &[u8] {
        &self.manifest_bytes
    }

    /// The model bytes whose size and SHA-256 matched the manifest.
    pub fn onnx_bytes(&self) -> &[u8] {
        &self.onnx
    }

    /// How the signature was established.
    pub fn signature(&self) -> &SignatureStatus {
        &self.signature
    }

    /// True when `manifest.sig` verified with a trusted key.
    pub fn is_signed(&self) -> bool {
        matches!(self.signature, SignatureStatus::Verified { .. })
    }

    /// The fingerprint of the key that verified the signature, if it did.
    pub fn key_fingerprint(&self) -> Option<&str> {
        match &self.signature {
            SignatureStatus::Verified { key_fingerprint } => Some(key_fingerprint),
            _ => None,
        }
    }

    /// The manifest and the model bytes, consuming the bundle.
    pub fn into_parts(self) -> (Manifest, Vec<u8>) {
        (self.manifest, self.onnx)
    }
}

/// Writes a bundle into `dir` (created if needed): `model.onnx`, `manifest.json` (the
/// manifest's [`Manifest::to_json_pretty`]) and, with a key, `manifest.sig`; without a key a
/// stale `manifest.sig` is removed. The manifest must validate and pin `onnx_bytes` (use
/// [`OnnxFile::describe`]). Each file is written to a temporary name and renamed into place.
pub fn write_bundle(
    dir: impl AsRef<Path>,
    manifest: &Manifest,
    onnx_bytes: &[u8],
    signing_key: Option<&SigningKey>,
) -> Result<(), BundleError> {
    let dir = dir.as_ref();
    let manifest_path = dir.join(MANIFEST_FILE);
    let invalid = |source| BundleError::ManifestInvalid {
        path: manifest_path.clone(),
        source,
    };
    manifest.validate().map_err(invalid)?;
    let actual = OnnxFile::describe(onnx_bytes);
    if actual.sha256 != manifest.onnx.sha256 || actual.size_bytes != manifest.onnx.size_bytes {
        return Err(BundleError::ModelNotPinned {
            pinned: manifest.onnx.sha256,
            pinned_size: manifest.onnx.size_bytes,
            actual: actual.sha256,
            actual_size: actual.size_bytes,
        });
    }
    let json = manifest.to_json_pretty().map_err(invalid)?;

    fs::create_dir_all(dir).map_err(|source| BundleError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    write_atomic(&dir.join(ONNX_FILE), onnx_bytes)?;
    write_atomic(&manifest_path, json.as_bytes())?;
    let sig_path = dir.join(SIGNATURE_FILE);
    match signing_key {
        Some(key) => write_atomic(&sig_path, sign_manifest(json.as_bytes(), key).as_bytes())?,
        None => match fs::remove_file(&sig_path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(BundleError::Write {
                    path: sig_path,
                    source,
                });
            }
        },
    }
    Ok(())
}

/// The contents of `manifest.sig` for `manifest_bytes`:
/// `ed25519-sig <128 hex digits> <signer fingerprint>\n`.
pub fn sign_manifest(manifest_bytes: &[u8], key: &SigningKey) -> String {
    let signature = key.sign(manifest_bytes);
    format!(
        "{SIGNATURE_TAG} {} {}\n",
        hex::encode(signature.to_bytes()),
        key_fingerprint(&key.verifying_key())
    )
}

/// Checks `signature_file` (the contents of `manifest.sig`) against `manifest_bytes` with
/// each of `keys`; returns the key that verified. Uses strict verification (no malleable or
/// small-order signatures).
pub fn verify_manifest(
    manifest_bytes: &[u8],
    signature_file: &[u8],
    keys: &[VerifyingKey],
) -> Result<VerifyingKey, BundleError> {
    if keys.is_empty() {
        return Err(BundleError::NoTrustedKeys);
    }
    verify_at(
        Path::new(SIGNATURE_FILE),
        manifest_bytes,
        signature_file,
        keys,
    )
}

fn verify_at(
    path: &Path,
    manifest_bytes: &[u8],
    signature_file: &[u8],
    keys: &[VerifyingKey],
) -> Result<VerifyingKey, BundleError> {
    let malformed = |reason: String| BundleError::SignatureMalformed {
        path: path.to_path_buf(),
        reason,
    };
    let text =
        std::str::from_utf8(signature_file).map_err(|_| malformed("it is not text".to_string()))?;
    let (bytes, rest) = parse_tagged_line::<64>(text, SIGNATURE_TAG).map_err(malformed)?;
    let signature = Signature::from_bytes(&bytes);
    if let Some(key) = keys
        .iter()
        .find(|k| k.verify_strict(manifest_bytes, &signature).is_ok())
    {
        return Ok(*key);
    }
    let trusted: Vec<String> = keys.iter().map(key_fingerprint).collect();
    Err(BundleError::SignatureInvalid {
        path: path.to_path_buf(),
        trusted: trusted.join(", "),
        claimed_signer: rest.split_whitespace().next().map(str::to_string),
    })
}

/// `ed25519:` and the first 16 hex digits of the SHA-256 of the public key.
pub fn key_fingerprint(key: &VerifyingKey) -> String {
    let digest = Sha256Digest::of(key.as_bytes()).to_hex();
    format!("ed25519:{}", &digest[..16])
}

/// A new signing key from the operating system's random source (`/dev/urandom`).
pub fn generate_keypair() -> Result<SigningKey, KeyError> {
    let mut seed = [0u8; 32];
    os_random(&mut seed).map_err(KeyError::Random)?;
    let key = SigningKey::from_bytes(&seed);
    seed.fill(0);
    Ok(key)
}

#[cfg(unix)]
fn os_random(buf: &mut [u8]) -> io::Result<()> {
    File::open("/dev/urandom")?.read_exact(buf)
}

#[cfg(not(unix))]
fn os_random(_buf: &mut [u8]) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "key generation needs /dev/urandom (unix only)",
    ))
}

/// The public key file line: `ed25519-pub <64 hex digits>\n`.
pub fn public_key_to_string(key: &VerifyingKey) -> String {
    format!("{PUBLIC_TAG} {}\n", hex::encode(key.as_bytes()))
}

/// The secret key file line: `ed25519-secret <64 hex digits>\n`. Keep it secret.
pub fn secret_key_to_string(key: &SigningKey) -> String {
    format!("{SECRET_TAG} {}\n", hex::encode(key.as_bytes()))
}

/// Parses a public key file's contents.
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, KeyError> {
    parse_public_at(Path::new("<text>"), text)
}

/// Parses a secret key file's contents.
pub fn parse_secret_key(text: &str) -> Result<SigningKey, KeyError> {
    parse_secret_at(Path::new("<text>"), text)
}

fn parse_public_at(path: &Path, text: &str) -> Result<VerifyingKey, KeyError> {
    let format = |reason: String| KeyError::Format {
        path: path.to_path_buf(),
        kind: "public",
        tag: PUBLIC_TAG,
        reason,
    };
    let (bytes, _) = parse_tagged_line::<32>(text, PUBLIC_TAG).map_err(format)?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|_| format("the 32 bytes are not a valid ed25519 public key".to_string()))
        .and_then(|k| {
            if k.is_weak() {
                Err(format(
                    "the key is a weak (small-order) ed25519 point".to_string(),
                ))
            } else {
                Ok(k)
            }
        })
}

fn parse_secret_at(path: &Path, text: &str) -> Result<SigningKey, KeyError> {
    let (bytes, _) =
        parse_tagged_line::<32>(text, SECRET_TAG).map_err(|reason| KeyError::Format {
            path: path.to_path_buf(),
            kind: "secret",
            tag: SECRET_TAG,
            reason,
        })?;
    Ok(SigningKey::from_bytes(&bytes))
}

/// Reads a public key file.
pub fn read_public_key(path: impl AsRef<Path>) -> Result<VerifyingKey, KeyError> {
    let path = path.as_ref();
    let text = read_key_text(path)?;
    parse_public_at(path, &text)
}

/// Reads a secret key file; on unix refuses one that group or others can access.
pub fn read_secret_key(path: impl AsRef<Path>) -> Result<SigningKey, KeyError> {
    let path = path.as_ref();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path)
            .map_err(|source| KeyError::Io {
                path: path.to_path_buf(),
                source,
            })?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(KeyError::InsecurePermissions {
                path: path.to_path_buf(),
                mode: mode & 0o7777,
            });
        }
    }
    let text = read_key_text(path)?;
    parse_secret_at(path, &text)
}

fn read_key_text(path: &Path) -> Result<String, KeyError> {
    let io_err = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut text = String::new();
    File::open(path)
        .map_err(io_err)?
        .take(MAX_KEY_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(io_err)?;
    if text.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(io_err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {MAX_KEY_FILE_BYTES} bytes: not a key file"),
        )));
    }
    Ok(text)
}

/// Writes a public key file (replacing an existing one).
pub fn write_public_key(path: impl AsRef<Path>, key: &VerifyingKey) -> Result<(), KeyError> {
    let path = path.as_ref();
    fs::write(path, public_key_to_string(key)).map_err(|source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes a secret key file, created with mode 0600 on unix; refuses to overwrite.
pub fn write_secret_key(path: impl AsRef<Path>, key: &SigningKey) -> Result<(), KeyError> {
    let path = path.as_ref();
    let io_err = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|source| {
        if source.kind() == io::ErrorKind::AlreadyExists {
            KeyError::Exists {
                path: path.to_path_buf(),
            }
        } else {
            io_err(source)
        }
    })?;
    #[cfg(unix)]
    {
        // The umask can only clear bits, but be explicit.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(io_err)?;
    }
    file.write_all(secret_key_to_string(key).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io_err)
}

/// Finds the single `<tag> <hex of N bytes> [rest]` line, ignoring blank and `#` lines.
/// Returns the bytes and the rest of the line.
fn parse_tagged_line<'t, const N: usize>(
    text: &'t str,
    tag: &str,
) -> Result<([u8; N], &'t str), String> {
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let line = lines.next().ok_or_else(|| "it is empty".to_string())?;
    if lines.next().is_some() {
        return Err("it has more than one line".to_string());
    }
    let mut words = line.splitn(3, char::is_whitespace);
    let found_tag = words.next().unwrap_or_default();
    if found_tag != tag {
        let shown: String = found_tag.chars().take(24).collect();
        return Err(format!("it starts with {shown:?}, not {tag:?}"));
    }
    let hex_part = words.next().unwrap_or_default();
    let rest = words.next().unwrap_or_default().trim();
    if hex_part.len() != 2 * N {
        return Err(format!(
            "the key material must be {} hex digits, found {} characters",
            2 * N,
            hex_part.chars().count()
        ));
    }
    let mut bytes = [0u8; N];
    hex::decode_to_slice(hex_part, &mut bytes)
        .map_err(|_| "the key material is not hex (0-9, a-f)".to_string())?;
    Ok((bytes, rest))
}

/// Reads a whole file of at most `limit` bytes.
fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, BundleError> {
    let file = File::open(path).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            BundleError::MissingFile {
                path: path.to_path_buf(),
            }
        } else {
            BundleError::Unreadable {
                path: path.to_path_buf(),
                source,
            }
        }
    })?;
    let mut buf = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|source| BundleError::Unreadable {
            path: path.to_path_buf(),
            source,
        })?;
    if buf.len() as u64 > limit {
        return Err(BundleError::TooLarge {
            path: path.to_path_buf(),
            limit,
        });
    }
    Ok(buf)
}

/// Writes `bytes` to a temporary file next to `path`, syncs it, and renames it over `path`.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), BundleError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    result.map_err(|source| {
        let _ = fs::remove_file(&tmp);
        BundleError::Write {
            path: path.to_path_buf(),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_text_round_trips_and_tolerates_whitespace() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let public = key.verifying_key();
        let text = public_key_to_string(&public);
        assert!(text.starts_with("ed25519-pub ") && text.ends_with('\n'));
        assert_eq!(parse_public_key(&text).ok(), Some(public));
        let padded = format!(
            "# trainer key\n\n  {}  laptop\r\n\n",
            text.trim()
                .to_uppercase()
                .replace("ED25519-PUB", "ed25519-pub")
        );
        assert_eq!(parse_public_key(&padded).ok(), Some(public));
        let secret = parse_secret_key(&secret_key_to_string(&key)).expect("secret");
        assert_eq!(secret.to_bytes(), key.to_bytes());
    }

    #[test]
    fn key_parse_errors_say_what_is_expected() {
        let e = parse_public_key("ed25519-secret 00")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("not \"ed25519-pub\"") && e.contains("ed25519-pub <64 hex digits>"),
            "{e}"
        );
        let e = parse_public_key("ed25519-pub abc").unwrap_err().to_string();
        assert!(e.contains("64 hex digits, found 3"), "{e}");
        let e = parse_public_key("").unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
        let two = format!(
            "{}{}",
            public_key_to_string(&SigningKey::from_bytes(&[1; 32]).verifying_key()),
            public_key_to_string(&SigningKey::from_bytes(&[2; 32]).verifying_key())
        );
        assert!(
            parse_public_key(&two)
                .unwrap_err()
                .to_string()
                .contains("more than one line")
        );
        // all-zero bytes decode to a small-order point
        let weak = format!("ed25519-pub {}", "00".repeat(32));
        assert!(parse_public_key(&weak).is_err());
    }

    #[test]
    fn signatures_verify_with_the_right_key_only() {
        let a = SigningKey::from_bytes(&[1u8; 32]);
        let b = SigningKey::from_bytes(&[2u8; 32]);
        let sig = sign_manifest(b"{}", &a);
        assert!(sig.ends_with(&format!("{}\n", key_fingerprint(&a.verifying_key()))));
        let ok = verify_manifest(
            b"{}",
            sig.as_bytes(),
            &[b.verifying_key(), a.verifying_key()],
        );
        assert_eq!(ok.ok(), Some(a.verifying_key()));
        let e = verify_manifest(b"{} ", sig.as_bytes(), &[a.verifying_key()]).unwrap_err();
        assert!(matches!(e, BundleError::SignatureInvalid { .. }), "{e}");
        let e = verify_manifest(b"{}", sig.as_bytes(), &[b.verifying_key()])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&key_fingerprint(&b.verifying_key())) && e.contains("names signer"),
            "{e}"
        );
    }

    #[test]
    fn fingerprints_are_short_and_stable() {
        let f = key_fingerprint(&SigningKey::from_bytes(&[1u8; 32]).verifying_key());
        assert_eq!(f.len(), "ed25519:".len() + 16);
        assert_eq!(
            f,
            key_fingerprint(&SigningKey::from_bytes(&[1u8; 32]).verifying_key())
        );
    }

    #[test]
    fn generated_keys_differ() {
        let a = generate_keypair().expect("random");
        let b = generate_keypair().expect("random");
        assert_ne!(a.to_bytes(), b.to_bytes());
    }
}
