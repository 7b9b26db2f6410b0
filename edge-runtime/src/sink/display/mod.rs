//! The display: what a 128x64 monochrome screen shows (label, confidence bar, a small face
//! icon per emotion, face count, FPS), drawn by [`draw`] on any `embedded-graphics`
//! `DrawTarget`: the SSD1306 OLED ([`oled`]) or an in-memory [`Framebuffer`] saved as PNG
//! ([`PngPanel`], `--display png:DIR`, also what the golden-image tests compare).

use std::time::{Duration, Instant};

use embedded_graphics::mono_font::MonoTextStyle;
use embedded_graphics::mono_font::ascii::{FONT_6X10, FONT_9X15_BOLD};
use embedded_graphics::pixelcolor::BinaryColor;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{Arc, Circle, Line, PrimitiveStyle, Rectangle};
use embedded_graphics::text::{Alignment, Baseline, Text, TextStyleBuilder};
use emotion_shared::Emotion;
use emotion_shared::protocol::Level;

use super::{FrameReport, Sink, SinkError};
use crate::clock::{SharedClock, SystemClock};

mod framebuffer;
pub mod oled;

pub use framebuffer::{Framebuffer, PngPanel};

/// Screen width in pixels.
pub const WIDTH: u32 = 128;
/// Screen height in pixels.
pub const HEIGHT: u32 = 64;

/// What the screen shows.
#[derive(Debug, Clone, PartialEq)]
pub struct DisplayState {
    /// The main face's steady label and confidence, if a face is in view.
    pub main: Option<(Emotion, f32)>,
    /// Faces in view.
    pub faces: usize,
    /// Frames per second.
    pub fps: f32,
}

impl DisplayState {
    /// The state for a frame: the main face is the largest one.
    pub fn from_report(r: &FrameReport<'_>) -> Self {
        let main = r
            .faces
            .iter()
            .max_by_key(|f| f.bbox.area())
            .map(|f| (f.label, f.confidence));
        DisplayState {
            main,
            faces: r.faces.len(),
            fps: r.fps,
        }
    }
}

/// Draws `state` on a 128x64 target (cleared first).
pub fn draw<D: DrawTarget<Color = BinaryColor>>(
    d: &mut D,
    state: &DisplayState,
) -> Result<(), D::Error> {
    d.clear(BinaryColor::Off)?;
    let on = PrimitiveStyle::with_stroke(BinaryColor::On, 1);
    let big = MonoTextStyle::new(&FONT_9X15_BOLD, BinaryColor::On);
    let small = MonoTextStyle::new(&FONT_6X10, BinaryColor::On);
    let top = TextStyleBuilder::new().baseline(Baseline::Top).build();
    let top_right = TextStyleBuilder::new()
        .baseline(Baseline::Top)
        .alignment(Alignment::Right)
        .build();

    draw_icon(d, Point::new(2, 2), state.main.map(|(e, _)| e))?;
    match state.main {
        Some((emotion, confidence)) => {
            Text::with_text_style(emotion.display_name(), Point::new(36, 2), big, top).draw(d)?;
            let c = confidence.clamp(0.0, 1.0);
            Rectangle::new(Point::new(36, 20), Size::new(88, 9))
                .into_styled(on)
                .draw(d)?;
            let fill = (c * 84.0).round() as u32;
            if fill > 0 {
                Rectangle::new(Point::new(38, 22), Size::new(fill, 5))
                    .into_styled(PrimitiveStyle::with_fill(BinaryColor::On))
                    .draw(d)?;
            }
            let pct = format!("{:.0}%", c * 100.0);
            Text::with_text_style(&pct, Point::new(124, 32), small, top_right).draw(d)?;
        }
        None => {
            Text::with_text_style("No face", Point::new(36, 2), big, top).draw(d)?;
        }
    }
    Line::new(Point::new(0, 50), Point::new(127, 50))
        .into_styled(on)
        .draw(d)?;
    let faces = format!("faces {}", state.faces);
    Text::with_text_style(&faces, Point::new(0, 53), small, top).draw(d)?;
    let fps = format!("{:.1} fps", state.fps.clamp(0.0, 999.9));
    Text::with_text_style(&fps, Point::new(127, 53), small, top_right).draw(d)?;
    Ok(())
}

/// A 32x32 face icon for `emotion` (or a blank face with a question mark) at `at`.
pub fn draw_icon<D: DrawTarget<Color = BinaryColor>>(
    d: &mut D,
    at: Point,
    emotion: Option<Emotion>,
) -> Result<(), D::Error> {
    let on = PrimitiveStyle::with_stroke(BinaryColor::On, 1);
    let fill = PrimitiveStyle::with_fill(BinaryColor::On);
    let p = |x: i32, y: i32| at + Point::new(x, y);
    let line = |d: &mut D, a: (i32, i32), b: (i32, i32)| {
        Line::new(p(a.0, a.1), p(b.0, b.1)).into_styled(on).draw(d)
    };
    Circle::new(p(0, 0), 32).into_styled(on).draw(d)?;
    let Some(emotion) = emotion else {
        let small = MonoTextStyle::new(&FONT_9X15_BOLD, BinaryColor::On);
        let style = TextStyleBuilder::new()
            .baseline(Baseline::Middle)
            .alignment(Alignment::Center)
            .build();
        Text::with_text_style("?", p(16, 16), small, style).draw(d)?;
        return Ok(());
    };
    // Eyes: dots, wide open circles (fear, surprise) or squints (disgust).
    match emotion {
        Emotion::Fear | Emotion::Surprise => {
            Circle::new(p(8, 9), 6).into_styled(on).draw(d)?;
            Circle::new(p(18, 9), 6).into_styled(on).draw(d)?;
        }
        Emotion::Disgust => {
            line(d, (8, 12), (13, 12))?;
            line(d, (19, 12), (24, 12))?;
        }
        _ => {
            Circle::new(p(9, 10), 4).into_styled(fill).draw(d)?;
            Circle::new(p(19, 10), 4).into_styled(fill).draw(d)?;
        }
    }
    // Brows.
    match emotion {
        Emotion::Angry => {
            line(d, (7, 5), (13, 8))?;
            line(d, (25, 5), (19, 8))?;
        }
        Emotion::Sad | Emotion::Fear => {
            line(d, (7, 7), (13, 5))?;
            line(d, (19, 5), (25, 7))?;
        }
        Emotion::Surprise => {
            Arc::new(p(7, 3), 8, 200.0.deg(), 140.0.deg())
                .into_styled(on)
                .draw(d)?;
            Arc::new(p(17, 3), 8, 200.0.deg(), 140.0.deg())
                .into_styled(on)
                .draw(d)?;
        }
        Emotion::Disgust => line(d, (7, 8), (13, 9))?,
        Emotion::Happy | Emotion::Neutral => {}
    }
    // Mouth.
    match emotion {
        Emotion::Happy => Arc::new(p(8, 10), 16, 30.0.deg(), 120.0.deg())
            .into_styled(on)
            .draw(d)?,
        Emotion::Sad => Arc::new(p(9, 20), 14, 210.0.deg(), 120.0.deg())
            .into_styled(on)
            .draw(d)?,
        Emotion::Surprise => Circle::new(p(12, 19), 8).into_styled(on).draw(d)?,
        Emotion::Fear => {
            Rectangle::new(p(10, 21), Size::new(12, 5))
                .into_styled(on)
                .draw(d)?;
        }
        Emotion::Angry => {
            line(d, (10, 24), (22, 24))?;
            line(d, (10, 25), (22, 25))?;
        }
        Emotion::Disgust => {
            line(d, (9, 24), (15, 22))?;
            line(d, (15, 22), (22, 25))?;
        }
        Emotion::Neutral => line(d, (10, 23), (22, 23))?,
    }
    Ok(())
}

/// A screen the display sink can show a state on: the OLED or a PNG file.
pub trait Panel {
    /// Shows `state`.
    fn show(&mut self, state: &DisplayState) -> Result<(), String>;
    /// A name for messages.
    fn name(&self) -> String;
}

/// Updates a [`Panel`] at most `max_fps` times a second, and only when the picture changes.
pub struct DisplaySink<P: Panel> {
    panel: P,
    clock: SharedClock,
    min_interval: Duration,
    last: Option<(Instant, DisplayState)>,
    failing: bool,
}

impl<P: Panel> DisplaySink<P> {
    /// A sink over `panel`, timed by the system clock.
    pub fn new(panel: P, max_fps: f32) -> Self {
        Self::with_clock(panel, max_fps, SystemClock::shared())
    }

    /// A sink over `panel` whose update rate is measured on `clock`.
    pub fn with_clock(panel: P, max_fps: f32, clock: SharedClock) -> Self {
        let min_interval = if max_fps > 0.0 {
            Duration::from_secs_f32(1.0 / max_fps)
        } else {
            Duration::ZERO
        };
        DisplaySink {
            panel,
            clock,
            min_interval,
            last: None,
            failing: false,
        }
    }

    /// The panel (tests).
    pub fn panel(&self) -> &P {
        &self.panel
    }
}

impl<P: Panel> Sink for DisplaySink<P> {
    fn frame(&mut self, r: &FrameReport<'_>) -> Result<(), SinkError> {
        let now = self.clock.now();
        let mut state = DisplayState::from_report(r);
        // FPS to one decimal, so a changing last digit does not force redraws.
        state.fps = (state.fps * 10.0).round() / 10.0;
        if let Some((t, s)) = &self.last
            && (now.duration_since(*t) < self.min_interval || *s == state)
        {
            return Ok(());
        }
        match self.panel.show(&state) {
            Ok(()) => {
                if self.failing {
                    tracing::info!(display = %self.panel.name(), "display works again");
                }
                self.failing = false;
                self.last = Some((now, state));
                Ok(())
            }
            Err(e) => {
                // Try again at the next interval, log once per failure streak.
                self.last = Some((now, state));
                if self.failing {
                    return Ok(());
                }
                self.failing = true;
                Err(SinkError::Display(format!("{}: {e}", self.panel.name())))
            }
        }
    }

    fn status(&mut self, _: u32, _: Level, _: &str, _: &str) -> Result<(), SinkError> {
        Ok(())
    }

    fn name(&self) -> String {
        format!("display:{}", self.panel.name())
    }
}
