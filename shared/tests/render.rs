//! Tests of the procedural face renderer (`render` feature): determinism, sanity of the
//! pixels, class separability (learnable, not trivial), the data-set API and the scene.
#![cfg(feature = "render")]

use emotion_shared::render::{
    ClassProportions, Expression, FER2013_TRAIN_COUNTS, FaceSpec, RenderOptions, SceneCamera,
    SceneFace, SyntheticDataset, contact_sheet, generate, render_face, render_scene, sample_rng,
};
use emotion_shared::{Emotion, NUM_CLASSES};
use image::GrayImage;

fn mean_std(img: &GrayImage) -> (f64, f64) {
    let n = img.as_raw().len() as f64;
    let mean = img.as_raw().iter().map(|&p| p as f64).sum::<f64>() / n;
    let var = img
        .as_raw()
        .iter()
        .map(|&p| (p as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    (mean, var.sqrt())
}

#[test]
fn render_is_deterministic_per_seed_and_index() {
    let data = SyntheticDataset::new(20, ClassProportions::BALANCED, 42);
    let (e5, a) = data.sample(5);
    // Order independence: rendering other samples first changes nothing.
    for i in (0..20).rev() {
        let _ = data.sample(i);
    }
    let (e5b, b) = data.sample(5);
    assert_eq!(e5, e5b);
    assert_eq!(
        a.as_raw(),
        b.as_raw(),
        "same (seed, index) must give the same bytes"
    );

    let (_, c) = data.sample(6);
    assert_ne!(a.as_raw(), c.as_raw(), "different indices must differ");
    let other_seed = SyntheticDataset::new(20, ClassProportions::BALANCED, 43);
    assert_ne!(a.as_raw(), other_seed.sample(5).1.as_raw());

    // generate() is the same stream.
    let streamed: Vec<_> = generate(8, ClassProportions::BALANCED, 42).collect();
    for (i, (e, img)) in streamed.iter().enumerate() {
        let (e2, img2) = data.sample(i);
        assert_eq!(*e, e2);
        assert_eq!(img.as_raw(), img2.as_raw());
    }

    // render_face with the same generator state is deterministic too.
    let opts = RenderOptions::default();
    let x = render_face(Emotion::Fear, &mut sample_rng(1, 2), &opts);
    let y = render_face(Emotion::Fear, &mut sample_rng(1, 2), &opts);
    assert_eq!(x.as_raw(), y.as_raw());
}

#[test]
fn render_every_class_renders_a_sane_image() {
    let opts = RenderOptions::default();
    for e in Emotion::ALL {
        for i in 0..8u64 {
            let img = render_face(e, &mut sample_rng(7, i + 100 * e.index() as u64), &opts);
            assert_eq!(img.dimensions(), (48, 48));
            let (mean, std) = mean_std(&img);
            assert!(
                (15.0..=240.0).contains(&mean),
                "{e} sample {i}: mean brightness {mean:.1}"
            );
            assert!(
                std > 8.0,
                "{e} sample {i}: nearly constant image (std {std:.1})"
            );
        }
    }
}

#[test]
fn render_odd_options_do_not_panic() {
    let mut rng = sample_rng(3, 3);
    let empty = render_face(Emotion::Happy, &mut rng, &RenderOptions::with_size(0));
    assert_eq!(empty.dimensions(), (0, 0));
    let tiny = render_face(Emotion::Sad, &mut rng, &RenderOptions::with_size(3));
    assert_eq!(tiny.dimensions(), (3, 3));
    let big = render_face(Emotion::Surprise, &mut rng, &RenderOptions::with_size(160));
    assert_eq!(big.dimensions(), (160, 160));
    let weird = RenderOptions {
        size: 48,
        min_intensity: f32::NAN,
        max_intensity: -3.0,
        expression_jitter: f32::INFINITY,
        nuisance: f32::NAN,
    };
    let img = render_face(Emotion::Angry, &mut rng, &weird);
    assert!(mean_std(&img).1 > 5.0);
    let clean = RenderOptions {
        nuisance: 0.0,
        expression_jitter: 0.0,
        min_intensity: 1.0,
        ..RenderOptions::default()
    };
    let a = render_face(Emotion::Happy, &mut sample_rng(1, 1), &clean);
    let b = render_face(Emotion::Neutral, &mut sample_rng(1, 1), &clean);
    assert_ne!(a.as_raw(), b.as_raw(), "same person, different expression");
}

#[test]
fn render_class_proportions_are_followed_closely() {
    let total: u32 = FER2013_TRAIN_COUNTS.iter().sum();
    assert_eq!(total, 28709);
    let data = SyntheticDataset::new(total as usize, ClassProportions::FER2013_TRAIN, 9);
    let counts = data.class_counts();
    for (k, (&got, &want)) in counts.iter().zip(&FER2013_TRAIN_COUNTS).enumerate() {
        assert!(
            (got as i64 - want as i64).abs() <= 3,
            "class {k}: {got} samples, FER2013 has {want}"
        );
    }
    // A small balanced set, and every regular subsample, is balanced too.
    let small = SyntheticDataset::new(700, ClassProportions::BALANCED, 1);
    assert!(
        small
            .class_counts()
            .iter()
            .all(|&c| (98..=102).contains(&c))
    );
    let mut every_tenth = [0usize; NUM_CLASSES];
    for i in (0..7000).step_by(10) {
        every_tenth[small.label(i).index()] += 1;
    }
    assert!(
        every_tenth.iter().all(|&c| (95..=105).contains(&c)),
        "{every_tenth:?}"
    );

    assert!(ClassProportions::new([0.0; NUM_CLASSES]).is_err());
    assert!(ClassProportions::new([1.0, -1.0, 1.0, 1.0, 1.0, 1.0, 1.0]).is_err());
    assert!(ClassProportions::new([1.0, f64::NAN, 1.0, 1.0, 1.0, 1.0, 1.0]).is_err());
    let only_happy = ClassProportions::new([0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]).expect("valid");
    let d = SyntheticDataset::new(50, only_happy, 5);
    assert_eq!(d.class_counts()[Emotion::Happy.index()], 50);
}

#[test]
fn render_prototypes_differ_where_the_classes_should() {
    let p = Expression::prototype;
    // Fear vs surprise: both wide-eyed with open mouths; fear's inner brows rise.
    assert!(p(Emotion::Fear).eye_open > 1.3 && p(Emotion::Surprise).eye_open > 1.3);
    assert!(p(Emotion::Fear).brow_inner_raise > p(Emotion::Surprise).brow_inner_raise + 0.5);
    assert!(p(Emotion::Surprise).mouth_round > p(Emotion::Fear).mouth_round + 0.5);
    // Angry vs disgust: both lower the brows; disgust wrinkles the nose.
    assert!(p(Emotion::Angry).brow_height < -0.3 && p(Emotion::Disgust).brow_height < -0.3);
    assert!(p(Emotion::Disgust).nose_wrinkle > p(Emotion::Angry).nose_wrinkle + 0.5);
    // Happy smiles, sad frowns.
    assert!(p(Emotion::Happy).mouth_curve > 0.5 && p(Emotion::Sad).mouth_curve < -0.5);
    assert_eq!(p(Emotion::Neutral), Expression::NEUTRAL);
}

/// Pixels as floats, each image normalised to zero mean and unit variance.
fn features(img: &GrayImage) -> Vec<f32> {
    let (mean, std) = mean_std(img);
    img.as_raw()
        .iter()
        .map(|&p| ((p as f64 - mean) / std.max(1.0)) as f32)
        .collect()
}

fn dist2(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Nearest-class-centroid classification on raw (per-image normalised) pixels: the class means
/// of `train`, applied to `test`. Prints the numbers and returns the test accuracy and the
/// smallest RMS distance between two class means.
fn nearest_centroid(
    label: &str,
    train: &[(Emotion, GrayImage)],
    test: &[(Emotion, GrayImage)],
) -> (f64, f32) {
    let dim = features(&train[0].1).len();
    let mut centroids = vec![vec![0.0f32; dim]; NUM_CLASSES];
    let mut counts = [0usize; NUM_CLASSES];
    for (e, img) in train {
        counts[e.index()] += 1;
        for (c, x) in centroids[e.index()].iter_mut().zip(features(img)) {
            *c += x;
        }
    }
    for (c, n) in centroids.iter_mut().zip(counts) {
        assert!(n > 0);
        for x in c.iter_mut() {
            *x /= n as f32;
        }
    }
    let mut min_pair = f32::INFINITY;
    for i in 0..NUM_CLASSES {
        for j in i + 1..NUM_CLASSES {
            let d = (dist2(&centroids[i], &centroids[j]) / dim as f32).sqrt();
            min_pair = min_pair.min(d);
        }
    }
    let mut confusion = [[0usize; NUM_CLASSES]; NUM_CLASSES];
    for (e, img) in test {
        let f = features(img);
        let pred = (0..NUM_CLASSES)
            .min_by(|&a, &b| dist2(&f, &centroids[a]).total_cmp(&dist2(&f, &centroids[b])))
            .unwrap_or(0);
        confusion[e.index()][pred] += 1;
    }
    let correct: usize = (0..NUM_CLASSES).map(|k| confusion[k][k]).sum();
    let accuracy = correct as f64 / test.len() as f64;
    println!(
        "{label}: nearest-centroid accuracy {accuracy:.3} (chance 0.143), \
         smallest RMS distance between class means {min_pair:.3}"
    );
    println!(
        "  confusion (rows: truth, columns: predicted), order {:?}",
        Emotion::names()
    );
    for (k, row) in confusion.iter().enumerate() {
        println!("  {:>8} {row:?}", Emotion::ALL[k].name());
    }
    (accuracy, min_pair)
}

#[test]
fn render_classes_are_separable_but_not_trivially() {
    // One person, no pose/lighting/blur/noise: the expression is all that varies (with its
    // intensity and jitter), and class means classify well.
    let clean = RenderOptions {
        nuisance: 0.0,
        ..RenderOptions::default()
    };
    let person = FaceSpec::random(Emotion::Neutral, &mut sample_rng(5, 5), &clean).identity;
    let one_person = |index: u64| {
        let e = Emotion::ALL[index as usize % NUM_CLASSES];
        let mut rng = sample_rng(77, index);
        let mut spec = FaceSpec::random(e, &mut rng, &clean);
        spec.identity = person.clone();
        (e, spec.render(48, &mut rng))
    };
    let train: Vec<_> = (0..210).map(one_person).collect();
    let test: Vec<_> = (210..350).map(one_person).collect();
    let (acc_one, gap_one) = nearest_centroid("one person, no nuisance", &train, &test);
    assert!(acc_one > 0.6, "expressions barely differ: {acc_one:.3}");
    assert!(
        gap_one > 0.05,
        "two class means are almost equal: {gap_one:.3}"
    );

    // The synthetic data set: many people, poses and lighting. Class means still differ, but
    // raw-pixel templates are nowhere near solving the task.
    let data = SyntheticDataset::new(490, ClassProportions::BALANCED, 2024);
    let all: Vec<_> = data.iter().collect();
    let (acc, gap) = nearest_centroid("synthetic data set", &all[..280], &all[280..]);
    assert!(
        acc < 0.6,
        "raw-pixel centroids should not solve it: {acc:.3}"
    );
    assert!(gap > 0.02, "two class means are almost equal: {gap:.3}");
}

#[test]
fn render_scene_boxes_lie_in_the_frame() {
    let faces: Vec<SceneFace> = vec![
        (Emotion::Happy, 80, 100, 160).into(),
        (Emotion::Surprise, 380, 150, 120).into(),
        (Emotion::Sad, 600, 400, 100).into(), // partly outside
        (Emotion::Angry, 2000, 100, 100).into(), // fully outside
    ];
    let a = render_scene(640, 480, &faces, 0, 11);
    assert_eq!(a.image.dimensions(), (640, 480));
    assert_eq!(
        a.faces.iter().map(|f| f.index).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    for t in &a.faces {
        assert!(t.width > 0 && t.height > 0);
        assert!(t.x + t.width <= 640 && t.y + t.height <= 480, "{t:?}");
        assert_eq!(t.emotion, faces[t.index].emotion);
    }
    // Full boxes keep roughly their size; the clipped one is smaller.
    assert!(a.faces[0].width.abs_diff(160) <= 8);
    assert!(a.faces[2].width < 60);

    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("render-scene.png");
    a.image.save(&path).expect("write scene frame");
    println!("scene frame: {}", path.display());

    // Deterministic per frame, moving between frames.
    let again = render_scene(640, 480, &faces, 0, 11);
    assert_eq!(a.image.as_raw(), again.image.as_raw());
    let camera = SceneCamera::new(640, 480, 11);
    assert_eq!(camera.frame(&faces, 0).image.as_raw(), a.image.as_raw());
    let later = camera.frame(&faces, 15);
    assert_ne!(a.image.as_raw(), later.image.as_raw());

    // The face region is not the background.
    let empty = render_scene(640, 480, &[], 0, 11);
    let b = a.faces[0];
    let mut diff = 0u64;
    for y in b.y..b.y + b.height {
        for x in b.x..b.x + b.width {
            let p = a.image.get_pixel(x, y).0;
            let q = empty.image.get_pixel(x, y).0;
            diff += (0..3).map(|k| p[k].abs_diff(q[k]) as u64).sum::<u64>();
        }
    }
    assert!(diff / u64::from(b.width * b.height) > 10);

    // Degenerate frames do not panic.
    assert!(render_scene(0, 0, &faces, 0, 1).faces.is_empty());
}

#[test]
fn render_scene_faces_blink_now_and_then() {
    let faces = [SceneFace {
        emotion: Emotion::Neutral,
        x: 20,
        y: 20,
        size: 64,
    }];
    let blinks = (0..100)
        .filter(|&f| render_scene(128, 128, &faces, f, 3).faces[0].blinking)
        .count();
    assert!(
        (2..=10).contains(&blinks),
        "{blinks} blinking frames of 100"
    );
}

/// Writes a contact sheet (a row per class, 10 faces each) under the target directory; with
/// `RENDER_UPDATE_TESTDATA=1` also to `testdata/render/contact-sheet.png`.
#[test]
fn render_contact_sheet() {
    let opts = RenderOptions::default();
    let rows: Vec<Vec<GrayImage>> = Emotion::ALL
        .iter()
        .map(|&e| {
            (0..10u64)
                .map(|i| render_face(e, &mut sample_rng(2025, i + 1000 * e.index() as u64), &opts))
                .collect()
        })
        .collect();
    let sheet = contact_sheet(&rows, 2);
    assert_eq!(sheet.dimensions(), (10 * 50 + 2, 7 * 50 + 2));
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("render-contact-sheet.png");
    sheet.save(&path).expect("write contact sheet");
    println!("contact sheet: {}", path.display());
    if std::env::var_os("RENDER_UPDATE_TESTDATA").is_some() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/render");
        std::fs::create_dir_all(&dir).expect("create testdata/render");
        sheet
            .save(dir.join("contact-sheet.png"))
            .expect("write testdata contact sheet");
    }
}
