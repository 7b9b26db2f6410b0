//! Face data for training: FER2013 as users download it, FER+ vote labels, and the synthetic
//! set, all loaded into one [`FaceSet`] of 48x48 grey `u8` images with their official split.
//!
//! - [`fer_csv`]: the Kaggle CSV (`emotion,pixels,Usage`);
//! - [`folders`]: the Kaggle image-folder layout (`train/<class>/*.png`, `test/<class>/*.png`);
//! - [`ferplus`]: FER+ `fer2013new.csv` vote counts as majority or soft targets;
//! - [`synth`]: writes the synthetic set in the CSV layout;
//! - [`tensors`]: the set as tensors on the training device.

pub mod augment;
pub mod fer_csv;
pub mod ferplus;
pub mod folders;
pub mod synth;
pub mod tensors;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use emotion_shared::{Emotion, NUM_CLASSES};

/// Side length of a FER2013 image.
pub const FER_SIZE: usize = 48;
/// Pixels in one FER2013 image.
pub const FER_PIXELS: usize = FER_SIZE * FER_SIZE;

/// The official FER2013 splits (`Usage` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Split {
    /// `Training`: 28,709 images; what models learn from.
    Training,
    /// `PublicTest`: 3,589 images; model selection (early stopping, best checkpoint).
    PublicTest,
    /// `PrivateTest`: 3,589 images; the number we report, touched once.
    PrivateTest,
}

impl Split {
    /// All splits in file order.
    pub const ALL: [Split; 3] = [Split::Training, Split::PublicTest, Split::PrivateTest];

    /// The spelling in FER2013's `Usage` column.
    pub fn usage_name(self) -> &'static str {
        match self {
            Split::Training => "Training",
            Split::PublicTest => "PublicTest",
            Split::PrivateTest => "PrivateTest",
        }
    }

    /// The command-line spelling (`train`, `public-test`, `private-test`).
    pub fn cli_name(self) -> &'static str {
        match self {
            Split::Training => "train",
            Split::PublicTest => "public-test",
            Split::PrivateTest => "private-test",
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.cli_name())
    }
}

impl FromStr for Split {
    type Err = String;

    /// Accepts the `Usage` spellings and the command-line ones, in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s
            .trim()
            .to_ascii_lowercase()
            .replace(['-', '_'], "")
            .as_str()
        {
            "training" | "train" => Ok(Split::Training),
            "publictest" | "val" | "validation" => Ok(Split::PublicTest),
            "privatetest" | "test" => Ok(Split::PrivateTest),
            _ => Err(format!(
                "unknown split {s:?}: expected Training, PublicTest or PrivateTest \
                 (train, public-test, private-test)"
            )),
        }
    }
}

/// What to do with a malformed row or image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OnBadRow {
    /// Stop with an error naming the file and line (the default: nothing changes silently).
    #[default]
    Fail,
    /// Leave the row out, and count and list it in the load report.
    Skip,
}

/// A row or file that was left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// File and line (or file alone for image folders).
    pub location: String,
    /// What was wrong with it.
    pub reason: String,
}

/// Errors while loading face data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file or folder could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// What was being read.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A row is malformed and `--on-bad-row fail` is in force.
    #[error("{location}: {reason} (pass --on-bad-row skip to leave such rows out and list them)")]
    BadRow {
        /// File and line.
        location: String,
        /// What is wrong.
        reason: String,
    },
    /// The file as a whole is not what we expected.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },
}

/// A set of 48x48 grey faces with labels and their official split.
#[derive(Debug, Clone, Default)]
pub struct FaceSet {
    /// `len() * FER_PIXELS` bytes, row-major, one image after another.
    pub pixels: Vec<u8>,
    /// Hard label (FER2013 class index) per image.
    pub labels: Vec<u8>,
    /// Soft targets (`NUM_CLASSES` per image, summing to 1) when the labels came from votes.
    pub soft: Option<Vec<f32>>,
    /// Split per image.
    pub splits: Vec<Split>,
    /// Rows left out under `--on-bad-row skip` (or by FER+ rules), with reasons.
    pub skipped: Vec<Skipped>,
}

impl FaceSet {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Appends one image; `pixels` must be `FER_PIXELS` long.
    pub fn push(&mut self, pixels: &[u8], label: Emotion, split: Split) {
        debug_assert_eq!(pixels.len(), FER_PIXELS);
        self.pixels.extend_from_slice(pixels);
        self.labels.push(label.index() as u8);
        self.splits.push(split);
    }

    /// The pixels of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        &self.pixels[i * FER_PIXELS..(i + 1) * FER_PIXELS]
    }

    /// Indices of the images in `split`, in file order.
    pub fn indices(&self, split: Split) -> Vec<usize> {
        (0..self.len())
            .filter(|&i| self.splits[i] == split)
            .collect()
    }

    /// Images per class in `split`.
    pub fn class_counts(&self, split: Split) -> [usize; NUM_CLASSES] {
        let mut counts = [0; NUM_CLASSES];
        for i in self.indices(split) {
            counts[self.labels[i] as usize] += 1;
        }
        counts
    }

    /// A short table of images per split and class, for logs and summaries.
    pub fn summary(&self) -> String {
        let mut out = format!("{:<13}", "split");
        for e in Emotion::ALL {
            out.push_str(&format!("{:>9}", e.name()));
        }
        out.push_str(&format!("{:>9}\n", "total"));
        for split in Split::ALL {
            let counts = self.class_counts(split);
            out.push_str(&format!("{:<13}", split.usage_name()));
            for c in counts {
                out.push_str(&format!("{c:>9}"));
            }
            out.push_str(&format!("{:>9}\n", counts.iter().sum::<usize>()));
        }
        if !self.skipped.is_empty() {
            out.push_str(&format!("skipped rows: {}\n", self.skipped.len()));
        }
        out
    }

    /// A stable SHA-256 of pixels, labels and splits: the data set's identity in a manifest.
    pub fn content_hash(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(&self.pixels);
        h.update(&self.labels);
        let splits: Vec<u8> = self.splits.iter().map(|s| *s as u8).collect();
        h.update(&splits);
        if let Some(soft) = &self.soft {
            for v in soft {
                h.update(v.to_le_bytes());
            }
        }
        hex::encode(h.finalize())
    }
}

/// Loads FER2013 from a Kaggle CSV file or an image-folder root, whichever `path` is.
pub fn load(path: &Path, on_bad_row: OnBadRow) -> Result<FaceSet, DataError> {
    let meta = std::fs::metadata(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if meta.is_dir() {
        folders::load(path, on_bad_row)
    } else {
        fer_csv::load(path, on_bad_row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_parse_usage_and_cli_spellings() {
        for s in Split::ALL {
            assert_eq!(s.usage_name().parse(), Ok(s));
            assert_eq!(s.cli_name().parse(), Ok(s));
        }
        assert!("holdout".parse::<Split>().is_err());
    }

    #[test]
    fn content_hash_changes_with_any_label() {
        let mut a = FaceSet::default();
        a.push(&[7; FER_PIXELS], Emotion::Happy, Split::Training);
        let mut b = a.clone();
        b.labels[0] = Emotion::Sad.index() as u8;
        assert_ne!(a.content_hash(), b.content_hash());
        assert_eq!(a.content_hash(), a.clone().content_hash());
    }
}
