//! Test fixtures that need no trainer: a tiny ONNX network written with tract's protobuf
//! types ([`TinyNet`]), an independent plain-Rust forward pass of the same network to check
//! tract against, and manifests with self-test cases computed from that reference.
//!
//! Public (not `cfg(test)`) so the end-to-end crate `emotion-tests` can reuse it.

use emotion_shared::manifest::{
    InputSpec, Lineage, Manifest, ModelInfo, OnnxFile, OutputKind, OutputSpec, Quantization,
    SCHEMA_VERSION, SelfTestCase, SelfTestInput, TrainingSummary, argmax, softmax,
};
use emotion_shared::preprocess::{PixelFormat, PreprocessSpec};
use emotion_shared::{Emotion, NUM_CLASSES};
use prost::Message as _;
use rand::{Rng as _, SeedableRng as _};
use rand_pcg::Pcg32;
use tract_onnx::pb;

/// A fixed-weight network `Conv3x3(7, pad 1) -> Relu -> GlobalAveragePool -> Flatten ->
/// Gemm(7x7)` over `[1, C, H, W]`, with an optional final `Softmax`.
#[derive(Debug, Clone, PartialEq)]
pub struct TinyNet {
    /// Input channels.
    pub channels: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Seed of the weights.
    pub seed: u64,
    /// Logits, or probabilities (a `Softmax` node at the end).
    pub output: OutputKind,
    /// Declare the batch dimension as the symbol `N` instead of 1.
    pub symbolic_batch: bool,
}

impl TinyNet {
    /// The FER2013-style grey 48x48 net giving logits.
    pub fn grey48(seed: u64) -> TinyNet {
        TinyNet {
            channels: 1,
            height: 48,
            width: 48,
            seed,
            output: OutputKind::Logits,
            symbolic_batch: false,
        }
    }

    /// The preprocessing that feeds this net: compact grey or `[-1, 1]` RGB.
    pub fn preprocess_spec(&self) -> PreprocessSpec {
        let mut spec = PreprocessSpec::compact_grey(self.width as u32, self.height as u32);
        if self.channels == 3 {
            spec.color = emotion_shared::preprocess::ColorOrder::Rgb;
            spec.mean = vec![0.5; 3];
            spec.std = vec![0.5; 3];
        }
        spec
    }

    fn conv_weights(&self) -> (Vec<f32>, Vec<f32>) {
        let mut rng = Pcg32::seed_from_u64(self.seed ^ 0x5eed);
        let w = (0..NUM_CLASSES * self.channels * 9)
            .map(|_| rng.random_range(-1.0f32..1.0) * 0.6)
            .collect();
        let b = (0..NUM_CLASSES)
            .map(|_| rng.random_range(-1.0f32..1.0) * 0.1)
            .collect();
        (w, b)
    }

    fn gemm_weights(&self) -> (Vec<f32>, Vec<f32>) {
        let mut rng = Pcg32::seed_from_u64(self.seed ^ 0x6e33);
        let w = (0..NUM_CLASSES * NUM_CLASSES)
            .map(|_| rng.random_range(-1.0f32..1.0) * 2.0)
            .collect();
        let b = (0..NUM_CLASSES)
            .map(|_| rng.random_range(-1.0f32..1.0) * 0.2)
            .collect();
        (w, b)
    }

    /// The model as ONNX bytes (opset 13).
    pub fn onnx(&self) -> Vec<u8> {
        let (cw, cb) = self.conv_weights();
        let (gw, gb) = self.gemm_weights();
        let k = NUM_CLASSES as i64;
        let c = self.channels as i64;
        let batch = if self.symbolic_batch {
            pb::tensor_shape_proto::dimension::Value::DimParam("N".into())
        } else {
            pb::tensor_shape_proto::dimension::Value::DimValue(1)
        };
        let input_dims = vec![
            batch.clone(),
            pb::tensor_shape_proto::dimension::Value::DimValue(c),
            pb::tensor_shape_proto::dimension::Value::DimValue(self.height as i64),
            pb::tensor_shape_proto::dimension::Value::DimValue(self.width as i64),
        ];
        let output_dims = vec![batch, pb::tensor_shape_proto::dimension::Value::DimValue(k)];
        let mut nodes = vec![
            node(
                "Conv",
                &["input", "conv_w", "conv_b"],
                &["conv"],
                vec![ints("kernel_shape", &[3, 3]), ints("pads", &[1, 1, 1, 1])],
            ),
            node("Relu", &["conv"], &["relu"], vec![]),
            node("GlobalAveragePool", &["relu"], &["gap"], vec![]),
            node("Flatten", &["gap"], &["flat"], vec![int("axis", 1)]),
            node(
                "Gemm",
                &["flat", "fc_w", "fc_b"],
                &["logits"],
                vec![int("transB", 1)],
            ),
        ];
        let output_name = match self.output {
            OutputKind::Logits => "logits",
            OutputKind::Probabilities => {
                nodes.push(node(
                    "Softmax",
                    &["logits"],
                    &["probabilities"],
                    vec![int("axis", 1)],
                ));
                "probabilities"
            }
        };
        let graph = pb::GraphProto {
            name: "tiny".into(),
            node: nodes,
            initializer: vec![
                tensor("conv_w", &[k, c, 3, 3], cw),
                tensor("conv_b", &[k], cb),
                tensor("fc_w", &[k, k], gw),
                tensor("fc_b", &[k], gb),
            ],
            input: vec![value_info("input", input_dims)],
            output: vec![value_info(output_name, output_dims)],
            ..Default::default()
        };
        onnx_model(graph)
    }

    /// The network's output for a preprocessed input tensor (`C*H*W` floats, NCHW), computed
    /// in `f64` with plain loops: the reference tract is checked against.
    pub fn reference(&self, input: &[f32]) -> Vec<f32> {
        let (cw, cb) = self.conv_weights();
        let (gw, gb) = self.gemm_weights();
        let (c, h, w) = (self.channels, self.height, self.width);
        let mut pooled = [0.0f64; NUM_CLASSES];
        for (k, pooled_k) in pooled.iter_mut().enumerate() {
            let mut sum = 0.0f64;
            for y in 0..h {
                for x in 0..w {
                    let mut acc = f64::from(cb[k]);
                    for ci in 0..c {
                        for dy in 0..3 {
                            for dx in 0..3 {
                                let (yy, xx) = (y as i64 + dy as i64 - 1, x as i64 + dx as i64 - 1);
                                if yy < 0 || xx < 0 || yy >= h as i64 || xx >= w as i64 {
                                    continue;
                                }
                                let v = f64::from(input[(ci * h + yy as usize) * w + xx as usize]);
                                acc += v * f64::from(cw[((k * c + ci) * 3 + dy) * 3 + dx]);
                            }
                        }
                    }
                    sum += acc.max(0.0);
                }
            }
            *pooled_k = sum / (h * w) as f64;
        }
        let logits: Vec<f32> = (0..NUM_CLASSES)
            .map(|o| {
                let mut acc = f64::from(gb[o]);
                for (i, p) in pooled.iter().enumerate() {
                    acc += p * f64::from(gw[o * NUM_CLASSES + i]);
                }
                acc as f32
            })
            .collect();
        match self.output {
            OutputKind::Logits => logits,
            OutputKind::Probabilities => softmax(&logits),
        }
    }

    /// Self-test cases: raw crops (patterns of various sizes) with the reference output,
    /// keeping only crops whose top two values are well apart, at most `max` of them.
    pub fn self_tests(&self, max: usize) -> Vec<SelfTestCase> {
        let spec = self.preprocess_spec();
        let tolerance = 1e-3;
        let mut cases = Vec::new();
        for i in 0..64u32 {
            if cases.len() >= max {
                break;
            }
            let (cw, ch) = (20 + 7 * (i % 9), 24 + 5 * (i % 11));
            let format = if i % 2 == 0 {
                PixelFormat::Grey
            } else {
                PixelFormat::Rgb
            };
            let pixels = pattern(cw, ch, format, i);
            let input = SelfTestInput {
                width: cw,
                height: ch,
                format,
                pixels,
            };
            let Ok(crop) = input.crop() else { continue };
            let Ok(tensor) = spec.preprocess(crop) else {
                continue;
            };
            let expected = self.reference(&tensor);
            let mut sorted = expected.clone();
            sorted.sort_by(|a, b| b.total_cmp(a));
            if sorted[0] - sorted[1] <= 20.0 * tolerance {
                continue;
            }
            let Some(top) = argmax(&expected).and_then(Emotion::from_index) else {
                continue;
            };
            cases.push(SelfTestCase {
                name: format!("pattern-{i}-{}", top.name()),
                input,
                expected,
                tolerance,
                top_label: top,
            });
        }
        cases
    }

    /// A complete, valid manifest for this net's ONNX bytes, with self-tests from the
    /// reference.
    pub fn manifest(&self, onnx: &[u8]) -> Manifest {
        let spec = self.preprocess_spec();
        Manifest {
            schema_version: SCHEMA_VERSION,
            model: ModelInfo {
                name: format!("tiny-{}", self.seed),
                version: "0.1.0".into(),
                architecture: "tiny-conv".into(),
                description: Some("fixed-weight test network from emotion-edge testkit".into()),
            },
            input: InputSpec {
                name: "input".into(),
                shape: spec.input_shape(),
                dtype: emotion_shared::manifest::DType::F32,
            },
            output: OutputSpec {
                name: match self.output {
                    OutputKind::Logits => "logits".into(),
                    OutputKind::Probabilities => "probabilities".into(),
                },
                kind: self.output,
                shape: [1, NUM_CLASSES],
            },
            labels: Emotion::names(),
            preprocess: spec,
            quantization: Quantization::None {},
            metrics: vec![],
            onnx: OnnxFile::describe(onnx),
            created_at: "2025-06-01T12:00:00Z".into(),
            training: TrainingSummary {
                epochs: 1,
                best_epoch: 1,
                arch: "tiny-conv".into(),
                mode: "fixed".into(),
                balance: "none".into(),
                seed: self.seed,
                extra: Default::default(),
            },
            lineage: Lineage {
                backbone: None,
                backbone_sha256: None,
                dataset_sha256: None,
                git_commit: None,
                trainer_version: "testkit".into(),
            },
            self_test: self.self_tests(3),
        }
    }
}

/// A deterministic test pattern: gradients and a moving bar, different per `salt`.
pub fn pattern(width: u32, height: u32, format: PixelFormat, salt: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity((width * height) as usize * format.channels());
    for y in 0..height {
        for x in 0..width {
            let base = (x * (3 + salt % 5) + y * (1 + salt % 7) + salt * 13) % 256;
            let bar = if (x + salt) % 11 < 3 { 90 } else { 0 };
            let v = ((base + bar) % 256) as u8;
            for ch in 0..format.channels() as u32 {
                out.push(v.wrapping_add((ch * 40 * (salt % 3)) as u8));
            }
        }
    }
    out
}

/// `count` deterministic values in `[-1, 1]`, different for each `seed`.
#[cfg(test)]
pub(crate) fn values(count: usize, seed: u32) -> Vec<f32> {
    (0..count)
        .map(|i| {
            let v = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8;
            (v % 2001) as f32 / 1000.0 - 1.0
        })
        .collect()
}

/// Asserts `got` and `want` are as long and agree within `tolerance` at every point.
#[cfg(test)]
pub(crate) fn assert_close(
    got: &[f32],
    want: &[f32],
    tolerance: f32,
    what: &dyn std::fmt::Display,
) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!((a - b).abs() < tolerance, "{what}, point {i}: {a} vs {b}");
    }
}

/// The ONNX model `bytes`, typed and decluttered by tract.
#[cfg(test)]
pub(crate) fn decluttered(bytes: &[u8]) -> tract_onnx::prelude::TypedModel {
    use tract_onnx::prelude::*;
    tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])
        .and_then(|m| m.into_typed())
        .and_then(|m| m.into_decluttered())
        .expect("model")
}

/// Every output of `model` run on `input` of `shape`, as f32 values.
#[cfg(test)]
pub(crate) fn run_model(
    model: tract_onnx::prelude::TypedModel,
    shape: &[usize],
    input: &[f32],
) -> Vec<Vec<f32>> {
    use tract_onnx::prelude::*;
    let tensor = Tensor::from_shape(shape, input).expect("input");
    let outputs = model
        .into_runnable()
        .and_then(|p| p.run(tvec!(tensor.into())))
        .expect("run");
    outputs
        .iter()
        .map(|o| {
            let view = o.to_plain_array_view::<f32>().expect("f32");
            view.iter().copied().collect()
        })
        .collect()
}

/// `graph` as an ONNX model (IR 8, opset 13), encoded.
pub(crate) fn onnx_model(graph: pb::GraphProto) -> Vec<u8> {
    pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        producer_name: "emotion-edge testkit".into(),
        graph: Some(graph),
        ..Default::default()
    }
    .encode_to_vec()
}

pub(crate) fn node(
    op: &str,
    inputs: &[&str],
    outputs: &[&str],
    attribute: Vec<pb::AttributeProto>,
) -> pb::NodeProto {
    pb::NodeProto {
        name: outputs
            .first()
            .map_or_else(String::new, |s| format!("{s}_node")),
        op_type: op.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute,
        ..Default::default()
    }
}

pub(crate) fn ints(name: &str, values: &[i64]) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: values.to_vec(),
        ..Default::default()
    }
}

pub(crate) fn int(name: &str, value: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: value,
        ..Default::default()
    }
}

pub(crate) fn tensor(name: &str, dims: &[i64], values: Vec<f32>) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: pb::tensor_proto::DataType::Float as i32,
        float_data: values,
        ..Default::default()
    }
}

pub(crate) fn value_info(
    name: &str,
    dims: Vec<pb::tensor_shape_proto::dimension::Value>,
) -> pb::ValueInfoProto {
    pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            denotation: String::new(),
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: pb::tensor_proto::DataType::Float as i32,
                shape: Some(pb::TensorShapeProto {
                    dim: dims
                        .into_iter()
                        .map(|v| pb::tensor_shape_proto::Dimension {
                            denotation: String::new(),
                            value: Some(v),
                        })
                        .collect(),
                }),
            })),
        }),
        ..Default::default()
    }
}

/// A deterministic ed25519 signing key (tests only: its secret is public).
pub fn signing_key(seed: u8) -> emotion_shared::bundle::SigningKey {
    let text = format!("ed25519-secret {}\n", hex::encode([seed; 32]));
    match emotion_shared::bundle::parse_secret_key(&text) {
        Ok(k) => k,
        // 32 arbitrary bytes are always a valid ed25519 seed.
        Err(e) => unreachable!("a 32-byte seed is a valid key: {e}"),
    }
}

/// Writes a complete bundle of `net` into `dir`, signed with `key` if given.
pub fn write_tiny_bundle(
    dir: &std::path::Path,
    net: &TinyNet,
    key: Option<&emotion_shared::bundle::SigningKey>,
) -> Result<(), emotion_shared::bundle::BundleError> {
    let onnx = net.onnx();
    emotion_shared::bundle::write_bundle(dir, &net.manifest(&onnx), &onnx, key)
}
