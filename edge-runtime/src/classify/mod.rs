//! Emotion classification: a model bundle's ONNX loaded and optimised once with tract
//! ([`LoadedModel`]), and per-face inference through the shared preprocessing contract
//! ([`Classifier`]): preprocess, run, softmax if the model gives logits, top label.
//!
//! Loading checks what the manifest promises against the graph: one input of the manifest's
//! `[1, C, H, W]` shape, one output of `[1, 7]`. Bytes that are not ONNX, a truncated file or
//! a model of another shape are refused with a [`ClassifyError`] that says which.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use emotion_shared::manifest::{Manifest, OutputKind, Quantization, SelfTestOutcome, argmax};
use emotion_shared::preprocess::{FaceCrop, PreprocessError, Preprocessor};
use emotion_shared::{Emotion, NUM_CLASSES};
use serde::Serialize;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

use crate::tools::model_profile::{self, ModelProfile};

/// Why a model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum ClassifyError {
    /// The bytes are not a readable ONNX model (not protobuf, truncated, unknown operator...).
    #[error("model.onnx is not a loadable ONNX model ({size} bytes): {reason}")]
    NotOnnx {
        /// File size.
        size: usize,
        /// What tract said.
        reason: String,
    },
    /// The graph does not have one input and one output.
    #[error(
        "model.onnx has {inputs} input(s) and {outputs} output(s); exactly one of each is needed"
    )]
    Arity {
        /// Inputs found.
        inputs: usize,
        /// Outputs found.
        outputs: usize,
    },
    /// The ONNX input shape contradicts the manifest.
    #[error(
        "model.onnx input is {model} but manifest input.shape is {manifest:?}: the bundle is inconsistent, re-export it"
    )]
    InputShape {
        /// Shape declared in the ONNX graph.
        model: String,
        /// Shape in the manifest.
        manifest: [usize; 4],
    },
    /// The output (after optimisation for the manifest's input) is not `[1, 7]`.
    #[error("model.onnx output is {model} for input {input:?}, expected [1, {NUM_CLASSES}]")]
    OutputShape {
        /// Output shape found.
        model: String,
        /// Input shape used.
        input: [usize; 4],
    },
    /// Typing or optimising the graph failed.
    #[error("model.onnx could not be optimised for input {input:?}: {reason}")]
    Optimise {
        /// Input shape used.
        input: [usize; 4],
        /// What tract said.
        reason: String,
    },
    /// The manifest's preprocessing is invalid.
    #[error("manifest preprocessing: {0}")]
    Preprocess(#[from] PreprocessError),
    /// Running the model failed.
    #[error("inference failed: {0}")]
    Inference(String),
    /// The model produced something other than 7 finite values.
    #[error(
        "model produced {count} values ({non_finite} not finite), expected {NUM_CLASSES} finite values"
    )]
    BadOutput {
        /// Values produced.
        count: usize,
        /// How many were NaN or infinite.
        non_finite: usize,
    },
    /// A manifest self-test case failed.
    #[error(transparent)]
    SelfTest(#[from] emotion_shared::manifest::SelfTestFailure),
    /// A self-test input that does not make a crop.
    #[error("self-test `{name}` input: {source}")]
    SelfTestInput {
        /// Case name.
        name: String,
        /// Why.
        source: PreprocessError,
    },
}

/// The classification of one face.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Prediction {
    /// The most probable emotion.
    pub label: Emotion,
    /// Its probability.
    pub confidence: f32,
    /// Probabilities of all seven emotions, in FER2013 order (sum 1).
    pub probabilities: [f32; NUM_CLASSES],
}

impl Prediction {
    /// A prediction from probabilities (the top label is the first maximum).
    pub fn from_probabilities(probabilities: [f32; NUM_CLASSES]) -> Prediction {
        let index = argmax(&probabilities).unwrap_or(Emotion::Neutral.index());
        let label = Emotion::from_index(index).unwrap_or(Emotion::Neutral);
        Prediction {
            label,
            confidence: probabilities[label.index()],
            probabilities,
        }
    }
}

/// A verified, optimised model, immutable and shared between threads: the thing that is
/// swapped atomically when a new bundle arrives.
#[derive(Debug)]
pub struct LoadedModel {
    manifest: Manifest,
    plan: Arc<TypedRunnableModel>,
    id: String,
}

impl LoadedModel {
    /// Parses `onnx` with tract, checks it against `manifest` and optimises it for batch 1.
    /// Never panics on bad bytes: a panic inside the ONNX importer becomes [`ClassifyError::NotOnnx`].
    pub fn load(manifest: Manifest, onnx: &[u8]) -> Result<LoadedModel, ClassifyError> {
        manifest.preprocess.validate()?;
        let input = manifest.input.shape;
        let size = onnx.len();
        let not_onnx = |reason: String| ClassifyError::NotOnnx { size, reason };
        let parsed = catch_unwind(AssertUnwindSafe(|| {
            tract_onnx::onnx().model_for_read(&mut &onnx[..])
        }))
        .map_err(|_| not_onnx("the ONNX importer panicked".into()))?
        .map_err(|e| not_onnx(format!("{e:#}")))?;
        let mut model = parsed;
        if model.inputs.len() != 1 || model.outputs.len() != 1 {
            return Err(ClassifyError::Arity {
                inputs: model.inputs.len(),
                outputs: model.outputs.len(),
            });
        }
        let declared = model
            .input_fact(0)
            .map_err(|e| not_onnx(format!("{e:#}")))?
            .clone();
        check_declared_input(&declared.shape, input)?;

        let optimise = |reason: String| ClassifyError::Optimise { input, reason };
        let plan = catch_unwind(AssertUnwindSafe(|| -> TractResult<_> {
            model.set_input_fact(0, f32::fact(input).into())?;
            let typed = crate::kernels::into_plan(model.into_typed()?)?;
            let out = typed
                .output_fact(0)?
                .shape
                .as_concrete()
                .map(|s| s.to_vec());
            Ok((out, typed.into_runnable()?))
        }))
        .map_err(|_| optimise("tract panicked while optimising".into()))?
        .map_err(|e| optimise(format!("{e:#}")))?;
        let (out_shape, plan) = plan;
        if out_shape.as_deref() != Some(&[1, NUM_CLASSES][..]) {
            return Err(ClassifyError::OutputShape {
                model: out_shape.map_or_else(|| "not fixed".to_string(), |s| format!("{s:?}")),
                input,
            });
        }
        let id = format!(
            "{} {} ({})",
            manifest.model.name,
            manifest.model.version,
            match manifest.quantization {
                Quantization::None { .. } => "fp32",
                Quantization::Int8 { .. } => "int8",
            }
        );
        Ok(LoadedModel { manifest, plan, id })
    }

    /// The manifest the model was loaded with.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// `name version (fp32|int8)`, for logs and the display.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Runs the model on one preprocessed input tensor (`[1, C, H, W]`, NCHW) and returns
    /// the raw output in the manifest's output kind. Makes a new tract state per call; a
    /// [`Classifier`] keeps one between calls.
    pub fn run_tensor(&self, input: &[f32]) -> Result<Vec<f32>, ClassifyError> {
        let mut state = self.state()?;
        self.run_in(&mut state, input)
    }

    /// A fresh tract run state for this model (its intermediate values and operator states).
    fn state(&self) -> Result<TypedSimpleState, ClassifyError> {
        TypedSimpleState::new(&self.plan).map_err(|e| ClassifyError::Inference(format!("{e:#}")))
    }

    fn run_in(
        &self,
        state: &mut TypedSimpleState,
        input: &[f32],
    ) -> Result<Vec<f32>, ClassifyError> {
        let shape = self.manifest.input.shape;
        let tensor = Tensor::from_shape(&shape, input)
            .map_err(|e| ClassifyError::Inference(format!("input tensor: {e:#}")))?;
        let outputs = state
            .run(tvec!(tensor.into()))
            .map_err(|e| ClassifyError::Inference(format!("{e:#}")))?;
        let first = outputs
            .first()
            .ok_or_else(|| ClassifyError::Inference("the model returned no output".into()))?;
        let view = first
            .to_plain_array_view::<f32>()
            .map_err(|e| ClassifyError::Inference(format!("output is not f32: {e:#}")))?;
        let values: Vec<f32> = view.iter().copied().collect();
        let non_finite = values.iter().filter(|v| !v.is_finite()).count();
        if values.len() != NUM_CLASSES || non_finite > 0 {
            return Err(ClassifyError::BadOutput {
                count: values.len(),
                non_finite,
            });
        }
        Ok(values)
    }

    /// Times the model node by node on a mid-grey input, `runs` times after a warm-up
    /// (`emotion-edge bench --profile`).
    pub fn profile(&self, runs: usize) -> Result<ModelProfile, ClassifyError> {
        let input = Tensor::from_shape(
            &self.manifest.input.shape,
            &vec![0.5f32; self.manifest.input.shape.iter().product()],
        )
        .map_err(|e| ClassifyError::Inference(format!("input tensor: {e:#}")))?;
        model_profile::profile(&self.plan, &input, runs)
            .map_err(|e| ClassifyError::Inference(format!("{e:#}")))
    }

    /// A classifier over this model, with its own preprocessing buffers.
    pub fn classifier(self: &Arc<Self>) -> Result<Classifier, ClassifyError> {
        Classifier::new(Arc::clone(self))
    }
}

/// Checks the ONNX graph's declared input against the manifest's `[1, C, H, W]`: the rank
/// must be 4 when known, and every dimension the graph fixes must match (a symbolic batch
/// dimension is fine).
fn check_declared_input(
    shape: &tract_onnx::tract_hir::infer::ShapeFactoid,
    manifest: [usize; 4],
) -> Result<(), ClassifyError> {
    let dims: Vec<Option<i64>> = shape
        .dims()
        .map(|d| d.concretize().and_then(|t| t.to_i64().ok()))
        .collect();
    let describe = || {
        let parts: Vec<String> = dims
            .iter()
            .map(|d| d.map_or_else(|| "?".to_string(), |v| v.to_string()))
            .collect();
        format!("[{}]", parts.join(", "))
    };
    let closed = !shape.is_open();
    if closed && dims.len() != 4 {
        return Err(ClassifyError::InputShape {
            model: describe(),
            manifest,
        });
    }
    for (d, want) in dims.iter().zip(manifest) {
        if let Some(v) = d
            && *v != want as i64
        {
            return Err(ClassifyError::InputShape {
                model: describe(),
                manifest,
            });
        }
    }
    Ok(())
}

/// Classifies face crops with one [`LoadedModel`]; keeps the preprocessing tables and the
/// input buffer between calls. One per pipeline thread.
#[derive(Debug)]
pub struct Classifier {
    model: Arc<LoadedModel>,
    preprocessor: Preprocessor,
    input: Vec<f32>,
    state: TypedSimpleState,
}

impl Classifier {
    /// A classifier for `model`.
    pub fn new(model: Arc<LoadedModel>) -> Result<Classifier, ClassifyError> {
        let preprocessor = Preprocessor::new(model.manifest.preprocess.clone())?;
        let input = vec![0.0; model.manifest.preprocess.output_len()];
        let state = model.state()?;
        Ok(Classifier {
            model,
            preprocessor,
            input,
            state,
        })
    }

    /// The model in use.
    pub fn model(&self) -> &Arc<LoadedModel> {
        &self.model
    }

    /// Preprocesses `crop` into the input buffer (the "preprocess" stage on its own).
    pub fn preprocess<'a>(&mut self, crop: impl Into<FaceCrop<'a>>) -> Result<(), ClassifyError> {
        self.preprocessor.run_into(crop, &mut self.input)?;
        Ok(())
    }

    /// Runs the model on the input buffer filled by [`Classifier::preprocess`] and returns
    /// the prediction (the "infer" stage on its own).
    pub fn infer(&mut self) -> Result<Prediction, ClassifyError> {
        let raw = self.model.run_in(&mut self.state, &self.input)?;
        Ok(self.to_prediction(&raw))
    }

    /// The raw model output (logits or probabilities, per the manifest) for one crop.
    pub fn raw<'a>(&mut self, crop: impl Into<FaceCrop<'a>>) -> Result<Vec<f32>, ClassifyError> {
        self.preprocess(crop)?;
        self.model.run_in(&mut self.state, &self.input)
    }

    /// Classifies one crop.
    pub fn classify<'a>(
        &mut self,
        crop: impl Into<FaceCrop<'a>>,
    ) -> Result<Prediction, ClassifyError> {
        self.preprocess(crop)?;
        self.infer()
    }

    fn to_prediction(&self, raw: &[f32]) -> Prediction {
        let probs = match self.model.manifest.output.kind {
            OutputKind::Logits => emotion_shared::manifest::softmax(raw),
            OutputKind::Probabilities => raw.to_vec(),
        };
        let mut p = [0.0f32; NUM_CLASSES];
        for (dst, src) in p.iter_mut().zip(probs) {
            *dst = src;
        }
        Prediction::from_probabilities(p)
    }

    /// Runs every self-test case of the manifest through this runtime's preprocessing and
    /// model and compares with the trainer's outputs; the first failure is the error.
    pub fn self_test(&mut self) -> Result<Vec<SelfTestOutcome>, ClassifyError> {
        let cases = self.model.manifest.self_test.clone();
        let mut outcomes = Vec::with_capacity(cases.len());
        for case in &cases {
            let crop = case
                .input
                .crop()
                .map_err(|source| ClassifyError::SelfTestInput {
                    name: case.name.clone(),
                    source,
                })?;
            let raw = self.raw(crop)?;
            outcomes.push(case.check(&raw)?);
        }
        Ok(outcomes)
    }
}
