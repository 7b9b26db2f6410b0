//! The SSD1306 128x64 I2C OLED through `linux-embedded-hal` (`/dev/i2c-1`, address 0x3C by
//! default) and the `ssd1306` driver in buffered graphics mode: the same [`super::draw`] as
//! every other target. Each picture goes out whole (1 KiB: about 25 ms at 400 kHz, 95 ms at
//! the default 100 kHz), which is why [`super::DisplaySink`] sends only changed pictures, at
//! a capped rate.
//!
//! The bus sits behind [`BusOpener`]: [`LinuxI2c`] on a device, [`MemoryI2c`] in tests, which
//! records the bytes the driver sends so a test can decode them back into a picture.

use std::sync::{Arc, Mutex, MutexGuard};

use embedded_hal::i2c::{ErrorKind, ErrorType, I2c, Operation};
use linux_embedded_hal::I2cdev;
use ssd1306::mode::BufferedGraphicsMode;
use ssd1306::prelude::*;
use ssd1306::{I2CDisplayInterface, Ssd1306};

use super::{DisplayState, Panel, draw};

type Display<B> =
    Ssd1306<I2CInterface<B>, DisplaySize128x64, BufferedGraphicsMode<DisplaySize128x64>>;

/// Opens (or re-opens) the I2C bus the display hangs on.
pub trait BusOpener {
    /// The open bus.
    type Bus: I2c;
    /// Opens the bus; the error says what to do.
    fn open(&mut self) -> Result<Self::Bus, String>;
    /// The bus name, for messages.
    fn name(&self) -> String;
}

/// A Linux I2C bus device, e.g. `/dev/i2c-1` on a Raspberry Pi.
#[derive(Debug, Clone)]
pub struct LinuxI2c {
    /// Device path.
    pub path: String,
}

impl BusOpener for LinuxI2c {
    type Bus = I2cdev;

    fn open(&mut self) -> Result<I2cdev, String> {
        I2cdev::new(&self.path).map_err(|e| {
            format!(
                "cannot open I2C bus {}: {e} (enable I2C with raspi-config; `emotion-edge devices` lists buses)",
                self.path
            )
        })
    }

    fn name(&self) -> String {
        self.path.clone()
    }
}

/// The OLED; (re)initialised lazily so a display plugged in later, or one that glitched,
/// comes back.
pub struct OledPanel<O: BusOpener = LinuxI2c> {
    opener: O,
    address: u8,
    display: Option<Display<O::Bus>>,
}

impl OledPanel<LinuxI2c> {
    /// A panel on I2C bus device `bus` (e.g. `/dev/i2c-1`) at `address` (usually 0x3C).
    pub fn new(bus: impl Into<String>, address: u8) -> Self {
        OledPanel::with_bus(LinuxI2c { path: bus.into() }, address)
    }
}

impl<O: BusOpener> OledPanel<O> {
    /// A panel on the bus `opener` opens, at `address`.
    pub fn with_bus(opener: O, address: u8) -> Self {
        OledPanel {
            opener,
            address,
            display: None,
        }
    }

    fn open(&mut self) -> Result<Display<O::Bus>, String> {
        let i2c = self.opener.open()?;
        let interface = I2CDisplayInterface::new_custom_address(i2c, self.address);
        let mut display = Ssd1306::new(interface, DisplaySize128x64, DisplayRotation::Rotate0)
            .into_buffered_graphics_mode();
        display.init().map_err(|e| {
            format!(
                "no SSD1306 answers at address {:#04x} on {}: {e:?}",
                self.address,
                self.opener.name()
            )
        })?;
        Ok(display)
    }
}

impl<O: BusOpener> Panel for OledPanel<O> {
    fn show(&mut self, state: &DisplayState) -> Result<(), String> {
        if self.display.is_none() {
            self.display = Some(self.open()?);
        }
        let Some(display) = self.display.as_mut() else {
            return Err("display not open".into());
        };
        display.clear_buffer();
        draw(display, state).map_err(|e| format!("drawing failed: {e:?}"))?;
        if let Err(e) = display.flush() {
            self.display = None;
            return Err(format!("I2C write to {} failed: {e:?}", self.opener.name()));
        }
        Ok(())
    }

    fn name(&self) -> String {
        format!("ssd1306:{}@{:#04x}", self.opener.name(), self.address)
    }
}

/// What a [`MemoryI2c`] saw and how it behaves.
#[derive(Debug, Default)]
pub struct MemoryI2cState {
    /// Every write, in order: (7-bit address, bytes).
    pub writes: Vec<(u8, Vec<u8>)>,
    /// How often the bus was opened.
    pub opens: usize,
    /// Writes fail (an unplugged display).
    pub fail_writes: bool,
    /// Opening fails (no such bus).
    pub fail_open: bool,
}

/// An in-memory I2C bus: records writes, reads zeros, and fails on request. Clones share
/// the same state, so a test keeps one handle while the panel owns another.
#[derive(Debug, Clone, Default)]
pub struct MemoryI2c {
    state: Arc<Mutex<MemoryI2cState>>,
}

impl MemoryI2c {
    /// The shared state (a poisoned lock is taken over: the state is plain data).
    pub fn state(&self) -> MutexGuard<'_, MemoryI2cState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ErrorType for MemoryI2c {
    type Error = ErrorKind;
}

impl I2c for MemoryI2c {
    fn transaction(
        &mut self,
        address: u8,
        operations: &mut [Operation<'_>],
    ) -> Result<(), ErrorKind> {
        let mut state = self.state();
        for op in operations {
            match op {
                Operation::Write(bytes) => {
                    if state.fail_writes {
                        return Err(ErrorKind::Other);
                    }
                    state.writes.push((address, bytes.to_vec()));
                }
                Operation::Read(buf) => buf.fill(0),
            }
        }
        Ok(())
    }
}

impl BusOpener for MemoryI2c {
    type Bus = MemoryI2c;

    fn open(&mut self) -> Result<MemoryI2c, String> {
        let mut state = self.state();
        if state.fail_open {
            return Err("cannot open I2C bus memory: no such bus".into());
        }
        state.opens += 1;
        Ok(self.clone())
    }

    fn name(&self) -> String {
        "memory".into()
    }
}
