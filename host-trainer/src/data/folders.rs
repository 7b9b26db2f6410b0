//! FER2013 in Kaggle's image-folder layout:
//!
//! ```text
//! ROOT/train/<class>/*.png|jpg     -> Training
//! ROOT/val/<class>/...  (optional) -> PublicTest   (also `validation/`, `publictest/`)
//! ROOT/test/<class>/...            -> PrivateTest
//! ```
//!
//! `<class>` is one of the lowercase emotion names (`angry`, `disgust`, `fear`, `happy`,
//! `neutral`, `sad`, `surprise`; `surprised`, `fearful`, `disgusted` are accepted too). The
//! Kaggle upload has no validation folder: then a fixed, class-stratified 10% of `train/`
//! (every 10th file per class in name order) becomes the PublicTest split, so that model
//! selection never sees the test images. Images that are not 48x48 grey are converted to grey
//! and resized (bilinear) to 48x48.

use std::path::{Path, PathBuf};

use emotion_shared::Emotion;

use super::{DataError, FER_SIZE, FaceSet, OnBadRow, Skipped, Split};

/// Every `VALIDATION_EVERY`-th training image per class is held out when there is no `val/`.
pub const VALIDATION_EVERY: usize = 10;

fn split_of(dir_name: &str) -> Option<Split> {
    match dir_name.to_ascii_lowercase().as_str() {
        "train" | "training" => Some(Split::Training),
        "val" | "valid" | "validation" | "publictest" => Some(Split::PublicTest),
        "test" | "privatetest" => Some(Split::PrivateTest),
        _ => None,
    }
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let io = |source| DataError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        entries.push(entry.map_err(io)?.path());
    }
    entries.sort();
    Ok(entries)
}

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
}

/// Decodes one image file into 48x48 grey pixels.
pub fn read_face(path: &Path) -> Result<Vec<u8>, String> {
    let img = image::open(path).map_err(|e| format!("cannot decode image: {e}"))?;
    let grey = img.to_luma8();
    let grey = if grey.dimensions() == (FER_SIZE as u32, FER_SIZE as u32) {
        grey
    } else {
        image::imageops::resize(
            &grey,
            FER_SIZE as u32,
            FER_SIZE as u32,
            image::imageops::FilterType::Triangle,
        )
    };
    Ok(grey.into_raw())
}

/// Loads an image-folder root.
pub fn load(root: &Path, on_bad_row: OnBadRow) -> Result<FaceSet, DataError> {
    let mut set = FaceSet::default();
    let mut has_validation = false;
    let mut found_split = false;
    for split_dir in read_dir_sorted(root)? {
        if !split_dir.is_dir() {
            continue;
        }
        let Some(split) = split_dir
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(split_of)
        else {
            continue;
        };
        found_split = true;
        has_validation |= split == Split::PublicTest;
        for class_dir in read_dir_sorted(&split_dir)? {
            if !class_dir.is_dir() {
                continue;
            }
            let name = class_dir
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            let label: Emotion = match name.parse() {
                Ok(e) => e,
                Err(_) => {
                    let reason = format!(
                        "folder {name:?} is not an emotion (angry, disgust, fear, happy, \
                         neutral, sad, surprise)"
                    );
                    match on_bad_row {
                        OnBadRow::Fail => {
                            return Err(DataError::BadRow {
                                location: class_dir.display().to_string(),
                                reason,
                            });
                        }
                        OnBadRow::Skip => {
                            set.skipped.push(Skipped {
                                location: class_dir.display().to_string(),
                                reason,
                            });
                            continue;
                        }
                    }
                }
            };
            for file in read_dir_sorted(&class_dir)? {
                if !file.is_file() || !is_image(&file) {
                    continue;
                }
                match read_face(&file) {
                    Ok(pixels) => set.push(&pixels, label, split),
                    Err(reason) => match on_bad_row {
                        OnBadRow::Fail => {
                            return Err(DataError::BadRow {
                                location: file.display().to_string(),
                                reason,
                            });
                        }
                        OnBadRow::Skip => set.skipped.push(Skipped {
                            location: file.display().to_string(),
                            reason,
                        }),
                    },
                }
            }
        }
    }
    if !found_split {
        return Err(DataError::Format {
            path: root.to_path_buf(),
            reason: "no train/ or test/ folder: expected Kaggle's FER2013 image-folder layout \
                     (train/<class>/*.png, test/<class>/*.png), or pass the FER2013 CSV file"
                .to_string(),
        });
    }
    if !has_validation {
        hold_out_validation(&mut set);
    }
    if set.is_empty() {
        return Err(DataError::Format {
            path: root.to_path_buf(),
            reason: "no images found under the class folders".to_string(),
        });
    }
    Ok(set)
}

/// Moves every `VALIDATION_EVERY`-th training image of each class (in load order, which is
/// file-name order) to PublicTest.
fn hold_out_validation(set: &mut FaceSet) {
    let mut seen = [0usize; emotion_shared::NUM_CLASSES];
    for i in 0..set.len() {
        if set.splits[i] != Split::Training {
            continue;
        }
        let c = set.labels[i] as usize;
        if seen[c] % VALIDATION_EVERY == VALIDATION_EVERY - 1 {
            set.splits[i] = Split::PublicTest;
        }
        seen[c] += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_png(path: &Path, size: u32, value: u8) {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        image::GrayImage::from_pixel(size, size, image::Luma([value]))
            .save(path)
            .expect("write png");
    }

    #[test]
    fn loads_kaggle_layout_and_holds_out_validation() {
        let dir = tempfile::tempdir().expect("tempdir");
        for i in 0..20 {
            write_png(
                &dir.path().join(format!("train/happy/im{i:02}.png")),
                48,
                200,
            );
        }
        write_png(&dir.path().join("train/surprise/a.png"), 64, 100);
        write_png(&dir.path().join("test/sad/b.png"), 48, 50);
        let set = load(dir.path(), OnBadRow::Fail).expect("loads");
        assert_eq!(set.len(), 22);
        assert_eq!(
            set.class_counts(Split::PublicTest)[Emotion::Happy.index()],
            2
        );
        assert_eq!(
            set.class_counts(Split::Training)[Emotion::Happy.index()],
            18
        );
        assert_eq!(
            set.class_counts(Split::PrivateTest)[Emotion::Sad.index()],
            1
        );
        // The 64x64 image was resized to 48x48 and kept its grey value.
        let i = set
            .labels
            .iter()
            .position(|&l| l == Emotion::Surprise.index() as u8);
        assert_eq!(set.image(i.expect("surprise image"))[0], 100);
    }

    #[test]
    fn a_corrupt_image_is_named_or_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_png(&dir.path().join("train/fear/ok.png"), 48, 10);
        let bad = dir.path().join("train/fear/broken.png");
        std::fs::write(&bad, b"\x89PNG not really").expect("write");
        let err = load(dir.path(), OnBadRow::Fail).unwrap_err().to_string();
        assert!(
            err.contains("broken.png") && err.contains("cannot decode"),
            "{err}"
        );
        let set = load(dir.path(), OnBadRow::Skip).expect("skip mode");
        assert_eq!(set.len(), 1);
        assert_eq!(set.skipped.len(), 1);
    }

    #[test]
    fn a_folder_without_splits_is_explained() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_png(&dir.path().join("happy/x.png"), 48, 1);
        let err = load(dir.path(), OnBadRow::Fail).unwrap_err().to_string();
        assert!(err.contains("no train/ or test/ folder"), "{err}");
    }
}
