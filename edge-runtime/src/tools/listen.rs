//! The reference client of the serial protocol (`emotion-edge listen`): reads the far end of
//! the line and decodes it with [`StreamDecoder`].

use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use emotion_shared::protocol::{Message, ProtocolError, StreamDecoder};

/// Why listening stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// The port cannot be opened.
    #[error(
        "cannot open serial port {port}: {source} (check the device name and permissions: group dialout)"
    )]
    Open {
        /// The device.
        port: String,
        /// Why.
        source: serialport::Error,
    },
    /// Reading failed (the adapter was unplugged...).
    #[error("reading {port}: {source}")]
    Read {
        /// The device.
        port: String,
        /// Why.
        source: std::io::Error,
    },
    /// Nothing arrived for the idle timeout.
    #[error("no data on {port} for {seconds} s")]
    Idle {
        /// The device.
        port: String,
        /// The timeout.
        seconds: u64,
    },
}

/// What to listen to and when to stop.
#[derive(Debug, Clone)]
pub struct ListenOptions {
    /// Baud rate.
    pub baud: u32,
    /// Stop after this many valid lines (0: run until stopped).
    pub count: u64,
    /// Fail after this long without data (zero: never).
    pub idle_timeout: Duration,
}

/// Reads `port` until `stop` is set, `count` valid lines arrived or the line stays idle,
/// calling `on_line` with each decoded message or decoding error. Returns the valid lines.
pub fn listen(
    port: &Path,
    options: &ListenOptions,
    stop: &AtomicBool,
    mut on_line: impl FnMut(Result<Message, ProtocolError>),
) -> Result<u64, ListenError> {
    let name = port.display().to_string();
    let mut serial = serialport::new(&name, options.baud)
        .timeout(Duration::from_millis(200))
        .open_native()
        .map_err(|source| ListenError::Open {
            port: name.clone(),
            source,
        })?;
    let mut decoder = StreamDecoder::new();
    let mut buf = [0u8; 1024];
    let mut valid = 0u64;
    let mut last_data = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        match serial.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => {
                last_data = Instant::now();
                for r in decoder.feed(&buf[..n]) {
                    valid += u64::from(r.is_ok());
                    on_line(r);
                    if options.count > 0 && valid >= options.count {
                        return Ok(valid);
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::Interrupted
                ) => {}
            Err(source) => return Err(ListenError::Read { port: name, source }),
        }
        if !options.idle_timeout.is_zero() && last_data.elapsed() > options.idle_timeout {
            return Err(ListenError::Idle {
                port: name,
                seconds: options.idle_timeout.as_secs(),
            });
        }
    }
    Ok(valid)
}
