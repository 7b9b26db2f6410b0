//! Golden images of the 128x64 display: the drawing code renders into the in-memory
//! framebuffer and must match `tests/golden/*.png` pixel for pixel. Set `UPDATE_GOLDEN=1`
//! to rewrite them after an intended change (and look at them before committing).

use std::path::PathBuf;

use emotion_edge::sink::display::{DisplayState, Framebuffer, draw};
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
