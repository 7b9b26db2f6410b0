//! V4L2 cameras (USB webcams) through the `v4l` crate: device, size, frame rate and pixel
//! format (MJPEG or YUYV) chosen by the config, memory-mapped streaming, and an unplugged
//! camera survived by re-opening it with back-off.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use v4l::buffer::Type;
use v4l::io::traits::CaptureStream;
use v4l::prelude::*;
use v4l::video::Capture;
use v4l::{Format, FourCC, Fraction};

use super::decode::{decode_jpeg, yuyv_to_rgb};
use super::{Backoff, Frame, FrameSource, SourceError};

/// Pixel format asked of the camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PixelFormatChoice {
    /// Motion JPEG (small frames over USB; most webcams at 640x480 and up).
    Mjpeg,
    /// Packed YUV 4:2:2 (raw; high USB bandwidth).
    Yuyv,
}

/// V4L2 camera settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct V4l2Config {
    /// Device node.
    pub device: String,
    /// Width asked for (the driver may pick the closest).
    pub width: u32,
    /// Height asked for.
    pub height: u32,
    /// Frames per second asked for (0: driver default).
    pub fps: u32,
    /// Pixel format.
    pub format: PixelFormatChoice,
}

impl Default for V4l2Config {
    fn default() -> Self {
        V4l2Config {
            device: "/dev/video0".into(),
            width: 640,
            height: 480,
            fps: 30,
            format: PixelFormatChoice::Mjpeg,
        }
    }
}

struct Open {
    stream: MmapStream<'static>,
    format: Format,
    // The device must outlive the stream's use of its handle.
    _device: Device,
}

/// A V4L2 camera that re-opens itself after errors.
pub struct V4l2Camera {
    config: V4l2Config,
    open: Option<Open>,
    backoff: Backoff,
}

impl V4l2Camera {
    /// A camera; the device is opened on the first frame request.
    pub fn new(config: V4l2Config) -> Self {
        V4l2Camera {
            config,
            open: None,
            backoff: Backoff::default(),
        }
    }

    fn try_open(&self) -> std::io::Result<Open> {
        let device = Device::with_path(&self.config.device)?;
        let mut format = device.format()?;
        format.width = self.config.width;
        format.height = self.config.height;
        format.fourcc = match self.config.format {
            PixelFormatChoice::Mjpeg => FourCC::new(b"MJPG"),
            PixelFormatChoice::Yuyv => FourCC::new(b"YUYV"),
        };
        let format = device.set_format(&format)?;
        if self.config.fps > 0
            && let Ok(mut params) = device.params()
        {
            params.interval = Fraction::new(1, self.config.fps);
            if let Err(e) = device.set_params(&params) {
                tracing::warn!(device = %self.config.device, "cannot set {} fps: {e}", self.config.fps);
            }
        }
        let mut stream = MmapStream::with_buffers(&device, Type::VideoCapture, 4)?;
        stream.set_timeout(Duration::from_secs(2));
        Ok(Open {
            stream,
            format,
            _device: device,
        })
    }

    fn unavailable(&mut self, reason: String) -> SourceError {
        self.open = None;
        let retry_in = self.backoff.failed(Instant::now());
        SourceError::Unavailable {
            origin: self.config.device.clone(),
            reason,
            retry_in,
        }
    }
}

/// Decodes one V4L2 buffer in `fourcc` (`MJPG` or `YUYV`).
pub fn decode_buffer(
    fourcc: [u8; 4],
    data: &[u8],
    width: u32,
    height: u32,
) -> Result<image::RgbImage, String> {
    match &fourcc {
        b"MJPG" | b"JPEG" => decode_jpeg(data).map_err(|e| e.to_string()),
        b"YUYV" => yuyv_to_rgb(data, width, height).map_err(|e| e.to_string()),
        other => Err(format!(
            "pixel format {} is not supported (use MJPG or YUYV)",
            String::from_utf8_lossy(other)
        )),
    }
}

impl FrameSource for V4l2Camera {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        let now = Instant::now();
        if self.open.is_none() {
            if !self.backoff.ready(now) {
                return Err(SourceError::Unavailable {
                    origin: self.config.device.clone(),
                    reason: "waiting to re-open".into(),
                    retry_in: self.backoff.remaining(now),
                });
            }
            match self.try_open() {
                Ok(open) => {
                    tracing::info!(
                        device = %self.config.device,
                        "camera open: {}x{} {}",
                        open.format.width,
                        open.format.height,
                        open.format.fourcc
                    );
                    self.open = Some(open);
                }
                Err(e) => {
                    let msg = format!(
                        "cannot open camera: {e} (is it plugged in? `emotion-edge devices` lists cameras)"
                    );
                    return Err(self.unavailable(msg));
                }
            }
        }
        let Some(open) = self.open.as_mut() else {
            return Err(self.unavailable("camera not open".into()));
        };
        let (w, h, fourcc) = (
            open.format.width,
            open.format.height,
            open.format.fourcc.repr,
        );
        let result = match CaptureStream::next(&mut open.stream) {
            Ok((buf, meta)) => {
                let used = (meta.bytesused as usize).min(buf.len());
                let data = if used > 0 { &buf[..used] } else { buf };
                Ok(decode_buffer(fourcc, data, w, h))
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(Ok(image)) => {
                self.backoff.succeeded();
                Ok(Some(Frame {
                    image,
                    captured: now,
                    origin: self.config.device.clone(),
                    truth: None,
                }))
            }
            Ok(Err(reason)) => Err(SourceError::Corrupt {
                origin: self.config.device.clone(),
                reason,
            }),
            Err(e) => Err(self.unavailable(format!("capture failed: {e}"))),
        }
    }

    fn describe(&self) -> String {
        format!(
            "V4L2 camera {} ({:?} {}x{} @ {} fps)",
            self.config.device,
            self.config.format,
            self.config.width,
            self.config.height,
            self.config.fps
        )
    }
}

/// Cameras found on this machine: `(device node, name)`.
pub fn list_cameras() -> Vec<(String, String)> {
    v4l::context::enum_devices()
        .into_iter()
        .map(|n| {
            (
                n.path().display().to_string(),
                n.name().unwrap_or_else(|| "?".into()),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_device_is_unavailable_with_backoff_not_fatal() {
        let mut cam = V4l2Camera::new(V4l2Config {
            device: "/dev/video-does-not-exist".into(),
            ..V4l2Config::default()
        });
        match cam.next_frame() {
            Err(SourceError::Unavailable {
                retry_in, reason, ..
            }) => {
                assert_eq!(retry_in, Duration::from_millis(500));
                assert!(reason.contains("cannot open camera"), "{reason}");
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
        // Called again at once: still backing off, no busy re-open.
        assert!(matches!(
            cam.next_frame(),
            Err(SourceError::Unavailable { reason, .. }) if reason.contains("waiting")
        ));
    }

    #[test]
    fn decodes_yuyv_and_mjpeg_buffers_and_refuses_other_formats() {
        let yuyv = [128u8, 128, 128, 128].repeat(8);
        let img = decode_buffer(*b"YUYV", &yuyv, 4, 4).expect("yuyv");
        assert_eq!(img.dimensions(), (4, 4));
        let rgb = image::RgbImage::from_pixel(16, 8, image::Rgb([200, 50, 50]));
        let jpeg = super::super::decode::strip_huffman_tables(&super::super::decode::encode_jpeg(
            &rgb, 90,
        ));
        assert_eq!(
            decode_buffer(*b"MJPG", &jpeg, 16, 8)
                .expect("mjpeg")
                .dimensions(),
            (16, 8)
        );
        assert!(
            decode_buffer(*b"NV12", &[], 4, 4)
                .unwrap_err()
                .contains("NV12")
        );
    }
}
