//! # emotion-edge
//!
//! Facial-emotion recognition on a Raspberry Pi or Jetson, as one binary without Python or
//! libtorch: frames come from a [`source`], faces from [`detect`] (cropped upright by
//! [`align`]), emotions from [`classify`] (tract), steadiness from [`smooth`], and results leave
//! through a [`sink`] (serial, display, JSON lines). [`model_store`] swaps in new model
//! bundles while the [`pipeline`] runs. [`config`] is the service's TOML file with its
//! command-line overrides; [`service`] builds and runs the whole pipeline from it; [`tools`]
//! holds what the other subcommands do (classify files, bench, listen, devices). [`clock`] is
//! time as a device, so tests move it. [`kernel_choice`] tells tract which of its matrix kernels
//! run our networks' small products on the CPUs where that was measured to matter, and
//! [`kernels`] holds our own depthwise and pointwise convolutions and max pools, which run in
//! place of tract's.
//!
//! Every device (camera, serial port, display) sits behind a small trait with a real
//! implementation and an in-memory one for tests. [`testkit`] builds tiny ONNX models and
//! bundles for tests here and in the end-to-end crate.
//!
//! This crate depends on `emotion-shared`, never on the trainer or libtorch.
#![deny(unsafe_code)]

pub mod align;
pub mod classify;
pub mod clock;
pub mod config;
pub mod detect;
pub mod geometry;
pub mod kernel_choice;
pub mod kernels;
pub mod model_store;
pub mod pipeline;
pub mod service;
pub mod sink;
pub mod smooth;
pub mod source;
pub mod testkit;
pub mod tools;
