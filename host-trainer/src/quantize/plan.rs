//! Which nodes the int8 model computes together, and which values need activation ranges.
//!
//! A convolution absorbs the batch norm that only it feeds (folded into its weights, as in
//! the fp32 export) and then a `Relu`/`Relu6` that is the only reader of that result; the
//! `QLinearConv` produces the activation's output directly. Ranges are needed for every
//! convolution's input and result, and for each linear layer's input and (pre-bias) output.

use crate::model::graph::{Graph, Op};
use crate::onnx::builder::{batch_norm_folds, consumers};

/// An activation absorbed into a convolution's output range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FusedActivation {
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
}

/// One convolution of the int8 model and what it absorbs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvStep {
    /// The convolution node.
    pub conv: usize,
    /// The batch norm folded into it.
    pub fold: Option<usize>,
    /// The activation absorbed into its output range.
    pub activation: Option<(usize, FusedActivation)>,
    /// The node whose value the step produces (the activation, the batch norm or the
    /// convolution itself).
    pub result: usize,
}

/// The int8 layout of a graph.
#[derive(Debug, Clone)]
pub struct QuantPlan {
    /// For each node, the step it starts (convolutions only).
    pub steps: Vec<Option<ConvStep>>,
    /// Nodes computed inside a step (folded batch norms, absorbed activations).
    pub absorbed: Vec<bool>,
    /// Nodes whose output values need a calibrated range, in graph order.
    pub observed: Vec<usize>,
}

impl QuantPlan {
    /// The plan for `graph`.
    pub fn new(graph: &Graph) -> QuantPlan {
        let n = graph.nodes.len();
        let folds = batch_norm_folds(graph);
        let readers = consumers(graph);
        let mut steps = vec![None; n];
        let mut absorbed = vec![false; n];
        let mut observed = vec![false; n];
        for (i, node) in graph.nodes.iter().enumerate() {
            match node.op {
                Op::Conv { .. } => {
                    let fold = folds[i];
                    let pre = fold.unwrap_or(i);
                    let activation = match readers[pre][..] {
                        [r] if pre != graph.output && pre != graph.features => {
                            match graph.nodes[r].op {
                                Op::Relu => Some((r, FusedActivation::Relu)),
                                Op::Relu6 => Some((r, FusedActivation::Relu6)),
                                _ => None,
                            }
                        }
                        _ => None,
                    };
                    let result = activation.map_or(pre, |(r, _)| r);
                    if let Some(bn) = fold {
                        absorbed[bn] = true;
                    }
                    if let Some((r, _)) = activation {
                        absorbed[r] = true;
                    }
                    if let Some(&x) = node.inputs.first() {
                        observed[x] = true;
                    }
                    observed[result] = true;
                    steps[i] = Some(ConvStep {
                        conv: i,
                        fold,
                        activation,
                        result,
                    });
                }
                Op::Linear { .. } => {
                    if let Some(&x) = node.inputs.first() {
                        observed[x] = true;
                    }
                    observed[i] = true;
                }
                _ => {}
            }
        }
        QuantPlan {
            steps,
            absorbed,
            observed: (0..n).filter(|&i| observed[i]).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::graph::Shape;
    use crate::model::head::HeadSpec;
    use crate::model::mini_xception;

    #[test]
    fn mini_xception_stem_convolutions_absorb_batch_norm_and_relu() {
        let g = mini_xception::build(Shape { c: 1, h: 48, w: 48 }, &HeadSpec::linear(), 7);
        let plan = QuantPlan::new(&g);
        let idx = |name: &str| g.nodes.iter().position(|n| n.name == name).unwrap();
        let step = plan.steps[idx("stem/conv1")].clone().unwrap();
        assert_eq!(step.fold, Some(idx("stem/conv1/bn")));
        assert_eq!(
            step.activation,
            Some((idx("stem/relu1"), FusedActivation::Relu))
        );
        assert_eq!(step.result, idx("stem/relu1"));
        // A depthwise convolution feeding a pointwise one absorbs nothing.
        let dw = plan.steps[idx("module1/sep1/dw")].clone().unwrap();
        assert_eq!((dw.fold, dw.activation, dw.result), (None, None, dw.conv));
        // The second separable convolution has a batch norm and no ReLU before the pool.
        let pw2 = plan.steps[idx("module1/sep2/pw")].clone().unwrap();
        assert_eq!(pw2.result, idx("module1/sep2/bn"));
        assert!(plan.absorbed[idx("stem/conv1/bn")] && plan.absorbed[idx("stem/relu1")]);
        // The input, each step's result and the classifier are observed.
        for name in [
            "input",
            "stem/relu1",
            "module1/add",
            "features/gap",
            "head/logits",
        ] {
            assert!(plan.observed.contains(&idx(name)), "{name} not observed");
        }
        assert!(!plan.observed.contains(&idx("stem/conv1")));
    }
}
