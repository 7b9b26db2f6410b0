//! Our own operators for the layers tract runs slowest in our networks, and the plan they go
//! into.
//!
//! Both networks the edge runs (the mini-Xception classifier and BlazeFace) are built of
//! depthwise-separable blocks: a depthwise convolution ([`depthwise`]) and a pointwise (1x1)
//! one ([`pointwise`]), with max pools ([`max_pool`]) where they halve the map. tract 0.23's
//! kernels for those are built for other shapes (see each module), and those layers were
//! most of the gap to onnxruntime. Each is written here as plain loops that the compiler
//! vectorises, built once per instruction set ([`isa`]).
//!
//! [`into_plan`] is where they go in: it declutters a model, puts our operators in place of
//! the layers they compute, then lets tract optimise the rest. Only x86_64 builds do this
//! ([`IN_THIS_BUILD`]): on aarch64 tract has NEON kernels of its own that ours are unmeasured
//! against, and the aarch64 binary has no room for them within 20 MB. The loops and their
//! tests build on every target. `EMOTION_EDGE_KERNEL_CHOICE=tract`
//! ([`crate::kernel_choice::OPT_OUT_VARIABLE`]) leaves every layer to tract, for comparing.

pub mod depthwise;
pub mod isa;
pub mod max_pool;
pub mod pointwise;
mod spatial;

use tract_onnx::prelude::*;

pub use isa::Isa;

/// What our operators stand in for, as `emotion-edge bench` and `devices` name it before
/// [`describe`].
pub const LAYERS: &str = "depthwise and pointwise convolutions, max pools";

/// Whether this build puts our operators in at all: on x86_64, where tract's own are weakest
/// (measured). On aarch64 tract has NEON kernels of its own and ours have not been measured
/// against them on a device; leaving them out there also keeps the aarch64 binary within its
/// 20 MB (with the depthwise one alone, 20,008,000 bytes on 2026-12-07).
pub const IN_THIS_BUILD: bool = cfg!(target_arch = "x86_64");

/// Whether [`into_plan`] puts our operators in: in this build ([`IN_THIS_BUILD`]) and not
/// `EMOTION_EDGE_KERNEL_CHOICE=tract`.
pub fn enabled() -> bool {
    IN_THIS_BUILD && std::env::var(crate::kernel_choice::OPT_OUT_VARIABLE).as_deref() != Ok("tract")
}

/// Whose depthwise and pointwise convolutions and max pools run, for `emotion-edge bench`
/// and `devices`: `emotion-edge's (avx512 loops)`, or tract's, and why.
pub fn describe() -> String {
    if enabled() {
        format!("emotion-edge's ({} loops)", Isa::detect().name())
    } else if !IN_THIS_BUILD {
        "tract's (emotion-edge's own are used on x86-64 only)".to_string()
    } else {
        format!("tract's ({}=tract)", crate::kernel_choice::OPT_OUT_VARIABLE)
    }
}

/// Declutters `model`, puts our depthwise and pointwise convolutions and max pools in
/// (unless [`enabled`] says not) and optimises the rest with tract: what the classifier and
/// BlazeFace load through.
pub fn into_plan(model: TypedModel) -> TractResult<TypedModel> {
    let mut model = model.into_decluttered()?;
    if enabled() {
        let isa = Isa::detect();
        depthwise::replace_depthwise(&mut model, isa)?;
        pointwise::replace_pointwise(&mut model, isa)?;
        max_pool::replace_max_pool(&mut model, isa)?;
    }
    model.into_optimized()
}
