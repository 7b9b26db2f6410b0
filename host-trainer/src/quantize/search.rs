//! Picks the calibration method by measured accuracy: each candidate int8 model is written and
//! run in tract on a selection split, and the most accurate one is kept.

use tch::Tensor;

use super::calibrate::Calibration;
use super::evaluate::{agreement, top_classes, tract_outputs};
use super::int8_onnx::to_int8_onnx;
use super::plan::QuantPlan;
use super::{QuantError, RangeMethod, WeightScales};
use crate::model::graph::Network;

/// One int8 model tried.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Calibration method of its activation ranges.
    pub method: RangeMethod,
    /// The int8 ONNX model.
    pub onnx: Vec<u8>,
    /// Its accuracy on the selection split, in tract.
    pub accuracy: f64,
    /// Its class for each image of the selection split, in tract.
    pub predicted: Vec<u8>,
}

/// Writes an int8 model for each of `methods` and measures it in tract on the selection split
/// `(inputs, labels)` (inputs preprocessed `[N, C, H, W]`); returns every candidate, best first
/// (the earlier method wins a tie).
pub fn rank_methods(
    net: &Network,
    plan: &QuantPlan,
    calibration: &Calibration,
    methods: &[RangeMethod],
    weights: WeightScales,
    (inputs, labels): (&Tensor, &[u8]),
    producer_version: &str,
) -> Result<Vec<Candidate>, QuantError> {
    let mut out: Vec<Candidate> = Vec::with_capacity(methods.len());
    for &method in methods {
        let onnx = to_int8_onnx(
            net,
            plan,
            &calibration.ranges(method),
            weights,
            producer_version,
        )?;
        let predicted = top_classes(&tract_outputs(&onnx, inputs, &format!("int8 {method}"))?);
        let accuracy = agreement(&predicted, labels);
        tracing::info!("int8 with {method} ranges: accuracy {accuracy:.4}");
        out.push(Candidate {
            method,
            onnx,
            accuracy,
            predicted,
        });
    }
    // Stable sort: equal accuracies keep the order of `methods`.
    out.sort_by(|a, b| b.accuracy.total_cmp(&a.accuracy));
    Ok(out)
}
