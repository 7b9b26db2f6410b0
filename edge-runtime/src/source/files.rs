//! Image files as frames: files, folders (every image inside, sorted) and glob patterns,
//! read once in order, optionally looping.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{Frame, FrameSource, SourceError};

/// File extensions read from folders (case-insensitive).
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png"];

/// Expands `specs` (files, folders, glob patterns) into a sorted list of image paths per
/// spec, in the order given. A spec that matches nothing is an error naming it.
pub fn expand(specs: &[String]) -> Result<Vec<PathBuf>, SourceError> {
    let mut out = Vec::new();
    for spec in specs {
        let path = Path::new(spec);
        let mut found = Vec::new();
        if path.is_dir() {
            let entries = std::fs::read_dir(path)
                .map_err(|e| SourceError::Fatal(format!("cannot list folder {spec}: {e}")))?;
            for entry in entries.flatten() {
                let p = entry.path();
                if p.is_file() && is_image(&p) {
                    found.push(p);
                }
            }
            found.sort();
        } else if path.is_file() {
            found.push(path.to_path_buf());
        } else {
            let paths = glob::glob(spec)
                .map_err(|e| SourceError::Fatal(format!("bad glob pattern {spec:?}: {e}")))?;
            found.extend(paths.flatten().filter(|p| p.is_file()));
            found.sort();
        }
        if found.is_empty() {
            return Err(SourceError::Fatal(format!(
                "{spec}: no such image file, folder with images ({}), or matching glob pattern",
                IMAGE_EXTENSIONS.join(", ")
            )));
        }
        out.extend(found);
    }
    Ok(out)
}

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// Reads one image file as RGB; a file that does not decode is [`SourceError::Corrupt`].
pub fn read_image(path: &Path) -> Result<image::RgbImage, SourceError> {
    let corrupt = |reason: String| SourceError::Corrupt {
        origin: path.display().to_string(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| corrupt(e.to_string()))?;
    if bytes.starts_with(&[0xFF, 0xD8]) {
        return super::decode::decode_jpeg(&bytes).map_err(|e| corrupt(e.to_string()));
    }
    let mut reader = image::ImageReader::new(std::io::Cursor::new(&bytes));
    reader = reader
        .with_guessed_format()
        .map_err(|e| corrupt(e.to_string()))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(super::decode::MAX_FRAME_SIDE);
    limits.max_image_height = Some(super::decode::MAX_FRAME_SIDE);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| corrupt(e.to_string()))?;
    Ok(img.to_rgb8())
}

/// Frames from a list of image files.
#[derive(Debug, Clone)]
pub struct FileSource {
    paths: Vec<PathBuf>,
    next: usize,
    looping: bool,
}

impl FileSource {
    /// Frames from `specs` (see [`expand`]); with `looping` it starts over at the end.
    pub fn new(specs: &[String], looping: bool) -> Result<Self, SourceError> {
        Ok(FileSource {
            paths: expand(specs)?,
            next: 0,
            looping,
        })
    }

    /// The files, in order.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }
}

impl FrameSource for FileSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        if self.next >= self.paths.len() {
            if !self.looping || self.paths.is_empty() {
                return Ok(None);
            }
            self.next = 0;
        }
        let path = &self.paths[self.next];
        self.next += 1;
        let image = read_image(path)?;
        Ok(Some(Frame {
            image,
            captured: Instant::now(),
            origin: path.display().to_string(),
            truth: None,
        }))
    }

    fn describe(&self) -> String {
        format!("{} image file(s)", self.paths.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_globs_and_corrupt_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let img = image::RgbImage::from_pixel(8, 6, image::Rgb([10, 20, 30]));
        img.save(dir.path().join("b.png")).expect("png");
        img.save(dir.path().join("a.png")).expect("png");
        std::fs::write(dir.path().join("c.jpg"), b"not a jpeg").expect("write");
        std::fs::write(dir.path().join("notes.txt"), b"skip me").expect("write");
        let d = dir.path().display().to_string();
        let mut src = FileSource::new(std::slice::from_ref(&d), false).expect("folder");
        let names: Vec<_> = src
            .paths()
            .iter()
            .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
            .collect();
        assert_eq!(names, ["a.png", "b.png", "c.jpg"]);
        assert!(matches!(src.next_frame(), Ok(Some(f)) if f.image.dimensions() == (8, 6)));
        assert!(src.next_frame().is_ok());
        assert!(
            matches!(src.next_frame(), Err(SourceError::Corrupt { origin, .. }) if origin.ends_with("c.jpg"))
        );
        assert!(matches!(src.next_frame(), Ok(None)));

        let glob = FileSource::new(&[format!("{d}/*.png")], false).expect("glob");
        assert_eq!(glob.paths().len(), 2);
        let err = FileSource::new(&[format!("{d}/nothing*.png")], false).unwrap_err();
        assert!(err.to_string().contains("nothing*.png"), "{err}");
    }
}
