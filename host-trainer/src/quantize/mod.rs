//! int8 quantization of a trained network, in the form tract runs fast.
//!
//! The flow is [`plan`] (which convolutions absorb their batch norm and activation, which
//! values need activation ranges) -> [`calibrate`] (ranges from calibration images: min-max,
//! percentile or entropy) -> [`int8_onnx`] (the ONNX model) -> [`evaluate`] (its accuracy in
//! tract, the edge's runtime); [`search`] keeps the calibration method that measures best.
//!
//! # The int8 form
//!
//! Measured with tract 0.23 (batch 1, one thread), convolutions as `QLinearConv` with one
//! weight scale per tensor are as fast as fp32 or faster, per-channel weight scales are about
//! twice as slow, and `QuantizeLinear`/`DequantizeLinear` around float convolutions (QDQ) is
//! three to four times slower because tract does not fuse it. So the model is written with
//! standard operators only:
//!
//! - activations `u8` with a zero point, weights `i8` symmetric (zero point 0), biases `i32`
//!   at scale `x_scale * w_scale`;
//! - `QLinearConv` for every convolution, with its batch norm folded in and a following ReLU
//!   (ReLU6) absorbed into the output range (which then starts at 0, so the `u8` saturation
//!   is the activation). (Keeping depthwise convolutions in float halves tract's int8 latency
//!   on mini-Xception, 9.2 to 4.2 ms, but cost agreement with fp32, 98.9% instead of 99.4% of
//!   the test images, so it is not done);
//! - `MaxPool` directly on `u8` values (the maximum commutes with the affine mapping);
//! - residual `Add`, average pooling, unfolded batch norms and the like in float between
//!   `DequantizeLinear` and `QuantizeLinear`;
//! - the classifier as `QLinearMatMul` followed by a float bias `Add`, so the logits come out
//!   in float.

pub mod calibrate;
pub mod evaluate;
pub mod int8_onnx;
pub mod plan;
pub mod qat;
pub mod search;

use std::fmt;

/// Scale and zero point of a `u8` activation: `real = scale * (q - zero_point)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QParams {
    /// Real value of one quantization step.
    pub scale: f32,
    /// The `u8` value that stands for 0.0.
    pub zero_point: u8,
}

impl QParams {
    /// Parameters covering `[lo, hi]`, widened to include 0 (so zero padding and ReLU are
    /// exact) and to a minimal width (a constant activation still gets a valid scale).
    pub fn from_range(lo: f32, hi: f32) -> QParams {
        let lo = lo.min(0.0);
        let hi = hi.max(0.0).max(lo + 1e-6);
        let scale = (hi - lo) / 255.0;
        let zero_point = (-lo / scale).round().clamp(0.0, 255.0) as u8;
        QParams { scale, zero_point }
    }

    /// The real values `[lowest, highest]` this can represent.
    pub fn range(&self) -> (f32, f32) {
        let z = f32::from(self.zero_point);
        (-z * self.scale, (255.0 - z) * self.scale)
    }
}

/// How convolution weights are scaled to `i8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WeightScales {
    /// One scale per weight tensor: the fast form in tract.
    PerTensor,
    /// One scale per output channel: more accurate after batch-norm folding, about twice as
    /// slow in tract 0.23 on x86.
    PerChannel,
}

impl WeightScales {
    /// Scheme name in the manifest.
    pub fn scheme(self) -> &'static str {
        match self {
            WeightScales::PerTensor => "qlinear-per-tensor",
            WeightScales::PerChannel => "qlinear-per-channel",
        }
    }
}

/// How activation ranges are chosen from the calibration statistics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RangeMethod {
    /// The smallest and largest value seen.
    MinMax,
    /// Clip the given percentage of values (e.g. 99.99 keeps all but 0.01% inside).
    Percentile(f64),
    /// The clipping threshold whose 8-bit histogram loses least information (smallest
    /// Kullback-Leibler divergence from the observed distribution).
    Entropy,
}

impl RangeMethod {
    /// The methods `--calibration auto` tries, in order.
    pub const AUTO: [RangeMethod; 3] = [
        RangeMethod::MinMax,
        RangeMethod::Percentile(99.99),
        RangeMethod::Entropy,
    ];
}

impl fmt::Display for RangeMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RangeMethod::MinMax => f.write_str("minmax"),
            RangeMethod::Percentile(p) => write!(f, "percentile-{p}"),
            RangeMethod::Entropy => f.write_str("entropy"),
        }
    }
}

/// Why quantization failed.
#[derive(Debug, thiserror::Error)]
pub enum QuantError {
    /// No calibration images.
    #[error("no calibration images: give --calib or --data with a Training split")]
    NoCalibration,
    /// A value the int8 model needs a range for was never observed.
    #[error("no calibrated range for `{0}` (calibration did not reach it)")]
    NoRange(String),
    /// Writing or running the ONNX failed.
    #[error(transparent)]
    Onnx(#[from] crate::onnx::OnnxError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_include_zero_and_map_it_exactly() {
        let q = QParams::from_range(-1.0, 3.0);
        assert_eq!(q.zero_point, 64);
        let (lo, hi) = q.range();
        assert!(
            (lo + 1.0).abs() < 0.01 && (hi - 3.0).abs() < 0.01,
            "{lo} {hi}"
        );
        let relu = QParams::from_range(0.5, 6.0);
        assert_eq!(relu.zero_point, 0);
        assert!((relu.scale - 6.0 / 255.0).abs() < 1e-7);
        let constant = QParams::from_range(0.0, 0.0);
        assert!(constant.scale > 0.0);
    }

    #[test]
    fn method_names_are_the_manifest_names() {
        assert_eq!(RangeMethod::MinMax.to_string(), "minmax");
        assert_eq!(
            RangeMethod::Percentile(99.99).to_string(),
            "percentile-99.99"
        );
        assert_eq!(RangeMethod::Entropy.to_string(), "entropy");
    }
}
