//! Quantization-aware fine-tuning: the int8 model's arithmetic simulated in the training
//! forward pass, so the weights adapt to it.
//!
//! Through a [`NodeHook`] on the ordinary network, for each convolution step of the
//! [`QuantPlan`]:
//!
//! - the batch norm is folded into the convolution with its running statistics (which stop
//!   updating: batch norm is frozen, as the export folds it), and the folded weight is
//!   fake-quantized to `i8` with one scale per tensor, exactly what [`super::int8_onnx`]
//!   writes; gradients pass straight through the rounding;
//! - every observed activation (convolution inputs and results, the classifier's input) is
//!   fake-quantized to `u8` with the ranges calibrated when quantization-aware training
//!   starts.
//!
//! The weights stay float: after training, the export calibrates and quantizes them as usual.

use tch::Tensor;

use super::QParams;
use super::plan::{FusedActivation, QuantPlan};
use crate::model::graph::{Network, NodeHook, Op};

/// The simulated int8 arithmetic, as a hook for [`Network::forward_hooked`].
#[derive(Debug)]
pub struct FakeQuant {
    plan: QuantPlan,
    /// Activation parameters per observed node (not for linear layers' outputs, whose range is
    /// taken before the bias).
    activations: Vec<Option<QParams>>,
}

impl FakeQuant {
    /// The hook for `net` with activation `ranges` (per node, from calibration).
    pub fn new(net: &Network, ranges: &[Option<(f32, f32)>]) -> FakeQuant {
        let plan = QuantPlan::new(&net.graph);
        let mut activations = vec![None; net.graph.nodes.len()];
        for &i in &plan.observed {
            if matches!(net.graph.nodes[i].op, Op::Linear { .. }) {
                continue;
            }
            let Some((lo, hi)) = ranges.get(i).copied().flatten() else {
                continue;
            };
            let step_activation = plan
                .steps
                .iter()
                .flatten()
                .find(|s| s.result == i)
                .and_then(|s| s.activation);
            activations[i] = Some(match step_activation {
                Some((_, FusedActivation::Relu)) => QParams::from_range(0.0, hi),
                Some((_, FusedActivation::Relu6)) => QParams::from_range(0.0, hi.min(6.0)),
                None => QParams::from_range(lo, hi),
            });
        }
        FakeQuant { plan, activations }
    }

    /// The convolution of step `i` with its batch norm folded and its weight fake-quantized.
    fn folded_conv(&self, net: &Network, i: usize, x: &Tensor) -> Option<Tensor> {
        let step = self.plan.steps.get(i)?.as_ref()?;
        let Op::Conv {
            stride,
            pad,
            groups,
            out,
            ..
        } = net.graph.nodes[i].op.clone()
        else {
            return None;
        };
        let p = &net.params[i];
        let w = &p[0];
        let bias = p.get(1).map_or_else(
            || Tensor::zeros([out], (w.kind(), w.device())),
            Tensor::shallow_clone,
        );
        let (w, b) = match step.fold {
            Some(bn) => {
                let Op::BatchNorm { eps } = net.graph.nodes[bn].op else {
                    return None;
                };
                let q = &net.params[bn];
                let (gamma, beta, mean, var) = (&q[0], &q[1], &q[2], &q[3]);
                let s = gamma / (var + eps).sqrt();
                (w * s.view([-1, 1, 1, 1]), (bias - mean) * &s + beta)
            }
            None => (w.shallow_clone(), bias),
        };
        let max = f64::try_from(w.abs().max().detach()).unwrap_or(1.0);
        let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
        let wq = w.fake_quantize_per_tensor_affine(scale, 0, -127, 127);
        let (x, sym) = if pad[0] == pad[2] && pad[1] == pad[3] {
            (x.shallow_clone(), [pad[0], pad[1]])
        } else {
            (x.constant_pad_nd([pad[1], pad[3], pad[0], pad[2]]), [0, 0])
        };
        Some(x.conv2d(&wq, Some(&b), [stride, stride], sym, [1, 1], groups))
    }
}

impl NodeHook for FakeQuant {
    fn bypass(&mut self, i: usize) -> bool {
        // Folded batch norms: the convolution already produced their output.
        self.plan.steps.iter().flatten().any(|s| s.fold == Some(i))
    }

    fn replace(&mut self, net: &Network, i: usize, x: &Tensor) -> Option<Tensor> {
        if matches!(net.graph.nodes[i].op, Op::Conv { .. }) {
            self.folded_conv(net, i, x)
        } else {
            None
        }
    }

    fn output(&mut self, i: usize, y: Tensor) -> Tensor {
        match self.activations.get(i).copied().flatten() {
            Some(q) => y.fake_quantize_per_tensor_affine(
                f64::from(q.scale),
                i64::from(q.zero_point),
                0,
                255,
            ),
            None => y,
        }
    }
}
