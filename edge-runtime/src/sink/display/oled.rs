//! The SSD1306 128x64 I2C OLED through `linux-embedded-hal` (`/dev/i2c-1`, address 0x3C by
//! default) and the `ssd1306` driver in buffered graphics mode: the same [`super::draw`] as
//! every other target; only changed areas are flushed.

use linux_embedded_hal::I2cdev;
use ssd1306::mode::BufferedGraphicsMode;
use ssd1306::prelude::*;
use ssd1306::{I2CDisplayInterface, Ssd1306};

use super::{DisplayState, Panel, draw};

type Display =
    Ssd1306<I2CInterface<I2cdev>, DisplaySize128x64, BufferedGraphicsMode<DisplaySize128x64>>;

/// The OLED; (re)initialised lazily so a display plugged in later, or one that glitched,
/// comes back.
pub struct OledPanel {
    bus: String,
    address: u8,
    display: Option<Display>,
}

impl OledPanel {
    /// A panel on I2C bus device `bus` (e.g. `/dev/i2c-1`) at `address` (usually 0x3C).
    pub fn new(bus: impl Into<String>, address: u8) -> Self {
        OledPanel {
            bus: bus.into(),
            address,
            display: None,
        }
    }

    fn open(&self) -> Result<Display, String> {
        let i2c = I2cdev::new(&self.bus).map_err(|e| {
            format!("cannot open I2C bus {}: {e} (enable I2C with raspi-config; `emotion-edge devices` lists buses)", self.bus)
        })?;
        let interface = I2CDisplayInterface::new_custom_address(i2c, self.address);
        let mut display = Ssd1306::new(interface, DisplaySize128x64, DisplayRotation::Rotate0)
            .into_buffered_graphics_mode();
        display.init().map_err(|e| {
            format!(
                "no SSD1306 answers at address {:#04x} on {}: {e:?}",
                self.address, self.bus
            )
        })?;
        Ok(display)
    }
}

impl Panel for OledPanel {
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
            return Err(format!("I2C write to {} failed: {e:?}", self.bus));
        }
        Ok(())
    }

    fn name(&self) -> String {
        format!("ssd1306:{}@{:#04x}", self.bus, self.address)
    }
}
