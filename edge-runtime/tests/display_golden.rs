//! Golden images of the 128x64 display: the drawing code renders into the in-memory
//! framebuffer and must match `tests/golden/*.png` pixel for pixel. Set `UPDATE_GOLDEN=1`
//! to rewrite them after an intended change (and look at them before committing).
//!
//! The SSD1306 path is checked without a display: the real driver writes to an in-memory I2C
//! bus, and a model of the chip built from its datasheet turns the bytes back into pixels.

use std::path::PathBuf;

use emotion_edge::sink::display::oled::{MemoryI2c, OledPanel};
use emotion_edge::sink::display::{DisplayState, Framebuffer, Panel, draw};
use emotion_shared::Emotion;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("golden")
}

fn check(name: &str, state: &DisplayState) {
    let mut fb = Framebuffer::screen();
    let Ok(()) = draw(&mut fb, state);
    let actual = fb.to_image();
    let path = golden_dir().join(format!("{name}.png"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(golden_dir()).expect("golden dir");
        actual.save(&path).expect("write golden");
        return;
    }
    let expected = image::open(&path)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run with UPDATE_GOLDEN=1 to create it",
                path.display()
            )
        })
        .to_luma8();
    if expected != actual {
        let out = std::env::temp_dir().join(format!("emotion-edge-{name}-actual.png"));
        let _ = actual.save(&out);
        panic!(
            "display {name} differs from {} (actual saved to {}):\n{}",
            path.display(),
            out.display(),
            fb.to_ascii()
        );
    }
}

#[test]
fn one_golden_image_per_emotion() {
    for (i, e) in Emotion::ALL.iter().enumerate() {
        let state = DisplayState {
            main: Some((*e, 0.35 + 0.1 * i as f32)),
            faces: i % 3 + 1,
            fps: 12.5 + i as f32,
        };
        check(&format!("display-{}", e.name()), &state);
    }
}

#[test]
fn golden_image_with_nobody_in_view() {
    check(
        "display-no-face",
        &DisplayState {
            main: None,
            faces: 0,
            fps: 29.9,
        },
    );
}

#[test]
fn confidence_bar_grows_with_confidence() {
    let lit = |c: f32| {
        let mut fb = Framebuffer::screen();
        let Ok(()) = draw(
            &mut fb,
            &DisplayState {
                main: Some((Emotion::Happy, c)),
                faces: 1,
                fps: 0.0,
            },
        );
        (38..122).filter(|&x| fb.get(x, 24)).count()
    };
    assert_eq!(lit(0.0), 0);
    assert_eq!(lit(0.5), 42);
    assert_eq!(lit(1.0), 84);
    assert_eq!(lit(7.0), 84, "clamped");
}

/// The SSD1306's display RAM, rebuilt from the bytes the driver wrote to the I2C bus the way
/// the chip reads them (SSD1306 datasheet, sections 8.1.5 and 10): after the slave address each
/// write starts with a control byte, 0x00 for a command stream and 0x40 for display data.
/// Commands set the addressing mode and the column/page window; data bytes fill that window,
/// one byte per 8-pixel column of a page, least significant bit on top.
struct Ssd1306Model {
    ram: [[u8; 128]; 8],
    horizontal: bool,
    columns: (usize, usize),
    pages: (usize, usize),
    column: usize,
    page: usize,
    display_on: bool,
    charge_pump: bool,
    /// The command being read and the arguments still to come.
    pending: Vec<u8>,
    wanted: usize,
}

impl Ssd1306Model {
    fn new() -> Self {
        Ssd1306Model {
            ram: [[0; 128]; 8],
            horizontal: false,
            columns: (0, 127),
            pages: (0, 7),
            column: 0,
            page: 0,
            display_on: false,
            charge_pump: false,
            pending: Vec::new(),
            wanted: 0,
        }
    }

    /// Arguments that follow a command byte (datasheet table 9-1; scrolling included).
    fn arguments(command: u8) -> usize {
        match command {
            0x81 | 0x8D | 0xA8 | 0xD3 | 0xD5 | 0xD9 | 0xDA | 0xDB | 0x20 | 0xAD => 1,
            0x21 | 0x22 | 0xA3 => 2,
            0x29 | 0x2A => 5,
            0x26 | 0x27 => 6,
            _ => 0,
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        let (&control, payload) = bytes.split_first().expect("an empty I2C write");
        match control {
            0x00 => payload.iter().for_each(|&b| self.command_byte(b)),
            0x40 => payload.iter().for_each(|&b| self.data(b)),
            other => panic!("unknown control byte {other:#04x}"),
        }
    }

    fn command_byte(&mut self, b: u8) {
        if self.pending.is_empty() {
            self.wanted = Self::arguments(b);
        } else {
            self.wanted -= 1;
        }
        self.pending.push(b);
        if self.wanted == 0 {
            let command = std::mem::take(&mut self.pending);
            self.execute(&command);
        }
    }

    fn execute(&mut self, c: &[u8]) {
        match c {
            [0x20, mode] => self.horizontal = *mode == 0,
            [0x21, start, end] => {
                self.columns = (usize::from(*start), usize::from(*end));
                self.column = self.columns.0;
            }
            [0x22, start, end] => {
                self.pages = (usize::from(*start), usize::from(*end));
                self.page = self.pages.0;
            }
            [0x8D, setting] => self.charge_pump = *setting == 0x14,
            [0xAE] => self.display_on = false,
            [0xAF] => self.display_on = true,
            _ => {}
        }
    }

    fn data(&mut self, b: u8) {
        assert!(
            self.horizontal,
            "display data before horizontal addressing was set"
        );
        self.ram[self.page][self.column] = b;
        self.column += 1;
        if self.column > self.columns.1 {
            self.column = self.columns.0;
            self.page = if self.page >= self.pages.1 {
                self.pages.0
            } else {
                self.page + 1
            };
        }
    }

    fn pixel(&self, x: usize, y: usize) -> bool {
        self.ram[y / 8][x] >> (y % 8) & 1 == 1
    }
}

fn decode(bus: &MemoryI2c, address: u8) -> Ssd1306Model {
    let mut chip = Ssd1306Model::new();
    for (to, bytes) in &bus.state().writes {
        assert_eq!(*to, address, "a write to another I2C address");
        chip.write(bytes);
    }
    assert!(chip.pending.is_empty(), "a command was cut short");
    chip
}

fn sample_states() -> Vec<DisplayState> {
    let mut states: Vec<_> = Emotion::ALL
        .iter()
        .enumerate()
        .map(|(i, e)| DisplayState {
            main: Some((*e, 0.3 + 0.1 * i as f32)),
            faces: i % 3 + 1,
            fps: 9.5 + i as f32,
        })
        .collect();
    states.push(DisplayState {
        main: None,
        faces: 0,
        fps: 30.0,
    });
    states
}

/// The chip's RAM holds `state` as the framebuffer draws it, pixel for pixel.
fn assert_chip_shows(chip: &Ssd1306Model, state: &DisplayState) {
    let mut fb = Framebuffer::screen();
    let Ok(()) = draw(&mut fb, state);
    let lit = (0..64)
        .flat_map(|y| (0..128).map(move |x| (x, y)))
        .filter(|&(x, y)| fb.get(x as u32, y as u32))
        .count();
    assert!(lit > 50, "an almost empty picture proves little");
    for y in 0..64 {
        for x in 0..128 {
            assert_eq!(
                chip.pixel(x, y),
                fb.get(x as u32, y as u32),
                "pixel ({x}, {y}) of {state:?}"
            );
        }
    }
}

/// What the OLED shows, read back from the bus, is what the framebuffer (and so the golden
/// PNGs) shows, pixel for pixel, through the real ssd1306 driver.
#[test]
fn the_oled_receives_the_framebuffer_picture_over_i2c() {
    let bus = MemoryI2c::default();
    let mut panel = OledPanel::with_bus(bus.clone(), 0x3D);
    assert_eq!(panel.name(), "ssd1306:memory@0x3d");
    for state in sample_states() {
        panel.show(&state).expect("the panel shows");
        let chip = decode(&bus, 0x3D);
        assert!(chip.display_on && chip.charge_pump, "not initialised");
        assert_chip_shows(&chip, &state);
    }
    assert_eq!(bus.state().opens, 1, "a healthy bus is opened once");
}

/// An unplugged display fails the write with the bus named; the next picture opens and
/// initialises the display again, and it shows the full picture.
#[test]
fn the_oled_comes_back_after_the_bus_fails() {
    let bus = MemoryI2c::default();
    let mut panel = OledPanel::with_bus(bus.clone(), 0x3C);
    let states = sample_states();
    panel.show(&states[0]).expect("first picture");

    bus.state().fail_writes = true;
    let err = panel.show(&states[1]).expect_err("writes fail");
    assert!(err.contains("memory"), "{err}");

    {
        let mut s = bus.state();
        s.fail_writes = false;
        s.writes.clear();
    }
    panel.show(&states[2]).expect("the display is back");
    assert_eq!(bus.state().opens, 2, "re-opened after the failure");
    let chip = decode(&bus, 0x3C);
    assert!(chip.display_on, "re-initialised");
    assert_chip_shows(&chip, &states[2]);

    bus.state().fail_open = true;
    let mut absent = OledPanel::with_bus(bus.clone(), 0x3C);
    let err = absent.show(&states[0]).expect_err("no bus");
    assert!(err.contains("no such bus"), "{err}");
}
