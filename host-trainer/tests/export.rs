//! ONNX export and bundles: every architecture (with batch-norm statistics far from identity)
//! exports to ONNX that tract and onnxruntime run within 1e-4 of libtorch's logits and that
//! `onnx.checker.check_model(full_check=True)` accepts; `emotion-train keygen` and `export`
//! make a signed bundle that opens with the public key, and a tampered bundle (a changed model
//! byte, a changed manifest, the wrong key) is refused with the reason.
//!
//! The Python checks use the venv that `scripts/bootstrap` makes (`EMOTION_PYTHON`, or
//! `.venv/bin/python` at the workspace root); without it these tests fail and say so.

mod common;
use common::python;

use std::path::Path;
use std::process::Command;

use assert_cmd::prelude::*;

use emotion_shared::bundle::{Bundle, BundleError, TrustPolicy, read_public_key};
use emotion_shared::preprocess::PreprocessSpec;
use emotion_shared::render::ClassProportions;
use emotion_trainer::data::synth::{self, FER2013_SPLIT};
use emotion_trainer::export::check::{FP32_LOGIT_TOLERANCE, compare_with_tch};
use emotion_trainer::export::selftest::{self, SampleFace};
use emotion_trainer::export::{CheckedExport, export_checked, write_plain_onnx};
use emotion_trainer::model::Arch;
use emotion_trainer::model::checkpoint::{LoadedModel, ModelMeta};
use emotion_trainer::model::graph::{GraphBuilder, Network, Op, Shape};
use emotion_trainer::model::head::HeadSpec;
use emotion_trainer::onnx;
use emotion_trainer::train::optim::{Optimizer, OptimizerKind};
use emotion_trainer::train::{self, Mode, TrainConfig};
use prost::Message as _;
use tch::{Device, Kind, Tensor, nn};
use tract_onnx::pb;

/// Checks an ONNX file with the ONNX checker (full check) and compares onnxruntime's logits
/// with the expected ones. Arguments: model path, JSON path.
const ONNX_CHECK_PY: &str = r#"
import json, sys
import numpy as np
import onnx
import onnxruntime as ort

model_path, cases_path = sys.argv[1], sys.argv[2]
model = onnx.load(model_path)
onnx.checker.check_model(model, full_check=True)
opsets = {o.domain: o.version for o in model.opset_import}
assert model.ir_version == 8, f"IR version {model.ir_version}"
assert opsets.get("", opsets.get("ai.onnx")) == 13, f"opsets {opsets}"
spec = json.load(open(cases_path))
sess = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
worst = 0.0
for i, case in enumerate(spec["cases"]):
    x = np.asarray(case["input"], dtype=np.float32).reshape(spec["shape"])
    (y,) = sess.run(["logits"], {"input": x})
    want = np.asarray(case["expected"], dtype=np.float32).reshape(y.shape)
    d = float(np.max(np.abs(y - want)))
    worst = max(worst, d)
    if not d <= spec["tolerance"]:
        print(f"case {i}: onnxruntime {y.ravel().tolist()} vs libtorch {want.ravel().tolist()}: max diff {d:.3e} > {spec['tolerance']}")
        sys.exit(1)
print(f"onnx.checker (full) ok; onnxruntime {ort.__version__} agrees on {len(spec['cases'])} inputs, max diff {worst:.3e}")
"#;

/// Runs the ONNX checker and onnxruntime on `onnx` with `inputs` (`[N, C, H, W]`) against
/// libtorch's `expected` logits.
fn check_with_onnxruntime(onnx: &[u8], inputs: &Tensor, expected: &[Vec<f32>]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = dir.path().join("model.onnx");
    std::fs::write(&model, onnx).expect("write model");
    let size = inputs.size();
    let cases: Vec<serde_json::Value> = expected
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let x = Vec::<f32>::try_from(inputs.get(i as i64).contiguous().flatten(0, -1))
                .expect("input values");
            serde_json::json!({ "input": x, "expected": e })
        })
        .collect();
    let spec = serde_json::json!({
        "shape": [1, size[1], size[2], size[3]],
        "tolerance": FP32_LOGIT_TOLERANCE,
        "cases": cases,
    });
    let json = dir.path().join("cases.json");
    std::fs::write(&json, serde_json::to_vec(&spec).expect("json")).expect("write json");
    let script = dir.path().join("check.py");
    std::fs::write(&script, ONNX_CHECK_PY).expect("write script");
    let out = Command::new(python())
        .arg(&script)
        .arg(&model)
        .arg(&json)
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout);
    println!("{}", stdout.trim());
}

fn model(arch: Arch, input: Shape, head: HeadSpec, spec: PreprocessSpec) -> LoadedModel {
    ModelMeta {
        arch: arch.to_string(),
        input,
        head,
        classes: 7,
        preprocess: spec,
        backbone_weights: None,
    }
    .build(Device::Cpu)
    .expect("builds")
}

/// The published FER2013 mini-Xception's layout (64x64 grey) with non-trivial batch norms.
fn fer_mini_xception_with_batch_norm(seed: i64) -> (LoadedModel, PreprocessSpec) {
    let input = Shape { c: 1, h: 64, w: 64 };
    let spec = PreprocessSpec::compact_grey(64, 64);
    let m = model(Arch::MiniXception, input, HeadSpec::linear(), spec.clone());
    make_batch_norm_nontrivial(&m.net, &spec, seed);
    (m, spec)
}

fn conv_count(net: &Network) -> usize {
    net.graph
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::Conv { .. }))
        .count()
}

/// Gives every batch norm random affine parameters, real running statistics (training-mode
/// passes over drawn faces) and takes two optimizer steps, so that folding is exercised with
/// statistics far from the identity.
fn make_batch_norm_nontrivial(net: &Network, spec: &PreprocessSpec, seed: i64) {
    tch::manual_seed(seed);
    let faces = selftest::synthetic(16, seed as u64 + 100);
    let x = selftest::tch_inputs(&faces, spec).expect("inputs");
    tch::no_grad(|| {
        for (i, node) in net.graph.nodes.iter().enumerate() {
            if matches!(node.op, Op::BatchNorm { .. } | Op::Affine) {
                let c = node.shape.c;
                let p = &net.params[i];
                let mut gamma = p[0].shallow_clone();
                let mut beta = p[1].shallow_clone();
                gamma.copy_(&(Tensor::rand([c], (Kind::Float, Device::Cpu)) + 0.5));
                beta.copy_(&(Tensor::randn([c], (Kind::Float, Device::Cpu)) * 0.2));
            }
        }
        for _ in 0..15 {
            let _ = net.forward_t(&x, true);
        }
    });
    let (backbone, head) = net.trainable_groups();
    let mut opt = Optimizer::new(
        OptimizerKind::Adamw,
        vec![(backbone, 1.0), (head, 1.0)],
        0.0,
    );
    let labels = Tensor::from_slice(&[0i64, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4, 5, 6, 3, 3]);
    for _ in 0..2 {
        let loss = net.forward_t(&x, true).cross_entropy_for_logits(&labels);
        opt.zero_grad();
        loss.backward();
        opt.step(1e-3);
    }
    // The statistics really are far from (0, 1).
    let (mut mean_dev, mut var_dev) = (0.0f64, 0.0f64);
    for (i, node) in net.graph.nodes.iter().enumerate() {
        if matches!(node.op, Op::BatchNorm { .. }) {
            let p = &net.params[i];
            mean_dev = mean_dev.max(f64::try_from(p[2].abs().max()).expect("scalar"));
            var_dev = var_dev.max(f64::try_from((&p[3] - 1.0).abs().max()).expect("scalar"));
        }
    }
    assert!(
        mean_dev > 0.05 && var_dev > 0.05,
        "batch-norm statistics stayed near identity: max |mean| {mean_dev}, max |var - 1| {var_dev}"
    );
}

fn op_types(onnx: &[u8]) -> Vec<String> {
    let m = pb::ModelProto::decode(onnx).expect("decodes");
    let g = m.graph.expect("graph");
    assert!(g.value_info.is_empty(), "no intermediate value_info");
    g.node.into_iter().map(|n| n.op_type).collect()
}

/// Exports `net` through the library path, checks tract (inside the export and here) and
/// onnxruntime, and returns the export.
fn export_and_check_everywhere(net: &Network, spec: &PreprocessSpec) -> CheckedExport {
    let faces: Vec<SampleFace> = selftest::synthetic(8, 5);
    let checked = export_checked(net, spec, &faces, FP32_LOGIT_TOLERANCE, 1e-3, 4, "test")
        .unwrap_or_else(|e| panic!("export failed: {e}"));
    println!(
        "ONNX {} bytes; tract max |logit difference| {:.2e} on {} faces; {} self-tests",
        checked.onnx.len(),
        checked.agreement.max_abs_diff,
        checked.agreement.cases,
        checked.self_test.len()
    );
    assert!(checked.agreement.max_abs_diff <= FP32_LOGIT_TOLERANCE);
    assert_eq!(checked.agreement.cases, 8);
    let logit_range = checked
        .agreement
        .tch
        .iter()
        .flatten()
        .fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(logit_range > 1e-3, "the logits are all ~0: nothing tested");
    let inputs = selftest::tch_inputs(&faces, spec).expect("inputs");
    check_with_onnxruntime(&checked.onnx, &inputs, &checked.agreement.tch);
    checked
}

#[test]
fn mini_xception_exports_with_folded_batch_norm() {
    tch::set_num_threads(1);
    let (m, spec) = fer_mini_xception_with_batch_norm(1);
    let checked = export_and_check_everywhere(&m.net, &spec);
    let ops = op_types(&checked.onnx);
    assert!(!ops.iter().any(|o| o == "BatchNormalization" || o == "Mul"));
    let convs = conv_count(&m.net);
    // Two pointwise convolutions feed a depthwise one at 15x15 and 8x8, four feed a max pool:
    // those are written as channels-last matrix products; every other convolution is a `Conv`.
    assert_eq!(ops.iter().filter(|o| *o == "Conv").count(), convs - 6);
    assert_eq!(ops.iter().filter(|o| *o == "MatMul").count(), 6);
    for op in [
        "MaxPool",
        "Add",
        "GlobalAveragePool",
        "Flatten",
        "Gemm",
        "Relu",
    ] {
        assert!(ops.iter().any(|o| o == op), "no {op} in {ops:?}");
    }
    assert_tract_friendly_pools(&checked.onnx, [0, 4], 4);
    // The stem's two 3x3 convolutions as strips, the first module's 8 -> 16 pointwise and
    // residual projections on merged rows: tract runs the four as its direct convolution.
    assert_direct_convolutions(&checked.onnx, [1, 1, 64, 64], 4);
    // ... and the two depthwise convolutions those products feed run channels-last.
    assert_channels_last_depthwise(&checked.onnx, [1, 1, 64, 64], 2);
}

#[test]
fn plain_form_writes_one_node_per_layer_for_other_runtimes() {
    tch::set_num_threads(1);
    let (m, spec) = fer_mini_xception_with_batch_norm(3);
    let faces: Vec<SampleFace> = selftest::synthetic(8, 5);
    let path = std::env::temp_dir().join(format!("plain-{}.onnx", std::process::id()));
    let bytes = write_plain_onnx(&m.net, &spec, &faces, FP32_LOGIT_TOLERANCE, "test", &path)
        .expect("writes the plain form");
    let onnx = std::fs::read(&path).expect("reads it back");
    let _ = std::fs::remove_file(&path);
    assert_eq!(onnx.len(), bytes);
    // The same values as libtorch in onnxruntime too (tract was checked by the writer).
    let inputs = selftest::tch_inputs(&faces, &spec).expect("inputs");
    let tch = compare_with_tch(&m.net, &onnx, &inputs, FP32_LOGIT_TOLERANCE).expect("tract agrees");
    check_with_onnxruntime(&onnx, &inputs, &tch.tch);
    // One Conv per convolution (strided ones keep their stride), one 3x3 MaxPool per pool, and
    // none of the tract form's nodes.
    let ops = op_types(&onnx);
    let convs = conv_count(&m.net);
    assert_eq!(ops.iter().filter(|o| *o == "Conv").count(), convs);
    for tract_only in ["Transpose", "MatMul", "Slice", "Concat", "Reshape", "Pad"] {
        assert!(
            !ops.iter().any(|o| o == tract_only),
            "{tract_only} in {ops:?}"
        );
    }
    let g = pb::ModelProto::decode(&onnx[..])
        .expect("decodes")
        .graph
        .expect("graph");
    let pools: Vec<Vec<i64>> = g
        .node
        .iter()
        .filter(|n| n.op_type == "MaxPool")
        .map(|n| ints_attr(n, "kernel_shape"))
        .collect();
    assert_eq!(pools, vec![vec![3, 3]; 4]);
    let strided = g
        .node
        .iter()
        .filter(|n| n.op_type == "Conv" && ints_attr(n, "strides") == [2, 2])
        .count();
    assert_eq!(strided, 4, "the four residual projections keep stride 2");
}

/// tract's optimised plan of `onnx` runs `count` depthwise convolutions channels-last (the
/// point of `onnx::conv_form`'s channels-last form).
fn assert_channels_last_depthwise(onnx: &[u8], input: [usize; 4], count: usize) {
    let tract = onnx::tract::TractModel::load(onnx, input).expect("tract loads the export");
    assert_eq!(
        tract.channels_last_depthwise(),
        count,
        "tract's plan: {:?}",
        tract.operators()
    );
}

/// tract's optimised plan of `onnx` runs `count` convolutions as its direct convolution
/// (`DirectSpatialConv`, the point of `onnx::conv_form`'s wide rows).
fn assert_direct_convolutions(onnx: &[u8], input: [usize; 4], count: usize) {
    let tract = onnx::tract::TractModel::load(onnx, input).expect("tract loads the export");
    let ops = tract.operators();
    let direct = ops.iter().filter(|o| *o == "DirectSpatialConv").count();
    assert_eq!(direct, count, "tract's plan: {ops:?}");
}

/// The integer-list attribute `name` of `node` (empty when absent).
fn ints_attr(node: &pb::NodeProto, name: &str) -> Vec<i64> {
    node.attribute
        .iter()
        .find(|a| a.name == name)
        .map(|a| a.ints.clone())
        .unwrap_or_default()
}

/// The form tract runs faster (issue #12): every square max pool written as a `k x 1` and a
/// `1 x k` pool (`square` of them), every strided 1x1 convolution as a 1x1 subsampling
/// `MaxPool` and a stride-1 convolution (`strided_pointwise` of them).
/// The export's max pools: `square` = `[channels-first, channels-last]` square pools, each as
/// two one-dimensional passes (a row and a column pass channels-first, two row passes on
/// reshaped views channels-last), and `strided_pointwise` 1x1 subsampling pools.
fn assert_tract_friendly_pools(onnx: &[u8], square: [usize; 2], strided_pointwise: usize) {
    let g = pb::ModelProto::decode(onnx)
        .expect("decodes")
        .graph
        .expect("graph");
    let pools: Vec<&pb::NodeProto> = g.node.iter().filter(|n| n.op_type == "MaxPool").collect();
    let kernels: Vec<Vec<i64>> = pools.iter().map(|n| ints_attr(n, "kernel_shape")).collect();
    let rows = kernels.iter().filter(|k| k[0] > 1 && k[1] == 1).count();
    let columns = kernels.iter().filter(|k| k[0] == 1 && k[1] > 1).count();
    let subsample = kernels.iter().filter(|k| **k == [1, 1]).count();
    let [first, last] = square;
    assert_eq!(
        (rows, columns, subsample),
        (first + 2 * last, first, strided_pointwise),
        "{kernels:?}"
    );
    assert_eq!(pools.len(), 2 * (first + last) + strided_pointwise);
    let channels_last_passes = pools
        .iter()
        .filter(|n| {
            g.node.iter().any(|r| {
                r.op_type == "Reshape"
                    && r.output == n.input
                    && (r.name.ends_with(".image_rows") || r.name.ends_with(".pixels"))
            })
        })
        .count();
    assert_eq!(channels_last_passes, 2 * last, "passes on reshaped views");
    for conv in g.node.iter().filter(|n| n.op_type == "Conv") {
        if ints_attr(conv, "kernel_shape") == [1, 1] {
            assert_eq!(ints_attr(conv, "strides"), [1, 1], "{}", conv.name);
        }
    }
}

#[test]
fn mobilenet_v2_exports_with_relu6_as_clip() {
    tch::set_num_threads(1);
    let arch = Arch::MobileNetV2 { width: 0.35 };
    let input = Shape { c: 1, h: 64, w: 64 };
    let spec = PreprocessSpec::compact_grey(64, 64);
    let m = model(arch, input, HeadSpec::linear(), spec.clone());
    make_batch_norm_nontrivial(&m.net, &spec, 2);
    let checked = export_and_check_everywhere(&m.net, &spec);
    let ops = op_types(&checked.onnx);
    assert!(ops.iter().any(|o| o == "Clip"));
    assert!(!ops.iter().any(|o| o == "BatchNormalization"));
    // The stride-2 3x3 stem on one channel goes on strips (four of 33 output columns), which
    // tract runs as its direct convolution; the logits above came through them.
    assert!(ops.iter().any(|o| o == "Concat"), "{ops:?}");
    assert_direct_convolutions(&checked.onnx, [1, 1, 64, 64], 1);
}

#[test]
fn dlib_resnet29_exports_with_padded_residual_adds() {
    tch::set_num_threads(1);
    let arch = Arch::DlibResnet29;
    let input = Shape {
        c: 3,
        h: 150,
        w: 150,
    };
    let spec = PreprocessSpec::dlib_resnet_at(150, 150);
    let m = model(arch, input, HeadSpec::linear(), spec.clone());
    let checked = export_and_check_everywhere(&m.net, &spec);
    let ops = op_types(&checked.onnx);
    // The two deepest down units pad the smaller branch before adding.
    assert!(ops.iter().filter(|o| *o == "Pad").count() >= 4, "{ops:?}");
    assert!(ops.iter().any(|o| o == "AveragePool"));
}

#[test]
fn vggface2_resnet50_exports_at_64px_with_asymmetric_padding_and_dropout_head() {
    tch::set_num_threads(1);
    let arch = Arch::VggFace2Resnet50;
    let input = Shape { c: 3, h: 64, w: 64 };
    let spec = PreprocessSpec::vggface2_resnet50_at(64, 64);
    let head = HeadSpec {
        hidden: vec![64],
        dropout: 0.3,
    };
    let m = model(arch, input, head, spec.clone());
    make_batch_norm_nontrivial(&m.net, &spec, 3);
    let checked = export_and_check_everywhere(&m.net, &spec);
    let ops = op_types(&checked.onnx);
    assert!(
        !ops.iter()
            .any(|o| o == "Dropout" || o == "BatchNormalization")
    );
    assert_eq!(ops.iter().filter(|o| *o == "Gemm").count(), 2);
}

/// Ops the registry's models do not use: batch norm and affine that cannot be folded (after
/// a ReLU, on a flattened vector), asymmetric max-pool padding, average pooling, an output
/// that is a dropout.
#[test]
fn unfolded_batch_norm_affine_and_pooling_export() {
    tch::set_num_threads(1);
    let mut g = GraphBuilder::new(Shape { c: 1, h: 20, w: 20 });
    g.block("body");
    let c = g.conv("conv", 0, 6, 3, 1, 1);
    let r = g.relu("relu", c);
    let bn = g.bn("bn_after_relu", r, 1e-5);
    let a = g.add("affine", Op::Affine, &[bn]);
    let mp = g.add(
        "pool",
        Op::MaxPool {
            kernel: 3,
            stride: 2,
            pad: [0, 0, 1, 1],
        },
        &[a],
    );
    let ap = g.add(
        "avg",
        Op::AvgPool {
            kernel: 2,
            stride: 2,
        },
        &[mp],
    );
    let gap = g.add("gap", Op::GlobalAvgPool, &[ap]);
    let bn2 = g.bn("bn_flat", gap, 1e-3);
    g.mark_features(bn2);
    g.block("head");
    let fc = g.add("fc", Op::Linear { out: 7 }, &[bn2]);
    let out = g.add("drop", Op::Dropout { p: 0.5 }, &[fc]);
    let graph = g.finish(out);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = Network::new(&vs.root(), graph);
    let spec = PreprocessSpec::compact_grey(20, 20);
    make_batch_norm_nontrivial(&net, &spec, 4);
    let onnx = onnx::to_onnx(&net, "test").expect("exports");
    let ops = op_types(&onnx);
    assert_eq!(ops.iter().filter(|o| *o == "Mul").count(), 3, "{ops:?}");
    assert!(ops.iter().any(|o| o == "AveragePool" || o == "Identity"));
    let faces = selftest::synthetic(8, 9);
    let inputs = selftest::tch_inputs(&faces, &spec).expect("inputs");
    let agreement =
        compare_with_tch(&net, &onnx, &inputs, FP32_LOGIT_TOLERANCE).expect("tract agrees");
    check_with_onnxruntime(&onnx, &inputs, &agreement.tch);
}

/// Few-channel convolutions on maps narrower than 128 columns are written on wide rows
/// (issue #12): padded strips (symmetric, and asymmetric with a cropped last strip) and a
/// pointwise convolution on merged rows, on a non-square map. tract must then run all three as
/// its direct convolution, and tract and onnxruntime must give libtorch's logits.
#[test]
fn narrow_convolutions_export_on_wide_rows() {
    tch::set_num_threads(1);
    let mut g = GraphBuilder::new(Shape { c: 1, h: 40, w: 36 });
    g.block("body");
    let stem = g.conv("stem", 0, 4, 3, 1, 1);
    let stem = g.bn("stem/bn", stem, 1e-5);
    let stem = g.relu("stem/relu", stem);
    let asym = g.add(
        "asym",
        Op::Conv {
            out: 8,
            kernel: [3, 3],
            stride: 1,
            pad: [0, 1, 1, 0],
            groups: 1,
            bias: true,
        },
        &[stem],
    );
    let asym = g.bn("asym/bn", asym, 1e-5);
    let asym = g.relu("asym/relu", asym);
    let pw = g.conv("pw", asym, 8, 1, 1, 0);
    let pw = g.relu("pw/relu", pw);
    let gap = g.add("gap", Op::GlobalAvgPool, &[pw]);
    g.mark_features(gap);
    g.block("head");
    let fc = g.add("fc", Op::Linear { out: 7 }, &[gap]);
    let graph = g.finish(fc);
    let vs = nn::VarStore::new(Device::Cpu);
    let net = Network::new(&vs.root(), graph);
    let spec = PreprocessSpec::compact_grey(36, 40);
    make_batch_norm_nontrivial(&net, &spec, 3);
    let onnx = onnx::to_onnx(&net, "test").expect("exports");

    let ops = op_types(&onnx);
    let count = |op: &str| ops.iter().filter(|o| *o == op).count();
    // stem: 40x36 "same", padded width 38, 4 strips of 10 rows; asym: 39x35, padded width 37,
    // 4 strips of 10 rows with one row cropped; pw: 13 rows of 35 merged into one.
    assert_eq!(count("Conv"), 3, "{ops:?}");
    assert_eq!(count("Pad"), 2, "{ops:?}");
    assert_eq!(count("Slice"), 4 + 4 + 4 + 4 + 1, "{ops:?}");
    assert_eq!(count("Concat"), 4, "{ops:?}");
    assert_eq!(count("Reshape"), 2, "{ops:?}");
    assert_direct_convolutions(&onnx, [1, 1, 40, 36], 3);

    let faces = selftest::synthetic(8, 11);
    let inputs = selftest::tch_inputs(&faces, &spec).expect("inputs");
    let agreement =
        compare_with_tch(&net, &onnx, &inputs, FP32_LOGIT_TOLERANCE).expect("tract agrees");
    let logit_range = agreement
        .tch
        .iter()
        .flatten()
        .fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(logit_range > 1e-3, "the logits are all ~0: nothing tested");
    check_with_onnxruntime(&onnx, &inputs, &agreement.tch);
}

/// A mismatch is reported with the numbers, not silently accepted.
#[test]
fn a_mismatch_fails_with_the_numbers() {
    tch::set_num_threads(1);
    let arch = Arch::MiniXception;
    let spec = PreprocessSpec::compact_grey(48, 48);
    let m = model(arch, arch.default_input(), HeadSpec::linear(), spec.clone());
    let onnx = onnx::to_onnx(&m.net, "test").expect("exports");
    // Change the head after the export: libtorch now computes something else.
    let logits = m
        .net
        .graph
        .nodes
        .iter()
        .position(|n| n.name == "head/logits")
        .expect("logits node");
    tch::no_grad(|| {
        let mut b = m.net.params[logits][1].shallow_clone();
        let _ = b.g_add_scalar_(0.5);
    });
    let inputs = selftest::tch_inputs(&selftest::synthetic(2, 1), &spec).expect("inputs");
    let err =
        compare_with_tch(&m.net, &onnx, &inputs, FP32_LOGIT_TOLERANCE).expect_err("must not agree");
    let msg = err.to_string();
    assert!(msg.contains("libtorch") && msg.contains("tract"), "{msg}");
    // The logits of an untrained net are in the hundreds, so the reported difference is the
    // 0.5 that was added give or take float rounding at that magnitude.
    let reported: f32 = msg
        .split("max |logit difference| ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no difference reported in: {msg}"));
    assert!((reported - 0.5).abs() < 0.01, "{msg}");
}

fn emotion_train(args: &[&std::ffi::OsStr]) -> std::process::Output {
    assert_cmd::Command::cargo_bin("emotion-train")
        .expect("emotion-train is built")
        .args(args)
        .env("RUST_LOG", "info")
        .output()
        .expect("runs emotion-train")
}

fn ok(out: &std::process::Output) -> String {
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "emotion-train failed:\n{text}");
    text
}

fn copy_bundle(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for f in ["model.onnx", "manifest.json", "manifest.sig"] {
        std::fs::copy(from.join(f), to.join(f)).expect("copy");
    }
}

#[test]
fn cli_keygen_export_and_tampered_bundles() {
    tch::set_num_threads(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let os = |p: &Path| p.as_os_str().to_owned();

    // A small trained mini-Xception and the data it was trained on.
    let data = synth::generate(700, ClassProportions::BALANCED, 21, FER2013_SPLIT, &|_| {});
    let csv = dir.path().join("synthetic.csv");
    synth::write_csv(&data, &csv).expect("csv");
    let arch = Arch::MiniXception;
    let mut m = model(
        arch,
        arch.default_input(),
        HeadSpec::linear(),
        PreprocessSpec::compact_grey(48, 48),
    );
    let run = dir.path().join("run");
    let cfg = TrainConfig {
        mode: Mode::Finetune,
        epochs: 2,
        batch_size: 64,
        lr: 5e-3,
        ..TrainConfig::default()
    };
    train::train(&mut m, &data, &cfg, &run, false).expect("trains");

    // keygen: secret key 0600 and a public key beside it; never overwritten.
    let key = dir.path().join("signing.key");
    ok(&emotion_train(&[
        "keygen".as_ref(),
        "--out".as_ref(),
        &os(&key),
    ]));
    let pub_path = dir.path().join("signing.key.pub");
    let public = read_public_key(&pub_path).expect("public key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).expect("key").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = emotion_train(&["keygen".as_ref(), "--out".as_ref(), &os(&key)]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("refusing to overwrite"));

    // export, signed, with metrics.
    let bundle = dir.path().join("bundle");
    let text = ok(&emotion_train(&[
        "export".as_ref(),
        "--checkpoint".as_ref(),
        &os(&run),
        "--out".as_ref(),
        &os(&bundle),
        "--sign-key".as_ref(),
        &os(&key),
        "--data".as_ref(),
        &os(&csv),
        "--name".as_ref(),
        "fer-test".as_ref(),
        "--version".as_ref(),
        "1.2.3".as_ref(),
    ]));
    println!("{text}");
    let opened = Bundle::open(&bundle, &TrustPolicy::require(public)).expect("opens");
    assert!(opened.is_signed());
    let man = opened.manifest();
    assert_eq!(man.model.name, "fer-test");
    assert_eq!(man.model.version, "1.2.3");
    assert_eq!(man.input.shape, [1, 1, 48, 48]);
    assert_eq!(man.output.name, "logits");
    assert!(!man.self_test.is_empty() && man.self_test.len() <= 8);
    let splits: Vec<(&str, &str)> = man
        .metrics
        .iter()
        .map(|m| (m.name.as_str(), m.split.as_str()))
        .collect();
    assert!(
        splits.contains(&("accuracy", "synthetic-private-test")),
        "{splits:?}"
    );
    assert!(
        splits.contains(&("macro_f1", "synthetic-private-test")),
        "{splits:?}"
    );
    assert_eq!(
        man.lineage.dataset_sha256.map(|h| h.to_hex()),
        Some(data.content_hash())
    );
    assert_eq!(man.training.epochs, 2);
    assert_eq!(man.training.arch, "mini-xception");
    assert!(man.lineage.trainer_version.starts_with("emotion-train "));

    // Tampering: one byte of the model.
    let t1 = dir.path().join("tampered-onnx");
    copy_bundle(&bundle, &t1);
    let mut bytes = std::fs::read(t1.join("model.onnx")).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(t1.join("model.onnx"), &bytes).expect("write");
    let err = Bundle::open(&t1, &TrustPolicy::require(public)).expect_err("refused");
    assert!(matches!(err, BundleError::HashMismatch { .. }), "{err}");
    assert!(err.to_string().contains("model file was changed"), "{err}");

    // Tampering: the manifest (a looser tolerance, say).
    let t2 = dir.path().join("tampered-manifest");
    copy_bundle(&bundle, &t2);
    let text = std::fs::read_to_string(t2.join("manifest.json")).expect("read");
    let changed = text.replacen("\"1.2.3\"", "\"1.2.4\"", 1);
    assert_ne!(text, changed);
    std::fs::write(t2.join("manifest.json"), changed).expect("write");
    let err = Bundle::open(&t2, &TrustPolicy::require(public)).expect_err("refused");
    assert!(matches!(err, BundleError::SignatureInvalid { .. }), "{err}");
    assert!(err.to_string().contains("tampered with"), "{err}");

    // The wrong key.
    let other = dir.path().join("other.key");
    ok(&emotion_train(&[
        "keygen".as_ref(),
        "--out".as_ref(),
        &os(&other),
    ]));
    let other_pub = read_public_key(dir.path().join("other.key.pub")).expect("other public key");
    let err = Bundle::open(&bundle, &TrustPolicy::require(other_pub)).expect_err("refused");
    assert!(matches!(err, BundleError::SignatureInvalid { .. }), "{err}");
    assert!(err.to_string().contains("signed by another key"), "{err}");

    // Unsigned export: no manifest.sig, refused where a signature is required.
    let unsigned = dir.path().join("unsigned");
    ok(&emotion_train(&[
        "export".as_ref(),
        "--checkpoint".as_ref(),
        &os(&run),
        "--out".as_ref(),
        &os(&unsigned),
    ]));
    let err = Bundle::open(&unsigned, &TrustPolicy::require(public)).expect_err("refused");
    assert!(matches!(err, BundleError::SignatureMissing { .. }), "{err}");

    // Errors a user can make say what is wrong.
    let bad = emotion_train(&[
        "export".as_ref(),
        "--checkpoint".as_ref(),
        &os(&dir.path().join("no-such-run")),
        "--out".as_ref(),
        &os(&dir.path().join("x")),
    ]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("train.json"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let bad = emotion_train(&[
        "export".as_ref(),
        "--checkpoint".as_ref(),
        &os(&run),
        "--out".as_ref(),
        &os(&dir.path().join("y")),
        "--sign-key".as_ref(),
        &os(&pub_path),
    ]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("signing key"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}
