//! The export's self-check: the written ONNX loaded and optimised in tract exactly as the edge
//! does it ([`TractModel`]), run on the self-test inputs, and compared with libtorch's outputs
//! for the same tensors. A difference above the tolerance fails the export with the numbers.

use tch::{Device, Kind, Tensor};

use super::ExportError;
use crate::model::graph::Network;
use crate::onnx::OnnxError;
use crate::onnx::tract::TractModel;

/// Largest absolute difference on logits allowed between tch and tract for an fp32 export.
pub const FP32_LOGIT_TOLERANCE: f32 = 1e-4;

/// What the comparison of tch and tract found.
#[derive(Debug, Clone, PartialEq)]
pub struct Agreement {
    /// Inputs compared.
    pub cases: usize,
    /// Largest absolute difference over every logit of every input.
    pub max_abs_diff: f32,
    /// libtorch's logits per input.
    pub tch: Vec<Vec<f32>>,
    /// tract's logits per input.
    pub tract: Vec<Vec<f32>>,
}

/// libtorch's evaluation-mode logits for `inputs` (`[N, C, H, W]`, preprocessed), one row per
/// input.
pub fn tch_logits(net: &Network, inputs: &Tensor) -> Result<Vec<Vec<f32>>, ExportError> {
    let logits = tch::no_grad(|| net.forward_t(inputs, false))
        .to_device(Device::Cpu)
        .to_kind(Kind::Float);
    let n = logits.size().first().copied().unwrap_or(0);
    (0..n)
        .map(|i| {
            Vec::<f32>::try_from(logits.get(i).contiguous())
                .map_err(|e| OnnxError::Tract(format!("reading tch logits: {e}")).into())
        })
        .collect()
}

/// Runs `inputs` (`[N, C, H, W]`, preprocessed) through `net` in libtorch and through `onnx`
/// in tract and compares the logits; more than `tolerance` apart anywhere is
/// [`ExportError::Mismatch`] with the worst input, output index and both values.
pub fn compare_with_tch(
    net: &Network,
    onnx: &[u8],
    inputs: &Tensor,
    tolerance: f32,
) -> Result<Agreement, ExportError> {
    let size = inputs.size();
    let [n, c, h, w] = size[..] else {
        return Err(ExportError::Onnx(OnnxError::Tract(format!(
            "self-check inputs must be [N, C, H, W], got {size:?}"
        ))));
    };
    let shape = [1, c as usize, h as usize, w as usize];
    let model = TractModel::load(onnx, shape)?;
    let expected = tch_logits(net, inputs)?;
    let host = inputs.to_device(Device::Cpu).to_kind(Kind::Float);
    let mut tract_out = Vec::with_capacity(n as usize);
    let mut worst = (0.0f32, 0usize, 0usize);
    for (i, want) in expected.iter().enumerate() {
        let x = Vec::<f32>::try_from(host.get(i as i64).contiguous().flatten(0, -1))
            .map_err(|e| OnnxError::Tract(format!("reading input {i}: {e}")))?;
        let got = model.run(&x)?;
        if got.len() != want.len() {
            return Err(ExportError::Onnx(OnnxError::Tract(format!(
                "tract gave {} outputs for input {i}, libtorch {}",
                got.len(),
                want.len()
            ))));
        }
        for (k, (a, b)) in want.iter().zip(&got).enumerate() {
            let d = (a - b).abs();
            if d.is_nan() || d > worst.0 {
                worst = (if d.is_nan() { f32::INFINITY } else { d }, i, k);
            }
        }
        tract_out.push(got);
    }
    let (max_abs_diff, case, index) = worst;
    if max_abs_diff > tolerance {
        return Err(ExportError::Mismatch {
            max_abs_diff,
            tolerance,
            case,
            index,
            tch: expected[case][index],
            tract: tract_out[case][index],
            cases: n as usize,
        });
    }
    tracing::info!(
        "tract agrees with libtorch on {n} inputs: max |logit difference| {max_abs_diff:.2e} <= {tolerance:.0e}"
    );
    Ok(Agreement {
        cases: n as usize,
        max_abs_diff,
        tch: expected,
        tract: tract_out,
    })
}
