//! ONNX files: the graph builder and protobuf helpers ([`builder`], crate-internal), the form
//! a convolution is written in ([`conv_form`], crate-internal), the fp32 writer ([`fp32`]) and a written model run in tract the edge's way ([`tract`]).
//!
//! This sits below [`crate::quantize`] (whose int8 writer builds on [`builder`] and measures
//! with [`tract`]) and [`crate::export`] (which checks and bundles what the writers produce),
//! so training's layers stack one way: data -> model -> train -> quantize -> export.

pub(crate) mod builder;
pub(crate) mod conv_form;
pub mod fp32;
pub mod tract;

pub use fp32::{to_onnx, to_onnx_as};

/// Which runtime a written ONNX model is spelled for. Both forms compute the same values; they
/// differ in how layers are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnnxForm {
    /// The forms tract 0.23 runs fastest (issue #12; [`conv_form`], [`builder::max_pool`],
    /// [`builder::subsample_for_pointwise`]): what bundles carry, since the edge runs tract.
    #[default]
    Tract,
    /// One ONNX node per layer: each convolution one `Conv` with its own stride, each max
    /// pool one `MaxPool`. For onnxruntime and other runtimes, which run it faster than the
    /// tract form (`bench/run` measures both).
    Plain,
}

/// Name of the model input in the ONNX graph.
pub const INPUT_NAME: &str = "input";
/// Name of the model output (logits) in the ONNX graph.
pub const OUTPUT_NAME: &str = "logits";
/// ONNX IR version written.
pub const IR_VERSION: i64 = 8;
/// Opset of the default domain written.
pub const OPSET: i64 = 13;

/// Why writing or running an ONNX model failed.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// A graph construct the ONNX writer does not handle.
    #[error("cannot export node `{node}` to ONNX: {reason}")]
    Unsupported {
        /// Graph node name.
        node: String,
        /// What is not supported.
        reason: String,
    },
    /// A node's parameters are missing or unreadable.
    #[error("node `{node}` {reason}")]
    Params {
        /// Graph node name.
        node: String,
        /// What is wrong.
        reason: String,
    },
    /// tract could not load, optimise or run the written model.
    #[error("tract cannot run the exported ONNX: {0}")]
    Tract(String),
}
