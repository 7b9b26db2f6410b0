//! Running a network over a split: class probabilities and labels, optionally with
//! horizontal-flip test-time augmentation, and backbone features for feature extraction.

use emotion_shared::preprocess::PreprocessSpec;
use tch::{Kind, Tensor};

use crate::data::tensors::SplitTensors;
use crate::model::graph::Network;
use crate::preprocess::model_input;

/// Per-image predictions.
#[derive(Debug)]
pub struct Predictions {
    /// `[N, classes]` probabilities (CPU).
    pub probs: Tensor,
    /// Top class per image.
    pub labels: Vec<u8>,
}

fn finish(probs: Tensor) -> Predictions {
    let labels: Vec<i64> = Vec::try_from(probs.argmax(1, false)).unwrap_or_default();
    Predictions {
        probs,
        labels: labels.into_iter().map(|l| l as u8).collect(),
    }
}

fn batches(n: i64, bs: i64) -> impl Iterator<Item = (i64, i64)> {
    (0..n)
        .step_by(bs.max(1) as usize)
        .map(move |s| (s, bs.min(n - s)))
}

/// Runs `f` on each preprocessed batch of `split` (no gradients) and concatenates the results.
fn map_batches(
    spec: &PreprocessSpec,
    split: &SplitTensors,
    batch: usize,
    mut f: impl FnMut(&Tensor) -> Tensor,
) -> Tensor {
    let n = split.len() as i64;
    let mut out = Vec::new();
    tch::no_grad(|| {
        for (s, len) in batches(n, batch as i64) {
            let x = split
                .images
                .narrow(0, s, len)
                .unsqueeze(1)
                .to_kind(Kind::Float);
            out.push(f(&model_input(&x, spec)));
        }
    });
    Tensor::cat(&out, 0)
}

/// Softmax probabilities over a split; `tta_flip` averages with the mirrored image.
pub fn predict(
    net: &Network,
    spec: &PreprocessSpec,
    split: &SplitTensors,
    batch: usize,
    tta_flip: bool,
) -> Predictions {
    finish(map_batches(spec, split, batch, |x| {
        let mut p = net.forward_t(x, false).softmax(1, Kind::Float);
        if tta_flip {
            let pf = net.forward_t(&x.flip([3]), false).softmax(1, Kind::Float);
            p = (p + pf) / 2.0;
        }
        p.to_device(tch::Device::Cpu)
    }))
}

/// Backbone features `[N, C]` of a split (no augmentation, evaluation mode), on the split's
/// device.
pub fn features(
    net: &Network,
    spec: &PreprocessSpec,
    split: &SplitTensors,
    batch: usize,
) -> Tensor {
    map_batches(spec, split, batch, |x| net.features_t(x, false))
}

/// Predictions from cached features (head only).
pub fn from_features(net: &Network, features: &Tensor, batch: usize) -> Predictions {
    let n = features.size()[0];
    let mut out = Vec::new();
    tch::no_grad(|| {
        for (s, len) in batches(n, batch as i64) {
            let p = net
                .head_t(&features.narrow(0, s, len), false)
                .softmax(1, Kind::Float);
            out.push(p.to_device(tch::Device::Cpu));
        }
    });
    finish(Tensor::cat(&out, 0))
}
