//! Export: a trained network as ONNX ([`onnx`]), checked against libtorch in tract before it
//! is trusted ([`check`]), with self-test cases the edge replays at load ([`selftest`]).
//!
//! [`export_checked`] is the whole library side of `emotion-train export`: write the ONNX,
//! compare tract with libtorch on the sample faces (fp32: max |logit difference| <=
//! [`check::FP32_LOGIT_TOLERANCE`]), pick the self-test cases and replay them the edge's way
//! (shared preprocessing, then tract). The command adds the manifest, signing and the bundle.

pub mod check;
pub mod onnx;
pub mod selftest;

use emotion_shared::manifest::SelfTestCase;
use emotion_shared::preprocess::PreprocessSpec;

use crate::model::graph::Network;
use check::Agreement;
use selftest::SampleFace;

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A graph construct the ONNX writer does not handle.
    #[error("cannot export node `{node}` to ONNX: {reason}")]
    Unsupported {
        /// Graph node name.
        node: String,
        /// What is not supported.
        reason: String,
    },
    /// A node's parameters are missing or unreadable.
    #[error("node `{node}` {reason}")]
    Params {
        /// Graph node name.
        node: String,
        /// What is wrong.
        reason: String,
    },
    /// tract could not load, optimise or run the written model.
    #[error("tract cannot run the exported ONNX: {0}")]
    Tract(String),
    /// tract and libtorch disagree.
    #[error(
        "the exported ONNX does not reproduce libtorch: max |logit difference| {max_abs_diff:.3e} > \
         tolerance {tolerance:.0e} over {cases} inputs (input {case}, output {index}: libtorch \
         {tch}, tract {tract})"
    )]
    Mismatch {
        /// Largest absolute difference found.
        max_abs_diff: f32,
        /// Allowed difference.
        tolerance: f32,
        /// Inputs compared.
        cases: usize,
        /// Input with the largest difference.
        case: usize,
        /// Output index with the largest difference.
        index: usize,
        /// libtorch's value there.
        tch: f32,
        /// tract's value there.
        tract: f32,
    },
    /// The sample faces do not make a usable self-test.
    #[error("self-test: {0}")]
    SelfTest(String),
}

/// A written and checked export.
#[derive(Debug)]
pub struct CheckedExport {
    /// The ONNX bytes.
    pub onnx: Vec<u8>,
    /// tch against tract on every sample face.
    pub agreement: Agreement,
    /// Self-test cases for the manifest, already replayed the edge's way.
    pub self_test: Vec<SelfTestCase>,
}

/// Writes `net` as ONNX and checks it: tract against libtorch on every face of `samples`
/// (preprocessed by `spec`, within `logit_tolerance`), then up to `max_cases` self-test cases
/// (with `case_tolerance`) replayed through the shared preprocessing and tract.
pub fn export_checked(
    net: &Network,
    spec: &PreprocessSpec,
    samples: &[SampleFace],
    logit_tolerance: f32,
    case_tolerance: f32,
    max_cases: usize,
    producer_version: &str,
) -> Result<CheckedExport, ExportError> {
    let onnx = onnx::to_onnx(net, producer_version)?;
    tracing::info!(
        "wrote ONNX of {} graph nodes: {} bytes",
        net.graph.nodes.len(),
        onnx.len()
    );
    let inputs = selftest::tch_inputs(samples, spec)?;
    let agreement = check::compare_with_tch(net, &onnx, &inputs, logit_tolerance)?;
    let self_test = selftest::cases(samples, &agreement.tch, case_tolerance, max_cases)?;
    let replayed = selftest::replay(&onnx, spec, &self_test)?;
    tracing::info!(
        "{} self-test cases replay through the shared preprocessing and tract (max error {replayed:.2e})",
        self_test.len()
    );
    Ok(CheckedExport {
        onnx,
        agreement,
        self_test,
    })
}
