//! Our own pointwise (1x1) convolution, put in place of tract's matrix product where our
//! networks use one.
//!
//! Every depthwise convolution of the mini-Xception and of BlazeFace is followed by a 1x1
//! convolution that mixes channels: a matrix product of `outputs x inputs` weights by
//! `inputs x pixels`, with `inputs` only 16 to 128 long. tract declutters each into an
//! `EinSum`, then runs it through its general matrix-product kernels: the input is packed
//! into panels first, the kernel's tile holds output channels along its vector lanes, so each
//! result is stored to the channels-first output one lane at a time, and the bias and ReLU
//! run per tile afterwards. On such short products that work around the multiply-adds is
//! most of the time.
//!
//! [`PointwiseConv`] computes `out[o, p] = act(bias[o] + sum_i w[o, i] * in[i, p])` with
//! whole vectors stored: channels-first output, output channels are the rows of a register
//! tile and pixels its columns (8 x 32 on AVX-512), the input rows read where they are, every
//! tile started at the bias, multiplied-added over all input channels and stored whole
//! through the ReLU. Channels-last output (also the exporter's products that read
//! channels-first and write channels-last), the roles turn: pixels are the rows, packed 8 at a
//! time, and output channels the columns (8 x 16), over weights transposed once when the
//! model loads. The loops are built per instruction set like the depthwise ones
//! ([`super::isa`]). Written so the compiler keeps the tile in registers (see `block`).
//!
//! Measured with `emotion-edge bench --profile` and `EMOTION_EDGE_KERNEL_CHOICE=tract` side
//! by side (AMD EPYC Zen 4, AVX-512, 2 cores, one thread, 2026-12-07, with our depthwise
//! convolution in both): the classifier's network 0.76 -> 0.57 ms (min, 2,000 runs, twice);
//! BlazeFace short range's detect stage 3.15 -> 2.62 ms (min, real frames, twice); full range
//! within this VM's noise (11.0 to 14.0 ms either way; its 6x6 and 12x12 maps with up to 384
//! channels are where tract's packed kernels hold up best).
//!
//! [`replace_pointwise`] finds tract's `EinSum`s that are a product of the input with a
//! constant matrix along one axis (every 1x1 convolution, in whichever layout tract left it,
//! and also BlazeFace's resize along image rows) in a decluttered model and puts one
//! [`PointwiseConv`] in place of each, together with the bias `Add` and the ReLU (`Max` with
//! 0) that follow it where they do.

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::{BinMiniOp, TypedBinOp};
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::math::{Add, Max};

use super::isa::{Isa, Loops, MulAdd, dispatch};

/// The tile of results one block of the loops keeps in registers, `(rows, columns)`, for
/// vectors of `lanes` f32, when output channels are the rows (channels-first output): 8 x 32
/// (16 accumulators) with AVX-512's 32 registers, 4 x 16 with AVX2's 16, 4 x 8 with 128-bit
/// vectors.
const fn channel_tile(lanes: usize) -> (usize, usize) {
    match lanes {
        16 => (8, 32),
        8 => (4, 16),
        _ => (4, 8),
    }
}

/// The same when pixels are the rows and output channels the columns (channels-last
/// output): 8 x 16 with AVX-512 (one vector of channels wide, so that 16 or 48 channels
/// waste no lanes), 4 x 16 with AVX2, 4 x 8 with 128-bit vectors. Measured on the products
/// of the classifier (16 to 128 channels, AMD Zen 4, 2026-12-07): 8 x 16 beat 16 x 16 and
/// 8 x 32 on all four, 4 x 16 beat 8 x 8 with AVX2.
const fn pixel_tile(lanes: usize) -> (usize, usize) {
    match lanes {
        16 => (8, 16),
        8 => (4, 16),
        _ => (4, 8),
    }
}

/// The shape of one pointwise convolution. The input is `[outer, inputs, inner]`:
/// channels-first (`NCHW`, `CHW`), `inner` is the pixels of one image and `outer` the images;
/// channels-last (`NHWC`, `HWC`), `inner` is 1 and `outer` all pixels of all images. The
/// output is `[outer, outputs, inner]`, or `[outer * inner, outputs]` if `channels_last_out`
/// (the same when `inner` is 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shape {
    /// Everything before the channel axis.
    pub outer: usize,
    /// Input channels.
    pub inputs: usize,
    /// Output channels.
    pub outputs: usize,
    /// Everything after the channel axis.
    pub inner: usize,
    /// Output channels last whatever the input's layout (a product that also transposes).
    pub channels_last_out: bool,
}

impl Shape {
    /// Whether the pixels are the tile's rows: the output is channels-last.
    fn pixel_rows(&self) -> bool {
        self.inner == 1 || self.channels_last_out
    }
}

/// An f32 1x1 convolution with constant weights and bias, optionally followed by a ReLU (see
/// the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct PointwiseConv {
    shape: Shape,
    /// The output's shape as tract sees it: `[outer, outputs, inner]` or
    /// `[outer * inner, outputs]` unless the model's output has axes of 1 elsewhere or the
    /// pixels split into height and width (same values, same order).
    output: Vec<usize>,
    /// Output channels as rows ([`channel_tile`]): `[outputs / rows][inputs][rows]`, the
    /// weights in panels of the tile's rows, the last padded with zeros. Output channels as
    /// columns ([`pixel_tile`]): `[inputs][padded]`, the weights transposed, each row padded
    /// with zeros to whole tiles of columns.
    packed: Arc<Vec<f32>>,
    /// One per output channel, padded with zeros like `packed`.
    bias: Arc<Vec<f32>>,
    relu: bool,
    isa: Isa,
}

impl PointwiseConv {
    /// A convolution of `shape` with `weights` (`[outputs, inputs]`) and `bias`
    /// (`[outputs]`), with a ReLU after it if `relu`, run with `isa`'s loops; `None` if the
    /// sizes do not agree or this CPU does not run `isa` ([`Isa::available`]).
    pub fn new(
        shape: Shape,
        weights: &[f32],
        bias: &[f32],
        relu: bool,
        isa: Isa,
    ) -> Option<PointwiseConv> {
        let Shape {
            outer,
            inputs,
            outputs,
            inner,
            ..
        } = shape;
        if !isa.available()
            || [outer, inputs, outputs, inner].contains(&0)
            || weights.len() != outputs * inputs
            || bias.len() != outputs
        {
            return None;
        }
        let (packed, padded) = if shape.pixel_rows() {
            let (_, columns) = pixel_tile(isa.lanes());
            let padded = outputs.div_ceil(columns) * columns;
            let mut packed = vec![0f32; inputs * padded];
            for (o, row) in weights.chunks_exact(inputs).enumerate() {
                for (i, &w) in row.iter().enumerate() {
                    packed[i * padded + o] = w;
                }
            }
            (packed, padded)
        } else {
            let (rows, _) = channel_tile(isa.lanes());
            let padded = outputs.div_ceil(rows) * rows;
            let mut packed = vec![0f32; padded * inputs];
            for (o, row) in weights.chunks_exact(inputs).enumerate() {
                let panel = &mut packed[o / rows * rows * inputs..][..rows * inputs];
                for (i, &w) in row.iter().enumerate() {
                    panel[i * rows + o % rows] = w;
                }
            }
            (packed, padded)
        };
        let mut bias = bias.to_vec();
        bias.resize(padded, 0.0);
        let output = if shape.pixel_rows() {
            vec![outer * inner, outputs]
        } else {
            vec![outer, outputs, inner]
        };
        Some(PointwiseConv {
            shape,
            output,
            packed: Arc::new(packed),
            bias: Arc::new(bias),
            relu,
            isa,
        })
    }

    /// Convolves `input` (`[outer, inputs, inner]`) into `[outer, outputs, inner]`, or
    /// `[outer * inner, outputs]` if the output is channels-last.
    pub fn run(&self, input: &[f32]) -> TractResult<Vec<f32>> {
        let s = &self.shape;
        let mut out = vec![0f32; s.outer * s.outputs * s.inner];
        self.run_into(input, &mut out)?;
        Ok(out)
    }

    /// [`PointwiseConv::run`] into `out`, which must hold exactly the output.
    pub fn run_into(&self, input: &[f32], out: &mut [f32]) -> TractResult<()> {
        let Shape {
            outer,
            inputs,
            outputs,
            inner,
            ..
        } = self.shape;
        ensure!(
            input.len() == outer * inputs * inner && out.len() == outer * outputs * inner,
            "pointwise convolution of {outer} x {inputs} x {inner} values got {} in, {} out",
            input.len(),
            out.len()
        );
        dispatch(
            self.isa,
            Product {
                op: self,
                input,
                out,
            },
        );
        Ok(())
    }
}

/// One call's input and output.
struct Product<'a> {
    op: &'a PointwiseConv,
    input: &'a [f32],
    out: &'a mut [f32],
}

impl Loops for Product<'_> {
    #[inline(always)]
    fn run<M: MulAdd, const LANES: usize>(self) {
        // `channel_tile(LANES)` and `pixel_tile(LANES)`, spelled out: const generic
        // arguments cannot be computed.
        match (LANES, self.op.shape.pixel_rows()) {
            (16, false) => self.channel_rows::<M, 8, 32, 16>(),
            (16, true) => self.pixel_rows::<M, 8, 16>(),
            (8, false) => self.channel_rows::<M, 4, 16, 8>(),
            (8, true) => self.pixel_rows::<M, 4, 16>(),
            (_, false) => self.channel_rows::<M, 4, 8, 4>(),
            (_, true) => self.pixel_rows::<M, 4, 8>(),
        }
    }
}

impl Product<'_> {
    /// Output channels-last: pixels are the rows, `ROWS` at a time, packed `[inputs][ROWS]`
    /// from the input in either layout; output channels are the columns.
    #[inline(always)]
    fn pixel_rows<M: MulAdd, const ROWS: usize, const COLUMNS: usize>(self) {
        let op = self.op;
        let (inputs, outputs, inner) = (op.shape.inputs, op.shape.outputs, op.shape.inner);
        let padded = op.bias.len();
        let mut rows = vec![[0f32; ROWS]; inputs];
        for (group, dst) in self.out.chunks_mut(ROWS * outputs).enumerate() {
            let count = dst.len() / outputs;
            let (image, at) = (group * ROWS / inner, group * ROWS % inner);
            if inner > 1 && count == ROWS && at + ROWS <= inner {
                // Channels-first input, all rows' pixels in one image: each input channel's
                // values for them are side by side (two to three times faster to pack).
                let src = self.input.get(image * inputs * inner + at..).unwrap_or(&[]);
                for (row, line) in rows.iter_mut().zip(src.chunks(inner)) {
                    if let Some(values) = line.first_chunk::<ROWS>() {
                        *row = *values;
                    }
                }
            } else {
                pack_pixels(self.input, op.shape, &mut rows, group * ROWS, count);
            }
            for first in (0..padded).step_by(COLUMNS) {
                let Some(bias) = op.bias[first..].first_chunk::<COLUMNS>() else {
                    return;
                };
                let mut acc = [*bias; ROWS];
                block::<M, ROWS, COLUMNS>(&rows, &op.packed[first..], padded, &mut acc);
                let width = COLUMNS.min(outputs - first);
                for (out, acc) in dst.chunks_exact_mut(outputs).zip(&acc) {
                    store(&mut out[first..first + width], acc, op.relu);
                }
            }
        }
    }

    /// Output channels-first: output channels are the rows (weight panels packed at load),
    /// pixels the columns, `COLUMNS` at a time (`HALF` at the end if that is enough).
    #[inline(always)]
    fn channel_rows<M: MulAdd, const ROWS: usize, const COLUMNS: usize, const HALF: usize>(self) {
        let op = self.op;
        let (inputs, outputs, inner) = (op.shape.inputs, op.shape.outputs, op.shape.inner);
        // Whole blocks are read where they are; the end of each image is copied into a
        // zero-padded block (and run on a tile half as wide when that is enough: 4 of 36
        // pixels at 6x6). Copying every block first was measured too: no faster on the
        // classifier, twice as slow for one panel of outputs (32 -> 8 channels at 96x96).
        let whole = inner / COLUMNS * COLUMNS;
        let mut tail = vec![0f32; if whole < inner { inputs * COLUMNS } else { 0 }];
        let images = self
            .input
            .chunks_exact(inputs * inner)
            .zip(self.out.chunks_exact_mut(outputs * inner));
        for (src, dst) in images {
            for first in (0..whole).step_by(COLUMNS) {
                op.columns::<M, ROWS, COLUMNS>(first, &src[first..], inner, dst);
            }
            let width = inner - whole;
            if width > 0 {
                for (row, line) in tail.chunks_exact_mut(COLUMNS).zip(src.chunks_exact(inner)) {
                    row[..width].copy_from_slice(&line[whole..]);
                }
                if width <= HALF {
                    op.columns::<M, ROWS, HALF>(whole, &tail, COLUMNS, dst);
                } else {
                    op.columns::<M, ROWS, COLUMNS>(whole, &tail, COLUMNS, dst);
                }
            }
        }
    }
}

impl PointwiseConv {
    /// Channels-first, the outputs of pixels `first..first + COLUMNS` (fewer at the end of
    /// the image) of every output channel, from `b`, the inputs of those pixels (`ldb` apart
    /// from one input channel to the next). A method, not a closure: closures do not take the
    /// instruction set of the function they are written in (one here called `fmaf` per
    /// multiply-add).
    #[inline(always)]
    fn columns<M: MulAdd, const ROWS: usize, const COLUMNS: usize>(
        &self,
        first: usize,
        b: &[f32],
        ldb: usize,
        dst: &mut [f32],
    ) {
        let Shape {
            inputs,
            outputs,
            inner,
            ..
        } = self.shape;
        let width = COLUMNS.min(inner - first);
        let (panels, _) = self.packed.as_chunks::<ROWS>();
        for (p, panel) in panels.chunks_exact(inputs).enumerate() {
            let mut acc = [[0f32; COLUMNS]; ROWS];
            for (r, acc) in acc.iter_mut().enumerate() {
                *acc = [self.bias[p * ROWS + r]; COLUMNS];
            }
            block::<M, ROWS, COLUMNS>(panel, b, ldb, &mut acc);
            for (r, acc) in acc.iter().enumerate().take(outputs - p * ROWS) {
                let start = (p * ROWS + r) * inner + first;
                store(&mut dst[start..start + width], acc, self.relu);
            }
        }
    }
}

/// `rows[k][r]`: input channel `k` of pixel `first + r`, for the `count` pixels left (the
/// rest 0), in either input layout.
#[inline(always)]
fn pack_pixels<const ROWS: usize>(
    input: &[f32],
    shape: Shape,
    rows: &mut [[f32; ROWS]],
    first: usize,
    count: usize,
) {
    let Shape { inputs, inner, .. } = shape;
    for r in 0..ROWS {
        if r >= count {
            rows.iter_mut().for_each(|row| row[r] = 0.0);
            continue;
        }
        let pixel = first + r;
        let (image, at) = (pixel / inner, pixel % inner);
        let src = input.get(image * inputs * inner + at..).unwrap_or(&[]);
        for (row, &v) in rows.iter_mut().zip(src.iter().step_by(inner)) {
            row[r] = v;
        }
    }
}

/// `out = acc` (as many as `out` holds), through a ReLU if `relu`.
#[inline(always)]
fn store(out: &mut [f32], acc: &[f32], relu: bool) {
    if relu {
        for (o, &v) in out.iter_mut().zip(acc) {
            *o = v.max(0.0);
        }
    } else {
        let n = out.len();
        out.copy_from_slice(&acc[..n]);
    }
}

/// `acc[r][j] += sum over k of a[k][r] * b[k * ldb + j]`: one register tile, every `k`.
#[inline(always)]
fn block<M: MulAdd, const ROWS: usize, const COLUMNS: usize>(
    a: &[[f32; ROWS]],
    b: &[f32],
    ldb: usize,
    acc: &mut [[f32; COLUMNS]; ROWS],
) {
    for (k, a) in a.iter().enumerate() {
        let Some(b) = b.get(k * ldb..).and_then(|b| b.first_chunk::<COLUMNS>()) else {
            return;
        };
        // Columns outside, rows inside: the compiler then vectorises along the columns and
        // keeps the whole tile in registers (rows outside, it vectorised along the rows with
        // gathers and scatters).
        for j in 0..COLUMNS {
            for r in 0..ROWS {
                acc[r][j] = M::mul_add(a[r], b[j], acc[r][j]);
            }
        }
    }
}

// tract compares operators to merge equal nodes; weights compare by value.
impl Eq for PointwiseConv {}

impl Op for PointwiseConv {
    fn name(&self) -> StaticName {
        "EmotionPointwiseConv".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let s = &self.shape;
        Ok(vec![format!(
            "{} -> {} channels, {} x {} points, {}{} loops",
            s.inputs,
            s.outputs,
            s.outer,
            s.inner,
            if self.relu { "ReLU, " } else { "" },
            self.isa.name()
        )])
    }

    fn validation(&self) -> Validation {
        Validation::Rounding
    }

    op_as_typed_op!();
}

impl EvalOp for PointwiseConv {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let view = input.to_plain_array_view::<f32>()?;
        let data = view
            .as_slice()
            .ok_or_else(|| format_err!("pointwise input is not contiguous"))?;
        // Written straight into tract's tensor: an `ndarray` made into one is copied.
        let mut output = Tensor::zero::<f32>(&self.output)?;
        self.run_into(data, output.try_as_plain_ram_mut()?.as_slice_mut::<f32>()?)?;
        Ok(tvec!(output.into_tvalue()))
    }
}

impl TypedOp for PointwiseConv {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let input = inputs
            .first()
            .ok_or_else(|| format_err!("pointwise convolution without an input"))?;
        let s = &self.shape;
        ensure!(
            input.shape.volume() == (s.outer * s.inputs * s.inner).to_dim(),
            "pointwise convolution of {} x {} x {} values given {:?}",
            s.outer,
            s.inputs,
            s.inner,
            input.shape
        );
        Ok(tvec!(f32::fact(&self.output)))
    }

    fn cost(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let s = &self.shape;
        let fmas = s.outer * s.inputs * s.outputs * s.inner;
        Ok(tvec!((Cost::FMA(f32::datum_type()), fmas.into())))
    }

    as_op!();
}

/// The constant of `node`'s other input than `from`, if `node` has two inputs, one of them
/// `from` and the other a constant.
fn other_constant(model: &TypedModel, node: &TypedNode, from: OutletId) -> Option<Arc<Tensor>> {
    let other = match node.inputs.as_slice() {
        [a, b] if *a == from => *b,
        [a, b] if *b == from => *a,
        _ => return None,
    };
    model.outlet_fact(other).ok()?.konst.clone()
}

/// The only node reading `outlet`, if exactly one does and it is not a model output.
fn only_successor(model: &TypedModel, outlet: OutletId) -> Option<&TypedNode> {
    if model.outputs.contains(&outlet) {
        return None;
    }
    match model.outlet_successors(outlet) {
        [one] => Some(&model.nodes[one.node]),
        _ => None,
    }
}

/// The element-wise binary operator `M` of `node` with a constant on its other side than
/// `from`: that constant.
fn binary_with_constant<M: BinMiniOp>(
    model: &TypedModel,
    node: &TypedNode,
    from: OutletId,
) -> Option<Arc<Tensor>> {
    let op = node.op_as::<TypedBinOp>()?;
    if !op.0.is::<M>() {
        return None;
    }
    other_constant(model, node, from)
}

/// What replaces one 1x1 convolution: the operator, and the last node it stands for (the
/// `EinSum`, its bias `Add` or the ReLU after that).
struct Replacement {
    op: PointwiseConv,
    last: usize,
}

/// The `PointwiseConv` that computes `node` (tract's `EinSum` of a 1x1 convolution) and the
/// bias and ReLU after it, if it is one we run: f32, constant `[outputs, inputs]` weights,
/// the input's channel axis reduced into the output's at the same position, every other axis
/// kept in place, a known input size.
fn replacement(model: &TypedModel, node: &TypedNode, isa: Isa) -> Option<Replacement> {
    let einsum = node.op_as::<EinSum>()?;
    if einsum.q_params.is_some()
        || einsum.operating_dt != f32::datum_type()
        || node.inputs.len() != 2
    {
        return None;
    }
    let input = model.outlet_fact(node.inputs[0]).ok()?;
    let weights = model.outlet_fact(node.inputs[1]).ok()?.konst.clone()?;
    if input.datum_type != f32::datum_type() || weights.rank() != 2 {
        return None;
    }
    let shape = input.shape.as_concrete()?;
    let out_shape = model
        .outlet_fact(node.id.into())
        .ok()?
        .shape
        .as_concrete()?;
    let (mut reduced, mut mixed, mut kept) = (None, None, Vec::new());
    for axis in einsum.axes.iter_all_axes() {
        let [data, weight] = [&axis.inputs[0][..], &axis.inputs[1][..]];
        match (data, weight, &axis.outputs[0][..]) {
            (&[i], &[w], &[]) if reduced.is_none() => reduced = Some((i, w)),
            (&[], &[w], &[o]) if mixed.is_none() => mixed = Some((o, w)),
            (&[i], &[], &[o]) => kept.push((i, o)),
            // Axes of one element that tract drops or adds move no values.
            (&[i], &[], &[]) if shape.get(i) == Some(&1) => {}
            (&[], &[], &[o]) if out_shape.get(o) == Some(&1) => {}
            _ => return None,
        }
    }
    let ((axis, w_in), (out_axis, w_out)) = (reduced?, mixed?);
    // The other axes of more than one element keep their order, so the pixels are in the same
    // order on both sides; each keeps its side of the channel axis (the values are
    // `[outer, channels, inner]` on both sides), or the output has them all before it (a
    // product that also transposes to channels-last).
    kept.retain(|&(i, _)| shape[i] > 1);
    kept.sort_unstable();
    let in_order = kept.windows(2).all(|pair| pair[0].1 < pair[1].1);
    let same_side = kept.iter().all(|&(i, o)| (i < axis) == (o < out_axis));
    let channels_last_out = kept.iter().all(|&(_, o)| o < out_axis);
    if w_in == w_out || !in_order || !(same_side || channels_last_out) {
        return None;
    }
    let weights = weights.cast_to::<f32>().ok()?;
    let weights = weights.to_plain_array_view::<f32>().ok()?;
    let weights = if w_out == 0 {
        weights
    } else {
        weights.reversed_axes()
    };
    let &[outputs, inputs] = weights.shape() else {
        return None;
    };
    if shape.get(axis) != Some(&inputs) || out_shape.get(out_axis) != Some(&outputs) {
        return None;
    }
    let weights: Vec<f32> = weights.iter().copied().collect();
    let geometry = Shape {
        outer: shape[..axis].iter().product(),
        inputs,
        outputs,
        inner: shape[axis + 1..].iter().product(),
        channels_last_out,
    };
    // The bias: `Add` of a constant of one value per output channel on the channel axis
    // (or one value), if the `EinSum`'s only reader is one.
    let mut last = node;
    let mut bias = vec![0f32; outputs];
    if let Some(add) = only_successor(model, node.id.into())
        && let Some(constant) = binary_with_constant::<Add>(model, add, node.id.into())
        && let Some(values) = per_channel(&constant, out_axis, out_shape.len(), outputs)
    {
        bias = values;
        last = add;
    }
    // The ReLU: `Max` with a constant 0 of no more axes.
    let mut relu = false;
    if let Some(max) = only_successor(model, last.id.into())
        && let Some(constant) = binary_with_constant::<Max>(model, max, last.id.into())
        && constant.len() == 1
        && constant.rank() <= out_shape.len()
        && constant
            .cast_to_scalar::<f32>()
            .is_ok_and(|zero| zero == 0.0)
    {
        relu = true;
        last = max;
    }
    let mut op = PointwiseConv::new(geometry, &weights, &bias, relu, isa)?;
    let output = model
        .outlet_fact(last.id.into())
        .ok()?
        .shape
        .as_concrete()?;
    if output.iter().product::<usize>() != out_shape.iter().product::<usize>() {
        return None;
    }
    op.output = output.to_vec();
    Some(Replacement { op, last: last.id })
}

/// The values of `constant` if it holds one per output channel along `axis` of a rank-`rank`
/// tensor (every other axis 1), or one value for all; `None` otherwise.
fn per_channel(constant: &Tensor, axis: usize, rank: usize, outputs: usize) -> Option<Vec<f32>> {
    let shape = constant.shape();
    if constant.datum_type() != f32::datum_type() || shape.len() > rank {
        return None;
    }
    // Broadcasting aligns the constant's axes to the right.
    let offset = rank - shape.len();
    let per_axis = shape
        .iter()
        .enumerate()
        .all(|(i, &d)| d == 1 || (i + offset == axis && d == outputs));
    if !per_axis {
        return None;
    }
    let values = constant.to_plain_array_view::<f32>().ok()?;
    let values: Vec<f32> = values.iter().copied().collect();
    match values.len() {
        1 => Some(vec![values[0]; outputs]),
        n if n == outputs => Some(values),
        _ => None,
    }
}

/// Puts [`PointwiseConv`] in place of every 1x1 convolution it computes in `model`
/// (decluttered), with the bias and ReLU after it, and returns how many it replaced.
pub fn replace_pointwise(model: &mut TypedModel, isa: Isa) -> TractResult<usize> {
    let mut replaced = 0;
    for id in model.eval_order()? {
        let Some(node) = model.nodes.get(id) else {
            continue;
        };
        let Some(Replacement { op, last }) = replacement(model, node, isa) else {
            continue;
        };
        let mut patch = TypedModelPatch::default();
        let input = patch.tap_model(model, node.inputs[0])?;
        let name = model.nodes[last].name.clone();
        let output = patch.wire_node(name, op, &[input])?[0];
        patch.shunt_outside(model, last.into(), output)?;
        patch.apply(model)?;
        replaced += 1;
    }
    Ok(replaced)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{assert_close, decluttered, node, run_model, tensor, value_info, values};

    /// The convolution by its definition, in f64, in the output layout of `s`.
    fn reference(s: &Shape, input: &[f32], weights: &[f32], bias: &[f32], relu: bool) -> Vec<f32> {
        let mut out = vec![0f32; s.outer * s.outputs * s.inner];
        for n in 0..s.outer {
            for o in 0..s.outputs {
                for p in 0..s.inner {
                    let mut sum = f64::from(bias[o]);
                    for i in 0..s.inputs {
                        let x = input[(n * s.inputs + i) * s.inner + p];
                        sum += f64::from(weights[o * s.inputs + i]) * f64::from(x);
                    }
                    let at = if s.channels_last_out {
                        (n * s.inner + p) * s.outputs + o
                    } else {
                        (n * s.outputs + o) * s.inner + p
                    };
                    out[at] = if relu { sum.max(0.0) } else { sum } as f32;
                }
            }
        }
        out
    }

    #[test]
    fn matches_the_definition_on_every_shape_layout_and_isa() {
        let shapes = [
            // Whole tiles of every instruction set.
            (1, 16, 16, 64),
            // Channels-first with a tail of pixels, output channels not a whole panel.
            (2, 5, 13, 37),
            (1, 32, 7, 3),
            (1, 3, 42, 100),
            // Channels-last (`inner` 1): pixels as rows, with a remainder of rows.
            (19, 6, 37, 1),
            (64, 16, 16, 1),
            (3, 128, 9, 1),
        ];
        for (outer, inputs, outputs, inner) in shapes {
            // Each also channels-first in, channels-last out (the same as channels-last
            // when `inner` is 1).
            for channels_last_out in [false, true] {
                let s = Shape {
                    outer,
                    inputs,
                    outputs,
                    inner,
                    channels_last_out,
                };
                let x = values(outer * inputs * inner, 1);
                let weights = values(outputs * inputs, 2);
                let bias = values(outputs, 3);
                for relu in [false, true] {
                    let want = reference(&s, &x, &weights, &bias, relu);
                    for isa in Isa::all_available() {
                        let op = PointwiseConv::new(s, &weights, &bias, relu, isa).expect("op");
                        let got = op.run(&x).expect("run");
                        assert_close(&got, &want, 1e-4, &format!("{s:?} {isa:?} relu {relu}"));
                    }
                }
            }
        }
    }

    /// `[1, 6, 9, 7]` -> 1x1 to 20 channels -> Relu -> 1x1 to 5 channels, whose output is
    /// both the model's first output and, through Relu, its second; as ONNX.
    fn pointwise_onnx() -> Vec<u8> {
        use tract_onnx::pb;
        let dim = pb::tensor_shape_proto::dimension::Value::DimValue;
        let graph = pb::GraphProto {
            name: "pointwise".into(),
            node: vec![
                node("Conv", &["input", "pw1_w", "pw1_b"], &["pw1"], vec![]),
                node("Relu", &["pw1"], &["relu1"], vec![]),
                node("Conv", &["relu1", "pw2_w", "pw2_b"], &["pw2"], vec![]),
                node("Relu", &["pw2"], &["relu2"], vec![]),
            ],
            initializer: vec![
                tensor("pw1_w", &[20, 6, 1, 1], values(120, 4)),
                tensor("pw1_b", &[20], values(20, 5)),
                tensor("pw2_w", &[5, 20, 1, 1], values(100, 6)),
                tensor("pw2_b", &[5], values(5, 7)),
            ],
            input: vec![value_info("input", vec![dim(1), dim(6), dim(9), dim(7)])],
            output: vec![
                value_info("pw2", vec![dim(1), dim(5), dim(9), dim(7)]),
                value_info("relu2", vec![dim(1), dim(5), dim(9), dim(7)]),
            ],
            ..Default::default()
        };
        crate::testkit::onnx_model(graph)
    }

    #[test]
    fn replaces_the_pointwise_convolutions_of_a_model_and_keeps_its_values() {
        let decluttered = decluttered(&pointwise_onnx());
        let mut ours = decluttered.clone();
        let replaced = replace_pointwise(&mut ours, Isa::detect()).expect("replace");
        assert_eq!(replaced, 2);
        let ours = ours.into_optimized().expect("optimise");
        let ops: Vec<&PointwiseConv> = ours
            .nodes
            .iter()
            .filter_map(|n| n.op_as::<PointwiseConv>())
            .collect();
        // The first takes its ReLU in; the second's output is read twice, so its ReLU stays.
        let relus: Vec<bool> = ops.iter().map(|op| op.relu).collect();
        assert_eq!(relus, [true, false], "still in the optimised plan");
        let theirs = decluttered.into_optimized().expect("optimise");
        assert!(!theirs.nodes.iter().any(|n| n.op_is::<PointwiseConv>()));
        let input = values(6 * 9 * 7, 10);
        let a = run_model(ours, &[1, 6, 9, 7], &input);
        let b = run_model(theirs, &[1, 6, 9, 7], &input);
        assert_eq!(a.len(), 2);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.len(), 5 * 9 * 7);
            assert_close(x, y, 1e-5, &"ours against tract's");
        }
        assert!(
            a[0].iter().any(|&v| v < 0.0),
            "the first output is before the ReLU"
        );
    }

    #[test]
    fn refuses_sizes_that_do_not_agree_and_loops_the_cpu_lacks() {
        let s = Shape {
            outer: 1,
            inputs: 3,
            outputs: 2,
            inner: 4,
            channels_last_out: false,
        };
        let ok = |w: usize, b: usize, isa: Isa| {
            PointwiseConv::new(s, &vec![0.5; w], &vec![0.0; b], false, isa).is_some()
        };
        assert!(ok(6, 2, Isa::Baseline));
        assert!(!ok(5, 2, Isa::Baseline));
        assert!(!ok(6, 3, Isa::Baseline));
        for isa in [Isa::Avx512, Isa::Avx2Fma, Isa::Neon] {
            assert_eq!(ok(6, 2, isa), isa.available(), "{isa:?}");
        }
        let empty = Shape { inner: 0, ..s };
        assert!(PointwiseConv::new(empty, &[0.0; 6], &[0.0; 2], false, Isa::Baseline).is_none());
        let op = PointwiseConv::new(s, &[0.5; 6], &[0.0; 2], false, Isa::Baseline).expect("op");
        assert_eq!(op.run(&[1.0; 12]).expect("run"), vec![1.5; 8]);
        assert!(op.run(&[1.0; 11]).is_err());
        assert!(op.run(&[]).is_err());
    }
}
