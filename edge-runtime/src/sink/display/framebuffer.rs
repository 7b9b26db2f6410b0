//! An in-memory 1-bit framebuffer that implements `DrawTarget`, saved as a grey PNG (one
//! pixel per pixel, 0 or 255): the headless display and the golden-image tests.

use std::convert::Infallible;
use std::path::PathBuf;

use embedded_graphics::pixelcolor::BinaryColor;
use embedded_graphics::prelude::*;
use image::GrayImage;

use super::{DisplayState, HEIGHT, Panel, WIDTH, draw};

/// A `width x height` monochrome framebuffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framebuffer {
    width: u32,
    height: u32,
    on: Vec<bool>,
}

impl Framebuffer {
    /// An all-off framebuffer.
    pub fn new(width: u32, height: u32) -> Self {
        Framebuffer {
            width,
            height,
            on: vec![false; width as usize * height as usize],
        }
    }

    /// The 128x64 screen size.
    pub fn screen() -> Self {
        Self::new(WIDTH, HEIGHT)
    }

    /// Whether pixel `(x, y)` is on (false outside).
    pub fn get(&self, x: u32, y: u32) -> bool {
        x < self.width && y < self.height && self.on[(y * self.width + x) as usize]
    }

    /// As a grey image: on = 255, off = 0.
    pub fn to_image(&self) -> GrayImage {
        GrayImage::from_fn(self.width, self.height, |x, y| {
            image::Luma([if self.get(x, y) { 255 } else { 0 }])
        })
    }

    /// As ASCII art (`#` on, `.` off), for test failure messages.
    pub fn to_ascii(&self) -> String {
        let mut s = String::new();
        for y in 0..self.height {
            for x in 0..self.width {
                s.push(if self.get(x, y) { '#' } else { '.' });
            }
            s.push('\n');
        }
        s
    }
}

impl OriginDimensions for Framebuffer {
    fn size(&self) -> Size {
        Size::new(self.width, self.height)
    }
}

impl DrawTarget for Framebuffer {
    type Color = BinaryColor;
    type Error = Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Pixel<Self::Color>>,
    {
        for Pixel(p, c) in pixels {
            if p.x >= 0 && p.y >= 0 && (p.x as u32) < self.width && (p.y as u32) < self.height {
                let i = (p.y as u32 * self.width + p.x as u32) as usize;
                self.on[i] = c.is_on();
            }
        }
        Ok(())
    }
}

/// The display as a PNG file, `DIR/display.png`, replaced atomically on every update.
#[derive(Debug)]
pub struct PngPanel {
    dir: PathBuf,
    fb: Framebuffer,
    updates: u64,
}

impl PngPanel {
    /// A panel writing into `dir` (created if missing).
    pub fn new(dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(PngPanel {
            dir,
            fb: Framebuffer::screen(),
            updates: 0,
        })
    }

    /// The PNG path.
    pub fn path(&self) -> PathBuf {
        self.dir.join("display.png")
    }

    /// The last picture drawn.
    pub fn framebuffer(&self) -> &Framebuffer {
        &self.fb
    }

    /// Updates written so far.
    pub fn updates(&self) -> u64 {
        self.updates
    }
}

impl Panel for PngPanel {
    fn show(&mut self, state: &DisplayState) -> Result<(), String> {
        let Ok(()) = draw(&mut self.fb, state);
        let tmp = self.dir.join(".display.png.tmp");
        self.fb
            .to_image()
            .save_with_format(&tmp, image::ImageFormat::Png)
            .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, self.path())
            .map_err(|e| format!("cannot replace {}: {e}", self.path().display()))?;
        self.updates += 1;
        Ok(())
    }

    fn name(&self) -> String {
        format!("png:{}", self.dir.display())
    }
}
