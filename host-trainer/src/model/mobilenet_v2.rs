//! A width-scalable MobileNetV2 (Sandler et al., 2018) for small grey faces.
//!
//! Inverted residual blocks (1x1 expansion, 3x3 depthwise, 1x1 linear projection; a residual
//! connection where shape allows) with the paper's (t, c, n, s) table. For 48-64 px input the
//! stem convolution has stride 1 instead of 2, so the last feature map is 3x3-4x4 rather than
//! 1x1. `width` scales every channel count (rounded to a multiple of 8, as in the paper); the
//! last 1x1 convolution has `max(1280 * width, 256)` channels.

use super::graph::{Graph, GraphBuilder, Op, Shape};
use super::head::HeadSpec;

const EPS: f64 = 1e-5;

/// Rounds `v` to the nearest multiple of 8, not going below 90% of `v` (the paper's rule).
fn make_divisible(v: f64) -> i64 {
    let d = 8.0;
    let new = ((v + d / 2.0) / d).floor().max(1.0) * d;
    if new < 0.9 * v {
        (new + d) as i64
    } else {
        new as i64
    }
}

/// Builds the network for `input` with channel multiplier `width` (e.g. 0.35, 0.5, 1.0).
pub fn build(input: Shape, width: f64, head: &HeadSpec, classes: i64) -> Graph {
    let mut g = GraphBuilder::new(input);
    g.block("stem");
    let stem = make_divisible(32.0 * width);
    let mut x = g.conv("stem/conv", 0, stem, 3, 1, 1);
    x = g.bn("stem/bn", x, EPS);
    x = g.add("stem/relu6", Op::Relu6, &[x]);
    let table: [(i64, f64, usize, i64); 7] = [
        (1, 16.0, 1, 1),
        (6, 24.0, 2, 2),
        (6, 32.0, 3, 2),
        (6, 64.0, 4, 2),
        (6, 96.0, 3, 1),
        (6, 160.0, 3, 2),
        (6, 320.0, 1, 1),
    ];
    for (stage, &(t, c, n, s)) in table.iter().enumerate() {
        let out = make_divisible(c * width);
        for i in 0..n {
            let name = format!("block{}_{}", stage + 1, i + 1);
            g.block(&name);
            let stride = if i == 0 { s } else { 1 };
            let in_c = g.shape(x).c;
            let mut y = x;
            if t != 1 {
                y = g.conv(&format!("{name}/expand"), y, in_c * t, 1, 1, 0);
                y = g.bn(&format!("{name}/expand/bn"), y, EPS);
                y = g.add(&format!("{name}/expand/relu6"), Op::Relu6, &[y]);
            }
            y = g.depthwise(&format!("{name}/dw"), y, 3, stride, 1);
            y = g.bn(&format!("{name}/dw/bn"), y, EPS);
            y = g.add(&format!("{name}/dw/relu6"), Op::Relu6, &[y]);
            y = g.conv(&format!("{name}/project"), y, out, 1, 1, 0);
            y = g.bn(&format!("{name}/project/bn"), y, EPS);
            if stride == 1 && in_c == out {
                y = g.add(&format!("{name}/add"), Op::Add, &[y, x]);
            }
            x = y;
        }
    }
    g.block("features");
    let last = make_divisible((1280.0 * width).max(256.0));
    x = g.conv("features/conv", x, last, 1, 1, 0);
    x = g.bn("features/bn", x, EPS);
    x = g.add("features/relu6", Op::Relu6, &[x]);
    let f = g.add("features/gap", Op::GlobalAvgPool, &[x]);
    g.mark_features(f);
    let out = head.build(&mut g, f, classes);
    g.finish(out)
}

#[cfg(test)]
mod tests {
    use super::make_divisible;

    #[test]
    fn channel_rounding_follows_the_paper() {
        assert_eq!(make_divisible(32.0), 32);
        assert_eq!(make_divisible(32.0 * 0.35), 16);
        assert_eq!(make_divisible(16.0 * 0.35), 8);
        assert_eq!(make_divisible(320.0 * 0.5), 160);
    }
}
