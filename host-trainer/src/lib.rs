//! # emotion-trainer
//!
//! Teaches a face-identification network the seven FER2013 emotions on a workstation, with
//! libtorch through `tch`, and exports checked, signed model bundles for `emotion-edge`.
//!
//! Training flows [`data`] -> [`model`] -> [`train`] -> [`eval`] -> [`quantize`] ->
//! [`export`]; [`onnx`] writes and runs ONNX models for the last two, [`import`] reads
//! published backbone weights, [`preprocess`] is the shared input contract in tensor ops, and
//! [`device`] picks the CPU or a CUDA GPU. [`detector`] converts the
//! edge's face detector (MediaPipe BlazeFace, TFLite) into ONNX.
//! [`fleet`] rolls a bundle out to many devices in stages.

#![deny(missing_docs)]

pub mod data;
pub mod detector;
pub mod device;
pub mod eval;
pub mod export;
pub mod fleet;
pub mod import;
pub mod model;
pub mod onnx;
pub mod preprocess;
pub mod quantize;
pub mod train;
