//! mini-Xception (Arriaga et al., 2017, "Real-time convolutional neural networks for emotion
//! and gender classification"): about 50k parameters (58k in the original, whose last layer is a
//! 3x3 convolution to the classes), built for 48x48 grey FER2013 faces.
//!
//! Stem: two 3x3 convolutions (8 channels, no padding). Then four residual modules with 16, 32,
//! 64 and 128 channels: two depthwise-separable 3x3 convolutions and a 3x3 stride-2 max pool,
//! added to a 1x1 stride-2 projection of the module's input. The original ends in a 3x3
//! convolution to the classes and global average pooling; here global average pooling gives
//! a 128-wide feature vector and the head (by default one linear layer) gives the classes, so
//! that feature extraction and distillation treat every architecture alike.

use super::graph::{Graph, GraphBuilder, Op, Shape};
use super::head::HeadSpec;

const EPS: f64 = 1e-3;

/// Builds mini-Xception for `input` (grey, 48x48 or larger) with `head`.
pub fn build(input: Shape, head: &HeadSpec, classes: i64) -> Graph {
    let mut g = GraphBuilder::new(input);
    g.block("stem");
    let mut x = g.conv("stem/conv1", 0, 8, 3, 1, 0);
    x = g.bn("stem/conv1/bn", x, EPS);
    x = g.relu("stem/relu1", x);
    x = g.conv("stem/conv2", x, 8, 3, 1, 0);
    x = g.bn("stem/conv2/bn", x, EPS);
    x = g.relu("stem/relu2", x);
    for (m, filters) in [16i64, 32, 64, 128].into_iter().enumerate() {
        let name = format!("module{}", m + 1);
        g.block(&name);
        let mut r = g.conv(&format!("{name}/proj"), x, filters, 1, 2, 0);
        r = g.bn(&format!("{name}/proj/bn"), r, EPS);
        let mut y = x;
        for s in 1..=2 {
            y = g.depthwise(&format!("{name}/sep{s}/dw"), y, 3, 1, 1);
            y = g.conv(&format!("{name}/sep{s}/pw"), y, filters, 1, 1, 0);
            y = g.bn(&format!("{name}/sep{s}/bn"), y, EPS);
            if s == 1 {
                y = g.relu(&format!("{name}/sep{s}/relu"), y);
            }
        }
        y = g.max_pool(&format!("{name}/pool"), y, 3, 2, 1);
        x = g.add(&format!("{name}/add"), Op::Add, &[y, r]);
    }
    g.block("features");
    let f = g.add("features/gap", Op::GlobalAvgPool, &[x]);
    g.mark_features(f);
    let out = head.build(&mut g, f, classes);
    g.finish(out)
}
