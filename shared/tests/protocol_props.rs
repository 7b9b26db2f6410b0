//! Property tests of the serial protocol: round trips, length bound, strictness, corruption
//! detection, and a stream decoder that never panics and always recovers.

use emotion_shared::Emotion;
use emotion_shared::protocol::{
    Body, BoundingBox, FaceReport, FrameSummary, Level, MAX_CONTENT_LEN, MAX_LINE_LEN, Message,
    ProtocolError, Status, StreamDecoder, crc16,
};
use proptest::prelude::*;
use proptest::sample::select;

fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,80}",
        "[a-z0-9_]{1,20}",
        any::<String>(),
        "[,*$\r\n\t ]{0,10}",
        "\\PC{60,200}",
    ]
}

fn arb_body() -> impl Strategy<Value = Body> {
    prop_oneof![
        (
            any::<u32>(),
            select(Emotion::ALL.to_vec()),
            prop_oneof![0u16..=1000, any::<u16>()],
            any::<[u16; 4]>(),
        )
            .prop_map(|(face_id, label, confidence_permille, [x, y, w, h])| {
                Body::Face(FaceReport {
                    face_id,
                    label,
                    confidence_permille,
                    bbox: BoundingBox { x, y, w, h },
                })
            }),
        any::<u16>().prop_map(|faces| Body::Frame(FrameSummary { faces })),
        (select(Level::ALL.to_vec()), arb_text(), arb_text())
            .prop_map(|(level, code, text)| Body::Status(Status { level, code, text })),
    ]
}

fn arb_message() -> impl Strategy<Value = Message> {
    (
        prop_oneof![any::<u32>(), 0u32..1000],
        prop_oneof![any::<u32>(), 0u32..100_000],
        arb_body(),
    )
        .prop_map(|(seq, t_ms, body)| Message { seq, t_ms, body })
}

/// Feeds `bytes` to a fresh stream decoder in chunks of the given sizes (cycled), checking the
/// buffer bound after every byte, and returns everything it reported, `finish` included.
fn run_stream(bytes: &[u8], chunk_sizes: &[usize]) -> Vec<Result<Message, ProtocolError>> {
    let mut decoder = StreamDecoder::new();
    let mut out = Vec::new();
    let mut rest = bytes;
    let mut sizes = chunk_sizes.iter().copied().cycle();
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(1).clamp(1, rest.len());
        let (chunk, tail) = rest.split_at(n);
        for &b in chunk {
            out.extend(decoder.push(b));
            assert!(decoder.buffered() < MAX_LINE_LEN);
        }
        rest = tail;
    }
    out.extend(decoder.finish());
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn protocol_round_trips(m in arb_message()) {
        let line = m.encode();
        let normal = m.normalized();
        prop_assert_eq!(Message::decode(line.as_bytes()), Ok(normal.clone()));
        prop_assert_eq!(normal.normalized(), normal.clone());
        prop_assert_eq!(normal.encode(), line.clone());
        prop_assert_eq!(line.parse::<Message>(), Ok(normal));
    }

    #[test]
    fn protocol_lines_are_bounded_and_well_framed(m in arb_message()) {
        let line = m.encode();
        prop_assert!(line.len() <= MAX_LINE_LEN, "{} bytes: {:?}", line.len(), line);
        let content = line.strip_suffix("\r\n").expect("ends in CRLF");
        prop_assert!(content.len() <= MAX_CONTENT_LEN);
        prop_assert!(content.bytes().all(|b| (0x20..=0x7E).contains(&b)), "{:?}", line);
        prop_assert_eq!(content.matches('$').count(), 1);
        prop_assert!(content.starts_with("$EMO,1,"));
        prop_assert_eq!(content.matches('*').count(), 1);
        prop_assert_eq!(content.find('*'), Some(content.len() - 5));
        let fields: Vec<&str> = content[1..content.len() - 5].split(',').collect();
        prop_assert!(fields.iter().all(|f| !f.is_empty()), "empty field in {:?}", line);
        prop_assert_eq!(fields.len(), m.kind().field_count());
    }

    #[test]
    fn protocol_decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(m) = Message::decode(&bytes) {
            // Anything accepted is canonical.
            let content = bytes.strip_suffix(b"\r\n")
                .or_else(|| bytes.strip_suffix(b"\n"))
                .unwrap_or(&bytes);
            prop_assert_eq!(m.encode().into_bytes(), [content, b"\r\n"].concat());
        }
    }

    /// Lines with a correct checksum but edited fields: whatever the decoder accepts, the
    /// encoder writes back byte for byte, so the decoder is exactly as strict as the encoder.
    #[test]
    fn protocol_decoder_accepts_only_canonical_lines(
        m in arb_message(),
        edits in prop::collection::vec(
            (any::<prop::sample::Index>(), select(b"0123456789,-+ xAFNSIWEhappy*$".to_vec()), 0u8..3),
            1..4,
        ),
    ) {
        let line = m.encode();
        let mut payload = line.as_bytes()[1..line.len() - 7].to_vec();
        for (index, byte, op) in edits {
            let i = index.index(payload.len() + 1);
            match op {
                0 if i < payload.len() => payload[i] = byte,
                1 => payload.insert(i, byte),
                _ if i < payload.len() => { payload.remove(i); }
                _ => {}
            }
        }
        let mut edited = vec![b'$'];
        edited.extend(&payload);
        edited.extend(format!("*{:04X}\r\n", crc16(&payload)).as_bytes());
        if let Ok(decoded) = Message::decode(&edited) {
            prop_assert_eq!(decoded.encode().into_bytes(), edited);
        }
    }

    #[test]
    fn protocol_stream_never_panics_and_stays_bounded(
        bytes in prop::collection::vec(
            prop_oneof![any::<u8>(), select(b"$\r\n*,EMO1FNS".to_vec())],
            0..2000,
        ),
        chunks in prop::collection::vec(1usize..300, 1..10),
    ) {
        let out = run_stream(&bytes, &chunks);
        prop_assert!(out.len() <= bytes.len() + 1);
    }

    #[test]
    fn protocol_stream_recovers_after_any_garbage(
        garbage in prop::collection::vec(
            prop_oneof![any::<u8>(), select(b"$\r\n*,EMO1".to_vec())],
            0..400,
        ),
        m in arb_message(),
        chunks in prop::collection::vec(1usize..64, 1..6),
    ) {
        let mut bytes = garbage;
        bytes.extend(m.encode().as_bytes());
        let out = run_stream(&bytes, &chunks);
        prop_assert_eq!(out.last(), Some(&Ok(m.normalized())));
    }

    #[test]
    fn protocol_stream_decodes_concatenated_lines_in_any_chunks(
        messages in prop::collection::vec(arb_message(), 0..20),
        chunks in prop::collection::vec(1usize..200, 1..10),
        lf_only in any::<bool>(),
    ) {
        let mut bytes = Vec::new();
        for m in &messages {
            let line = m.encode();
            let line = if lf_only { line.replace("\r\n", "\n") } else { line };
            bytes.extend(line.as_bytes());
        }
        let out = run_stream(&bytes, &chunks);
        let expected: Vec<_> = messages.iter().map(|m| Ok(m.normalized())).collect();
        prop_assert_eq!(out, expected);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// CRC-16 detects every error within 16 bits, and the framing catches the rest: every
    /// line with exactly one byte changed, at any position and to any other value, is rejected.
    #[test]
    fn protocol_rejects_every_single_byte_corruption(m in arb_message()) {
        let line = m.encode().into_bytes();
        let mut corrupted = line.clone();
        for i in 0..line.len() {
            for byte in 0..=255u8 {
                if byte == line[i] {
                    continue;
                }
                corrupted[i] = byte;
                let result = Message::decode(&corrupted);
                prop_assert!(
                    result.is_err(),
                    "byte {} of {:?} set to 0x{:02X} decodes to {:?}",
                    i, String::from_utf8_lossy(&line), byte, result
                );
            }
            corrupted[i] = line[i];
        }
    }
}
