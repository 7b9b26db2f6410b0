//! The fp32 ONNX writer: a [`Graph`](crate::model::graph::Graph) and its trained parameters as
//! an ONNX model (IR version 8, opset 13, the combination both tract 0.23 and onnxruntime
//! load), built with [`super::builder`] from tract's public protobuf types (`tract_onnx::pb`)
//! and encoded with prost.
//!
//! The model has one input `[1, C, H, W]` named [`INPUT_NAME`] and one output `[1, classes]`
//! named [`OUTPUT_NAME`] (logits); the batch is fixed at 1 and no intermediate `value_info` is
//! written (tract fails to unify a symbolic batch stored there). Node by node:
//!
//! | graph op        | ONNX                                                                |
//! |-----------------|---------------------------------------------------------------------|
//! | `Conv`          | `Conv` (asymmetric `pads` as `[top, left, bottom, right]`), with bias; a strided 1x1 convolution as a 1x1 `MaxPool` with that stride (subsampling) and a stride-1 `Conv`; on maps narrower than 128 columns, few-channel convolutions on wide rows, and a 1x1 convolution feeding a depthwise one on a map of at most 16x16 as a channels-last `MatMul` between `Transpose`s, and one read by a max pool alone as a channels-last `MatMul` ([`super::conv_form`]) |
//! | `BatchNorm`     | folded into the preceding `Conv` when that convolution feeds nothing else; otherwise `Mul` + `Add` per channel |
//! | `Affine`        | `Mul` + `Add` per channel                                            |
//! | `Relu`, `Relu6` | `Relu`; `Clip` with `min` 0 and `max` 6 as inputs (opset 13)         |
//! | `MaxPool`       | two `MaxPool`s, `k x 1` over rows then `1 x k` over columns, with `pads` (padding counts as -inf, as in libtorch); of a channels-last product, two `k x 1` passes on reshaped views and a `Transpose` back ([`super::builder::max_pool_channels_last`]) |
//! | `AvgPool`       | `AveragePool` without padding                                        |
//! | `Add`           | `Add`                                                                |
//! | `GlobalAvgPool` | `GlobalAveragePool` + `Flatten(axis 1)`                              |
//! | `Linear`        | `Gemm(transB = 1)`                                                   |
//! | `Dropout`       | nothing (identity at inference)                                      |
//!
//! Batch-norm folding is computed in `f64` from the evaluation-mode statistics:
//! `s = gamma / sqrt(running_var + eps)`, `W' = W * s` per output channel and
//! `b' = (b - running_mean) * s + beta`.

use prost::Message as _;
use tract_onnx::pb;

use super::builder::{
    Builder, batch_norm_folds, consumers, float_op, folded_conv, int, max_pool_channels_last,
    model_proto, param, rank_of, subsample_for_pointwise, values,
};
use super::conv_form::{self, ConvSpec, Form};
use super::{INPUT_NAME, OUTPUT_NAME, OnnxError, OnnxForm};
use crate::model::graph::{Graph, Network, Op};

/// Writes `net` (evaluation mode: batch norm with running statistics, no dropout) as ONNX
/// bytes in the form tract runs fastest ([`OnnxForm::Tract`], what bundles carry).
/// `producer_version` goes into the model's `producer_version` field.
pub fn to_onnx(net: &Network, producer_version: &str) -> Result<Vec<u8>, OnnxError> {
    to_onnx_as(net, producer_version, OnnxForm::Tract)
}

/// [`to_onnx`] in `form`: [`OnnxForm::Plain`] for runtimes other than tract.
pub fn to_onnx_as(
    net: &Network,
    producer_version: &str,
    form: OnnxForm,
) -> Result<Vec<u8>, OnnxError> {
    let model = tch::no_grad(|| build_model(net, producer_version, form))?;
    Ok(model.encode_to_vec())
}

fn build_model(
    net: &Network,
    producer_version: &str,
    form: OnnxForm,
) -> Result<pb::ModelProto, OnnxError> {
    let graph = &net.graph;
    let n = graph.nodes.len();
    let unsupported = |i: usize, reason: &str| OnnxError::Unsupported {
        node: graph.nodes[i].name.clone(),
        reason: reason.to_string(),
    };
    let fold_into = batch_norm_folds(graph);
    let readers = consumers(graph);
    let folded: Vec<bool> = {
        let mut f = vec![false; n];
        for bn in fold_into.iter().flatten() {
            f[*bn] = true;
        }
        f
    };

    let mut ranks = vec![4usize; n];
    // The ONNX value holding each node's output.
    let mut value: Vec<String> = vec![String::new(); n];
    // The outputs written channels-last (read by their max pool alone).
    let mut channels_last = vec![false; n];
    let out_name = |i: usize| -> String {
        if i == graph.output {
            OUTPUT_NAME.to_string()
        } else {
            graph.nodes[i].name.clone()
        }
    };
    let mut b = Builder::new(form);

    for i in 0..=graph.output {
        let node = &graph.nodes[i];
        ranks[i] = rank_of(graph, &ranks, i);
        let input = |k: usize| -> Result<String, OnnxError> {
            node.inputs
                .get(k)
                .map(|&j| value[j].clone())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| unsupported(i, &format!("input {k} is missing or not computed")))
        };
        let name = &node.name;
        // A max pool of a product left channels-last for it.
        let last = node.inputs.first().filter(|&&j| channels_last[j]);
        if let (
            Op::MaxPool {
                kernel,
                stride,
                pad,
            },
            Some(&j),
        ) = (&node.op, last)
        {
            let v = out_name(i);
            let window = [*kernel, *stride];
            let x = graph.nodes[j].shape;
            let shape = [x.h, x.w, x.c, node.shape.h];
            max_pool_channels_last(&mut b, name, &input(0)?, &v, window, pad, shape);
            value[i] = v;
            continue;
        }
        match &node.op {
            Op::Input => {
                if i != 0 {
                    return Err(unsupported(i, "a second input node"));
                }
                value[i] = INPUT_NAME.to_string();
            }
            Op::Conv {
                out,
                kernel,
                stride,
                pad,
                groups,
                ..
            } => {
                if ranks[i] != 4 {
                    return Err(unsupported(i, "convolution of a flattened value"));
                }
                // With a folded batch norm the convolution produces the batch norm's output.
                let (w, bvec) = folded_conv(net, i, fold_into[i])?;
                let result = fold_into[i].unwrap_or(i);
                let out_value = out_name(result);
                let mut x = input(0)?;
                let mut stride = *stride;
                let in_shape = node
                    .inputs
                    .first()
                    .map_or(node.shape, |&j| graph.nodes[j].shape);
                let mut in_hw = [in_shape.h, in_shape.w];
                if let Some(sub) = subsample_for_pointwise(&mut b, name, &x, kernel, stride, pad) {
                    x = sub;
                    stride = 1;
                    in_hw = [node.shape.h, node.shape.w];
                }
                let written = conv_form::write(
                    &mut b,
                    ConvSpec {
                        name,
                        input: &x,
                        output: &out_value,
                        in_channels: in_shape.c,
                        out_channels: *out,
                        in_hw,
                        out_hw: [node.shape.h, node.shape.w],
                        kernel: *kernel,
                        stride,
                        pad: *pad,
                        groups: *groups,
                        weight: values(&w, name)?,
                        bias: values(&bvec, name)?,
                        feeds_depthwise: depthwise_fed(graph, &readers, result),
                        feeds_max_pool: max_pool_fed(graph, &readers, result),
                    },
                );
                channels_last[result] = written == Form::ChannelsLastForPool;
                value[i] = out_value.clone();
                if result != i {
                    ranks[result] = 4;
                    value[result] = out_value;
                }
            }
            Op::BatchNorm { .. } if folded[i] => {
                // Emitted with its convolution.
                if value[i].is_empty() {
                    return Err(unsupported(i, "folded batch norm before its convolution"));
                }
            }
            Op::BatchNorm { .. }
            | Op::Affine
            | Op::Relu
            | Op::Relu6
            | Op::MaxPool { .. }
            | Op::AvgPool { .. }
            | Op::AddPadded
            | Op::Add
            | Op::GlobalAvgPool => {
                let inputs = (0..node.inputs.len())
                    .map(input)
                    .collect::<Result<Vec<_>, _>>()?;
                let v = out_name(i);
                float_op(&mut b, net, i, ranks[i], &inputs, &v)?;
                value[i] = v;
            }
            Op::Linear { out } => {
                let in_rank = node.inputs.first().map_or(4, |&j| ranks[j]);
                if in_rank != 2 {
                    return Err(unsupported(i, "a linear layer on an unflattened value"));
                }
                let w = param(net, i, 0, "weight")?;
                let bias = param(net, i, 1, "bias")?;
                let (wn, bn_name) = (format!("{name}.weight"), format!("{name}.bias"));
                b.constant(&wn, &w.size(), values(&w, name)?);
                b.constant(&bn_name, &[*out], values(&bias, name)?);
                let v = out_name(i);
                b.node(
                    "Gemm",
                    name,
                    &[&input(0)?, &wn, &bn_name],
                    &v,
                    vec![int("transB", 1)],
                );
                value[i] = v;
            }
            Op::Dropout { .. } => {
                value[i] = input(0)?;
            }
        }
    }

    let classes = graph.nodes[graph.output].shape.c;
    if ranks[graph.output] != 2 {
        return Err(unsupported(
            graph.output,
            "the output is not a [1, classes] vector",
        ));
    }
    if value[graph.output] != OUTPUT_NAME {
        // The output is an alias (a dropout): give it the output name.
        let src = value[graph.output].clone();
        b.node("Identity", "output.identity", &[&src], OUTPUT_NAME, vec![]);
    }
    Ok(model_proto(graph, b, classes, producer_version))
}

/// Whether a max pool with a window wider than one pixel alone reads node `i`'s output (what
/// [`conv_form`] needs to leave a pointwise convolution's product channels-last for it).
fn max_pool_fed(graph: &Graph, readers: &[Vec<usize>], i: usize) -> bool {
    match readers[i].as_slice() {
        [k] if i != graph.output && i != graph.features => {
            matches!(graph.nodes[*k].op, Op::MaxPool { kernel, .. } if kernel > 1)
        }
        _ => false,
    }
}

/// The output height and width of the depthwise convolution that alone reads node `i`'s output,
/// directly or through a ReLU or ReLU6 that nothing else reads (what [`conv_form`] needs to
/// write a pointwise convolution channels-last).
fn depthwise_fed(graph: &Graph, readers: &[Vec<usize>], i: usize) -> Option<[i64; 2]> {
    let only_reader = |j: usize| match readers[j].as_slice() {
        [k] if j != graph.output && j != graph.features => Some(*k),
        _ => None,
    };
    let mut k = only_reader(i)?;
    if matches!(graph.nodes[k].op, Op::Relu | Op::Relu6) {
        k = only_reader(k)?;
    }
    let node = &graph.nodes[k];
    match node.op {
        Op::Conv { out, groups, .. }
            if groups > 1 && groups == out && groups == graph.in_channels(k) =>
        {
            Some([node.shape.h, node.shape.w])
        }
        _ => None,
    }
}
