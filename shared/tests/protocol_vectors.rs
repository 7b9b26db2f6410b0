//! Checks the serial protocol against the shared test vectors in
//! `testdata/protocol/vectors.tsv` (format: `testdata/protocol/README.md`).

use std::collections::BTreeSet;

use emotion_shared::Emotion;
use emotion_shared::protocol::{
    Body, BoundingBox, FaceReport, FrameSummary, Level, Message, Status,
};

const VECTORS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/testdata/protocol/vectors.tsv"
));

const COLUMNS: [&str; 18] = [
    "expect", "line_hex", "kind", "seq", "t_ms", "face_id", "label", "conf", "x", "y", "w", "h",
    "faces", "level", "code", "text", "line", "note",
];

/// The line-level error kinds; every one must have a vector.
const LINE_ERRORS: [&str; 14] = [
    "too_long",
    "not_printable_ascii",
    "missing_start",
    "missing_checksum",
    "malformed_checksum",
    "checksum_mismatch",
    "bad_prefix",
    "unsupported_version",
    "unknown_kind",
    "field_count",
    "bad_number",
    "out_of_range",
    "unknown_label",
    "invalid_field",
];

struct Row<'a> {
    number: usize,
    cells: Vec<&'a str>,
}

impl Row<'_> {
    fn get(&self, column: &str) -> &str {
        let i = COLUMNS
            .iter()
            .position(|c| *c == column)
            .unwrap_or_else(|| panic!("no column {column}"));
        self.cells[i]
    }

    fn num<T: std::str::FromStr>(&self, column: &str) -> T {
        self.get(column).parse().unwrap_or_else(|_| {
            panic!(
                "row {}: column {column} is {:?}, not a number",
                self.number,
                self.get(column)
            )
        })
    }

    fn bytes(&self) -> Vec<u8> {
        hex::decode(self.get("line_hex"))
            .unwrap_or_else(|e| panic!("row {}: bad line_hex: {e}", self.number))
    }

    /// The message a valid row describes.
    fn message(&self) -> Message {
        let body = match self.get("kind") {
            "F" => Body::Face(FaceReport {
                face_id: self.num("face_id"),
                label: self
                    .get("label")
                    .parse::<Emotion>()
                    .unwrap_or_else(|e| panic!("row {}: {e}", self.number)),
                confidence_permille: self.num("conf"),
                bbox: BoundingBox {
                    x: self.num("x"),
                    y: self.num("y"),
                    w: self.num("w"),
                    h: self.num("h"),
                },
            }),
            "N" => Body::Frame(FrameSummary {
                faces: self.num("faces"),
            }),
            "S" => Body::Status(Status {
                level: match self.get("level") {
                    "I" => Level::Info,
                    "W" => Level::Warning,
                    "E" => Level::Error,
                    other => panic!("row {}: level {other:?}", self.number),
                },
                code: self.get("code").to_string(),
                text: self.get("text").to_string(),
            }),
            other => panic!("row {}: kind {other:?}", self.number),
        };
        Message {
            seq: self.num("seq"),
            t_ms: self.num("t_ms"),
            body,
        }
    }
}

/// The `line` column's escaping of `bytes`.
fn show(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| match b {
            b'\\' => "\\\\".to_string(),
            b'\r' => "\\r".to_string(),
            b'\n' => "\\n".to_string(),
            b'\t' => "\\t".to_string(),
            0x20..=0x7E => char::from(b).to_string(),
            _ => format!("\\x{b:02x}"),
        })
        .collect()
}

fn rows() -> Vec<Row<'static>> {
    let mut lines = VECTORS
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.starts_with('#'));
    let (_, header) = lines.next().expect("a header row");
    assert_eq!(header.split('\t').collect::<Vec<_>>(), COLUMNS);
    lines
        .map(|(i, l)| {
            let row = Row {
                number: i + 1,
                cells: l.split('\t').collect(),
            };
            assert_eq!(row.cells.len(), COLUMNS.len(), "row {}: {l:?}", row.number);
            assert!(
                l.len() < 1024,
                "row {} is too long for C readers",
                row.number
            );
            for (cell, column) in row.cells.iter().zip(COLUMNS) {
                assert!(!cell.is_empty(), "row {}: empty {column}", row.number);
            }
            row
        })
        .collect()
}

#[test]
fn protocol_vectors_decode_as_expected() {
    let rows = rows();
    assert!(rows.len() >= 50, "only {} vectors", rows.len());
    let mut failures = Vec::new();
    for row in &rows {
        let bytes = row.bytes();
        assert_eq!(
            row.get("line"),
            show(&bytes),
            "row {}: line column",
            row.number
        );
        let got = Message::decode(&bytes);
        let expect = row.get("expect");
        let ok = match (&got, expect) {
            (Ok(m), "ok") => *m == row.message(),
            (Err(e), kind) => e.kind() == kind,
            (Ok(_), _) => false,
        };
        if !ok {
            failures.push(format!(
                "row {} ({}): {:?}\n    expected {expect}, got {got:?}",
                row.number,
                row.get("note"),
                row.get("line"),
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} vectors fail:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

#[test]
fn protocol_vectors_encode_back_to_their_lines() {
    for row in rows().iter().filter(|r| r.get("expect") == "ok") {
        let bytes = row.bytes();
        let content = bytes
            .strip_suffix(b"\r\n")
            .or_else(|| bytes.strip_suffix(b"\n"))
            .unwrap_or(&bytes);
        let mut expected = content.to_vec();
        expected.extend(b"\r\n");
        let encoded = row.message().encode();
        assert_eq!(
            show(encoded.as_bytes()),
            show(&expected),
            "row {} ({})",
            row.number,
            row.get("note")
        );
    }
}

#[test]
fn protocol_vectors_cover_every_kind_and_error() {
    let rows = rows();
    let seen: BTreeSet<&str> = rows.iter().map(|r| r.get("expect")).collect();
    for kind in LINE_ERRORS {
        assert!(seen.contains(kind), "no vector for {kind}");
    }
    let unknown: Vec<_> = seen
        .iter()
        .filter(|k| **k != "ok" && !LINE_ERRORS.contains(k))
        .collect();
    assert!(unknown.is_empty(), "unknown expectations {unknown:?}");
    for kind in ["F", "N", "S"] {
        assert!(
            rows.iter()
                .any(|r| r.get("expect") == "ok" && r.get("kind") == kind),
            "no valid {kind} vector"
        );
    }
    for e in Emotion::ALL {
        assert!(
            rows.iter().any(|r| r.get("label") == e.name()),
            "no vector with label {e}"
        );
    }
}
