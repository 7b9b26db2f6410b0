//! Training on the synthetic set, on the CPU: a compact model with class weights learns the
//! seven expressions (macro-F1 >= 0.9 on the held-out PrivateTest split), and the seed's
//! collapse is reproduced (frozen random features + unbalanced head) and fixed (balanced).

use emotion_shared::Emotion;
use emotion_shared::render::ClassProportions;
use emotion_trainer::data::synth::{self, FER2013_SPLIT};
use emotion_trainer::data::tensors::SplitTensors;
use emotion_trainer::data::{FaceSet, Split};
use emotion_trainer::eval::metrics::Metrics;
use emotion_trainer::eval::predict;
use emotion_trainer::model::Arch;
use emotion_trainer::model::checkpoint::{self, LoadedModel, ModelMeta};
use emotion_trainer::train::balance::Balance;
use emotion_trainer::train::{self, Mode, TrainConfig, metrics_of};
use tch::Device;

/// libtorch has one global random generator (initialisation, shuffling): the tests here take
/// turns, so each run is repeatable.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn synthetic(count: usize, seed: u64) -> FaceSet {
    synth::generate(
        count,
        ClassProportions::FER2013_TRAIN,
        seed,
        FER2013_SPLIT,
        &|_| {},
    )
}

fn compact(arch: Arch) -> LoadedModel {
    let input = arch.default_input();
    ModelMeta {
        arch: arch.to_string(),
        input,
        head: arch.default_head(),
        classes: 7,
        preprocess: emotion_shared::preprocess::PreprocessSpec::compact_grey(
            input.w as u32,
            input.h as u32,
        ),
        backbone_weights: None,
    }
    .build(Device::Cpu)
    .expect("builds")
}

fn private_test(model: &LoadedModel, data: &FaceSet) -> Metrics {
    let split = SplitTensors::new(data, Split::PrivateTest, Device::Cpu);
    let pred = predict::predict(&model.net, &model.meta.preprocess, &split, 256, false);
    metrics_of(&split, &pred)
}

#[test]
fn compact_model_with_class_weights_learns_the_synthetic_expressions() {
    let _turn = serial();
    tch::set_num_threads(1);
    let data = synthetic(7000, 11);
    let mut model = compact(Arch::MiniXception);
    let cfg = TrainConfig {
        mode: Mode::Finetune,
        balance: Balance::Weights,
        epochs: 12,
        batch_size: 64,
        lr: 5e-3,
        ..TrainConfig::default()
    };
    let out = tempfile::tempdir().expect("tempdir");
    let summary = train::train(&mut model, &data, &cfg, out.path(), false).expect("trains");
    let test = private_test(&model, &data);
    println!("validation:\n{}", summary.best_val.report());
    println!(
        "private test:\n{}\n{}",
        test.report(),
        test.confusion.table()
    );
    assert!(
        test.macro_f1 >= 0.9,
        "macro-F1 {:.3} on PrivateTest is below 0.9",
        test.macro_f1
    );
    // The checkpoint on disk is what was evaluated.
    let reloaded = checkpoint::load(out.path(), Device::Cpu).expect("checkpoint loads");
    let again = private_test(&reloaded, &data);
    assert_eq!(again.confusion, test.confusion);
    for f in [
        "history.csv",
        "history.json",
        "train.json",
        "last.safetensors",
        "model.json",
    ] {
        assert!(out.path().join(f).exists(), "{f} missing");
    }
}

/// Mean recall of the three rarest FER2013 classes (disgust, surprise, angry).
fn minority_recall(m: &Metrics) -> f64 {
    [Emotion::Disgust, Emotion::Surprise, Emotion::Angry]
        .iter()
        .map(|e| m.per_class[e.index()].recall)
        .sum::<f64>()
        / 3.0
}

/// The class predicted most often.
fn most_predicted(m: &Metrics) -> Emotion {
    let counts = &m.confusion.counts;
    let column = |p: usize| counts.iter().map(|row| row[p]).sum::<u64>();
    let top = (0..7).max_by_key(|&p| column(p)).unwrap_or(0);
    Emotion::ALL[top]
}

/// The seed's first finding: features that carry identity, not expression (here: a frozen,
/// randomly initialised MobileNetV2), plus a head trained on FER2013's class proportions as
/// they are, predict the majority class and never the rare ones. Class weights fix the
/// collapse: the rare classes are found again.
#[test]
fn frozen_random_features_collapse_without_balancing_and_recover_with_it() {
    let _turn = serial();
    tch::set_num_threads(1);
    let data = synthetic(6000, 23);
    let run = |balance: Balance| {
        tch::manual_seed(5);
        let mut model = compact(Arch::MobileNetV2 { width: 0.35 });
        let cfg = TrainConfig {
            mode: Mode::FeatureExtract,
            balance,
            epochs: 30,
            batch_size: 128,
            lr: 1e-2,
            seed: 5,
            ..TrainConfig::default()
        };
        let out = tempfile::tempdir().expect("tempdir");
        let s = train::train(&mut model, &data, &cfg, out.path(), false).expect("trains");
        let feature_width = model.net.graph.nodes[model.net.graph.features].shape.c;
        assert_eq!(
            s.trainable_params,
            feature_width * 7 + 7,
            "only the head trains"
        );
        private_test(&model, &data)
    };
    let plain = run(Balance::None);
    let balanced = run(Balance::Weights);
    println!("unbalanced:\n{}{}", plain.report(), plain.confusion.table());
    println!(
        "balanced:\n{}{}",
        balanced.report(),
        balanced.confusion.table()
    );
    let disgust = Emotion::Disgust.index();
    assert!(
        train::warn_if_collapsed(&plain),
        "the unbalanced head did not collapse:\n{}",
        plain.report()
    );
    assert_eq!(
        most_predicted(&plain),
        Emotion::Happy,
        "{}",
        plain.confusion.table()
    );
    assert!(plain.per_class[disgust].recall < 0.05);
    let (before, after) = (minority_recall(&plain), minority_recall(&balanced));
    println!("minority recall: unbalanced {before:.3}, balanced {after:.3}");
    assert!(
        after >= before + 0.1,
        "class weights raised the rare classes' recall only from {before:.3} to {after:.3}"
    );
    assert!(balanced.per_class[disgust].recall > plain.per_class[disgust].recall);
}

/// `--resume` continues from the last epoch with the saved optimiser state and history, and
/// refuses other data.
#[test]
fn resume_continues_where_the_run_stopped() {
    let _turn = serial();
    tch::set_num_threads(1);
    let data = synthetic(400, 2);
    let out = tempfile::tempdir().expect("tempdir");
    let cfg = |epochs| TrainConfig {
        epochs,
        batch_size: 64,
        ..TrainConfig::default()
    };
    let mut model = compact(Arch::MiniXception);
    train::train(&mut model, &data, &cfg(2), out.path(), false).expect("first part");
    let mut model = compact(Arch::MiniXception);
    let s = train::train(&mut model, &data, &cfg(3), out.path(), true).expect("resumed");
    assert_eq!(s.epochs_run, 3);
    let history = std::fs::read_to_string(out.path().join("history.csv")).expect("history");
    let epochs: Vec<&str> = history
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next())
        .collect();
    assert_eq!(epochs, vec!["1", "2", "3"]);

    let other = synthetic(400, 3);
    let mut model = compact(Arch::MiniXception);
    let err = train::train(&mut model, &other, &cfg(4), out.path(), true)
        .expect_err("other data must be refused")
        .to_string();
    assert!(err.contains("trained on other data"), "{err}");
}
