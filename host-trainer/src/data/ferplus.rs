//! FER+ relabelling of FER2013 (`fer2013new.csv` from Microsoft's FERPlus project).
//!
//! Header: `Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,
//! unknown,NF`; one row per row of `fer2013.csv`, in the same order, with ten crowd votes per
//! image. Mapping onto our seven classes:
//!
//! | FER+ column | our class |
//! |-------------|-----------|
//! | anger       | 0 angry   |
//! | disgust     | 1 disgust |
//! | fear        | 2 fear    |
//! | happiness   | 3 happy   |
//! | sadness     | 4 sad     |
//! | surprise    | 5 surprise|
//! | neutral     | 6 neutral |
//! | contempt    | dropped (its votes are discarded; FER2013 has no such class) |
//! | unknown     | discarded votes |
//! | NF          | "not a face": the image is skipped when NF has the most votes |
//!
//! An image is skipped (and listed in [`FaceSet::skipped`]) when its `Image name` is empty
//! (FER+ removed it), when NF has the most votes, or when no vote falls on the seven classes.
//! Targets: [`FerPlusTargets::Majority`] keeps an image only if one class has more than half of
//! its seven-class votes (FER+'s majority rule) and uses that class; [`FerPlusTargets::Soft`]
//! keeps every remaining image with the vote distribution as its soft target and the top
//! class (lowest index on a tie) as its hard label.

use std::path::Path;

use emotion_shared::NUM_CLASSES;

use super::{DataError, FER_PIXELS, FaceSet, Skipped};

/// How FER+ votes become training targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FerPlusTargets {
    /// One label per image: the class with more than half of the votes.
    Majority,
    /// The vote distribution over the seven classes as a soft target.
    Soft,
}

/// Our class index for each of the first eight vote columns (after `Usage,Image name`).
const COLUMN_CLASS: [Option<usize>; 8] = [
    Some(6), // neutral
    Some(3), // happiness
    Some(5), // surprise
    Some(4), // sadness
    Some(0), // anger
    Some(1), // disgust
    Some(2), // fear
    None,    // contempt
];

/// Replaces the labels of `base` (all of `fer2013.csv`, loaded in file order with nothing
/// skipped) with FER+ votes from `path`, and drops the images FER+ rules out.
pub fn apply(base: FaceSet, path: &Path, targets: FerPlusTargets) -> Result<FaceSet, DataError> {
    let format = |reason: String| DataError::Format {
        path: path.to_path_buf(),
        reason,
    };
    if !base.skipped.is_empty() {
        return Err(format(format!(
            "FER+ labels follow fer2013.csv row by row, but {} rows of it were skipped; \
             fix or restore fer2013.csv and load it with --on-bad-row fail",
            base.skipped.len()
        )));
    }
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .map_err(|e| format(format!("cannot open: {e}")))?;
    let header: Vec<String> = rdr
        .headers()
        .map_err(|e| format(format!("cannot read the header: {e}")))?
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    let expected = [
        "usage",
        "image name",
        "neutral",
        "happiness",
        "surprise",
        "sadness",
        "anger",
        "disgust",
        "fear",
        "contempt",
        "unknown",
        "nf",
    ];
    if header != expected {
        return Err(format(format!(
            "header is {header:?}; expected FER+'s fer2013new.csv header {expected:?}"
        )));
    }

    let mut out = FaceSet {
        soft: (targets == FerPlusTargets::Soft).then(Vec::new),
        ..FaceSet::default()
    };
    let mut row = 0usize;
    for record in rdr.records() {
        let record = record.map_err(|e| format(format!("unreadable row: {e}")))?;
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        let location = format!("{}:{line}", path.display());
        if row >= base.len() {
            return Err(format(format!(
                "has more rows than fer2013.csv ({}): the two files do not belong together",
                base.len()
            )));
        }
        if record.len() != expected.len() {
            return Err(DataError::BadRow {
                location,
                reason: format!("{} fields, expected {}", record.len(), expected.len()),
            });
        }
        let mut votes = [0f32; 10];
        for (k, v) in votes.iter_mut().enumerate() {
            let text = record.get(k + 2).unwrap_or("").trim();
            *v = text
                .parse::<f32>()
                .ok()
                .filter(|v| *v >= 0.0)
                .ok_or_else(|| DataError::BadRow {
                    location: location.clone(),
                    reason: format!(
                        "vote count {:?} in column {} is not a number",
                        text,
                        expected[k + 2]
                    ),
                })?;
        }
        let name = record.get(1).unwrap_or("").trim();
        match targets_for(name, &votes, targets) {
            Ok((label, dist)) => {
                let i = row;
                out.pixels
                    .extend_from_slice(&base.pixels[i * FER_PIXELS..(i + 1) * FER_PIXELS]);
                out.labels.push(label as u8);
                out.splits.push(base.splits[i]);
                if let Some(soft) = out.soft.as_mut() {
                    soft.extend_from_slice(&dist);
                }
            }
            Err(reason) => out.skipped.push(Skipped { location, reason }),
        }
        row += 1;
    }
    if row != base.len() {
        return Err(format(format!(
            "has {row} rows but fer2013.csv has {}: the two files do not belong together",
            base.len()
        )));
    }
    Ok(out)
}

/// The hard label and seven-class distribution for one FER+ row, or why it is skipped.
fn targets_for(
    name: &str,
    votes: &[f32; 10],
    targets: FerPlusTargets,
) -> Result<(usize, [f32; NUM_CLASSES]), String> {
    if name.is_empty() {
        return Err("FER+ removed this image (empty Image name)".to_string());
    }
    let nf = votes[9];
    if votes[..9].iter().all(|&v| nf > v) {
        return Err("FER+ voters marked it as not a face (NF)".to_string());
    }
    let mut dist = [0f32; NUM_CLASSES];
    for (k, class) in COLUMN_CLASS.iter().enumerate() {
        if let Some(c) = class {
            dist[*c] += votes[k];
        }
    }
    let total: f32 = dist.iter().sum();
    if total <= 0.0 {
        return Err("no votes on the seven FER2013 classes".to_string());
    }
    for d in &mut dist {
        *d /= total;
    }
    let mut top = 0;
    for c in 1..NUM_CLASSES {
        if dist[c] > dist[top] {
            top = c;
        }
    }
    if targets == FerPlusTargets::Majority && dist[top] <= 0.5 {
        return Err(format!(
            "no majority: the top class has {:.0}% of the votes",
            dist[top] * 100.0
        ));
    }
    Ok((top, dist))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Split;
    use emotion_shared::Emotion;

    fn base(n: usize) -> FaceSet {
        let mut set = FaceSet::default();
        for i in 0..n {
            set.push(&[i as u8; FER_PIXELS], Emotion::Neutral, Split::Training);
        }
        set
    }

    fn write(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().expect("tmp");
        std::fs::write(f.path(), text).expect("write");
        f
    }

    const HEADER: &str = "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n";

    #[test]
    fn majority_and_soft_targets_follow_the_votes() {
        let text = format!(
            "{HEADER}Training,fer0.png,0,8,2,0,0,0,0,0,0,0\n\
             Training,fer1.png,4,0,0,4,0,0,0,2,0,0\n\
             Training,,10,0,0,0,0,0,0,0,0,0\n\
             Training,fer3.png,0,0,0,0,0,0,0,0,1,9\n"
        );
        let f = write(&text);
        let maj = apply(base(4), f.path(), FerPlusTargets::Majority).expect("majority");
        assert_eq!(maj.labels, vec![Emotion::Happy.index() as u8]);
        assert_eq!(maj.image(0)[0], 0);
        assert_eq!(maj.skipped.len(), 3);
        assert!(
            maj.skipped[0].reason.contains("no majority"),
            "{:?}",
            maj.skipped
        );
        assert!(maj.skipped[1].reason.contains("removed"));
        assert!(maj.skipped[2].reason.contains("not a face"));

        let soft = apply(base(4), f.path(), FerPlusTargets::Soft).expect("soft");
        assert_eq!(soft.len(), 2);
        let d = soft.soft.as_ref().expect("soft targets");
        assert!((d[Emotion::Happy.index()] - 0.8).abs() < 1e-6);
        assert!((d[Emotion::Surprise.index()] - 0.2).abs() < 1e-6);
        // Second kept image: 4 neutral, 4 sad, contempt dropped -> 0.5/0.5, tie -> sad (index 4).
        assert!((d[NUM_CLASSES + Emotion::Neutral.index()] - 0.5).abs() < 1e-6);
        assert_eq!(soft.labels[1], Emotion::Sad.index() as u8);
        assert_eq!(soft.image(1)[0], 1);
    }

    #[test]
    fn mismatched_files_are_refused() {
        let f = write(&format!("{HEADER}Training,a.png,1,0,0,0,0,0,0,0,0,0\n"));
        let err = apply(base(2), f.path(), FerPlusTargets::Soft)
            .unwrap_err()
            .to_string();
        assert!(err.contains("do not belong together"), "{err}");
        let bad = write("Usage,Image name,x\n");
        let err = apply(base(1), bad.path(), FerPlusTargets::Soft)
            .unwrap_err()
            .to_string();
        assert!(err.contains("fer2013new.csv"), "{err}");
    }
}
