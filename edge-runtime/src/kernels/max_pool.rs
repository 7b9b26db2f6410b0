//! Our own max pooling, put in place of tract's.
//!
//! The mini-Xception halves its map four times with a 3x3, stride-2 max pool, and its
//! residual branches subsample with a stride-2 1x1 convolution, which tract turns into a 1x1
//! max pool of stride 2; the exporter writes each 3x3 pool as two `3 x 1` passes on
//! channels-last views (`host-trainer`'s `onnx::conv_form`). BlazeFace's stride-2 blocks pool
//! 2x2 in their residual branches. tract 0.23 runs these one tap at a time over the output
//! row, read-modify-write, after filling the output with its lowest value, with the x86-64
//! baseline's 4-wide vectors; strided columns go one float at a time. The classifier's twelve
//! pools took 0.06 ms of its 0.54 (11%), BlazeFace full range's eight 0.34 ms (AMD Zen 4,
//! 2026-12-07).
//!
//! [`MaxPool`] computes the same pool in two passes per output row: the rows under the
//! window are folded into one row of a scratch line bordered with negative infinity (one
//! vector max per value and row), then each output point takes the largest of its columns
//! in that line: whole vectors of channels when channels come last, consecutive points at
//! fixed strides otherwise, which the compiler turns into vector shuffles. A window of one
//! column and stride one folds straight into the output row. The loops are built per
//! instruction set like the convolutions' ([`super::isa`]).
//!
//! Measured with `emotion-edge bench --profile` on the same machine before and after (AMD
//! EPYC Zen 4, AVX-512, 2 cores, one thread, 2026-12-07): the classifier's twelve pools 0.060
//! -> 0.043 ms by node (the rows passes 0.011 -> 0.005, the column passes over 16-value rows
//! 0.013 -> 0.010); BlazeFace short range's six 0.114 -> 0.078 ms, full range's eight 0.342 ->
//! 0.227 ms (real frames). A first version that copied the first row and folded the others
//! one by one was slower than tract's on the 16-value rows (0.021 ms): short rows pay per
//! call, so two and three rows fold in one pass.
//!
//! NaN: a window holding NaN may give NaN or the largest other value (the vector max of
//! x86), as tract's may; our networks' activations are never NaN.
//!
//! [`replace_max_pool`] puts [`MaxPool`] in place of every f32 2D max pool of a decluttered
//! model without dilation or index output, in either layout.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::MaxPool as TractMaxPool;

use super::isa::{Isa, Loops, MulAdd, dispatch};
use super::spatial;

/// Geometry of one max pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Geometry {
    /// Channels.
    pub channels: usize,
    /// Input height and width.
    pub input: [usize; 2],
    /// Window height and width.
    pub kernel: [usize; 2],
    /// Stride along height and width.
    pub stride: [usize; 2],
    /// Padding `[top, left, bottom, right]`: positions the window may cover that hold no
    /// value (never the largest).
    pub pad: [usize; 4],
    /// `[N, H, W, C]` (or `[H, W, C]`) rather than `[N, C, H, W]` (or `[C, H, W]`).
    pub channels_last: bool,
}

impl Geometry {
    /// Output height and width, or `None` if a size or stride is zero or the window does
    /// not fit the padded input.
    pub fn output(&self) -> Option<[usize; 2]> {
        let [h, w] = self.input;
        let [kh, kw] = self.kernel;
        let [sh, sw] = self.stride;
        let [ph, pw] = [h + self.pad[0] + self.pad[2], w + self.pad[1] + self.pad[3]];
        if [self.channels, h, w, kh, kw, sh, sw].contains(&0) || kh > ph || kw > pw {
            return None;
        }
        Some([(ph - kh) / sh + 1, (pw - kw) / sw + 1])
    }

    /// Values per pixel in the input and output rows: the channels when they come last,
    /// otherwise 1 (a row is one channel's).
    fn pixel(&self) -> usize {
        if self.channels_last { self.channels } else { 1 }
    }

    /// Whether every output point reads its own column only (a window one column wide at
    /// stride one, without columns of padding): the rows then fold straight into the output
    /// row, without the scratch line.
    fn direct(&self) -> bool {
        self.kernel[1] == 1 && self.stride[1] == 1 && self.pad[1] == 0 && self.pad[3] == 0
    }
}

/// An f32 max pool (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MaxPool {
    geometry: Geometry,
    output: [usize; 2],
    isa: Isa,
}

impl MaxPool {
    /// A pool of `geometry`, run with `isa`'s loops, or `None` if the window does not fit
    /// or this CPU does not run `isa` ([`Isa::available`]).
    pub fn new(geometry: Geometry, isa: Isa) -> Option<MaxPool> {
        if !isa.available() {
            return None;
        }
        let output = geometry.output()?;
        Some(MaxPool {
            geometry,
            output,
            isa,
        })
    }

    /// Pools `input`, whole images of this geometry one after another (`[N, C, H, W]`, or
    /// `[N, H, W, C]` when channels-last), into `[N, C, OH, OW]` (`[N, OH, OW, C]`).
    pub fn run(&self, input: &[f32]) -> TractResult<Vec<f32>> {
        let mut out = vec![0f32; self.output_len(input.len())?];
        self.run_into(input, &mut out)?;
        Ok(out)
    }

    /// How many values the output of `input_len` input values has, or an error if that is
    /// not a whole number of images.
    fn output_len(&self, input_len: usize) -> TractResult<usize> {
        let g = &self.geometry;
        let image = g.channels * g.input[0] * g.input[1];
        ensure!(
            input_len > 0 && input_len.is_multiple_of(image),
            "max pool of {} channels of {:?} got {} values",
            g.channels,
            g.input,
            input_len
        );
        Ok(input_len / image * g.channels * self.output[0] * self.output[1])
    }

    /// [`MaxPool::run`] into `out`, which must hold exactly the output.
    pub fn run_into(&self, input: &[f32], out: &mut [f32]) -> TractResult<()> {
        ensure!(
            out.len() == self.output_len(input.len())?,
            "max pool output of {} values for {} input values",
            out.len(),
            input.len()
        );
        let g = &self.geometry;
        // The scratch line: `pad[1]` pixels of negative infinity, the folded row, and enough
        // after it for the last window; none when the rows fold into the output.
        let [_, ow] = self.output;
        let line_pixels = ((ow - 1) * g.stride[1] + g.kernel[1]).max(g.pad[1] + g.input[1]);
        let line_len = if g.direct() {
            0
        } else {
            line_pixels * g.pixel()
        };
        let mut line = vec![f32::NEG_INFINITY; line_len];
        dispatch(
            self.isa,
            Planes {
                op: self,
                input,
                out,
                line: &mut line,
            },
        );
        Ok(())
    }
}

/// One call's input, output and scratch line.
struct Planes<'a> {
    op: &'a MaxPool,
    input: &'a [f32],
    out: &'a mut [f32],
    line: &'a mut [f32],
}

impl Loops for Planes<'_> {
    /// Plane by plane (one channel of one image, or one whole image when channels come
    /// last), output row by output row.
    #[inline(always)]
    fn run<M: MulAdd, const LANES: usize>(self) {
        let g = &self.op.geometry;
        let px = g.pixel();
        let ([h, w], [oh, ow]) = (g.input, self.op.output);
        let ([kh, kw], [sh, sw]) = (g.kernel, g.stride);
        let direct = g.direct();
        let row_start = g.pad[1] * px;
        let planes = self
            .input
            .chunks_exact(h * w * px)
            .zip(self.out.chunks_exact_mut(oh * ow * px));
        for (plane, out_plane) in planes {
            for (oy, out_row) in out_plane.chunks_exact_mut(ow * px).enumerate() {
                // Input rows under the window: `top .. top + kh` of the padded plane.
                let top = oy * sh;
                let first = top.saturating_sub(g.pad[0]).min(h);
                let end = (top + kh).saturating_sub(g.pad[0]).min(h);
                let rows = &plane[first * w * px..end * w * px];
                if direct {
                    fold_rows(out_row, rows);
                    continue;
                }
                fold_rows(&mut self.line[row_start..row_start + w * px], rows);
                columns(self.line, out_row, [kw, sw], px);
            }
        }
    }
}

/// `dst = ` the largest of the rows of `rows` (whole rows of `dst.len()` values one after
/// another) value by value, negative infinity if there are none. Two and three rows, the
/// usual windows, in one pass.
#[inline(always)]
fn fold_rows(dst: &mut [f32], rows: &[f32]) {
    let n = dst.len();
    match rows.len() / n.max(1) {
        0 => dst.fill(f32::NEG_INFINITY),
        2 => {
            let (a, b) = rows.split_at(n);
            for ((d, &a), &b) in dst.iter_mut().zip(a).zip(b) {
                *d = larger(a, b);
            }
        }
        3 => {
            let (a, rest) = rows.split_at(n);
            let (b, c) = rest.split_at(n);
            for (((d, &a), &b), &c) in dst.iter_mut().zip(a).zip(b).zip(c) {
                *d = larger(larger(a, b), c);
            }
        }
        _ => {
            let mut rows = rows.chunks_exact(n);
            if let Some(first) = rows.next() {
                dst.copy_from_slice(first);
            }
            for row in rows {
                for (d, &v) in dst.iter_mut().zip(row) {
                    *d = larger(*d, v);
                }
            }
        }
    }
}

/// The larger of `a` and `b`, as one vector max instruction (`b` if either is NaN).
#[inline(always)]
fn larger(a: f32, b: f32) -> f32 {
    if a > b { a } else { b }
}

/// `out[x] = ` the largest of `line`'s pixels `x * stride .. x * stride + width`, value by
/// value within a pixel of `px` values. The common one-value windows get loops with the
/// window fixed, which the compiler vectorises with shuffles.
#[inline(always)]
fn columns(line: &[f32], out: &mut [f32], [width, stride]: [usize; 2], px: usize) {
    if px == 1 {
        match (width, stride) {
            (1, 2) => return fixed_columns::<1, 2>(line, out),
            (2, 2) => return fixed_columns::<2, 2>(line, out),
            (3, 2) => return fixed_columns::<3, 2>(line, out),
            (3, 1) => return fixed_columns::<3, 1>(line, out),
            _ => {}
        }
    }
    for (x, dst) in out.chunks_exact_mut(px).enumerate() {
        fold_rows(dst, &line[x * stride * px..(x * stride + width) * px]);
    }
}

/// [`columns`] for one-value pixels and a window of `WIDTH` at `STRIDE`.
#[inline(always)]
fn fixed_columns<const WIDTH: usize, const STRIDE: usize>(line: &[f32], out: &mut [f32]) {
    let Some(last) = out.len().checked_sub(1) else {
        return;
    };
    // One bound check for the whole row, so the loop below has none.
    let line = &line[..last * STRIDE + WIDTH];
    for (x, o) in out.iter_mut().enumerate() {
        let mut m = line[x * STRIDE];
        for k in 1..WIDTH {
            m = larger(m, line[x * STRIDE + k]);
        }
        *o = m;
    }
}

impl Op for MaxPool {
    fn name(&self) -> StaticName {
        "EmotionMaxPool".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let g = &self.geometry;
        Ok(vec![format!(
            "{} channels{}, {}x{} window, stride {:?}, pad {:?}, {} loops",
            g.channels,
            if g.channels_last { " last" } else { "" },
            g.kernel[0],
            g.kernel[1],
            g.stride,
            g.pad,
            self.isa.name()
        )])
    }

    op_as_typed_op!();
}

impl EvalOp for MaxPool {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let channels_last = self.geometry.channels_last;
        spatial::eval(
            "max pool",
            inputs,
            channels_last,
            self.output,
            |input, out| self.run_into(input, out),
        )
    }
}

impl TypedOp for MaxPool {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let channels_last = self.geometry.channels_last;
        spatial::output_facts("max pool", inputs, channels_last, self.output)
    }

    as_op!();
}

/// The `MaxPool` that computes `node` (a tract `MaxPool`) on this model, if it is one we
/// run: f32, 2D (`NCHW`, `CHW`, `NHWC` or `HWC`), no dilation, no index output, a known
/// input size.
fn replacement(model: &TypedModel, node: &TypedNode, isa: Isa) -> Option<MaxPool> {
    let pool = node.op_as::<TractMaxPool>()?;
    let spec = &pool.pool_spec;
    if pool.with_index_outputs.is_some()
        || spec.kernel_shape.len() != 2
        || spec.dilations().iter().any(|&d| d != 1)
        || node.inputs.len() != 1
    {
        return None;
    }
    let input = model.outlet_fact(node.inputs[0]).ok()?;
    if input.datum_type != f32::datum_type() {
        return None;
    }
    let shape = input.shape.as_concrete()?;
    let [channels, h, w] = spatial::image_dims(spec.data_format, shape)?;
    let strides = spec.strides();
    let kernel = [spec.kernel_shape[0], spec.kernel_shape[1]];
    let stride = [*strides.first()?, *strides.get(1)?];
    let pad = spatial::pads(&spec.padding, [h, w], kernel, stride);
    let geometry = Geometry {
        channels,
        input: [h, w],
        kernel,
        stride,
        pad,
        channels_last: spec.data_format.c_is_last(),
    };
    let op = MaxPool::new(geometry, isa)?;
    spatial::same_output(model, node, shape.len(), geometry.channels_last, op.output).then_some(op)
}

/// Puts [`MaxPool`] in place of every max pool it computes in `model` (decluttered) and
/// returns how many it replaced.
pub fn replace_max_pool(model: &mut TypedModel, isa: Isa) -> TractResult<usize> {
    spatial::replace_each(model, |model, node| replacement(model, node, isa))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{decluttered, run_model, values};
    use tract_onnx::prelude::tract_ndarray::ArrayView4;

    /// The pool by its definition, one point at a time, on `[C, H, W]` images.
    fn reference(g: &Geometry, input: &[f32]) -> Vec<f32> {
        let [oh, ow] = g.output().expect("geometry");
        let [h, w] = g.input;
        let mut out = Vec::new();
        for c in 0..g.channels {
            for y in 0..oh {
                for x in 0..ow {
                    let mut m = f32::NEG_INFINITY;
                    for ky in 0..g.kernel[0] {
                        for kx in 0..g.kernel[1] {
                            let iy = (y * g.stride[0] + ky) as isize - g.pad[0] as isize;
                            let ix = (x * g.stride[1] + kx) as isize - g.pad[1] as isize;
                            if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                continue;
                            }
                            m = m.max(input[(c * h + iy as usize) * w + ix as usize]);
                        }
                    }
                    out.push(m);
                }
            }
        }
        out
    }

    #[test]
    fn matches_the_definition_on_every_geometry_layout_and_isa() {
        // (kernel, stride, pad, input, channels)
        let geometries = [
            // The mini-Xception's row passes and subsampling, BlazeFace's 2x2.
            ([3, 1], [2, 1], [1, 0, 1, 0], [9, 37], 2),
            ([1, 1], [2, 2], [0; 4], [9, 9], 3),
            ([2, 2], [2, 2], [0; 4], [8, 10], 3),
            ([3, 3], [2, 2], [1, 1, 1, 1], [9, 7], 3),
            ([3, 3], [1, 1], [1, 1, 1, 1], [6, 40], 2),
            // Windows no fixed loop covers, and more padding than window on one side.
            ([2, 4], [1, 3], [0, 2, 1, 1], [5, 11], 2),
            ([1, 3], [1, 1], [0, 1, 0, 1], [4, 5], 2),
            // Channels-last pixels of 16 and a remainder.
            ([3, 3], [2, 2], [1, 1, 1, 1], [6, 6], 37),
            ([2, 2], [2, 2], [0; 4], [4, 6], 16),
        ];
        for (kernel, stride, pad, input, channels) in geometries {
            let [h, w] = input;
            let image = channels * h * w;
            // Negative values too, so a padded position taken as 0 would show.
            let x: Vec<f32> = values(2 * image, 1).iter().map(|v| v - 0.5).collect();
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
                let mut want = reference(&g, &x[..image]);
                want.extend(reference(&g, &x[image..]));
                for isa in Isa::all_available() {
                    let op = MaxPool::new(g, isa).expect("op");
                    let got: Vec<f32> = if channels_last {
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
                    // A maximum is one of the inputs: exactly equal.
                    assert_eq!(got, want, "{g:?} {isa:?}");
                }
            }
        }
    }

    /// `[1, 3, 12, 12]` -> max pool 3x3 stride 2 pad 1 -> max pool 2x2 stride 2 -> max pool
    /// 1x1 stride 2, as ONNX.
    fn pools_onnx() -> Vec<u8> {
        use crate::testkit::{ints, node, value_info};
        use tract_onnx::pb;
        let dim = pb::tensor_shape_proto::dimension::Value::DimValue;
        let pool = |input: &str, output: &str, kernel: i64, stride: i64, pad: i64| {
            node(
                "MaxPool",
                &[input],
                &[output],
                vec![
                    ints("kernel_shape", &[kernel, kernel]),
                    ints("strides", &[stride, stride]),
                    ints("pads", &[pad; 4]),
                ],
            )
        };
        let graph = pb::GraphProto {
            name: "pools".into(),
            node: vec![
                pool("input", "a", 3, 2, 1),
                pool("a", "b", 2, 2, 0),
                pool("b", "output", 1, 2, 0),
            ],
            input: vec![value_info("input", vec![dim(1), dim(3), dim(12), dim(12)])],
            output: vec![value_info("output", vec![dim(1), dim(3), dim(2), dim(2)])],
            ..Default::default()
        };
        crate::testkit::onnx_model(graph)
    }

    #[test]
    fn replaces_the_max_pools_of_a_model_and_keeps_its_values() {
        let decluttered = decluttered(&pools_onnx());
        let mut ours = decluttered.clone();
        let replaced = replace_max_pool(&mut ours, Isa::detect()).expect("replace");
        assert_eq!(replaced, 3);
        let ours = ours.into_optimized().expect("optimise");
        let count = ours.nodes.iter().filter(|n| n.op_is::<MaxPool>()).count();
        assert_eq!(count, 3, "still in the optimised plan");
        let theirs = decluttered.into_optimized().expect("optimise");
        assert!(!theirs.nodes.iter().any(|n| n.op_is::<MaxPool>()));
        let input: Vec<f32> = values(3 * 12 * 12, 11).iter().map(|v| v - 0.5).collect();
        let a = run_model(ours, &[1, 3, 12, 12], &input);
        let b = run_model(theirs, &[1, 3, 12, 12], &input);
        assert_eq!(a[0].len(), 3 * 2 * 2);
        assert_eq!(a[0], b[0], "ours against tract's");
    }

    #[test]
    fn refuses_windows_that_do_not_fit_sizes_that_do_not_agree_and_loops_the_cpu_lacks() {
        let g = Geometry {
            channels: 2,
            input: [4, 4],
            kernel: [3, 3],
            stride: [2, 2],
            pad: [0; 4],
            channels_last: false,
        };
        assert!(MaxPool::new(g, Isa::Baseline).is_some());
        for isa in [Isa::Avx512, Isa::Avx2Fma, Isa::Neon] {
            assert_eq!(MaxPool::new(g, isa).is_some(), isa.available(), "{isa:?}");
        }
        for bad in [
            Geometry {
                kernel: [5, 3],
                ..g
            },
            Geometry {
                stride: [0, 1],
                ..g
            },
            Geometry { channels: 0, ..g },
        ] {
            assert!(MaxPool::new(bad, Isa::Baseline).is_none(), "{bad:?}");
        }
        let op = MaxPool::new(g, Isa::Baseline).expect("op");
        assert_eq!(op.run(&[1.0; 2 * 2 * 16]).expect("run"), vec![1.0; 2 * 2]);
        assert!(op.run(&[0.0; 2 * 16 + 1]).is_err());
        assert!(op.run(&[]).is_err());
    }
}
