//! Pictures for people: the confusion matrix as a heat map and the training curves, drawn
//! with embedded-graphics' built-in fonts onto an RGB image and saved as PNG (no system fonts
//! or plotting back-end needed).

use std::path::Path;

use embedded_graphics::mono_font::MonoTextStyle;
use embedded_graphics::mono_font::ascii::FONT_6X10;
use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{Line, PrimitiveStyle, Rectangle};
use embedded_graphics::text::{Alignment, Text};
use emotion_shared::{Emotion, NUM_CLASSES};
use image::RgbImage;

use super::metrics::Confusion;
use crate::train::history::History;

/// An `image::RgbImage` as an embedded-graphics draw target.
struct Canvas(RgbImage);

impl OriginDimensions for Canvas {
    fn size(&self) -> Size {
        Size::new(self.0.width(), self.0.height())
    }
}

impl DrawTarget for Canvas {
    type Color = Rgb888;
    type Error = std::convert::Infallible;

    fn draw_iter<I: IntoIterator<Item = Pixel<Rgb888>>>(
        &mut self,
        pixels: I,
    ) -> Result<(), Self::Error> {
        let (w, h) = (self.0.width() as i32, self.0.height() as i32);
        for Pixel(p, c) in pixels {
            if p.x >= 0 && p.y >= 0 && p.x < w && p.y < h {
                self.0
                    .put_pixel(p.x as u32, p.y as u32, image::Rgb([c.r(), c.g(), c.b()]));
            }
        }
        Ok(())
    }
}

impl Canvas {
    fn new(w: u32, h: u32) -> Canvas {
        Canvas(RgbImage::from_pixel(w, h, image::Rgb([255, 255, 255])))
    }

    fn text(&mut self, s: &str, x: i32, y: i32, align: Alignment, color: Rgb888) {
        let style = MonoTextStyle::new(&FONT_6X10, color);
        let _ = Text::with_alignment(s, Point::new(x, y), style, align).draw(self);
    }

    fn rect(&mut self, x: i32, y: i32, w: u32, h: u32, fill: Rgb888) {
        let _ = Rectangle::new(Point::new(x, y), Size::new(w, h))
            .into_styled(PrimitiveStyle::with_fill(fill))
            .draw(self);
    }

    fn line(&mut self, a: (i32, i32), b: (i32, i32), color: Rgb888, width: u32) {
        let _ = Line::new(Point::new(a.0, a.1), Point::new(b.0, b.1))
            .into_styled(PrimitiveStyle::with_stroke(color, width))
            .draw(self);
    }

    fn save(&self, path: &Path) -> image::ImageResult<()> {
        self.0.save(path)
    }
}

/// Saves the confusion matrix as a heat map: rows are true classes, each row shaded by the
/// share of that class predicted in each column, with the counts written in the cells.
pub fn confusion_png(c: &Confusion, title: &str, path: &Path) -> image::ImageResult<()> {
    let cell = 52i32;
    let (left, top) = (70i32, 50i32);
    let side = left + cell * NUM_CLASSES as i32 + 20;
    let mut img = Canvas::new(side as u32, (top + cell * NUM_CLASSES as i32 + 40) as u32);
    let black = Rgb888::BLACK;
    img.text(title, side / 2, 14, Alignment::Center, black);
    img.text(
        "predicted ->",
        left + cell * 7 / 2,
        32,
        Alignment::Center,
        black,
    );
    for (t, row) in c.counts.iter().enumerate() {
        let support: u64 = row.iter().sum();
        let y = top + cell * t as i32;
        img.text(
            Emotion::ALL[t].name(),
            left - 4,
            y + cell / 2 + 3,
            Alignment::Right,
            black,
        );
        for (p, &v) in row.iter().enumerate() {
            let share = if support > 0 {
                v as f64 / support as f64
            } else {
                0.0
            };
            let x = left + cell * p as i32;
            // White to deep blue.
            let shade = |full: f64| (255.0 - share * (255.0 - full)) as u8;
            let fill = Rgb888::new(shade(20.0), shade(60.0), shade(160.0));
            img.rect(x, y, cell as u32 - 1, cell as u32 - 1, fill);
            let ink = if share > 0.5 { Rgb888::WHITE } else { black };
            img.text(
                &v.to_string(),
                x + cell / 2,
                y + cell / 2 + 3,
                Alignment::Center,
                ink,
            );
        }
    }
    for (p, e) in Emotion::ALL.iter().enumerate() {
        let x = left + cell * p as i32 + cell / 2;
        img.text(e.name(), x, top + cell * 7 + 14, Alignment::Center, black);
    }
    img.save(path)
}

/// A named, coloured curve: its value at each epoch index.
type Series<'a> = (&'a str, Rgb888, Box<dyn Fn(usize) -> f64 + 'a>);

/// Saves the training curves: train and validation accuracy and validation macro-F1 on the
/// left axis (0 to 1), training loss scaled to its maximum, per epoch.
pub fn curves_png(h: &History, title: &str, path: &Path) -> image::ImageResult<()> {
    let (w, ht) = (640i32, 400i32);
    let (left, right, top, bottom) = (50i32, 20i32, 30i32, 50i32);
    let mut img = Canvas::new(w as u32, ht as u32);
    let black = Rgb888::BLACK;
    let grey = Rgb888::new(200, 200, 200);
    img.text(title, w / 2, 16, Alignment::Center, black);
    let (pw, ph) = (w - left - right, ht - top - bottom);
    for k in 0..=10 {
        let y = top + ph - ph * k / 10;
        img.line((left, y), (left + pw, y), grey, 1);
        img.text(
            &format!("{:.1}", k as f64 / 10.0),
            left - 4,
            y + 3,
            Alignment::Right,
            black,
        );
    }
    img.line((left, top), (left, top + ph), black, 1);
    img.line((left, top + ph), (left + pw, top + ph), black, 1);
    let n = h.epochs.len().max(2);
    let x_of = |i: usize| left + (pw as f64 * i as f64 / (n - 1) as f64) as i32;
    let y_of = |v: f64| top + ph - (ph as f64 * v.clamp(0.0, 1.0)) as i32;
    let max_loss = h
        .epochs
        .iter()
        .map(|e| e.train_loss)
        .fold(f64::MIN_POSITIVE, f64::max);
    let series: [Series<'_>; 4] = [
        (
            "train acc",
            Rgb888::new(120, 120, 255),
            Box::new(|i| h.epochs[i].train_accuracy),
        ),
        (
            "val acc",
            Rgb888::new(0, 150, 0),
            Box::new(|i| h.epochs[i].val_accuracy),
        ),
        (
            "val macro-F1",
            Rgb888::new(220, 0, 0),
            Box::new(|i| h.epochs[i].val_macro_f1),
        ),
        (
            "loss / max",
            Rgb888::new(120, 120, 120),
            Box::new(|i| h.epochs[i].train_loss / max_loss),
        ),
    ];
    for (k, (name, color, value)) in series.iter().enumerate() {
        for i in 1..h.epochs.len() {
            img.line(
                (x_of(i - 1), y_of(value(i - 1))),
                (x_of(i), y_of(value(i))),
                *color,
                2,
            );
        }
        let lx = left + 10 + 140 * k as i32;
        img.rect(lx, ht - 22, 12, 4, *color);
        img.text(name, lx + 16, ht - 17, Alignment::Left, black);
    }
    for (i, e) in h.epochs.iter().enumerate() {
        if h.epochs.len() <= 20 || i % (h.epochs.len() / 10).max(1) == 0 {
            img.text(
                &e.epoch.to_string(),
                x_of(i),
                top + ph + 12,
                Alignment::Center,
                black,
            );
        }
    }
    img.text(
        "epoch",
        left + pw / 2,
        top + ph + 26,
        Alignment::Center,
        black,
    );
    img.save(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::history::EpochRecord;

    #[test]
    fn heat_map_shades_by_row_share() {
        let mut c = Confusion::default();
        for _ in 0..9 {
            c.add(3, 3);
        }
        c.add(3, 4);
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("cm.png");
        confusion_png(&c, "test", &path).expect("writes");
        let img = image::open(&path).expect("reads").to_rgb8();
        // Cell (happy, happy) is dark; (happy, sad) is light; (angry, angry) is white.
        let at =
            |t: i32, p: i32| *img.get_pixel((70 + 52 * p + 5) as u32, (50 + 52 * t + 5) as u32);
        assert!(at(3, 3)[0] < 60, "{:?}", at(3, 3));
        assert!(at(3, 4)[0] > 200, "{:?}", at(3, 4));
        assert_eq!(at(0, 0), image::Rgb([255, 255, 255]));
    }

    #[test]
    fn curves_draw_every_series() {
        let h = History {
            epochs: (1..=5)
                .map(|e| EpochRecord {
                    epoch: e,
                    lr: 0.1,
                    train_loss: 2.0 / e as f64,
                    train_accuracy: 0.1 * e as f64,
                    val_accuracy: 0.12 * e as f64,
                    val_macro_f1: 0.15 * e as f64,
                    images_per_second: 100.0,
                    seconds: 1.0,
                })
                .collect(),
        };
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("curves.png");
        curves_png(&h, "run", &path).expect("writes");
        let img = image::open(&path).expect("reads").to_rgb8();
        let red = img
            .pixels()
            .filter(|p| p[0] > 200 && p[1] < 40 && p[2] < 40)
            .count();
        assert!(red > 100, "the macro-F1 line is missing ({red} red pixels)");
    }
}
