//! Developer tools for the face renderer, run as tests so they need no extra binary. Each does
//! nothing unless its environment variable is set:
//!
//! - `RENDER_SHEET=path.png`: a contact sheet (a row per class) with `RENDER_SHEET_SIZE`
//!   (default 48), `RENDER_SHEET_COLS` (10), `RENDER_SHEET_ROWS` (class indices, e.g. `0,1`),
//!   `RENDER_SHEET_NUISANCE` (1.0) and `RENDER_SHEET_ZOOM` (1; nearest-neighbour upscaling);
//! - `RENDER_DUMP=path.bin`: `RENDER_DUMP_N` (1000) samples of the FER2013-proportioned data
//!   set with seed `RENDER_DUMP_SEED` (1), as records of one label byte followed by 48x48
//!   pixel bytes, for analysis outside Rust; prints the render time per face;
//! - `RENDER_SCENE=path.png`: a 640x480 demo-camera frame with three faces, frame number
//!   `RENDER_SCENE_FRAME` (0); prints the boxes and the time per frame.
//!
//! Example: `RENDER_SHEET=/tmp/sheet.png RENDER_SHEET_ZOOM=4 cargo test --release -p
//! emotion-shared --features render --test render_tools -- --nocapture`.
#![cfg(feature = "render")]

use emotion_shared::Emotion;
use emotion_shared::render::{
    ClassProportions, RenderOptions, SceneCamera, SceneFace, SyntheticDataset, contact_sheet,
    render_face, render_scene, sample_rng,
};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[test]
fn render_tool_contact_sheet() {
    let Ok(path) = std::env::var("RENDER_SHEET") else {
        return;
    };
    let opts = RenderOptions {
        size: env_or("RENDER_SHEET_SIZE", 48),
        nuisance: env_or("RENDER_SHEET_NUISANCE", 1.0),
        ..RenderOptions::default()
    };
    let cols: u64 = env_or("RENDER_SHEET_COLS", 10);
    let only: Option<Vec<usize>> = std::env::var("RENDER_SHEET_ROWS")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect());
    let rows: Vec<Vec<_>> = Emotion::ALL
        .iter()
        .filter(|e| only.as_ref().is_none_or(|o| o.contains(&e.index())))
        .map(|&e| {
            (0..cols)
                .map(|i| render_face(e, &mut sample_rng(99, i + 1000 * e.index() as u64), &opts))
                .collect()
        })
        .collect();
    let sheet = contact_sheet(&rows, 2);
    let zoom: u32 = env_or("RENDER_SHEET_ZOOM", 1).max(1);
    let sheet = image::imageops::resize(
        &sheet,
        sheet.width() * zoom,
        sheet.height() * zoom,
        image::imageops::FilterType::Nearest,
    );
    sheet.save(&path).expect("write the contact sheet");
    println!("contact sheet: {path}");
}

#[test]
fn render_tool_dump() {
    let Ok(path) = std::env::var("RENDER_DUMP") else {
        return;
    };
    let n: usize = env_or("RENDER_DUMP_N", 1000);
    let seed: u64 = env_or("RENDER_DUMP_SEED", 1);
    let data = SyntheticDataset::new(n, ClassProportions::FER2013_TRAIN, seed);
    let mut out = Vec::with_capacity(n * (1 + 48 * 48));
    let t = std::time::Instant::now();
    for (e, img) in data.iter() {
        out.push(e.index() as u8);
        out.extend_from_slice(img.as_raw());
    }
    let per_face = t.elapsed() / n.max(1) as u32;
    println!(
        "rendered {n} faces in {:?} ({per_face:?} per face)",
        t.elapsed()
    );
    std::fs::write(&path, out).expect("write the dump");
}

#[test]
fn render_tool_scene() {
    let Ok(path) = std::env::var("RENDER_SCENE") else {
        return;
    };
    let frame: u64 = env_or("RENDER_SCENE_FRAME", 0);
    let faces: Vec<SceneFace> = vec![
        (Emotion::Happy, 70, 90, 170).into(),
        (Emotion::Surprise, 360, 160, 110).into(),
        (Emotion::Angry, 520, 60, 80).into(),
    ];
    let t = std::time::Instant::now();
    let runs = 10;
    let camera = SceneCamera::new(640, 480, 7);
    for f in 0..runs {
        std::hint::black_box(camera.frame(&faces, frame + f));
    }
    println!("{:?} per 640x480 frame", t.elapsed() / runs as u32);
    let scene = render_scene(640, 480, &faces, frame, 7);
    scene.image.save(&path).expect("write the frame");
    println!("{path}: {:?}", scene.faces);
}
