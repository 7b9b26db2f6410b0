//! ResNet50 in the layout of the VGGFace2 model that keras-vggface publishes (the seed's
//! backbone), so that its weights map onto ours by layer name.
//!
//! Caffe-style bottleneck blocks: the stride sits in the first 1x1 convolution of a
//! down-sampling block, every convolution is bias-free and followed by batch norm
//! (epsilon 1e-3, Keras' default). Names as in keras-vggface:
//!
//! ```text
//! conv1/7x7_s2, conv1/7x7_s2/bn, 3x3/2 max pool
//! conv{stage}_{block}_1x1_reduce[/bn], _3x3[/bn], _1x1_increase[/bn], _1x1_proj[/bn]
//!   stages 2..5 with 3, 4, 6, 3 blocks; block 1 of each stage has the projection shortcut
//! 7x7 average pool -> 2048 features
//! ```
//!
//! Blocks for freezing are `conv1`, `conv2_1` ... `conv5_3`, `head`. Keras names the ReLU
//! layers `activation_1` ... `activation_49` in order (one after conv1, three per bottleneck
//! block); [`block_after_activation`] maps a Keras activation name onto the block that starts
//! after it, so the seed's `activation_46` means "train `conv5_3` and the head".

use super::graph::{Graph, GraphBuilder, Op, Shape};
use super::head::HeadSpec;

/// Batch-norm epsilon of the published model (Keras' default).
pub const EPS: f64 = 1e-3;
/// Blocks per stage (stages 2 to 5).
pub const STAGE_BLOCKS: [usize; 4] = [3, 4, 6, 3];

/// TensorFlow "same" padding `(before, after)` for one axis.
fn same_pad(len: i64, k: i64, stride: i64) -> (i64, i64) {
    let out = (len + stride - 1) / stride;
    let total = ((out - 1) * stride + k - len).max(0);
    (total / 2, total - total / 2)
}

/// Builds the network for `input` (3 channels, 224x224 for the published weights).
pub fn build(input: Shape, head: &HeadSpec, classes: i64) -> Graph {
    let mut g = GraphBuilder::new(input);
    g.block("conv1");
    let (pt, pb) = same_pad(input.h, 7, 2);
    let (pl, pr) = same_pad(input.w, 7, 2);
    let mut x = g.add(
        "conv1/7x7_s2",
        Op::Conv {
            out: 64,
            kernel: [7, 7],
            stride: 2,
            pad: [pt, pl, pb, pr],
            groups: 1,
            bias: false,
        },
        &[0],
    );
    x = g.bn("conv1/7x7_s2/bn", x, EPS);
    x = g.relu("conv1/relu", x);
    x = g.max_pool("conv1/pool", x, 3, 2, 0);
    let widths = [64i64, 128, 256, 512];
    for (s, &blocks) in STAGE_BLOCKS.iter().enumerate() {
        let stage = s + 2;
        let w = widths[s];
        for b in 1..=blocks {
            let name = format!("conv{stage}_{b}");
            g.block(&name);
            let stride = if b == 1 && stage > 2 { 2 } else { 1 };
            let mut y = g.conv(&format!("{name}_1x1_reduce"), x, w, 1, stride, 0);
            y = g.bn(&format!("{name}_1x1_reduce/bn"), y, EPS);
            y = g.relu(&format!("{name}_1x1_reduce/relu"), y);
            y = g.conv(&format!("{name}_3x3"), y, w, 3, 1, 1);
            y = g.bn(&format!("{name}_3x3/bn"), y, EPS);
            y = g.relu(&format!("{name}_3x3/relu"), y);
            y = g.conv(&format!("{name}_1x1_increase"), y, w * 4, 1, 1, 0);
            y = g.bn(&format!("{name}_1x1_increase/bn"), y, EPS);
            let shortcut = if b == 1 {
                let p = g.conv(&format!("{name}_1x1_proj"), x, w * 4, 1, stride, 0);
                g.bn(&format!("{name}_1x1_proj/bn"), p, EPS)
            } else {
                x
            };
            y = g.add(&format!("{name}/add"), Op::Add, &[y, shortcut]);
            x = g.relu(&format!("{name}/relu"), y);
        }
    }
    g.block("features");
    let f = g.add("features/avg_pool", Op::GlobalAvgPool, &[x]);
    g.mark_features(f);
    let out = head.build(&mut g, f, classes);
    g.finish(out)
}

/// Names of the bottleneck blocks in order (`conv2_1` ... `conv5_3`).
pub fn block_names() -> Vec<String> {
    let mut names = Vec::new();
    for (s, &blocks) in STAGE_BLOCKS.iter().enumerate() {
        for b in 1..=blocks {
            names.push(format!("conv{}_{b}", s + 2));
        }
    }
    names
}

/// The block that starts right after Keras layer `activation_N`: `activation_1` ends `conv1`,
/// `activation_{3k+4}` ends bottleneck block k (0-based). An activation inside a block is an
/// error that names the two block boundaries around it.
pub fn block_after_activation(name: &str) -> Result<String, String> {
    let n: usize = name
        .strip_prefix("activation_")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("{name:?} is not a Keras activation name (activation_N)"))?;
    let blocks = block_names();
    let last = 1 + 3 * blocks.len();
    if n == 0 || n > last {
        return Err(format!(
            "{name} does not exist in ResNet50 (activation_1 .. activation_{last})"
        ));
    }
    if n == 1 {
        return Ok(blocks[0].clone());
    }
    let k = (n - 2) / 3;
    if (n - 2) % 3 != 2 {
        return Err(format!(
            "{name} is inside block {}: unfreezing works per block; use {} (or activation_{}) \
             or {}",
            blocks[k],
            blocks[k],
            3 * k + 1,
            blocks.get(k + 1).map(String::as_str).unwrap_or("head")
        ));
    }
    Ok(blocks
        .get(k + 1)
        .cloned()
        .unwrap_or_else(|| "head".to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keras_same_padding() {
        assert_eq!(same_pad(224, 7, 2), (2, 3));
        assert_eq!(same_pad(56, 3, 1), (1, 1));
    }

    #[test]
    fn activation_names_map_to_block_boundaries() {
        assert_eq!(
            block_after_activation("activation_46").as_deref(),
            Ok("conv5_3")
        );
        assert_eq!(
            block_after_activation("activation_1").as_deref(),
            Ok("conv2_1")
        );
        assert_eq!(
            block_after_activation("activation_4").as_deref(),
            Ok("conv2_2")
        );
        assert_eq!(
            block_after_activation("activation_49").as_deref(),
            Ok("head")
        );
        let inner = block_after_activation("activation_45").unwrap_err();
        assert!(inner.contains("inside block conv5_2"), "{inner}");
        assert!(block_after_activation("activation_50").is_err());
        assert!(block_after_activation("dense_1").is_err());
    }

    #[test]
    fn shapes_and_parameter_counts_match_the_published_model() {
        let g = build(
            Shape {
                c: 3,
                h: 224,
                w: 224,
            },
            &HeadSpec::seed(),
            7,
        );
        let f = g.nodes[g.features].shape;
        assert_eq!((f.c, f.h, f.w), (2048, 1, 1));
        // keras-vggface ResNet50 notop: 23,561,152 parameters of which 53,120 are batch-norm
        // moving statistics (not counted by `params`). The seed's head adds 526,343.
        let running_stats: i64 = g
            .nodes
            .iter()
            .filter(|n| matches!(n.op, Op::BatchNorm { .. }))
            .map(|n| 2 * n.shape.c)
            .sum();
        assert_eq!(g.params() + running_stats, 24_087_495);
    }
}
