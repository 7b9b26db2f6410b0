//! How the fp32 writer spells a convolution: a plain `Conv`, or, on maps too narrow for
//! tract's direct convolution, the same convolution on wide rows (issue #12).
//!
//! tract 0.23 runs a group-1 f32 convolution with few inputs per output point as a direct
//! convolution (`DirectSpatialConv`, no im2col, no matrix-product packing) only when the
//! output rows are at least 128 points wide (`MIN_DIRECT_SPATIAL_W` in tract-core); a 64x64
//! face's rows are not, and its first convolutions then go through im2col and a matrix
//! product whose 8-row output tiles waste most of each kernel call. Two forms make the rows
//! wide and give the same values:
//!
//! - **Strips** (a convolution with a kernel of two taps or more and at most
//!   [`STRIPS_MAX_TAPS`] inputs per output point, any stride): the zero-padded input, its
//!   width rounded up to a multiple of the stride, is cut into `S` horizontal strips of
//!   `(rows - 1) * stride + kh` rows, one per `rows` output rows, laid side by side (`Concat`
//!   on the width), convolved once without padding, and the `S` output blocks (each starting
//!   at a multiple of the strip width over the stride) put back on top of each other. Output
//!   columns that straddle two strips are computed and dropped. The input gets zero rows at
//!   the bottom so the last strip is whole; the output rows they make are dropped too.
//! - **Merged rows** (a 1x1 convolution with at most [`MERGE_MAX_CHANNELS`] inputs): a 1x1
//!   convolution treats every pixel alike, so `m` image rows are one row of a
//!   `[1, C, H/m, W*m]` reshape; it is written as a `1 x 2` convolution whose second tap is
//!   zero (tract's direct path needs two taps) with one column of right padding, then reshaped
//!   back.
//!
//! Two more forms change the layout around this convolution, for what reads it:
//!
//! - **Channels last** (a 1x1 convolution whose output feeds, through an element-wise
//!   activation at most, a depthwise convolution with an output map of at most
//!   [`CHANNELS_LAST_MAX_POINTS`] points): written as `Transpose` to `[1, H, W, C]`, `MatMul`
//!   by the transposed weights, `Add` of the bias and `Transpose` back. tract removes both
//!   transposes when it optimises: the one after the product moves through the activation into
//!   the depthwise convolution, which switches to channels-last (`DepthWiseConv` on
//!   `[H, W, C]`), and on into the next pointwise product, which reads either layout; the one
//!   before the product folds into it. On small maps tract's depthwise convolution is per
//!   channel plane in the channels-first layout and per pixel across all channels in the
//!   channels-last one, so there it wins: 128 channels of 8x8 from 0.047 to 0.008 ms, 64 of
//!   15x15 from 0.041 to 0.019; at 30x30 and above the channels-first plane is faster (32 of
//!   30x30: 0.045 against 0.052 ms; 16 of 60x60: 0.054 against 0.135). On aarch64 tract makes
//!   the same move by itself where the neighbouring nodes allow it (its depthwise convolution
//!   has a NEON channels-last kernel there); this form makes it on every machine.
//! - **Channels last for a pool** (a 1x1 convolution whose output a max pool alone reads, at
//!   any size): the same product without the `Transpose` back; the pool is written on the
//!   channels-last value (`builder::max_pool_channels_last`: two row passes on reshaped
//!   views, then the `Transpose`). tract 0.23 runs a pool's column pass on a channels-first
//!   map as a scalar loop striding over single floats, and both passes of the channels-last
//!   form on contiguous vectors; the product costs about the same in either layout. On the
//!   mini-Xception's four pointwise-then-pool pairs the pools went from 0.14 to 0.06 ms and
//!   the model from about 0.92 to 0.83 ms (2026-12-06; the same values, tested).
//!
//! Measured with `emotion-edge bench --profile` on the published FER2013 mini-Xception
//! (2-core Xeon, AVX-512, one thread): its first convolution (1 -> 8, 3x3) from 0.101 to 0.016
//! ms, the second (8 -> 8, 3x3) from 0.189 to 0.061 ms, the 8 -> 16 pointwise convolution at
//! 60x60 from 0.101 to 0.045 ms; the whole model from 1.33 to 1.08 ms. BlazeFace's first
//! convolution (3 -> 24, 5x5, stride 2, 128x128) from 0.78 to 0.33 ms. Where the forms did
//! not pay, they are not used: 16 inputs x 3x3 as strips was even (0.098 against 0.104 ms
//! before the slicing), 32 inputs lost (0.131 against 0.063 ms); a 16 -> 16 pointwise
//! convolution on merged rows lost (0.133 against 0.096 ms), and so did splitting it into
//! 8-channel halves. onnxruntime runs these forms slower than the plain one (0.51 against
//! 0.36 ms on the same model), so the plain `Conv` stays the form for other runtimes: the
//! bundle is for the edge, which runs tract.

use super::OnnxForm;
use super::builder::{Builder, conv_attributes, int, ints, transposed};

/// The narrowest output row tract 0.23 runs as a direct convolution.
pub(crate) const DIRECT_MIN_ROW: i64 = 128;
/// Most inputs per output point (`C * kh * kw`) written as strips: 1 and 8 channels under a
/// 3x3 kernel (9, 72) and BlazeFace's 3 channels under 5x5 at stride 2 (75) gained two to six
/// times; 16 channels under 3x3 (144) gained nothing, 32 (288) lost.
pub(crate) const STRIPS_MAX_TAPS: i64 = 80;
/// Most input channels of a 1x1 convolution written on merged rows.
pub(crate) const MERGE_MAX_CHANNELS: i64 = 8;
/// Largest output map (`h * w`) of a depthwise convolution moved to channels-last: 16x16. The
/// mini-Xception's 15x15 and 8x8 depthwise convolutions gained, its 30x30 ones lost.
pub(crate) const CHANNELS_LAST_MAX_POINTS: i64 = 16 * 16;

/// One convolution to write: weights `[out, in / groups, kh, kw]` and bias, already folded.
#[derive(Debug)]
pub(crate) struct ConvSpec<'a> {
    /// Node name, the prefix of every value and initializer written.
    pub name: &'a str,
    /// Input value.
    pub input: &'a str,
    /// Output value.
    pub output: &'a str,
    /// Input channels.
    pub in_channels: i64,
    /// Output channels.
    pub out_channels: i64,
    /// Input height and width.
    pub in_hw: [i64; 2],
    /// Output height and width.
    pub out_hw: [i64; 2],
    /// Kernel height and width.
    pub kernel: [i64; 2],
    /// Stride (both axes).
    pub stride: i64,
    /// Zero padding `[top, left, bottom, right]`.
    pub pad: [i64; 4],
    /// Groups.
    pub groups: i64,
    /// Weights, row-major `[out, in / groups, kh, kw]`.
    pub weight: Vec<f32>,
    /// Bias, one per output channel.
    pub bias: Vec<f32>,
    /// The output height and width of the depthwise convolution this convolution's output
    /// feeds (directly or through an element-wise activation, and nothing else), if it does.
    pub feeds_depthwise: Option<[i64; 2]>,
    /// Whether a max pool alone reads this convolution's output.
    pub feeds_max_pool: bool,
}

/// The form a convolution is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    /// One `Conv`.
    Plain,
    /// `strips` side-by-side strips of `rows` output rows each.
    Strips {
        /// Strips.
        strips: i64,
        /// Output rows per strip.
        rows: i64,
    },
    /// `merge` image rows per convolution row.
    MergedRows {
        /// Rows merged.
        merge: i64,
    },
    /// A matrix product on `[1, H, W, C]`, so the depthwise convolution it feeds runs
    /// channels-last in tract.
    ChannelsLast,
    /// A matrix product on `[1, H, W, C]` whose output stays channels-last for the max pool
    /// that reads it ([`super::builder::max_pool_channels_last`] turns it back).
    ChannelsLastForPool,
}

/// The form `c` is written in (see the module documentation).
pub(crate) fn form(c: &ConvSpec) -> Form {
    let [out_h, out_w] = c.out_hw;
    let [kh, kw] = c.kernel;
    let pointwise = c.groups == 1 && c.stride == 1 && c.kernel == [1, 1] && c.pad == [0; 4];
    if pointwise && c.feeds_max_pool {
        return Form::ChannelsLastForPool;
    }
    if pointwise
        && let Some([h, w]) = c.feeds_depthwise
        && h * w <= CHANNELS_LAST_MAX_POINTS
    {
        return Form::ChannelsLast;
    }
    if c.groups != 1 || c.stride < 1 || out_w >= DIRECT_MIN_ROW || out_h < 2 {
        return Form::Plain;
    }
    let taps = c.in_channels * kh * kw;
    if kh * kw >= 2 {
        if taps > STRIPS_MAX_TAPS {
            return Form::Plain;
        }
        // The fewest strips whose convolved row is DIRECT_MIN_ROW wide.
        let strips = ceil_div((DIRECT_MIN_ROW - 1) * c.stride + kw, aligned_width(c));
        // Strips of a row or two spend more on slicing than they save.
        if strips < 2 || out_h < 2 * strips {
            return Form::Plain;
        }
        return Form::Strips {
            strips,
            rows: ceil_div(out_h, strips),
        };
    }
    if pointwise
        && c.in_channels <= MERGE_MAX_CHANNELS
        && let Some(merge) = (2..=out_h).find(|m| out_h % m == 0 && out_w * m >= DIRECT_MIN_ROW)
    {
        return Form::MergedRows { merge };
    }
    Form::Plain
}

/// Where the strips of a convolution lie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StripGeometry {
    /// The zero-padded input width rounded up to a multiple of the stride, so every strip
    /// starts on the stride's grid: the width of one strip side by side.
    aligned_w: i64,
    /// Input rows one strip reads: `(rows - 1) * stride + kh`.
    strip_rows: i64,
    /// Zero rows added under the padded input so the last strip is whole.
    extra_rows: i64,
}

/// The zero-padded input width rounded up to a multiple of the stride.
fn aligned_width(c: &ConvSpec) -> i64 {
    let [_, left, _, right] = c.pad;
    ceil_div(c.in_hw[1] + left + right, c.stride) * c.stride
}

fn strip_geometry(c: &ConvSpec, strips: i64, rows: i64) -> StripGeometry {
    let [top, _, bottom, _] = c.pad;
    let s = c.stride;
    let padded_h = c.in_hw[0] + top + bottom;
    // `strips * rows` output rows read up to row (strips * rows - 1) * s + kh.
    StripGeometry {
        aligned_w: aligned_width(c),
        strip_rows: (rows - 1) * s + c.kernel[0],
        extra_rows: ((strips * rows - 1) * s + c.kernel[0] - padded_h).max(0),
    }
}

/// `a / b` rounded up, for positive sizes (`i64::div_ceil` is not stable).
fn ceil_div(a: i64, b: i64) -> i64 {
    (a + b - 1) / b
}

/// Writes `c` into `b` in [`form`]'s form ([`Form::Plain`] when `b` writes
/// [`OnnxForm::Plain`]); returns the form written.
pub(crate) fn write(b: &mut Builder, c: ConvSpec) -> Form {
    let f = match b.form {
        OnnxForm::Tract => form(&c),
        OnnxForm::Plain => Form::Plain,
    };
    match f {
        Form::Plain => write_plain(b, &c),
        Form::Strips { strips, rows } => write_strips(b, &c, strips, rows),
        Form::MergedRows { merge } => write_merged_rows(b, &c, merge),
        Form::ChannelsLast => write_channels_last(b, &c, true),
        Form::ChannelsLastForPool => write_channels_last(b, &c, false),
    }
    f
}

/// Weight and bias initializers; returns their names.
fn parameters(
    b: &mut Builder,
    c: &ConvSpec,
    weight: Vec<f32>,
    kernel: [i64; 2],
) -> (String, String) {
    let (wn, bn) = (format!("{}.weight", c.name), format!("{}.bias", c.name));
    b.constant(
        &wn,
        &[
            c.out_channels,
            c.in_channels / c.groups.max(1),
            kernel[0],
            kernel[1],
        ],
        weight,
    );
    b.constant(&bn, &[c.out_channels], c.bias.clone());
    (wn, bn)
}

fn write_plain(b: &mut Builder, c: &ConvSpec) {
    let (wn, bn) = parameters(b, c, c.weight.clone(), c.kernel);
    b.node(
        "Conv",
        c.name,
        &[c.input, &wn, &bn],
        c.output,
        conv_attributes(c.kernel, c.stride, c.pad, c.groups),
    );
}

/// A `Slice` node `name` of `x` on one axis, `[start, end)`, into `out`.
fn slice(b: &mut Builder, name: &str, x: &str, out: &str, axis: i64, [start, end]: [i64; 2]) {
    let (s, e, a) = (
        format!("{name}.starts"),
        format!("{name}.ends"),
        format!("{name}.axes"),
    );
    b.constant_i64(&s, &[start]);
    b.constant_i64(&e, &[end]);
    b.constant_i64(&a, &[axis]);
    b.node("Slice", name, &[x, &s, &e, &a], out, vec![]);
}

fn write_strips(b: &mut Builder, c: &ConvSpec, strips: i64, rows: i64) {
    let name = c.name;
    let [out_h, out_w] = c.out_hw;
    let [top, left, bottom, right] = c.pad;
    let s = c.stride;
    let [_, in_w] = c.in_hw;
    let g = strip_geometry(c, strips, rows);
    let extra_cols = g.aligned_w - (in_w + left + right);
    let mut x = c.input.to_string();
    if c.pad != [0; 4] || g.extra_rows > 0 || extra_cols > 0 {
        let pads = format!("{name}.strips.pads");
        b.constant_i64(
            &pads,
            &[
                0,
                0,
                top,
                left,
                0,
                0,
                bottom + g.extra_rows,
                right + extra_cols,
            ],
        );
        let padded = format!("{name}.strips.padded");
        b.node("Pad", &padded, &[&x, &pads], &padded, vec![]);
        x = padded;
    }
    let inputs: Vec<String> = (0..strips)
        .map(|i| {
            let v = format!("{name}.strip{i}");
            let first = i * rows * s;
            slice(b, &v, &x, &v, 2, [first, first + g.strip_rows]);
            v
        })
        .collect();
    let wide = format!("{name}.strips");
    let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    b.node("Concat", &wide, &refs, &wide, vec![int("axis", 3)]);
    let (wn, bn) = parameters(b, c, c.weight.clone(), c.kernel);
    let convolved = format!("{name}.strips.conv");
    b.node(
        "Conv",
        name,
        &[&wide, &wn, &bn],
        &convolved,
        conv_attributes(c.kernel, s, [0; 4], 1),
    );
    // Strip i's outputs start at output column i * aligned_w / s.
    let block = g.aligned_w / s;
    let blocks: Vec<String> = (0..strips)
        .map(|i| {
            let v = format!("{name}.block{i}");
            slice(b, &v, &convolved, &v, 3, [i * block, i * block + out_w]);
            v
        })
        .collect();
    let refs: Vec<&str> = blocks.iter().map(String::as_str).collect();
    let stacked = format!("{name}.stacked");
    if strips * rows == out_h {
        b.node("Concat", &stacked, &refs, c.output, vec![int("axis", 2)]);
    } else {
        b.node("Concat", &stacked, &refs, &stacked, vec![int("axis", 2)]);
        slice(
            b,
            &format!("{name}.crop"),
            &stacked,
            c.output,
            2,
            [0, out_h],
        );
    }
}

fn write_merged_rows(b: &mut Builder, c: &ConvSpec, merge: i64) {
    let name = c.name;
    let [out_h, out_w] = c.out_hw;
    let merged_shape = format!("{name}.merged.shape");
    b.constant_i64(
        &merged_shape,
        &[1, c.in_channels, out_h / merge, out_w * merge],
    );
    let merged = format!("{name}.merged");
    b.node(
        "Reshape",
        &merged,
        &[c.input, &merged_shape],
        &merged,
        vec![],
    );
    // [out, in, 1, 1] -> [out, in, 1, 2] with a zero second tap.
    let weight: Vec<f32> = c.weight.iter().flat_map(|&w| [w, 0.0]).collect();
    let (wn, bn) = parameters(b, c, weight, [1, 2]);
    let convolved = format!("{name}.merged.conv");
    b.node(
        "Conv",
        name,
        &[&merged, &wn, &bn],
        &convolved,
        conv_attributes([1, 2], 1, [0, 0, 0, 1], 1),
    );
    let shape = format!("{name}.unmerged.shape");
    b.constant_i64(&shape, &[1, c.out_channels, out_h, out_w]);
    b.node(
        "Reshape",
        &format!("{name}.unmerged"),
        &[&convolved, &shape],
        c.output,
        vec![],
    );
}

/// The channels-last product; with `back`, transposed back to `[1, C, H, W]` into `c.output`,
/// else `c.output` is the `[1, H, W, C]` product.
fn write_channels_last(b: &mut Builder, c: &ConvSpec, back: bool) {
    let name = c.name;
    let (cin, cout) = (c.in_channels, c.out_channels);
    let last = format!("{name}.channels_last");
    b.node(
        "Transpose",
        &last,
        &[c.input],
        &last,
        vec![ints("perm", &[0, 2, 3, 1])],
    );
    // [out, in, 1, 1] -> [in, out].
    let weight = transposed(&c.weight, cout as usize, cin as usize);
    let (wn, bn) = (format!("{name}.weight"), format!("{name}.bias"));
    b.constant(&wn, &[cin, cout], weight);
    b.constant(&bn, &[cout], c.bias.clone());
    let product = format!("{name}.product");
    b.node("MatMul", name, &[&last, &wn], &product, vec![]);
    let biased = format!("{name}.biased");
    let sum = if back { biased.as_str() } else { c.output };
    b.node("Add", &biased, &[&product, &bn], sum, vec![]);
    if !back {
        return;
    }
    b.node(
        "Transpose",
        &format!("{name}.channels_first"),
        &[&biased],
        c.output,
        vec![ints("perm", &[0, 3, 1, 2])],
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(
        in_channels: i64,
        out_hw: [i64; 2],
        kernel: [i64; 2],
        pad: [i64; 4],
    ) -> ConvSpec<'static> {
        // Stride 1: the input is the output grown by the kernel, less the padding.
        let in_hw = [
            out_hw[0] + kernel[0] - 1 - pad[0] - pad[2],
            out_hw[1] + kernel[1] - 1 - pad[1] - pad[3],
        ];
        ConvSpec {
            in_hw,
            name: "c",
            input: "x",
            output: "y",
            in_channels,
            out_channels: 8,
            out_hw,
            kernel,
            stride: 1,
            pad,
            groups: 1,
            weight: vec![],
            bias: vec![],
            feeds_depthwise: None,
            feeds_max_pool: false,
        }
    }

    #[test]
    fn forms_follow_the_measured_thresholds() {
        // mini-Xception's first two convolutions: 64 -> 62 and 62 -> 60, no padding.
        assert_eq!(
            form(&spec(1, [62, 62], [3, 3], [0; 4])),
            Form::Strips {
                strips: 3,
                rows: 21
            }
        );
        assert_eq!(
            form(&spec(8, [60, 60], [3, 3], [0; 4])),
            Form::Strips {
                strips: 3,
                rows: 20
            }
        );
        // Padded "same" 3x3 at 30x30: padded width 32, five strips (four make 126 columns).
        assert_eq!(
            form(&spec(8, [30, 30], [3, 3], [1; 4])),
            Form::Strips { strips: 5, rows: 6 }
        );
        // BlazeFace's first convolution: 3 channels, 5x5, stride 2, 128 -> 64, TensorFlow's
        // "same" padding (1 before, 2 after). The padded width 131 rounds up to 132, 66 output
        // columns per strip; two strips make a 130-column row.
        let mut blazeface = spec(3, [64, 64], [5, 5], [1, 1, 2, 2]);
        blazeface.stride = 2;
        blazeface.in_hw = [128, 128];
        assert_eq!(
            form(&blazeface),
            Form::Strips {
                strips: 2,
                rows: 32
            }
        );
        let g = strip_geometry(&blazeface, 2, 32);
        assert_eq!(
            g,
            StripGeometry {
                aligned_w: 132,
                strip_rows: 67,
                extra_rows: 0
            }
        );
        // Width asks for more strips than the rows need: 20 rows padded to 22 columns take six
        // strips of four rows, 24 rows in all, so four zero rows go under the input.
        let small = spec(1, [20, 20], [3, 3], [1; 4]);
        assert_eq!(form(&small), Form::Strips { strips: 6, rows: 4 });
        assert_eq!(strip_geometry(&small, 6, 4).extra_rows, 4);
        // Too many taps, too short, already wide, grouped.
        assert_eq!(form(&spec(16, [60, 60], [3, 3], [0; 4])), Form::Plain);
        assert_eq!(form(&spec(8, [5, 5], [3, 3], [1; 4])), Form::Plain);
        assert_eq!(form(&spec(8, [60, 128], [3, 3], [0; 4])), Form::Plain);
        let mut grouped = spec(8, [60, 60], [3, 3], [1; 4]);
        grouped.groups = 8;
        assert_eq!(form(&grouped), Form::Plain);
        // Pointwise: 8 inputs merge (60 rows: 3 of 60 make 180 >= 128; 30: 5 of 30 make 150),
        // 16 do not, and a height with no fitting divisor stays plain.
        assert_eq!(
            form(&spec(8, [60, 60], [1, 1], [0; 4])),
            Form::MergedRows { merge: 3 }
        );
        assert_eq!(
            form(&spec(8, [30, 30], [1, 1], [0; 4])),
            Form::MergedRows { merge: 5 }
        );
        assert_eq!(form(&spec(16, [60, 60], [1, 1], [0; 4])), Form::Plain);
        assert_eq!(form(&spec(8, [7, 7], [1, 1], [0; 4])), Form::Plain);
        // A pointwise convolution feeding a depthwise one: channels-last up to 16x16.
        let feeding = |hw: [i64; 2]| ConvSpec {
            feeds_depthwise: Some(hw),
            ..spec(32, hw, [1, 1], [0; 4])
        };
        assert_eq!(form(&feeding([15, 15])), Form::ChannelsLast);
        assert_eq!(form(&feeding([16, 16])), Form::ChannelsLast);
        assert_eq!(form(&feeding([8, 8])), Form::ChannelsLast);
        assert_eq!(form(&feeding([17, 16])), Form::Plain);
        assert_eq!(form(&feeding([30, 30])), Form::Plain);
        // Only a stride-1, unpadded, ungrouped 1x1 convolution.
        let mut padded = feeding([8, 8]);
        padded.kernel = [3, 3];
        padded.pad = [1; 4];
        assert_eq!(form(&padded), Form::Plain);
        // A pointwise convolution read by a max pool alone: channels-last at any size, before
        // merged rows.
        let pooled = |cin: i64, hw: [i64; 2]| ConvSpec {
            feeds_max_pool: true,
            ..spec(cin, hw, [1, 1], [0; 4])
        };
        assert_eq!(form(&pooled(16, [60, 60])), Form::ChannelsLastForPool);
        assert_eq!(form(&pooled(8, [60, 60])), Form::ChannelsLastForPool);
        assert_eq!(form(&pooled(128, [8, 8])), Form::ChannelsLastForPool);
        let mut pooled_3x3 = pooled(16, [60, 60]);
        pooled_3x3.kernel = [3, 3];
        pooled_3x3.pad = [1; 4];
        assert_eq!(form(&pooled_3x3), Form::Plain);
    }
}
