//! # emotion-shared
//!
//! What the trainer (`emotion-train`, on libtorch) and the edge runtime (`emotion-edge`, on
//! tract) must agree on, and nothing heavier:
//!
//! - [`labels`]: the seven FER2013 emotions in FER2013 order, with names and parsing;
//! - [`preprocess`]: how a face crop becomes the model's input tensor, described by data that
//!   travels in the manifest and implemented here once for the edge side;
//! - [`manifest`]: the versioned schema of a model bundle's `manifest.json`;
//! - [`bundle`]: reading a bundle directory and checking its signature and hashes;
//! - [`protocol`]: the line-oriented serial wire protocol, with its spec;
//! - [`store_layout`]: the folders of a device's model store, for the edge and `push`;
//! - `logging` (feature `logging`): the binaries' log set-up;
//! - `render` (feature `render`): the procedural face renderer behind the synthetic data set
//!   and the demo camera.
//!
//! This crate never depends on `tch` or `tract`.
#![deny(missing_docs, unsafe_code)]

pub mod bundle;
pub mod bundle_tar;
pub mod labels;
#[cfg(feature = "logging")]
pub mod logging;
pub mod manifest;
pub mod preprocess;
pub mod protocol;
#[cfg(feature = "render")]
pub mod render;
pub mod store_layout;

pub use labels::{Emotion, NUM_CLASSES};
