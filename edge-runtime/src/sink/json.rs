//! JSON lines for scripting: one object per frame (`{"t_ms":..,"faces":[..]}`) and one per
//! status event (`{"status":{..}}`), on standard output or appended to a file.

use std::io::Write;

use emotion_shared::Emotion;
use emotion_shared::protocol::Level;
use serde_json::{Map, Value, json};

use super::{FrameReport, Sink, SinkError};
use crate::smooth::TrackedFace;

/// Writes JSON lines to any writer.
pub struct JsonSink<W: Write> {
    out: W,
    name: String,
}

impl<W: Write> JsonSink<W> {
    /// JSON lines to `out`; `name` for messages (`stdout`, a file name).
    pub fn new(out: W, name: impl Into<String>) -> Self {
        JsonSink {
            out,
            name: name.into(),
        }
    }

    /// The writer back (tests).
    pub fn into_inner(self) -> W {
        self.out
    }

    fn write(&mut self, v: &Value) -> Result<(), SinkError> {
        let io = |source| SinkError::Io {
            sink: format!("JSON lines to {}", self.name),
            source,
        };
        serde_json::to_writer(&mut self.out, v).map_err(|e| io(e.into()))?;
        self.out.write_all(b"\n").map_err(io)?;
        self.out.flush().map_err(io)
    }
}

/// The JSON object of one face.
pub fn face_json(f: &TrackedFace) -> Value {
    let probs: Map<String, Value> = Emotion::ALL
        .iter()
        .map(|e| {
            (
                e.name().to_string(),
                json!(round4(f.probabilities[e.index()])),
            )
        })
        .collect();
    json!({
        "id": f.id,
        "label": f.label.name(),
        "confidence": round4(f.confidence),
        "bbox": {"x": f.bbox.x, "y": f.bbox.y, "w": f.bbox.w, "h": f.bbox.h},
        "probabilities": probs,
        "raw_label": f.raw_label.name(),
    })
}

fn round4(v: f32) -> f64 {
    (f64::from(v) * 10_000.0).round() / 10_000.0
}

impl<W: Write> Sink for JsonSink<W> {
    fn frame(&mut self, r: &FrameReport<'_>) -> Result<(), SinkError> {
        let faces: Vec<Value> = r.faces.iter().map(face_json).collect();
        self.write(&json!({
            "t_ms": r.t_ms,
            "frame": r.frame,
            "fps": (f64::from(r.fps) * 10.0).round() / 10.0,
            "model": r.model,
            "faces": faces,
        }))
    }

    fn status(&mut self, t_ms: u32, level: Level, code: &str, text: &str) -> Result<(), SinkError> {
        self.write(&json!({
            "t_ms": t_ms,
            "status": {"level": level.to_string(), "code": code, "text": text},
        }))
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        let name = self.name.clone();
        self.out
            .flush()
            .map_err(|source| SinkError::Io { sink: name, source })
    }

    fn name(&self) -> String {
        format!("json:{}", self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::FaceBox;

    #[test]
    fn writes_one_parseable_object_per_line() {
        let mut probs = [0.0; 7];
        probs[3] = 0.75;
        probs[6] = 0.25;
        let face = TrackedFace {
            id: 4,
            bbox: FaceBox::new(1, 2, 3, 4),
            label: Emotion::Happy,
            confidence: 0.75,
            probabilities: probs,
            raw_label: Emotion::Neutral,
        };
        let mut sink = JsonSink::new(Vec::new(), "test");
        let faces = [face];
        sink.status(0, Level::Info, "start", "hello")
            .expect("status");
        sink.frame(&FrameReport {
            t_ms: 33,
            frame: 1,
            faces: &faces,
            fps: 29.97,
            model: "m",
        })
        .expect("frame");
        let text = String::from_utf8(sink.into_inner()).expect("utf8");
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["status"]["code"], "start");
        assert_eq!(lines[0]["status"]["level"], "I");
        assert_eq!(lines[1]["faces"][0]["label"], "happy");
        assert_eq!(lines[1]["faces"][0]["bbox"]["h"], 4);
        assert_eq!(lines[1]["faces"][0]["probabilities"]["neutral"], 0.25);
        assert_eq!(lines[1]["fps"], 30.0);
    }
}
