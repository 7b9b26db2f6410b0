//! Accuracy of an ONNX model in tract (the edge's runtime) on preprocessed images, and how
//! often it picks the same class as libtorch.

use indicatif::{ProgressBar, ProgressStyle};
use tch::{Device, Kind, Tensor};

use crate::onnx::OnnxError;
use crate::onnx::tract::TractModel;

/// tract's outputs for every row of `inputs` (`[N, C, H, W]`, preprocessed).
pub fn tract_outputs(onnx: &[u8], inputs: &Tensor, what: &str) -> Result<Vec<Vec<f32>>, OnnxError> {
    let size = inputs.size();
    let [n, c, h, w] = size[..] else {
        return Err(OnnxError::Tract(format!(
            "inputs must be [N, C, H, W], got {size:?}"
        )));
    };
    let model = TractModel::load(onnx, [1, c as usize, h as usize, w as usize])?;
    let host = inputs.to_device(Device::Cpu).to_kind(Kind::Float);
    let bar = ProgressBar::new(n as u64).with_message(what.to_string());
    bar.set_style(
        ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut out = Vec::with_capacity(n as usize);
    for i in 0..n {
        let x = Vec::<f32>::try_from(host.get(i).contiguous().flatten(0, -1))
            .map_err(|e| OnnxError::Tract(format!("reading input {i}: {e}")))?;
        out.push(model.run(&x)?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(out)
}

/// Index of the largest value of each row.
pub fn top_classes(rows: &[Vec<f32>]) -> Vec<u8> {
    rows.iter()
        .map(|r| {
            r.iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map_or(0, |(k, _)| k as u8)
        })
        .collect()
}

/// Fraction of positions where `a` and `b` agree (accuracy, when one of them is the truth).
pub fn agreement(a: &[u8], b: &[u8]) -> f64 {
    if a.is_empty() {
        return 0.0;
    }
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64
}
