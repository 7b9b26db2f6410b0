//! Frame decoders shared by the sources: JPEG (with the standard Huffman tables inserted
//! when a webcam's MJPEG frame has none) and packed YUYV 4:2:2 to RGB.

use image::RgbImage;

/// Largest frame side accepted from any decoder (bigger claims are treated as corrupt).
pub const MAX_FRAME_SIDE: u32 = 8192;

/// Why a frame did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not a JPEG, or a broken one.
    #[error("JPEG: {0}")]
    Jpeg(String),
    /// A YUYV buffer of the wrong size.
    #[error("YUYV {width}x{height} needs {expected} bytes, got {actual}")]
    YuyvSize {
        /// Width.
        width: u32,
        /// Height.
        height: u32,
        /// `width * height * 2`.
        expected: usize,
        /// Bytes given.
        actual: usize,
    },
    /// Too large, odd width for YUYV, or empty.
    #[error("unsupported frame size {width}x{height}")]
    Size {
        /// Width.
        width: u32,
        /// Height.
        height: u32,
    },
}

/// The standard JPEG Huffman tables (ITU-T T.81 Annex K.3, tables K.3-K.6) as one DHT
/// segment, as MJPEG (OpenDML "AVI1") frames assume them: DC and AC, luminance and
/// chrominance.
pub fn standard_dht_segment() -> Vec<u8> {
    const DC_LUMA_BITS: [u8; 16] = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
    const DC_CHROMA_BITS: [u8; 16] = [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0];
    const DC_VALUES: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
    const AC_LUMA_BITS: [u8; 16] = [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d];
    const AC_LUMA_VALUES: [u8; 162] = [
        0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61,
        0x07, 0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xA1, 0x08, 0x23, 0x42, 0xB1, 0xC1, 0x15, 0x52,
        0xD1, 0xF0, 0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0A, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x25,
        0x26, 0x27, 0x28, 0x29, 0x2A, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44, 0x45,
        0x46, 0x47, 0x48, 0x49, 0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63, 0x64,
        0x65, 0x66, 0x67, 0x68, 0x69, 0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x83,
        0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99,
        0x9A, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6,
        0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3, 0xC4, 0xC5, 0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xD2, 0xD3,
        0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA, 0xE1, 0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8,
        0xE9, 0xEA, 0xF1, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8, 0xF9, 0xFA,
    ];
    const AC_CHROMA_BITS: [u8; 16] = [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77];
    const AC_CHROMA_VALUES: [u8; 162] = [
        0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61,
        0x71, 0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xA1, 0xB1, 0xC1, 0x09, 0x23, 0x33,
        0x52, 0xF0, 0x15, 0x62, 0x72, 0xD1, 0x0A, 0x16, 0x24, 0x34, 0xE1, 0x25, 0xF1, 0x17, 0x18,
        0x19, 0x1A, 0x26, 0x27, 0x28, 0x29, 0x2A, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44,
        0x45, 0x46, 0x47, 0x48, 0x49, 0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63,
        0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A,
        0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97,
        0x98, 0x99, 0x9A, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4,
        0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3, 0xC4, 0xC5, 0xC6, 0xC7, 0xC8, 0xC9, 0xCA,
        0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA, 0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7,
        0xE8, 0xE9, 0xEA, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8, 0xF9, 0xFA,
    ];
    let tables: [(u8, &[u8; 16], &[u8]); 4] = [
        (0x00, &DC_LUMA_BITS, &DC_VALUES),
        (0x10, &AC_LUMA_BITS, &AC_LUMA_VALUES),
        (0x01, &DC_CHROMA_BITS, &DC_VALUES),
        (0x11, &AC_CHROMA_BITS, &AC_CHROMA_VALUES),
    ];
    let mut body = Vec::new();
    for (class_id, bits, values) in tables {
        body.push(class_id);
        body.extend_from_slice(bits);
        body.extend_from_slice(values);
    }
    let len = (body.len() + 2) as u16;
    let mut seg = vec![0xFF, 0xC4];
    seg.extend_from_slice(&len.to_be_bytes());
    seg.extend(body);
    seg
}

/// Where a JPEG's header segments end: `(has DHT, offset of the SOS marker)`, walking the
/// marker segments after SOI. `None` if the structure is broken before SOS.
fn scan_header(jpeg: &[u8]) -> Option<(bool, usize)> {
    if jpeg.len() < 4 || jpeg[0] != 0xFF || jpeg[1] != 0xD8 {
        return None;
    }
    let mut i = 2;
    let mut has_dht = false;
    while i + 4 <= jpeg.len() {
        if jpeg[i] != 0xFF {
            return None;
        }
        let marker = jpeg[i + 1];
        if marker == 0xFF {
            i += 1; // fill byte
            continue;
        }
        match marker {
            0xDA => return Some((has_dht, i)),
            0xC4 => has_dht = true,
            0xD9 => return None,
            _ => {}
        }
        let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
        if len < 2 {
            return None;
        }
        i += 2 + len;
    }
    None
}

/// The JPEG with the standard Huffman tables inserted before its SOS if it has no DHT
/// segment (many USB webcams and `rpicam-vid` omit them); unchanged otherwise.
pub fn with_huffman_tables(jpeg: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    match scan_header(jpeg) {
        Some((false, sos)) => {
            let dht = standard_dht_segment();
            let mut out = Vec::with_capacity(jpeg.len() + dht.len());
            out.extend_from_slice(&jpeg[..sos]);
            out.extend_from_slice(&dht);
            out.extend_from_slice(&jpeg[sos..]);
            std::borrow::Cow::Owned(out)
        }
        _ => std::borrow::Cow::Borrowed(jpeg),
    }
}

/// Decodes a JPEG (or MJPEG frame) to RGB, inserting Huffman tables when needed.
pub fn decode_jpeg(jpeg: &[u8]) -> Result<RgbImage, DecodeError> {
    let bytes = with_huffman_tables(jpeg);
    let mut reader =
        image::ImageReader::with_format(std::io::Cursor::new(&bytes[..]), image::ImageFormat::Jpeg);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_FRAME_SIDE);
    limits.max_image_height = Some(MAX_FRAME_SIDE);
    limits.max_alloc = Some(512 * 1024 * 1024);
    reader.limits(limits);
    let img = reader
        .decode()
        .map_err(|e| DecodeError::Jpeg(e.to_string()))?;
    if img.width() == 0 || img.height() == 0 {
        return Err(DecodeError::Size {
            width: img.width(),
            height: img.height(),
        });
    }
    Ok(img.to_rgb8())
}

/// Converts packed YUYV 4:2:2 (Y0 U Y1 V per two pixels, BT.601 limited range, as V4L2
/// delivers it) to RGB.
pub fn yuyv_to_rgb(data: &[u8], width: u32, height: u32) -> Result<RgbImage, DecodeError> {
    if width == 0
        || height == 0
        || !width.is_multiple_of(2)
        || width > MAX_FRAME_SIDE
        || height > MAX_FRAME_SIDE
    {
        return Err(DecodeError::Size { width, height });
    }
    let expected = width as usize * height as usize * 2;
    if data.len() < expected {
        return Err(DecodeError::YuyvSize {
            width,
            height,
            expected,
            actual: data.len(),
        });
    }
    let mut out = Vec::with_capacity(width as usize * height as usize * 3);
    for quad in data[..expected].chunks_exact(4) {
        let (y0, u, y1, v) = (quad[0], quad[1], quad[2], quad[3]);
        for y in [y0, y1] {
            out.extend_from_slice(&ycbcr_to_rgb(y, u, v));
        }
    }
    RgbImage::from_raw(width, height, out).ok_or(DecodeError::Size { width, height })
}

/// BT.601 limited-range YCbCr to RGB, integer arithmetic (16.16 fixed point).
pub fn ycbcr_to_rgb(y: u8, cb: u8, cr: u8) -> [u8; 3] {
    let c = (i32::from(y) - 16).max(0) * 76_284; // 1.164 * 65536
    let d = i32::from(cb) - 128;
    let e = i32::from(cr) - 128;
    let r = (c + 104_595 * e + 32_768) >> 16;
    let g = (c - 25_624 * d - 53_281 * e + 32_768) >> 16;
    let b = (c + 132_202 * d + 32_768) >> 16;
    [
        r.clamp(0, 255) as u8,
        g.clamp(0, 255) as u8,
        b.clamp(0, 255) as u8,
    ]
}

/// Encodes an RGB image as a baseline JPEG (tests and the synthetic MJPEG stream).
pub fn encode_jpeg(image: &RgbImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality);
    // Writing to a Vec cannot fail for a valid RGB image.
    if image.write_with_encoder(encoder).is_err() {
        out.clear();
    }
    out
}

/// Removes every DHT segment from a JPEG: what a webcam sends (test helper).
pub fn strip_huffman_tables(jpeg: &[u8]) -> Vec<u8> {
    let Some((_, sos)) = scan_header(jpeg) else {
        return jpeg.to_vec();
    };
    let mut out = jpeg[..2].to_vec();
    let mut i = 2;
    while i < sos {
        let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
        if jpeg[i + 1] != 0xC4 {
            out.extend_from_slice(&jpeg[i..i + 2 + len]);
        }
        i += 2 + len;
    }
    out.extend_from_slice(&jpeg[sos..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_image() -> RgbImage {
        RgbImage::from_fn(64, 48, |x, y| {
            image::Rgb([(x * 4) as u8, (y * 5) as u8, 128])
        })
    }

    #[test]
    fn dht_segment_has_the_standard_size() {
        // 4 tables: 4 * (1 + 16) + 12 + 162 + 12 + 162 = 416 bytes + 2 length + 2 marker.
        let seg = standard_dht_segment();
        assert_eq!(seg.len(), 420);
        assert_eq!(&seg[..4], &[0xFF, 0xC4, 0x01, 0xA2]);
    }

    #[test]
    fn a_frame_without_huffman_tables_decodes_like_the_original() {
        let jpeg = encode_jpeg(&test_image(), 90);
        let original = decode_jpeg(&jpeg).expect("encoder output decodes");
        let stripped = strip_huffman_tables(&jpeg);
        assert!(
            stripped.len() < jpeg.len(),
            "the encoder wrote DHT segments"
        );
        assert!(scan_header(&stripped).is_some_and(|(dht, _)| !dht));
        // The image crate's encoder uses the standard tables, so re-inserting them restores
        // the exact image.
        let restored = decode_jpeg(&stripped).expect("decodes with inserted tables");
        assert_eq!(restored, original);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode_jpeg(b"").is_err());
        assert!(decode_jpeg(b"\xFF\xD8\xFF\xDA\x00").is_err());
        let jpeg = encode_jpeg(&test_image(), 90);
        // A truncated frame must not panic (zune-jpeg may fill the rest with grey).
        let _ = decode_jpeg(&jpeg[..jpeg.len() / 2]);
    }

    #[test]
    fn yuyv_grey_and_colours() {
        // Y=16 black, Y=235 white, neutral chroma.
        let img = yuyv_to_rgb(&[16, 128, 235, 128], 2, 1).expect("2x1");
        assert_eq!(img.get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(img.get_pixel(1, 0).0, [255, 255, 255]);
        // Pure red in BT.601 limited range: Y=81, Cb=90, Cr=240.
        let red = ycbcr_to_rgb(81, 90, 240);
        assert!(red[0] >= 250 && red[1] <= 3 && red[2] <= 3, "{red:?}");
        assert!(matches!(
            yuyv_to_rgb(&[0; 7], 2, 2),
            Err(DecodeError::YuyvSize { .. })
        ));
        assert!(matches!(
            yuyv_to_rgb(&[0; 6], 3, 1),
            Err(DecodeError::Size { .. })
        ));
    }
}
