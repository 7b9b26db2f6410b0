//! Any ONNX emotion classifier as a signed bundle: `emotion-train wrap`.
//!
//! The bundle format (and so the edge) knows one output: the seven FER2013 emotions in our
//! order. A third-party model is made to fit **inside its ONNX file**, so the edge stays
//! unchanged: a `Gather` on the class axis with a fixed index list picks the model's outputs
//! for angry, disgust, fear, happy, sad, surprise and neutral, in that order, as the new graph
//! output `emotions` `[1, 7]`. The rule for classes we do not have (FER+'s and AffectNet's
//! `contempt`): they are **dropped**. For logits that is exact in the sense that softmax over
//! the remaining seven is the model's distribution conditioned on "not contempt"; for
//! probability outputs the seven are renormalised to sum to 1 (a `MatMul` with a column of
//! ones and a `Div`, appended after the `Gather`).
//!
//! Label orders ([`LabelSet`]):
//!
//! | `--labels`  | model's classes, in its output order | gather indices for our 7 |
//! |-------------|--------------------------------------|--------------------------|
//! | `fer2013`   | angry, disgust, fear, happy, sad, surprise, neutral | 0 1 2 3 4 5 6 |
//! | `fer-plus`  | neutral, happiness, surprise, sadness, anger, disgust, fear, contempt (ONNX Model Zoo `emotion-ferplus-8`) | 4 5 6 1 3 2 0 |
//! | `affectnet` | neutral, happy, sad, surprise, fear, disgust, anger, contempt (AffectNet's 8) | 6 5 4 1 2 3 0 |
//!
//! `--map` gives the seven indices directly for any other order.
//!
//! Before anything is written the model must fit: exactly one real input (initializers listed
//! as inputs, as old IR versions do, are skipped) of shape `[1 or N, C, H, W]` matching
//! `--input` and `--color`, exactly one output `[1 or N, K]` with `K` the label set's size, and
//! every map index below `K`; otherwise [`WrapError::DoesNotFit`] says which. The wrapped model
//! is then run in tract the edge's way (shared preprocessing of each self-test image) and the
//! self-tests are its outputs; the bundle is written, signed and re-opened.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use emotion_shared::bundle::SigningKey;
use emotion_shared::manifest::{
    DType, InputSpec, Lineage, Manifest, ModelInfo, OnnxFile, OutputKind, OutputSpec, Quantization,
    SCHEMA_VERSION, Sha256Digest, TrainingSummary, now_rfc3339,
};
use emotion_shared::preprocess::PreprocessSpec;
use emotion_shared::{Emotion, NUM_CLASSES};
use prost::Message as _;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tract_onnx::pb;

use super::ExportError;
use super::bundle::{self, PackError};
use super::selftest;
use super::starter::{StarterError, read_faces};

/// Name of the wrapped model's output.
pub const WRAPPED_OUTPUT: &str = "emotions";
/// Tolerance of a wrapped bundle's self-tests.
pub const WRAP_SELF_TEST_TOLERANCE: f32 = 1e-3;

/// A model's class order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelSet {
    /// Ours: FER2013's seven.
    Fer2013,
    /// FER+'s eight (the ONNX Model Zoo's emotion-ferplus-8).
    FerPlus,
    /// AffectNet's eight.
    AffectNet,
}

impl LabelSet {
    /// The model's class names in its output order.
    pub fn classes(self) -> &'static [&'static str] {
        match self {
            LabelSet::Fer2013 => &[
                "angry", "disgust", "fear", "happy", "sad", "surprise", "neutral",
            ],
            LabelSet::FerPlus => &[
                "neutral",
                "happiness",
                "surprise",
                "sadness",
                "anger",
                "disgust",
                "fear",
                "contempt",
            ],
            LabelSet::AffectNet => &[
                "neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt",
            ],
        }
    }

    /// For each of our seven classes, the model's output index.
    pub fn map(self) -> [usize; NUM_CLASSES] {
        match self {
            LabelSet::Fer2013 => [0, 1, 2, 3, 4, 5, 6],
            LabelSet::FerPlus => [4, 5, 6, 1, 3, 2, 0],
            LabelSet::AffectNet => [6, 5, 4, 1, 2, 3, 0],
        }
    }

    /// Name as `--labels` takes it.
    pub fn name(self) -> &'static str {
        match self {
            LabelSet::Fer2013 => "fer2013",
            LabelSet::FerPlus => "fer-plus",
            LabelSet::AffectNet => "affectnet",
        }
    }
}

/// What [`wrap`] needs.
#[derive(Debug, Clone)]
pub struct WrapOptions {
    /// The ONNX classifier.
    pub model: PathBuf,
    /// Its input preprocessing (size, colour, scale, mean, std).
    pub preprocess: PreprocessSpec,
    /// Whether it outputs logits or probabilities.
    pub output: OutputKind,
    /// Its class order.
    pub labels: LabelSet,
    /// Explicit indices (overrides the label set's map; the label set still gives `K`).
    pub map: Option<[usize; NUM_CLASSES]>,
    /// Face crops to compute the self-tests on.
    pub self_test_images: PathBuf,
    /// The bundle folder.
    pub out: PathBuf,
    /// Signing key.
    pub key: Option<SigningKey>,
    /// Bundle name.
    pub name: String,
    /// Bundle version.
    pub version: String,
}

/// What [`wrap`] wrote.
#[derive(Debug, Clone)]
pub struct WrapReport {
    /// The bundle folder.
    pub bundle: PathBuf,
    /// The model's input name and its output name before wrapping.
    pub io: (String, String),
    /// The gather indices used.
    pub map: [usize; NUM_CLASSES],
    /// Classes of the model that were dropped.
    pub dropped: Vec<String>,
    /// Self-test cases: name, top class and the seven outputs.
    pub cases: Vec<(String, Emotion, Vec<f32>)>,
}

/// Why a model could not be wrapped.
#[derive(Debug, thiserror::Error)]
pub enum WrapError {
    /// The file could not be read or parsed.
    #[error("{}: {reason}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The model's inputs or outputs do not fit the options.
    #[error("{} does not fit: {reason}", .path.display())]
    DoesNotFit {
        /// The file.
        path: PathBuf,
        /// What does not fit.
        reason: String,
    },
    /// The self-test images could not be read.
    #[error(transparent)]
    Faces(#[from] StarterError),
    /// Running the wrapped model failed, or no self-test could be made.
    #[error(transparent)]
    Export(#[from] ExportError),
    /// The manifest or bundle could not be written.
    #[error(transparent)]
    Pack(#[from] PackError),
}

fn dims(v: &pb::ValueInfoProto) -> Option<Vec<Option<i64>>> {
    let t = v.r#type.as_ref()?;
    let tensor = match t.value.as_ref()? {
        pb::type_proto::Value::TensorType(t) => t,
        #[allow(unreachable_patterns)]
        _ => return None,
    };
    Some(
        tensor
            .shape
            .as_ref()?
            .dim
            .iter()
            .map(|d| match d.value {
                Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) if v > 0 => Some(v),
                _ => None,
            })
            .collect(),
    )
}

fn show(d: &[Option<i64>]) -> String {
    let parts: Vec<String> = d
        .iter()
        .map(|x| x.map_or_else(|| "?".to_string(), |v| v.to_string()))
        .collect();
    format!("[{}]", parts.join(", "))
}

/// Checks `model` against the options and appends the class map; returns the new ONNX bytes,
/// the input and original output names.
pub fn wrap_onnx(
    bytes: &[u8],
    path: &Path,
    spec: &PreprocessSpec,
    output: OutputKind,
    classes: usize,
    map: &[usize; NUM_CLASSES],
) -> Result<(Vec<u8>, String, String), WrapError> {
    let unfit = |reason: String| WrapError::DoesNotFit {
        path: path.to_path_buf(),
        reason,
    };
    let mut model = pb::ModelProto::decode(bytes).map_err(|e| WrapError::Read {
        path: path.to_path_buf(),
        reason: format!("not an ONNX model: {e}"),
    })?;
    let graph = model
        .graph
        .as_mut()
        .ok_or_else(|| unfit("it has no graph".into()))?;
    let inits: std::collections::HashSet<&str> =
        graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs: Vec<&pb::ValueInfoProto> = graph
        .input
        .iter()
        .filter(|i| !inits.contains(i.name.as_str()))
        .collect();
    let [input] = inputs.as_slice() else {
        return Err(unfit(format!(
            "it has {} inputs ({}); a bundle feeds exactly one image tensor",
            inputs.len(),
            inputs
                .iter()
                .map(|i| i.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    let want = spec.input_shape();
    let d =
        dims(input).ok_or_else(|| unfit(format!("input `{}` has no tensor shape", input.name)))?;
    let fits = d.len() == 4
        && d[0].is_none_or(|b| b == 1)
        && d[1..]
            .iter()
            .zip(&want[1..])
            .all(|(got, w)| got.is_none_or(|g| g == *w as i64));
    if !fits {
        return Err(unfit(format!(
            "input `{}` is {} but --input/--color give [1, {}, {}, {}] (NCHW)",
            input.name,
            show(&d),
            want[1],
            want[2],
            want[3]
        )));
    }
    let input_name = input.name.clone();
    let [out] = graph.output.as_slice() else {
        return Err(unfit(format!(
            "it has {} outputs; a bundle reads exactly one class vector",
            graph.output.len()
        )));
    };
    let od =
        dims(out).ok_or_else(|| unfit(format!("output `{}` has no tensor shape", out.name)))?;
    let out_fits = od.len() == 2 && od[0].is_none_or(|b| b == 1) && od[1] == Some(classes as i64);
    if !out_fits {
        return Err(unfit(format!(
            "output `{}` is {} but the label set has {classes} classes: [1, {classes}] expected",
            out.name,
            show(&od)
        )));
    }
    if let Some(bad) = map.iter().find(|&&i| i >= classes) {
        return Err(unfit(format!(
            "--map index {bad} is not below the {classes} outputs"
        )));
    }
    let old_out = out.name.clone();
    let gathered = if output == OutputKind::Probabilities {
        "emotions_unnormalised".to_string()
    } else {
        WRAPPED_OUTPUT.to_string()
    };
    graph.initializer.push(pb::TensorProto {
        name: "emotions_map".into(),
        dims: vec![NUM_CLASSES as i64],
        data_type: pb::tensor_proto::DataType::Int64 as i32,
        int64_data: map.iter().map(|&i| i as i64).collect(),
        ..Default::default()
    });
    let node = |op: &str, name: &str, inputs: &[&str], output: &str, attrs| pb::NodeProto {
        op_type: op.into(),
        name: name.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.to_string()],
        attribute: attrs,
        ..Default::default()
    };
    let axis = pb::AttributeProto {
        name: "axis".into(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: 1,
        ..Default::default()
    };
    graph.node.push(node(
        "Gather",
        "emotions_gather",
        &[&old_out, "emotions_map"],
        &gathered,
        vec![axis],
    ));
    if output == OutputKind::Probabilities {
        graph.initializer.push(pb::TensorProto {
            name: "emotions_ones".into(),
            dims: vec![NUM_CLASSES as i64, 1],
            data_type: pb::tensor_proto::DataType::Float as i32,
            float_data: vec![1.0; NUM_CLASSES],
            ..Default::default()
        });
        graph.node.push(node(
            "MatMul",
            "emotions_sum",
            &[&gathered, "emotions_ones"],
            "emotions_total",
            vec![],
        ));
        graph.node.push(node(
            "Div",
            "emotions_renormalise",
            &[&gathered, "emotions_total"],
            WRAPPED_OUTPUT,
            vec![],
        ));
    }
    graph.output = vec![crate::onnx::builder::value_info(
        WRAPPED_OUTPUT,
        &[1, NUM_CLASSES as i64],
    )];
    // IR versions before 4 require every initializer to be a graph input too.
    model.ir_version = model.ir_version.max(4);
    Ok((model.encode_to_vec(), input_name, old_out))
}

/// Wraps `opts.model` into a signed bundle; see the module docs.
pub fn wrap(opts: &WrapOptions) -> Result<WrapReport, WrapError> {
    let bytes = std::fs::read(&opts.model).map_err(|e| WrapError::Read {
        path: opts.model.clone(),
        reason: e.to_string(),
    })?;
    opts.preprocess
        .validate()
        .map_err(|e| WrapError::DoesNotFit {
            path: opts.model.clone(),
            reason: format!("preprocessing: {e}"),
        })?;
    let classes = opts.labels.classes();
    let map = opts.map.unwrap_or_else(|| opts.labels.map());
    let (onnx, input_name, old_out) = wrap_onnx(
        &bytes,
        &opts.model,
        &opts.preprocess,
        opts.output,
        classes.len(),
        &map,
    )?;
    let dropped: Vec<String> = (0..classes.len())
        .filter(|i| !map.contains(i))
        .map(|i| classes[i].to_string())
        .collect();
    let faces = read_faces(&opts.self_test_images)?;
    let outputs = selftest::edge_outputs(&onnx, &opts.preprocess, &faces)?;
    let cases = selftest::cases(&faces, &outputs, WRAP_SELF_TEST_TOLERANCE, faces.len())?;
    let sha = hex::encode(Sha256::digest(&bytes));
    let file = opts
        .model
        .file_name()
        .map_or_else(|| "model.onnx".into(), |n| n.to_string_lossy().into_owned());
    let map_text = (0..NUM_CLASSES)
        .map(|k| {
            let ours = Emotion::from_index(k).map_or("?", Emotion::name);
            format!("{ours}<-{}", classes[map[k]])
        })
        .collect::<Vec<_>>()
        .join(" ");
    let mut extra = BTreeMap::new();
    extra.insert("source_labels".into(), Value::from(opts.labels.name()));
    extra.insert("label_map".into(), Value::from(map_text.clone()));
    extra.insert(
        "dropped".into(),
        Value::from(
            dropped
                .iter()
                .map(|s| Value::from(s.as_str()))
                .collect::<Vec<_>>(),
        ),
    );
    extra.insert("source_output".into(), Value::from(old_out.clone()));
    let manifest = Manifest {
        schema_version: SCHEMA_VERSION,
        model: ModelInfo {
            name: opts.name.clone(),
            version: opts.version.clone(),
            architecture: "wrapped-onnx".into(),
            description: Some(format!(
                "{file} (sha256 {sha}) wrapped by emotion-train: {} labels mapped to ours \
                 ({map_text}){}; accuracy not measured here",
                opts.labels.name(),
                if dropped.is_empty() {
                    String::new()
                } else {
                    format!(", dropped: {}", dropped.join(", "))
                }
            )),
        },
        input: InputSpec {
            name: input_name.clone(),
            shape: opts.preprocess.input_shape(),
            dtype: DType::F32,
        },
        output: OutputSpec {
            name: WRAPPED_OUTPUT.into(),
            kind: opts.output,
            shape: [1, NUM_CLASSES],
        },
        labels: Emotion::names(),
        preprocess: opts.preprocess.clone(),
        quantization: Quantization::none(),
        metrics: Vec::new(),
        onnx: OnnxFile::describe(&onnx),
        created_at: now_rfc3339(),
        training: TrainingSummary {
            epochs: 1,
            best_epoch: 1,
            arch: "wrapped-onnx".into(),
            mode: "wrapped".into(),
            balance: "none".into(),
            seed: 0,
            extra,
        },
        lineage: Lineage {
            backbone: Some(format!("wrapped {file}")),
            backbone_sha256: sha.parse::<Sha256Digest>().ok(),
            dataset_sha256: None,
            git_commit: bundle::git_commit(),
            trainer_version: format!("emotion-train {}", env!("CARGO_PKG_VERSION")),
        },
        self_test: cases.clone(),
    };
    manifest.validate().map_err(PackError::Invalid)?;
    bundle::write_checked(&opts.out, &manifest, &onnx, opts.key.as_ref(), false)?;
    Ok(WrapReport {
        bundle: opts.out.clone(),
        io: (input_name, old_out),
        map,
        dropped,
        cases: cases
            .into_iter()
            .map(|c| (c.name, c.top_label, c.expected))
            .collect(),
    })
}
