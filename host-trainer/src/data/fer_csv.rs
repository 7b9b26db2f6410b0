//! FER2013 in Kaggle's CSV layout.
//!
//! Accepted headers (names trimmed, any case, any column order):
//! - `emotion,pixels,Usage`: `fer2013.csv` of the original challenge, 35,887 rows;
//! - `emotion, Usage, pixels`: `icml_face_data.csv` of the later Kaggle upload;
//! - `emotion,pixels`: `train.csv` of the challenge page, all rows taken as `Training`.
//!
//! `pixels` holds 2,304 space-separated integers 0-255 (48x48, row-major). A row that breaks
//! any of that is reported with its line number; under [`OnBadRow::Skip`] it is left out and
//! listed in [`FaceSet::skipped`].

use std::path::Path;

use emotion_shared::Emotion;

use super::{DataError, FER_PIXELS, FaceSet, OnBadRow, Skipped, Split};

/// Column positions found in the header.
struct Columns {
    emotion: usize,
    pixels: usize,
    usage: Option<usize>,
}

fn find_columns(path: &Path, header: &csv::StringRecord) -> Result<Columns, DataError> {
    let find = |name: &str| {
        header
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
    };
    let pixels = find("pixels").ok_or_else(|| DataError::Format {
        path: path.to_path_buf(),
        reason: format!(
            "no `pixels` column in the header {:?}: expected Kaggle's FER2013 CSV \
             (emotion,pixels,Usage)",
            header.iter().collect::<Vec<_>>()
        ),
    })?;
    let emotion = find("emotion").ok_or_else(|| DataError::Format {
        path: path.to_path_buf(),
        reason: "no `emotion` column: this looks like Kaggle's unlabelled test.csv; use \
                 fer2013.csv or icml_face_data.csv, which carry labels and the Usage split"
            .to_string(),
    })?;
    Ok(Columns {
        emotion,
        pixels,
        usage: find("usage"),
    })
}

/// Parses `pixels` into `out` (cleared first); the error says what is wrong.
pub fn parse_pixels(text: &str, out: &mut Vec<u8>) -> Result<(), String> {
    out.clear();
    for (i, tok) in text.split_ascii_whitespace().enumerate() {
        if out.len() == FER_PIXELS {
            let extra = text.split_ascii_whitespace().count();
            return Err(format!(
                "{extra} pixel values, expected {FER_PIXELS} (48x48)"
            ));
        }
        let v: u16 = tok
            .parse()
            .map_err(|_| format!("pixel {} is {tok:?}, not a number 0-255", i + 1))?;
        if v > 255 {
            return Err(format!("pixel {} is {v}, outside 0-255", i + 1));
        }
        out.push(v as u8);
    }
    if out.len() != FER_PIXELS {
        return Err(format!(
            "{} pixel values, expected {FER_PIXELS} (48x48)",
            out.len()
        ));
    }
    Ok(())
}

/// Loads a FER2013 CSV file.
pub fn load(path: &Path, on_bad_row: OnBadRow) -> Result<FaceSet, DataError> {
    let file = std::fs::File::open(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    load_from(path, std::io::BufReader::new(file), on_bad_row)
}

/// Loads FER2013 CSV text from `reader`; `path` names it in messages.
pub fn load_from<R: std::io::Read>(
    path: &Path,
    reader: R,
    on_bad_row: OnBadRow,
) -> Result<FaceSet, DataError> {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .has_headers(true)
        .from_reader(reader);
    let header = rdr
        .headers()
        .map_err(|e| DataError::Format {
            path: path.to_path_buf(),
            reason: format!("cannot read the CSV header: {e}"),
        })?
        .clone();
    let cols = find_columns(path, &header)?;
    let width = header.len();

    let mut set = FaceSet::default();
    let mut pixels = Vec::with_capacity(FER_PIXELS);
    let mut record = csv::StringRecord::new();
    loop {
        let row: Result<(Emotion, Split), String> = match rdr.read_record(&mut record) {
            Ok(false) => break,
            Err(e) => {
                // Invalid UTF-8 can be skipped; any other reader error ends the load.
                let at = e.position().map(|p| p.line()).unwrap_or(0);
                let location = format!("{}:{at}", path.display());
                if on_bad_row == OnBadRow::Fail || !matches!(e.kind(), csv::ErrorKind::Utf8 { .. })
                {
                    return Err(DataError::BadRow {
                        location,
                        reason: format!("unreadable CSV row: {e}"),
                    });
                }
                set.skipped.push(Skipped {
                    location,
                    reason: format!("unreadable CSV row: {e}"),
                });
                continue;
            }
            Ok(true) => parse_row(&record, &cols, width, &mut pixels),
        };
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        let location = format!("{}:{line}", path.display());
        match row {
            Ok((label, split)) => set.push(&pixels, label, split),
            Err(reason) => match on_bad_row {
                OnBadRow::Fail => return Err(DataError::BadRow { location, reason }),
                OnBadRow::Skip => set.skipped.push(Skipped { location, reason }),
            },
        }
    }
    if set.is_empty() {
        return Err(DataError::Format {
            path: path.to_path_buf(),
            reason: "no usable rows".to_string(),
        });
    }
    Ok(set)
}

fn parse_row(
    record: &csv::StringRecord,
    cols: &Columns,
    width: usize,
    pixels: &mut Vec<u8>,
) -> Result<(Emotion, Split), String> {
    if record.len() != width {
        return Err(format!("{} fields, the header has {width}", record.len()));
    }
    let field = |i: usize| record.get(i).unwrap_or("").trim();
    let label_text = field(cols.emotion);
    let label: Emotion = label_text
        .parse::<usize>()
        .ok()
        .and_then(Emotion::from_index)
        .ok_or_else(|| format!("emotion is {label_text:?}, expected a class index 0-6"))?;
    let split = match cols.usage {
        Some(u) => field(u).parse::<Split>()?,
        None => Split::Training,
    };
    parse_pixels(field(cols.pixels), pixels)?;
    Ok((label, split))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::FER_PIXELS;

    fn pixels_text(v: u8) -> String {
        vec![v.to_string(); FER_PIXELS].join(" ")
    }

    fn load_str(text: &str, policy: OnBadRow) -> Result<FaceSet, DataError> {
        load_from(Path::new("fer.csv"), text.as_bytes(), policy)
    }

    #[test]
    fn reads_all_three_header_layouts() {
        let p = pixels_text(9);
        let a = format!("emotion,pixels,Usage\n3,{p},Training\n5,{p},PrivateTest\n");
        let b = format!("emotion, Usage, pixels\n3, PublicTest, {p}\n");
        let c = format!("emotion,pixels\n0,{p}\n");
        let a = load_str(&a, OnBadRow::Fail).expect("layout a");
        assert_eq!(a.labels, vec![3, 5]);
        assert_eq!(a.splits, vec![Split::Training, Split::PrivateTest]);
        let b = load_str(&b, OnBadRow::Fail).expect("layout b");
        assert_eq!((b.labels[0], b.splits[0]), (3, Split::PublicTest));
        let c = load_str(&c, OnBadRow::Fail).expect("layout c");
        assert_eq!((c.labels[0], c.splits[0]), (0, Split::Training));
        assert_eq!(c.image(0), &[9u8; FER_PIXELS][..]);
    }

    #[test]
    fn a_bad_row_names_its_line_and_fails_by_default() {
        let p = pixels_text(1);
        let short = vec!["1"; 100].join(" ");
        let text = format!("emotion,pixels,Usage\n3,{p},Training\n2,{short},Training\n");
        let err = load_str(&text, OnBadRow::Fail).unwrap_err().to_string();
        assert!(err.contains("fer.csv:3"), "{err}");
        assert!(err.contains("100 pixel values, expected 2304"), "{err}");
        assert!(err.contains("--on-bad-row skip"), "{err}");
    }

    #[test]
    fn skip_leaves_bad_rows_out_and_lists_each() {
        let p = pixels_text(1);
        let mut bad = vec!["1"; FER_PIXELS];
        bad[10] = "x1";
        let bad = bad.join(" ");
        let text = format!(
            "emotion,pixels,Usage\n3,{p},Training\n9,{p},Training\n2,{bad},Training\n\
             4,{p},Holdout\n1,{p}\n6,{p},PublicTest\n"
        );
        let set = load_str(&text, OnBadRow::Skip).expect("skip mode loads");
        assert_eq!(set.labels, vec![3, 6]);
        let reasons: Vec<_> = set
            .skipped
            .iter()
            .map(|s| format!("{} {}", s.location, s.reason))
            .collect();
        assert_eq!(reasons.len(), 4, "{reasons:#?}");
        assert!(
            reasons[0].starts_with("fer.csv:3 emotion is \"9\""),
            "{reasons:#?}"
        );
        assert!(
            reasons[1].contains("fer.csv:4 pixel 11 is \"x1\""),
            "{reasons:#?}"
        );
        assert!(
            reasons[2].contains("fer.csv:5 unknown split \"Holdout\""),
            "{reasons:#?}"
        );
        assert!(
            reasons[3].contains("fer.csv:6 2 fields, the header has 3"),
            "{reasons:#?}"
        );
    }

    #[test]
    fn out_of_range_and_too_many_pixels_are_rejected() {
        let mut v = Vec::new();
        let mut big = vec!["0"; FER_PIXELS];
        big[0] = "256";
        assert!(
            parse_pixels(&big.join(" "), &mut v)
                .unwrap_err()
                .contains("outside 0-255")
        );
        let long = vec!["0"; FER_PIXELS + 1].join(" ");
        assert!(
            parse_pixels(&long, &mut v)
                .unwrap_err()
                .contains("2305 pixel values")
        );
    }

    #[test]
    fn unlabelled_test_csv_is_explained() {
        let text = format!("pixels\n{}\n", pixels_text(0));
        let err = load_str(&text, OnBadRow::Fail).unwrap_err().to_string();
        assert!(err.contains("unlabelled test.csv"), "{err}");
    }
}
