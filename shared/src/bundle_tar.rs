//! A bundle as one `.tar` file: the three bundle files (`model.onnx`, `manifest.json`,
//! `manifest.sig` when signed) at the archive's root, written deterministically (mode 0644,
//! owner 0, time 0) so the same bundle always gives the same bytes.
//!
//! Unpacking is strict, because a tar comes from outside: only those three names (an optional
//! `./` prefix is allowed), regular files only, each at most its size limit, no name twice.
//! Anything else (directories, links, `..` paths, other files) refuses the archive, naming the
//! entry. The unpacked directory is an ordinary bundle for [`crate::bundle::Bundle::open`],
//! which still checks signature, hashes and manifest.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::bundle::{
    MANIFEST_FILE, MAX_MANIFEST_BYTES, MAX_ONNX_BYTES, MAX_SIGNATURE_BYTES, ONNX_FILE,
    SIGNATURE_FILE,
};

/// Why a bundle archive could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum TarError {
    /// Reading or writing a file failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The archive holds something a bundle must not.
    #[error("{archive}: {reason}")]
    Refused {
        /// The archive.
        archive: String,
        /// What is wrong, naming the entry.
        reason: String,
    },
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> TarError + 'a {
    move |source| TarError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// The bundle files of `dir` that exist, in archive order.
fn bundle_files(dir: &Path) -> Vec<&'static str> {
    [MANIFEST_FILE, SIGNATURE_FILE, ONNX_FILE]
        .into_iter()
        .filter(|f| dir.join(f).is_file())
        .collect()
}

/// Writes the bundle directory `dir` as a tar stream to `out`.
pub fn pack_to(dir: &Path, out: impl Write) -> Result<(), TarError> {
    let mut builder = tar::Builder::new(out);
    for name in bundle_files(dir) {
        let path = dir.join(name);
        let bytes = std::fs::read(&path).map_err(io("read", &path))?;
        let mut header = tar::Header::new_ustar();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, name, bytes.as_slice())
            .map_err(io("archive", &path))?;
    }
    builder
        .into_inner()
        .map_err(io("finish the archive of", dir))?;
    Ok(())
}

/// Writes the bundle directory `dir` as the archive `tar_path`.
pub fn pack(dir: &Path, tar_path: &Path) -> Result<(), TarError> {
    let file = File::create(tar_path).map_err(io("create", tar_path))?;
    let mut w = std::io::BufWriter::new(file);
    pack_to(dir, &mut w)?;
    w.flush().map_err(io("write", tar_path))
}

/// Unpacks a bundle archive read from `input` (named `archive` in messages) into `dest`, a
/// directory that must not exist yet.
pub fn unpack_from(input: impl Read, archive: &str, dest: &Path) -> Result<(), TarError> {
    let refuse = |reason: String| TarError::Refused {
        archive: archive.to_string(),
        reason,
    };
    let mut ar = tar::Archive::new(input);
    let entries = ar
        .entries()
        .map_err(|e| refuse(format!("not a tar archive: {e}")))?;
    let mut files: Vec<(&'static str, Vec<u8>)> = Vec::new();
    for entry in entries {
        let mut entry = entry.map_err(|e| refuse(format!("unreadable entry: {e}")))?;
        let raw = entry
            .path()
            .map_err(|e| refuse(format!("entry with an unreadable name: {e}")))?
            .to_string_lossy()
            .into_owned();
        let name = raw.strip_prefix("./").unwrap_or(&raw);
        if name.is_empty() && entry.header().entry_type().is_dir() {
            continue; // "./" itself
        }
        let (known, limit) = match name {
            n if n == ONNX_FILE => (ONNX_FILE, MAX_ONNX_BYTES),
            n if n == MANIFEST_FILE => (MANIFEST_FILE, MAX_MANIFEST_BYTES),
            n if n == SIGNATURE_FILE => (SIGNATURE_FILE, MAX_SIGNATURE_BYTES),
            _ => {
                return Err(refuse(format!(
                    "entry `{raw}` is not a bundle file ({ONNX_FILE}, {MANIFEST_FILE}, {SIGNATURE_FILE})"
                )));
            }
        };
        if !entry.header().entry_type().is_file() {
            return Err(refuse(format!("entry `{raw}` is not a regular file")));
        }
        if files.iter().any(|(n, _)| *n == known) {
            return Err(refuse(format!("entry `{raw}` appears twice")));
        }
        let size = entry.header().size().unwrap_or(u64::MAX);
        if size > limit {
            return Err(refuse(format!(
                "entry `{raw}` is {size} bytes, more than the {limit} allowed"
            )));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        entry
            .by_ref()
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| refuse(format!("entry `{raw}` is truncated: {e}")))?;
        if bytes.len() as u64 != size {
            return Err(refuse(format!(
                "entry `{raw}` has {} bytes, its header says {size}: the archive is truncated",
                bytes.len()
            )));
        }
        files.push((known, bytes));
    }
    if !files.iter().any(|(n, _)| *n == MANIFEST_FILE)
        || !files.iter().any(|(n, _)| *n == ONNX_FILE)
    {
        return Err(refuse(format!(
            "a bundle archive needs {MANIFEST_FILE} and {ONNX_FILE}"
        )));
    }
    std::fs::create_dir(dest).map_err(io("create", dest))?;
    for (name, bytes) in files {
        let path = dest.join(name);
        std::fs::write(&path, bytes).map_err(io("write", &path))?;
    }
    Ok(())
}

/// Unpacks the archive file `tar_path` into `dest` (which must not exist yet).
pub fn unpack(tar_path: &Path, dest: &Path) -> Result<(), TarError> {
    let file = File::open(tar_path).map_err(io("open", tar_path))?;
    unpack_from(
        std::io::BufReader::new(file),
        &tar_path.display().to_string(),
        dest,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(ONNX_FILE), b"onnx bytes").unwrap();
        std::fs::write(dir.join(MANIFEST_FILE), b"{}").unwrap();
        std::fs::write(dir.join(SIGNATURE_FILE), b"sig").unwrap();
    }

    #[test]
    fn round_trip_is_byte_exact_and_deterministic() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("b");
        bundle(&src);
        let (a, b) = (t.path().join("a.tar"), t.path().join("b.tar"));
        pack(&src, &a).unwrap();
        pack(&src, &b).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        let out = t.path().join("out");
        unpack(&a, &out).unwrap();
        for f in [ONNX_FILE, MANIFEST_FILE, SIGNATURE_FILE] {
            assert_eq!(
                std::fs::read(src.join(f)).unwrap(),
                std::fs::read(out.join(f)).unwrap()
            );
        }
        // The destination must be new.
        assert!(unpack(&a, &out).is_err());
    }

    fn archive_with(name: &str, data: &[u8], kind: tar::EntryType) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn foreign_entries_links_and_truncation_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                archive_with("evil.sh", b"x", tar::EntryType::Regular),
                "not a bundle file",
            ),
            (
                archive_with("sub/model.onnx", b"x", tar::EntryType::Regular),
                "not a bundle file",
            ),
            (
                archive_with("model.onnx", b"", tar::EntryType::Symlink),
                "not a regular file",
            ),
            (
                archive_with("model.onnx", b"x", tar::EntryType::Regular),
                "needs manifest.json",
            ),
        ];
        for (i, (bytes, want)) in cases.into_iter().enumerate() {
            let err = unpack_from(bytes.as_slice(), "x.tar", &t.path().join(format!("o{i}")))
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "case {i}: {err}");
        }
        // A truncated archive.
        let src = t.path().join("b");
        bundle(&src);
        let mut full = Vec::new();
        pack_to(&src, &mut full).unwrap();
        let cut = &full[..full.len() / 2];
        let err = unpack_from(cut, "cut.tar", &t.path().join("cut")).unwrap_err();
        assert!(!t.path().join("cut").exists(), "{err}");
    }
}
