//! dlib's face-recognition ResNet (`dlib_face_recognition_resnet_model_v1.dat`, CC0): 29
//! convolutions, about 5.6M parameters, a 128-d embedding of a 150x150 RGB face chip in which
//! faces of the same person lie closer than 0.6 (99.38% on LFW per dlib).
//!
//! Layout (dlib's `anet_type`, bottom to top): a 7x7 stride-2 convolution (no padding) with
//! its affine (batch norm folded) and ReLU, a 3x3 stride-2 max pool, then residual units of
//! two 3x3 convolutions, each followed by an affine, ReLU between them and after the sum:
//! three of 32 channels; 64 (down), three of 64; 128 (down), two of 128; 256 (down), two of
//! 256; 256 (down). A down unit's first convolution has stride 2 and no padding, and its
//! shortcut is a 2x2 stride-2 average pool; dlib adds the two with zero padding where their
//! shapes differ ([`Op::AddPadded`]). Then the mean over positions (256) and a bias-free
//! 256->128 fully connected layer: the embedding, our feature vector.
//!
//! Every convolution has a bias; the embedding layer's bias exists here (our linear layers
//! all have one) and is imported as zeros.
//!
//! Blocks: `conv1`, `res1_1` ... `res5_1`, `embedding`, `head`.

use super::graph::{Graph, GraphBuilder, Op, Shape};
use super::head::HeadSpec;

/// The residual units as (stage, channels, units, whether the first one goes down).
const STAGES: [(usize, i64, usize, bool); 5] = [
    (1, 32, 3, false),
    (2, 64, 4, true),
    (3, 128, 3, true),
    (4, 256, 3, true),
    (5, 256, 1, true),
];

/// Embedding width.
pub const EMBEDDING: i64 = 128;

fn conv(g: &mut GraphBuilder, name: &str, x: usize, out: i64, k: i64, stride: i64) -> usize {
    let pad = if stride == 1 { k / 2 } else { 0 };
    g.conv_biased(name, x, out, k, stride, pad)
}

/// Builds the network for `input` (3 channels; 150x150 for the published weights).
pub fn build(input: Shape, head: &HeadSpec, classes: i64) -> Graph {
    let mut g = GraphBuilder::new(input);
    g.block("conv1");
    let mut x = conv(&mut g, "conv1", 0, 32, 7, 2);
    x = g.add("conv1/affine", Op::Affine, &[x]);
    x = g.relu("conv1/relu", x);
    x = g.max_pool("conv1/pool", x, 3, 2, 0);
    for (stage, width, units, down) in STAGES {
        for u in 1..=units {
            let name = format!("res{stage}_{u}");
            g.block(&name);
            let stride = if down && u == 1 { 2 } else { 1 };
            let mut y = conv(&mut g, &format!("{name}/conv_a"), x, width, 3, stride);
            y = g.add(&format!("{name}/affine_a"), Op::Affine, &[y]);
            y = g.relu(&format!("{name}/relu_a"), y);
            y = conv(&mut g, &format!("{name}/conv_b"), y, width, 3, 1);
            y = g.add(&format!("{name}/affine_b"), Op::Affine, &[y]);
            let shortcut = if stride == 2 {
                g.add(
                    &format!("{name}/shortcut_pool"),
                    Op::AvgPool {
                        kernel: 2,
                        stride: 2,
                    },
                    &[x],
                )
            } else {
                x
            };
            y = g.add(&format!("{name}/add"), Op::AddPadded, &[y, shortcut]);
            x = g.relu(&format!("{name}/relu"), y);
        }
    }
    g.block("embedding");
    let pooled = g.add("embedding/gap", Op::GlobalAvgPool, &[x]);
    let e = g.add("embedding/fc", Op::Linear { out: EMBEDDING }, &[pooled]);
    g.mark_features(e);
    let out = head.build(&mut g, e, classes);
    g.finish(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_size_match_dlibs_network() {
        let g = build(
            Shape {
                c: 3,
                h: 150,
                w: 150,
            },
            &HeadSpec::linear(),
            7,
        );
        let shape = |name: &str| g.nodes.iter().find(|n| n.name == name).unwrap().shape;
        assert_eq!(
            shape("conv1/pool"),
            Shape {
                c: 32,
                h: 35,
                w: 35
            }
        );
        assert_eq!(
            shape("res2_1/add"),
            Shape {
                c: 64,
                h: 17,
                w: 17
            }
        );
        assert_eq!(shape("res3_1/add"), Shape { c: 128, h: 8, w: 8 });
        // The two deepest down units: the shortcut is larger than the convolution branch.
        assert_eq!(shape("res4_1/conv_b"), Shape { c: 256, h: 3, w: 3 });
        assert_eq!(shape("res4_1/add"), Shape { c: 256, h: 4, w: 4 });
        assert_eq!(shape("res5_1/add"), Shape { c: 256, h: 2, w: 2 });
        let convs = g
            .nodes
            .iter()
            .filter(|n| matches!(n.op, Op::Conv { .. }))
            .count();
        assert_eq!(convs, 29);
        // dlib's 5,614,592 parameters plus the (zero) embedding bias; the head comes on top.
        let backbone: i64 = (0..=g.features).map(|i| g.node_params(i)).sum();
        assert_eq!(backbone, 5_614_592 + EMBEDDING);
    }
}
