//! The seed's backbone: ResNet50 in keras-vggface's layout builds, runs on 224x224 batches,
//! freezes and unfreezes by block (our names and Keras activation names), and takes a
//! fine-tuning step on the CPU.

use emotion_shared::preprocess::PreprocessSpec;
use emotion_trainer::model::Arch;
use emotion_trainer::model::checkpoint::ModelMeta;
use emotion_trainer::model::graph::Shape;
use emotion_trainer::model::head::HeadSpec;
use emotion_trainer::train::optim::{Optimizer, OptimizerKind};
use tch::{Device, Kind, Tensor};

fn resnet() -> emotion_trainer::model::checkpoint::LoadedModel {
    ModelMeta {
        arch: "vggface2-resnet50".into(),
        input: Shape {
            c: 3,
            h: 224,
            w: 224,
        },
        head: HeadSpec::seed(),
        classes: 7,
        preprocess: PreprocessSpec::vggface2_resnet50(),
        backbone_weights: None,
    }
    .build(Device::Cpu)
    .expect("builds")
}

#[test]
fn trainable_counts_match_the_seed_experiments() {
    let mut m = resnet();
    // Every tensor, batch-norm statistics included, as Keras counts "Total params".
    let total: i64 = m.vs.variables().values().map(|t| t.numel() as i64).sum();
    assert_eq!(total, 24_087_495);

    let arch = Arch::VggFace2Resnet50;
    let head = m.net.graph.block_index("head").expect("head block");
    m.net.freeze_before(Some(head));
    assert_eq!(
        m.net.trainable_params(),
        526_343,
        "feature extraction trains the head only"
    );

    // The seed unfroze from Keras' `activation_46`: the last bottleneck block and the head.
    let from = arch
        .resolve_block(&m.net.graph, "activation_46")
        .expect("Keras name resolves");
    assert_eq!(m.net.graph.blocks[from], "conv5_3");
    m.net.freeze_before(Some(from));
    assert_eq!(m.net.trainable_params(), 4_988_935);
    let same = arch
        .resolve_block(&m.net.graph, "conv5_3")
        .expect("our name");
    assert_eq!(same, from);

    m.net.freeze_before(None);
    assert_eq!(m.net.trainable_params(), 24_087_495 - 53_120);
    assert!(arch.resolve_block(&m.net.graph, "conv9_1").is_err());
}

#[test]
fn forward_and_one_finetune_step_on_cpu() {
    tch::manual_seed(0);
    let mut m = resnet();
    let from = m.net.graph.block_index("conv5_3").expect("block");
    m.net.freeze_before(Some(from));
    let x = Tensor::randn([2, 3, 224, 224], (Kind::Float, Device::Cpu)) * 50.0;
    let logits = m.net.forward_t(&x, false);
    assert_eq!(logits.size(), vec![2, 7]);
    let features = m.net.features_t(&x, false);
    assert_eq!(features.size(), vec![2, 2048]);

    let frozen_before = m.vs.variables()["conv1/7x7_s2.weight"].copy();
    let trained_before = m.vs.variables()["conv5_3_3x3.weight"].copy();
    let (backbone, head) = m.net.trainable_groups();
    let mut opt = Optimizer::new(
        OptimizerKind::Adamw,
        vec![(backbone, 0.1), (head, 1.0)],
        1e-4,
    );
    let labels = Tensor::from_slice(&[3i64, 5]);
    let loss = m.net.forward_t(&x, true).cross_entropy_for_logits(&labels);
    assert!(f64::try_from(&loss).expect("scalar").is_finite());
    opt.zero_grad();
    loss.backward();
    opt.step(1e-3);
    let vars = m.vs.variables();
    let frozen_delta =
        f64::try_from((&vars["conv1/7x7_s2.weight"] - frozen_before).abs().max()).expect("scalar");
    let trained_delta =
        f64::try_from((&vars["conv5_3_3x3.weight"] - trained_before).abs().max()).expect("scalar");
    assert_eq!(frozen_delta, 0.0, "a frozen block moved");
    assert!(trained_delta > 0.0, "the unfrozen block did not move");
}
