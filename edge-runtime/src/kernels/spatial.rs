//! What our operators on images ([`super::depthwise`], [`super::max_pool`]) share with each
//! other: where height and width sit in either layout, reading tract's image shapes, running
//! into tract's output tensor, and the pass that puts them in place of tract's nodes.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::PaddingSpec;
use tract_onnx::tract_core::ops::nn::DataFormat;

/// The axes of height and width in a shape of `rank` (3 or 4): `[N, H, W, C]` or `[H, W, C]`
/// when channels come last, `[N, C, H, W]` or `[C, H, W]` otherwise.
pub(super) fn spatial_axes(channels_last: bool, rank: usize) -> [usize; 2] {
    if channels_last {
        [rank - 3, rank - 2]
    } else {
        [rank - 2, rank - 1]
    }
}

/// `[channels, height, width]` of an image `shape` in `format` (with or without the batch
/// axis), or `None` if the shape is not one.
pub(super) fn image_dims(format: DataFormat, shape: &[usize]) -> Option<[usize; 3]> {
    match (format, shape) {
        (DataFormat::NCHW, &[_, c, h, w]) | (DataFormat::CHW, &[c, h, w]) => Some([c, h, w]),
        (DataFormat::NHWC, &[_, h, w, c]) | (DataFormat::HWC, &[h, w, c]) => Some([c, h, w]),
        _ => None,
    }
}

/// `[top, left, bottom, right]` padding that `padding` gives an image of `input` height and
/// width under a `kernel` moved by `stride` (no dilation).
pub(super) fn pads(
    padding: &PaddingSpec,
    input: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
) -> [usize; 4] {
    let p = padding.compute(&input, &kernel, &[1, 1], &stride);
    [
        p[0].pad_before,
        p[1].pad_before,
        p[0].pad_after,
        p[1].pad_after,
    ]
}

/// The output fact of an operator `what` that maps an image to one of height and width
/// `output` in the same layout.
pub(super) fn output_facts(
    what: &str,
    inputs: &[&TypedFact],
    channels_last: bool,
    output: [usize; 2],
) -> TractResult<TVec<TypedFact>> {
    let input = inputs
        .first()
        .ok_or_else(|| format_err!("{what} without an input"))?;
    let rank = input.rank();
    ensure!(rank == 3 || rank == 4, "{what} input of rank {rank}");
    let mut shape: TVec<TDim> = input.shape.iter().cloned().collect();
    let [y, x] = spatial_axes(channels_last, rank);
    shape[y] = output[0].into();
    shape[x] = output[1].into();
    Ok(tvec!(f32::fact(shape)))
}

/// Evaluates an operator `what` of output height and width `output`: `run(input, output)`
/// writes the output values.
pub(super) fn eval(
    what: &str,
    inputs: TVec<TValue>,
    channels_last: bool,
    output: [usize; 2],
    run: impl FnOnce(&[f32], &mut [f32]) -> TractResult<()>,
) -> TractResult<TVec<TValue>> {
    let input = args_1!(inputs);
    let view = input.to_plain_array_view::<f32>()?;
    let mut shape = view.shape().to_vec();
    let rank = shape.len();
    ensure!(rank == 3 || rank == 4, "{what} input of rank {rank}");
    let data = view
        .as_slice()
        .ok_or_else(|| format_err!("{what} input is not contiguous"))?;
    let [y, x] = spatial_axes(channels_last, rank);
    [shape[y], shape[x]] = output;
    // Written straight into tract's tensor: an `ndarray` made into one is copied.
    let mut tensor = Tensor::zero::<f32>(&shape)?;
    run(data, tensor.try_as_plain_ram_mut()?.as_slice_mut::<f32>()?)?;
    Ok(tvec!(tensor.into_tvalue()))
}

/// Whether tract's output of `node` is an image of `rank` axes with height and width
/// `output`: what a replacement must compute.
pub(super) fn same_output(
    model: &TypedModel,
    node: &TypedNode,
    rank: usize,
    channels_last: bool,
    output: [usize; 2],
) -> bool {
    let Some(computed) = model
        .outlet_fact(node.id.into())
        .ok()
        .and_then(|fact| fact.shape.as_concrete().map(|s| s.to_vec()))
    else {
        return false;
    };
    if computed.len() != rank {
        return false;
    }
    let [y, x] = spatial_axes(channels_last, rank);
    [computed[y], computed[x]] == output
}

/// Puts `replacement`'s operator in place of every node of `model` it makes one for (fed by
/// the node's first input) and returns how many it replaced.
pub(super) fn replace_each<O: TypedOp>(
    model: &mut TypedModel,
    replacement: impl Fn(&TypedModel, &TypedNode) -> Option<O>,
) -> TractResult<usize> {
    let mut replaced = 0;
    for id in model.eval_order()? {
        let node = &model.nodes[id];
        let Some(op) = replacement(model, node) else {
            continue;
        };
        let mut patch = TypedModelPatch::default();
        let input = patch.tap_model(model, node.inputs[0])?;
        let output = patch.wire_node(&node.name, op, &[input])?[0];
        patch.shunt_outside(model, id.into(), output)?;
        patch.apply(model)?;
        replaced += 1;
    }
    Ok(replaced)
}
