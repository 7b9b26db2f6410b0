//! Export: a trained network as ONNX ([`crate::onnx`]), checked against libtorch in tract before it
//! is trusted ([`check`]), with self-test cases the edge replays at load ([`selftest`]).
//!
//! The library side of `emotion-train export`, in the order the command runs it:
//! [`sample_faces`] to check on; [`export_checked`] writes the fp32 ONNX, compares tract with
//! libtorch on them (max |logit difference| <= [`check::FP32_LOGIT_TOLERANCE`]), picks the
//! self-test cases and replays them the edge's way (shared preprocessing, then tract);
//! [`int8::export_int8_checked`] does the same for an int8 model, with calibration, method
//! choice and the accuracy gate; [`bundle`] measures the test splits, fills the manifest from
//! the run record and writes, signs and re-opens the bundle. [`starter`] does all of it for
//! the published FER2013 mini-Xception without a data set; [`wrap`] makes a bundle of any ONNX
//! emotion classifier.

pub mod bundle;
pub mod check;
pub mod int8;
pub mod selftest;
pub mod starter;
pub mod wrap;

use std::path::{Path, PathBuf};

use emotion_shared::manifest::SelfTestCase;
use emotion_shared::preprocess::PreprocessSpec;

use crate::data::{FaceSet, Split};
use crate::model::graph::Network;
use crate::onnx::{self, OnnxError};
use check::Agreement;
use selftest::SampleFace;

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Writing the ONNX, or running it in tract, failed.
    #[error(transparent)]
    Onnx(#[from] OnnxError),
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
    /// Writing an output file failed.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Tolerance of the fp32 self-test cases in the manifest (logits): the edge's preprocessing
/// and tract against libtorch's.
pub const SELF_TEST_TOLERANCE: f32 = 1e-3;
/// Sample faces the export is checked on (self-test cases are picked from them).
pub const SAMPLE_FACES: usize = 24;

/// The data set an export is measured on (`--data`): its path and its faces.
#[derive(Debug)]
pub struct ExportData {
    /// Where it was loaded from.
    pub path: PathBuf,
    /// The faces.
    pub set: FaceSet,
}

impl ExportData {
    /// Lower-case file stem of the data path, for split names such as `fer2013-private-test`.
    pub fn stem(&self) -> String {
        self.path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("data")
            .to_ascii_lowercase()
    }
}

/// The [`SAMPLE_FACES`] faces an export is checked on: PrivateTest images of `data`, or drawn
/// faces without data (or when it has no PrivateTest split).
pub fn sample_faces(data: Option<&ExportData>) -> Vec<SampleFace> {
    match data {
        Some(d) if !d.set.indices(Split::PrivateTest).is_empty() => {
            selftest::from_face_set(&d.set, Split::PrivateTest, SAMPLE_FACES)
        }
        Some(d) => {
            tracing::warn!(
                "{} has no PrivateTest images: using drawn faces for the self-tests",
                d.path.display()
            );
            selftest::synthetic(SAMPLE_FACES, 7)
        }
        None => selftest::synthetic(SAMPLE_FACES, 7),
    }
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

/// Writes `net` as ONNX in [`onnx::OnnxForm::Plain`] (one node per layer, for onnxruntime and
/// other runtimes; bundles carry the tract form) to `path`, after checking it against libtorch
/// through tract on every face of `samples` within `logit_tolerance`. Returns the bytes
/// written.
pub fn write_plain_onnx(
    net: &Network,
    spec: &PreprocessSpec,
    samples: &[SampleFace],
    logit_tolerance: f32,
    producer_version: &str,
    path: &Path,
) -> Result<usize, ExportError> {
    let onnx = onnx::to_onnx_as(net, producer_version, onnx::OnnxForm::Plain)?;
    let inputs = selftest::tch_inputs(samples, spec)?;
    let agreement = check::compare_with_tch(net, &onnx, &inputs, logit_tolerance)?;
    std::fs::write(path, &onnx).map_err(|source| ExportError::Write {
        path: path.to_path_buf(),
        source,
    })?;
    tracing::info!(
        "wrote the plain-form ONNX (for runtimes other than tract) to {}: {} bytes, within {:.1e} of libtorch on {} faces",
        path.display(),
        onnx.len(),
        agreement.max_abs_diff,
        samples.len()
    );
    Ok(onnx.len())
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
