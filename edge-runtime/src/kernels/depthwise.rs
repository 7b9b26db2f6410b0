//! Our own depthwise convolution, put in place of tract's where our networks use it.
//!
//! Both networks the edge runs are built of depthwise-separable blocks: the mini-Xception's
//! eight 3x3 depthwise convolutions (16 channels of 60x60 down to 128 of 8x8) and BlazeFace's
//! (3x3 and 5x5, stride 1 and 2). tract 0.23 runs a channels-first depthwise convolution
//! plane by plane through border zones, with an 8-wide multiply then add on x86
//! (`depthwise_w` kernels), and a channels-last one without a vector kernel on x86. That was
//! the largest gap to onnxruntime in the classifier's profile (the eight took 0.20 ms in
//! tract, 0.07 ms in onnxruntime, on an AVX-512 Xeon, 2026-12-06).
//!
//! [`DepthwiseConv`] computes the same convolution the plain way. Channels-first, each
//! channel's plane is copied once into a zero-bordered buffer, so no output point needs a
//! border test; at stride 1 output point `(y, x)` then reads the buffer from flat index
//! `y * padded_width + x` on, so the whole plane is one flat loop (3x3: nine loads and nine
//! multiply-adds per point in one pass), computed at the padded width and cut back. Other
//! strides go row by row. Channels-last, the image is zero-bordered the same way and each
//! output point's channels are summed 16 at a time in registers over all taps. Those loops
//! are written for the compiler to vectorise and built once per instruction set
//! ([`super::isa`]).
//!
//! Measured with `emotion-edge bench --profile` and `EMOTION_EDGE_KERNEL_CHOICE=tract` side
//! by side (AMD EPYC Zen 3, AVX2, 2 cores, one thread, 2,000 runs, twice, 2026-12-07): the
//! classifier's eight depthwise convolutions 0.259 -> 0.139 ms (16 of 60x60 0.056 -> 0.043,
//! 32 of 30x30 0.053 -> 0.021, channels-last 64 of 15x15 0.025 -> 0.018), the network alone
//! 0.80 -> 0.68 ms (min); BlazeFace short range's detect stage 3.18 -> 2.78 ms (min).
//!
//! [`replace_depthwise`] puts [`DepthwiseConv`] in place of every f32 group-per-channel 2D
//! convolution with constant weights and no dilation of a decluttered model, in either
//! layout tract gave it ([`super::into_plan`] calls it).

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat};

use super::isa::{Isa, Loops, MulAdd, dispatch};
use super::spatial;

/// Geometry of one depthwise convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Geometry {
    /// Channels (input = output).
    pub channels: usize,
    /// Input height and width.
    pub input: [usize; 2],
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Stride, both axes.
    pub stride: usize,
    /// Zero padding `[top, left, bottom, right]`.
    pub pad: [usize; 4],
    /// `[N, H, W, C]` (or `[H, W, C]`) rather than `[N, C, H, W]` (or `[C, H, W]`).
    pub channels_last: bool,
}

impl Geometry {
    /// Height and width of the zero-bordered input plane.
    fn padded(&self) -> [usize; 2] {
        [
            self.input[0] + self.pad[0] + self.pad[2],
            self.input[1] + self.pad[1] + self.pad[3],
        ]
    }

    /// Output height and width, or `None` if the kernel does not fit the padded input or the
    /// stride is zero.
    pub fn output(&self) -> Option<[usize; 2]> {
        let [ph, pw] = self.padded();
        let [kh, kw] = self.kernel;
        if self.stride == 0 || kh == 0 || kw == 0 || kh > ph || kw > pw {
            return None;
        }
        Some([(ph - kh) / self.stride + 1, (pw - kw) / self.stride + 1])
    }

    /// `[C, H, W]` or `[H, W, C]` of this geometry.
    fn image_shape(&self) -> [usize; 3] {
        let [h, w] = self.input;
        if self.channels_last {
            [h, w, self.channels]
        } else {
            [self.channels, h, w]
        }
    }
}

/// An f32 depthwise convolution with constant weights (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct DepthwiseConv {
    geometry: Geometry,
    output: [usize; 2],
    /// `[C, kh, kw]` channels-first, `[kh, kw, C]` channels-last: the order the loops read.
    weights: Arc<Vec<f32>>,
    /// One per channel.
    bias: Arc<Vec<f32>>,
    isa: Isa,
}

impl DepthwiseConv {
    /// A convolution of `geometry` with `weights` (`[C, kh, kw]`) and `bias` (`[C]`), run with
    /// `isa`'s loops, or `None` if the sizes do not agree, the kernel does not fit or this CPU
    /// does not run `isa` ([`Isa::available`]).
    pub fn new(
        geometry: Geometry,
        weights: Vec<f32>,
        bias: Vec<f32>,
        isa: Isa,
    ) -> Option<DepthwiseConv> {
        if !isa.available() {
            return None;
        }
        let output = geometry.output()?;
        let [kh, kw] = geometry.kernel;
        let c = geometry.channels;
        if weights.len() != c * kh * kw || bias.len() != c {
            return None;
        }
        let weights = if geometry.channels_last {
            (0..kh * kw)
                .flat_map(|tap| weights.iter().skip(tap).step_by(kh * kw).copied())
                .collect()
        } else {
            weights
        };
        Some(DepthwiseConv {
            geometry,
            output,
            weights: Arc::new(weights),
            bias: Arc::new(bias),
            isa,
        })
    }

    /// Convolves `input`, whole images of this geometry one after another (`[N, C, H, W]`,
    /// or `[N, H, W, C]` when channels-last), into `[N, C, OH, OW]` (`[N, OH, OW, C]`).
    pub fn run(&self, input: &[f32]) -> TractResult<Vec<f32>> {
        let mut out = vec![0f32; self.output_len(input.len())?];
        self.run_into(input, &mut out)?;
        Ok(out)
    }

    /// How many values the output of `input_len` input values has, or an error if that is
    /// not a whole number of images.
    fn output_len(&self, input_len: usize) -> TractResult<usize> {
        let g = &self.geometry;
        let [c, h, w] = g.image_shape();
        let image = c * h * w;
        ensure!(
            image > 0 && input_len > 0 && input_len.is_multiple_of(image),
            "depthwise convolution of {:?} images got {} values",
            g.image_shape(),
            input_len
        );
        let [oh, ow] = self.output;
        Ok(input_len / image * g.channels * oh * ow)
    }

    /// [`DepthwiseConv::run`] into `out`, which must hold exactly the output.
    pub fn run_into(&self, input: &[f32], out: &mut [f32]) -> TractResult<()> {
        ensure!(
            out.len() == self.output_len(input.len())?,
            "depthwise output of {} values for {} input values",
            out.len(),
            input.len()
        );
        if self.geometry.channels_last {
            self.run_channels_last(input, out);
        } else {
            self.run_channels_first(input, out);
        }
        Ok(())
    }

    fn run_channels_first(&self, input: &[f32], out: &mut [f32]) {
        let g = &self.geometry;
        let ([h, w], [oh, ow], [ph, pw]) = (g.input, self.output, g.padded());
        let [kh, kw] = g.kernel;
        // `kw - 1` zeros past the end: the last full-width output row reads that far.
        let mut padded = vec![0f32; ph * pw + kw - 1];
        let mut full = vec![0f32; if g.stride == 1 { oh * pw } else { 0 }];
        let planes = input.chunks_exact(h * w).zip(out.chunks_exact_mut(oh * ow));
        for (index, (plane, out_plane)) in planes.enumerate() {
            let channel = index % g.channels;
            for (row, src) in plane.chunks_exact(w).enumerate() {
                let start = (row + g.pad[0]) * pw + g.pad[1];
                padded[start..start + w].copy_from_slice(src);
            }
            dispatch(
                self.isa,
                Planar {
                    padded: &padded,
                    padded_width: pw,
                    taps: &self.weights[channel * kh * kw..(channel + 1) * kh * kw],
                    kernel: g.kernel,
                    stride: g.stride,
                    bias: self.bias[channel],
                    out: out_plane,
                    width: ow,
                    full: &mut full,
                },
            );
        }
    }

    fn run_channels_last(&self, input: &[f32], out: &mut [f32]) {
        let g = &self.geometry;
        let c = g.channels;
        let ([h, w], [oh, ow], [ph, pw]) = (g.input, self.output, g.padded());
        let mut padded = vec![0f32; ph * pw * c];
        let images = input
            .chunks_exact(h * w * c)
            .zip(out.chunks_exact_mut(oh * ow * c));
        for (image, out_image) in images {
            for (row, src) in image.chunks_exact(w * c).enumerate() {
                let start = ((row + g.pad[0]) * pw + g.pad[1]) * c;
                padded[start..start + w * c].copy_from_slice(src);
            }
            dispatch(
                self.isa,
                Interleaved {
                    padded: &padded,
                    padded_width: pw,
                    channels: c,
                    taps: &self.weights,
                    kernel: g.kernel,
                    stride: g.stride,
                    bias: &self.bias,
                    out: out_image,
                    width: ow,
                },
            );
        }
    }
}

/// One channel's plane, zero-bordered, and where its output goes.
struct Planar<'a> {
    padded: &'a [f32],
    padded_width: usize,
    taps: &'a [f32],
    kernel: [usize; 2],
    stride: usize,
    bias: f32,
    out: &'a mut [f32],
    width: usize,
    /// Scratch of `oh * padded_width` points at stride 1, empty otherwise.
    full: &'a mut [f32],
}

impl Loops for Planar<'_> {
    /// At stride 1, output point `(y, x)` reads the padded plane from flat index
    /// `y * padded_width + x` on, so the rows computed at the padded width are one flat loop
    /// over the whole plane (the last `kw - 1` points of each row are computed and dropped);
    /// at other strides, row by row.
    #[inline(always)]
    fn run<M: MulAdd, const LANES: usize>(self) {
        if self.stride != 1 {
            return strided_rows::<M>(self);
        }
        let pw = self.padded_width;
        let [kh, kw] = self.kernel;
        let full = self.full;
        let n = full.len();
        if kh == 3 && kw == 3 {
            nine_taps::<M>(full, self.padded, pw, self.taps, self.bias);
        } else {
            full.fill(self.bias);
            for ky in 0..kh {
                for kx in 0..kw {
                    let offset = ky * pw + kx;
                    let tap = self.taps[ky * kw + kx];
                    let src = &self.padded[offset..offset + n];
                    for (o, &v) in full.iter_mut().zip(src) {
                        *o = M::mul_add(tap, v, *o);
                    }
                }
            }
        }
        for (dst, src) in self
            .out
            .chunks_exact_mut(self.width)
            .zip(full.chunks_exact(pw))
        {
            dst.copy_from_slice(&src[..self.width]);
        }
    }
}

/// `full[i] = bias + sum of taps[ky * 3 + kx] * padded[i + ky * pw + kx]`, all nine taps in
/// one pass (nine loads, nine multiply-adds and two adds, one store per point).
#[inline(always)]
fn nine_taps<M: MulAdd>(full: &mut [f32], padded: &[f32], pw: usize, taps: &[f32], bias: f32) {
    let n = full.len();
    let at = |offset: usize| &padded[offset..offset + n];
    let (a0, a1, a2) = (at(0), at(1), at(2));
    let (b0, b1, b2) = (at(pw), at(pw + 1), at(pw + 2));
    let (c0, c1, c2) = (at(2 * pw), at(2 * pw + 1), at(2 * pw + 2));
    let t: [f32; 9] = [
        taps[0], taps[1], taps[2], taps[3], taps[4], taps[5], taps[6], taps[7], taps[8],
    ];
    for i in 0..n {
        // Three independent chains, one per kernel row, so consecutive points overlap in the
        // CPU instead of waiting on one nine-long chain of multiply-adds.
        let top = M::mul_add(
            t[2],
            a2[i],
            M::mul_add(t[1], a1[i], M::mul_add(t[0], a0[i], bias)),
        );
        let mid = M::mul_add(t[5], b2[i], M::mul_add(t[4], b1[i], t[3] * b0[i]));
        let low = M::mul_add(t[8], c2[i], M::mul_add(t[7], c1[i], t[6] * c0[i]));
        full[i] = top + (mid + low);
    }
}

/// Stride 2 and up: every output row is the bias plus each tap times its strided input row.
#[inline(always)]
fn strided_rows<M: MulAdd>(p: Planar) {
    let [kh, kw] = p.kernel;
    let (stride, pw) = (p.stride, p.padded_width);
    for (y, row) in p.out.chunks_exact_mut(p.width).enumerate() {
        row.fill(p.bias);
        for ky in 0..kh {
            let start = (y * stride + ky) * pw;
            let line = &p.padded[start..start + pw];
            for (kx, &tap) in p.taps[ky * kw..(ky + 1) * kw].iter().enumerate() {
                let src = line[kx..].iter().step_by(stride);
                for (o, &v) in row.iter_mut().zip(src) {
                    *o = M::mul_add(tap, v, *o);
                }
            }
        }
    }
}

/// All channels of one image, channels-last and zero-bordered, and where its output goes.
struct Interleaved<'a> {
    padded: &'a [f32],
    padded_width: usize,
    channels: usize,
    /// `[kh, kw, C]`.
    taps: &'a [f32],
    kernel: [usize; 2],
    stride: usize,
    bias: &'a [f32],
    out: &'a mut [f32],
    width: usize,
}

/// Channels one block of [`Interleaved`] keeps in registers.
const BLOCK: usize = 16;

impl Loops for Interleaved<'_> {
    /// Output point by output point, [`BLOCK`] channels at a time held in registers across
    /// all taps (two loads and one multiply-add per channel and tap), the rest one by one.
    #[inline(always)]
    fn run<M: MulAdd, const LANES: usize>(self) {
        let c = self.channels;
        let [kh, kw] = self.kernel;
        let (stride, pw, width) = (self.stride, self.padded_width, self.width);
        for (point, out) in self.out.chunks_exact_mut(c).enumerate() {
            let (y, x) = (point / width, point % width);
            let tap_input = |ky: usize, kx: usize| ((y * stride + ky) * pw + x * stride + kx) * c;
            let mut first = 0;
            while first + BLOCK <= c {
                let mut acc = [0f32; BLOCK];
                acc.copy_from_slice(&self.bias[first..first + BLOCK]);
                for ky in 0..kh {
                    for kx in 0..kw {
                        let at = tap_input(ky, kx) + first;
                        let src = &self.padded[at..at + BLOCK];
                        let tap = (ky * kw + kx) * c + first;
                        let w = &self.taps[tap..tap + BLOCK];
                        for j in 0..BLOCK {
                            acc[j] = M::mul_add(w[j], src[j], acc[j]);
                        }
                    }
                }
                out[first..first + BLOCK].copy_from_slice(&acc);
                first += BLOCK;
            }
            for (ch, o) in out.iter_mut().enumerate().skip(first) {
                let mut acc = self.bias[ch];
                for ky in 0..kh {
                    for kx in 0..kw {
                        let w = self.taps[(ky * kw + kx) * c + ch];
                        acc = M::mul_add(w, self.padded[tap_input(ky, kx) + ch], acc);
                    }
                }
                *o = acc;
            }
        }
    }
}

// tract compares operators to merge equal nodes; weights compare by value (two nodes with NaN
// weights would only stay unmerged).
impl Eq for DepthwiseConv {}

impl Op for DepthwiseConv {
    fn name(&self) -> StaticName {
        "EmotionDepthwiseConv".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let g = &self.geometry;
        Ok(vec![format!(
            "{} channels, {}x{} kernel, stride {}, pad {:?}, {} loops",
            g.channels,
            g.kernel[0],
            g.kernel[1],
            g.stride,
            g.pad,
            self.isa.name()
        )])
    }

    fn validation(&self) -> Validation {
        Validation::Rounding
    }

    op_as_typed_op!();
}

impl EvalOp for DepthwiseConv {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let channels_last = self.geometry.channels_last;
        spatial::eval(
            "depthwise",
            inputs,
            channels_last,
            self.output,
            |input, out| self.run_into(input, out),
        )
    }
}

impl TypedOp for DepthwiseConv {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let channels_last = self.geometry.channels_last;
        spatial::output_facts("depthwise convolution", inputs, channels_last, self.output)
    }

    fn cost(&self, inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let g = &self.geometry;
        let images = inputs
            .first()
            .map(|f| f.shape.volume())
            .unwrap_or_else(|| 1.into())
            / (g.channels * g.input[0] * g.input[1]);
        let per_image = g.channels * self.output[0] * self.output[1] * g.kernel[0] * g.kernel[1];
        Ok(tvec!((Cost::FMA(f32::datum_type()), images * per_image)))
    }

    as_op!();
}

/// The `DepthwiseConv` that computes `node` (a tract `Conv`) on this model, if it is one we
/// run: f32, group per channel, 2D (`NCHW`, `CHW`, `NHWC` or `HWC`), no dilation, constant
/// weights and bias, a known input size.
fn replacement(model: &TypedModel, node: &TypedNode, isa: Isa) -> Option<DepthwiseConv> {
    let conv = node.op_as::<Conv>()?;
    let spec = &conv.pool_spec;
    if conv.q_params.is_some()
        || spec.kernel_shape.len() != 2
        || spec.dilations().iter().any(|&d| d != 1)
        || node.inputs.len() != 3
    {
        return None;
    }
    let input = model.outlet_fact(node.inputs[0]).ok()?;
    if input.datum_type != f32::datum_type() {
        return None;
    }
    let shape = input.shape.as_concrete()?;
    let channels_last = spec.data_format.c_is_last();
    let [channels, h, w] = spatial::image_dims(spec.data_format, shape)?;
    if conv.group != channels || spec.input_channels != channels || spec.output_channels != channels
    {
        return None;
    }
    let strides = spec.strides();
    let stride = strides[0];
    if strides.iter().any(|&s| s != stride) {
        return None;
    }
    let [kh, kw] = [spec.kernel_shape[0], spec.kernel_shape[1]];
    let pad = spatial::pads(&spec.padding, [h, w], [kh, kw], [stride, stride]);
    let kernel = model.outlet_fact(node.inputs[1]).ok()?.konst.clone()?;
    let bias = model.outlet_fact(node.inputs[2]).ok()?.konst.clone()?;
    let kernel = kernel.cast_to::<f32>().ok()?;
    let kernel = kernel.to_plain_array_view::<f32>().ok()?;
    let kernel = kernel.as_slice()?;
    if kernel.len() != channels * kh * kw {
        return None;
    }
    let weights: Vec<f32> = match conv.kernel_fmt {
        // [C, 1, kh, kw] and [C, kh, kw, 1]: one channel's taps after another.
        KernelFormat::OIHW | KernelFormat::OHWI => kernel.to_vec(),
        // [kh, kw, 1, C]: tap-major.
        KernelFormat::HWIO => (0..channels * kh * kw)
            .map(|i| kernel[(i % (kh * kw)) * channels + i / (kh * kw)])
            .collect(),
    };
    let bias = bias.cast_to::<f32>().ok()?;
    let bias = bias.to_plain_array_view::<f32>().ok()?;
    let bias = bias.as_slice()?.to_vec();
    let bias = match bias.len() {
        1 => vec![bias[0]; channels],
        _ => bias,
    };
    let geometry = Geometry {
        channels,
        input: [h, w],
        kernel: [kh, kw],
        stride,
        pad,
        channels_last,
    };
    let op = DepthwiseConv::new(geometry, weights, bias, isa)?;
    spatial::same_output(model, node, shape.len(), geometry.channels_last, op.output).then_some(op)
}

/// Puts [`DepthwiseConv`] in place of every convolution it computes in `model` (decluttered)
/// and returns how many it replaced.
pub fn replace_depthwise(model: &mut TypedModel, isa: Isa) -> TractResult<usize> {
    spatial::replace_each(model, |model, node| replacement(model, node, isa))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{assert_close, decluttered, run_model, values};
    use tract_onnx::prelude::tract_ndarray::ArrayView4;

    /// The convolution by its definition, one point at a time.
    fn reference(g: &Geometry, input: &[f32], weights: &[f32], bias: &[f32]) -> Vec<f32> {
        let [oh, ow] = g.output().expect("geometry");
        let [h, w] = g.input;
        let [kh, kw] = g.kernel;
        let mut out = Vec::new();
        for c in 0..g.channels {
            for y in 0..oh {
                for x in 0..ow {
                    let mut sum = f64::from(bias[c]);
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let iy = (y * g.stride + ky) as isize - g.pad[0] as isize;
                            let ix = (x * g.stride + kx) as isize - g.pad[1] as isize;
                            if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                continue;
                            }
                            let v = input[(c * h + iy as usize) * w + ix as usize];
                            sum += f64::from(v) * f64::from(weights[(c * kh + ky) * kw + kx]);
                        }
                    }
                    out.push(sum as f32);
                }
            }
        }
        out
    }

    #[test]
    fn matches_the_definition_on_every_geometry_layout_and_isa() {
        let geometries = [
            ([3, 3], 1, [1, 1, 1, 1], [7, 9], 3),
            ([3, 3], 2, [0, 0, 1, 1], [8, 8], 3),
            ([3, 3], 2, [1, 1, 1, 1], [9, 7], 3),
            ([5, 5], 1, [2, 2, 2, 2], [6, 11], 3),
            ([3, 3], 1, [0, 0, 0, 0], [5, 40], 3),
            ([1, 2], 1, [0, 0, 0, 1], [3, 3], 3),
            // Channels-last blocks of 16 and a remainder.
            ([3, 3], 1, [1, 1, 1, 1], [5, 6], 37),
            ([3, 3], 2, [0, 0, 1, 1], [6, 6], 32),
        ];
        for (kernel, stride, pad, input, channels) in geometries {
            let [h, w] = input;
            let image = channels * h * w;
            let x = values(2 * image, 1);
            let weights = values(channels * kernel[0] * kernel[1], 2);
            let bias = values(channels, 3);
            for channels_last in [false, true] {
                let g = Geometry {
                    channels,
                    input,
                    kernel,
                    stride,
                    pad,
                    channels_last,
                };
                let [oh, ow] = g.output().expect("geometry");
                let mut want = reference(&g, &x[..image], &weights, &bias);
                want.extend(reference(&g, &x[image..], &weights, &bias));
                for isa in Isa::all_available() {
                    let op = DepthwiseConv::new(g, weights.clone(), bias.clone(), isa).expect("op");
                    let got = if channels_last {
                        let chw = ArrayView4::from_shape((2, channels, h, w), &x).expect("view");
                        let hwc: Vec<f32> =
                            chw.permuted_axes([0, 2, 3, 1]).iter().copied().collect();
                        let out = op.run(&hwc).expect("run");
                        let out =
                            ArrayView4::from_shape((2, oh, ow, channels), &out).expect("view");
                        out.permuted_axes([0, 3, 1, 2]).iter().copied().collect()
                    } else {
                        op.run(&x).expect("run")
                    };
                    assert_eq!(got.len(), 2 * channels * oh * ow, "{g:?}");
                    assert_close(&got, &want, 1e-5, &format!("{g:?} {isa:?}"));
                }
            }
        }
    }

    /// `[1, 4, 12, 10]` -> depthwise 3x3 pad 1 -> Relu -> depthwise 3x3 stride 2 pad 1 ->
    /// a 1x1 convolution to 2 channels (not depthwise), as ONNX.
    fn separable_onnx() -> Vec<u8> {
        use crate::testkit::{int, ints, node, tensor, value_info};
        use tract_onnx::pb;
        let dim = pb::tensor_shape_proto::dimension::Value::DimValue;
        let graph = pb::GraphProto {
            name: "separable".into(),
            node: vec![
                node(
                    "Conv",
                    &["input", "dw1_w", "dw1_b"],
                    &["dw1"],
                    vec![int("group", 4), ints("pads", &[1, 1, 1, 1])],
                ),
                node("Relu", &["dw1"], &["relu"], vec![]),
                node(
                    "Conv",
                    &["relu", "dw2_w", "dw2_b"],
                    &["dw2"],
                    vec![
                        int("group", 4),
                        ints("pads", &[1, 1, 1, 1]),
                        ints("strides", &[2, 2]),
                    ],
                ),
                node("Conv", &["dw2", "pw_w", "pw_b"], &["output"], vec![]),
            ],
            initializer: vec![
                tensor("dw1_w", &[4, 1, 3, 3], values(36, 4)),
                tensor("dw1_b", &[4], values(4, 5)),
                tensor("dw2_w", &[4, 1, 3, 3], values(36, 6)),
                tensor("dw2_b", &[4], values(4, 7)),
                tensor("pw_w", &[2, 4, 1, 1], values(8, 8)),
                tensor("pw_b", &[2], values(2, 9)),
            ],
            input: vec![value_info("input", vec![dim(1), dim(4), dim(12), dim(10)])],
            output: vec![value_info("output", vec![dim(1), dim(2), dim(6), dim(5)])],
            ..Default::default()
        };
        crate::testkit::onnx_model(graph)
    }

    #[test]
    fn replaces_the_depthwise_convolutions_of_a_model_and_keeps_its_values() {
        let decluttered = decluttered(&separable_onnx());
        let mut ours = decluttered.clone();
        let replaced = replace_depthwise(&mut ours, Isa::detect()).expect("replace");
        assert_eq!(replaced, 2, "both depthwise convolutions, not the 1x1 one");
        let ours = ours.into_optimized().expect("optimise");
        let count = ours
            .nodes
            .iter()
            .filter(|n| n.op_is::<DepthwiseConv>())
            .count();
        assert_eq!(count, 2, "still in the optimised plan");
        let theirs = decluttered.into_optimized().expect("optimise");
        assert!(!theirs.nodes.iter().any(|n| n.op_is::<DepthwiseConv>()));
        let input = values(4 * 12 * 10, 10);
        let a = run_model(ours, &[1, 4, 12, 10], &input);
        let b = run_model(theirs, &[1, 4, 12, 10], &input);
        assert_eq!(a[0].len(), 2 * 6 * 5);
        assert_close(&a[0], &b[0], 1e-5, &"ours against tract's");
    }

    #[test]
    fn refuses_sizes_that_do_not_agree_and_loops_the_cpu_lacks() {
        let g = Geometry {
            channels: 2,
            input: [4, 4],
            kernel: [3, 3],
            stride: 1,
            pad: [0; 4],
            channels_last: false,
        };
        assert!(DepthwiseConv::new(g, vec![0.0; 18], vec![0.0; 2], Isa::Baseline).is_some());
        // Loops this CPU cannot run are refused, never called.
        for isa in [Isa::Avx512, Isa::Avx2Fma, Isa::Neon] {
            let op = DepthwiseConv::new(g, vec![0.0; 18], vec![0.0; 2], isa);
            assert_eq!(op.is_some(), isa.available(), "{isa:?}");
        }
        assert!(Isa::detect().available());
        assert!(DepthwiseConv::new(g, vec![0.0; 17], vec![0.0; 2], Isa::Baseline).is_none());
        assert!(DepthwiseConv::new(g, vec![0.0; 18], vec![0.0; 3], Isa::Baseline).is_none());
        let too_big = Geometry {
            kernel: [5, 5],
            ..g
        };
        assert!(DepthwiseConv::new(too_big, vec![0.0; 50], vec![0.0; 2], Isa::Baseline).is_none());
        let op = DepthwiseConv::new(g, vec![0.0; 18], vec![0.0; 2], Isa::Baseline).expect("op");
        assert!(op.run(&[0.0; 2 * 16]).is_ok());
        assert!(op.run(&[0.0; 3 * 16 + 1]).is_err());
        assert!(op.run(&[]).is_err());
    }
}
