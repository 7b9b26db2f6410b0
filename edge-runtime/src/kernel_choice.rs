//! Which of tract's matrix-product kernels run the small products of our networks.
//!
//! tract picks one kernel per matrix product (`m x k` by `k x n`) through tiers that
//! `tract_linalg::mmm_tiers` collects with `inventory`: the highest tier with an answer wins.
//! On Intel CPUs with AVX-512 its tier asks a linear cost model fitted on large products, and
//! for the pointwise convolutions of our networks, where `k` (input channels) is 16 to 32 and
//! `m` (pixels) is hundreds to thousands, that model picks narrow tiles (the fma 40x2 for the
//! classifier's 16-to-16 product at 60x60). With so short a `k` the work after the products
//! dominates: tract's kernels store each output on its own (one lane extracted at a time) and
//! run the fused bias and activation per tile, so the tile that covers most outputs per call
//! with the least waste wins. Measured with `emotion-edge bench --profile` on an Intel Xeon
//! (Sapphire Rapids, 2 cores, 2026-12-06): the AVX-512 32x6 tile over all such products ran
//! the classifier 0.88 -> 0.78 ms and BlazeFace short range's detect stage 3.06 -> 2.98 ms;
//! the 48x4, 64x3, 16x12 and 32x5 tiles were slower than it, and on AVX2 alone (fma tiles)
//! no choice moved either model beyond the noise, so this tier answers on AVX-512 only.
//!
//! This module adds one tier above tract's own for exactly those products and leaves every
//! other product, and every other CPU (aarch64 among them), to tract. The kernel is tract's,
//! only the choice is ours. `EMOTION_EDGE_KERNEL_CHOICE=tract` leaves all choices to tract
//! (for comparing the two); tract's opt-in AMX bf16 tier (`TRACT_AMX_BF16`) keeps its place.

use tract_onnx::prelude::DatumType;

/// The inner dimension up to which a product counts as small.
pub const SMALL_K: usize = 32;
/// The kernel that runs small products on Intel CPUs with AVX-512.
pub const SMALL_PRODUCT_KERNEL: &str = "avx512_mmm_f32_32x6";
/// The environment variable that leaves every choice to tract when set to `tract`.
pub const OPT_OUT_VARIABLE: &str = "EMOTION_EDGE_KERNEL_CHOICE";
/// The tier's name in tract's ladder (`RUST_LOG=tract_linalg=debug` lists the ladder).
pub const TIER_NAME: &str = "emotion-edge small products";

/// The kernel for an `m x k` by `k x n` product accumulated in `accumulator`, or `None` to
/// leave it to tract: f32 only, a known `k` of at most [`SMALL_K`], and at least one whole
/// 32x6 tile (`m >= 32`, `n >= 6`; narrower products have tract's dedicated small-`n`
/// kernels).
pub fn small_product_kernel(
    accumulator: DatumType,
    m: Option<usize>,
    k: Option<usize>,
    n: Option<usize>,
) -> Option<&'static str> {
    let (m, k, n) = (m?, k?, n?);
    (accumulator == DatumType::F32 && k <= SMALL_K && m >= 32 && n >= 6)
        .then_some(SMALL_PRODUCT_KERNEL)
}

/// The CPU as tract's kernels see it, for `emotion-edge devices`: the architecture and, on
/// aarch64, whether it has the dot-product extension (FEAT_DotProd) that tract's fast int8
/// matrix kernel (`SDOT`) needs: a Raspberry Pi 5 (Cortex-A76) has it, a Pi 4 (A72) does not.
pub fn cpu_summary() -> String {
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("dotprod") {
            "aarch64 with the dot-product extension (int8 SDOT kernels): an int8 bundle may beat \
             fp32 here, compare both with `emotion-edge bench`"
                .to_string()
        } else {
            "aarch64 without the dot-product extension: tract runs int8 on its slower fallback, \
             deploy fp32 bundles for speed"
                .to_string()
        }
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        format!(
            "{}: int8 bundles were slower than fp32 in tract on x86-64 where measured, deploy \
             fp32 bundles for speed",
            std::env::consts::ARCH
        )
    }
}

/// What this host's tract runs small products on, for reports (`emotion-edge bench`).
pub fn describe() -> String {
    match host::answers() {
        Ok(()) => format!(
            "products with k <= {SMALL_K} on {SMALL_PRODUCT_KERNEL} (Intel AVX-512), the rest tract's choice"
        ),
        Err(why) => format!("tract's own choice ({why})"),
    }
}

#[cfg(target_arch = "x86_64")]
mod host {
    use std::sync::OnceLock;

    use tract_linalg::isa::{Arch, Isa, IsaSet};
    use tract_linalg::mmm::{Query, Suitable};
    use tract_linalg::mmm_tiers::MmmTier;
    use tract_onnx::prelude::DatumType;
    use tract_onnx::prelude::tract_linalg;

    /// Whether the tier answers on this host, or why not.
    pub(super) fn answers() -> Result<(), &'static str> {
        static ANSWER: OnceLock<Result<(), &'static str>> = OnceLock::new();
        *ANSWER.get_or_init(|| {
            match std::env::var(super::OPT_OUT_VARIABLE) {
                Ok(v) if v == "tract" => return Err("EMOTION_EDGE_KERNEL_CHOICE=tract"),
                Ok(v) => tracing::warn!(
                    "{}={v:?} is not understood (only `tract`, which leaves every kernel choice \
                     to tract): ignored",
                    super::OPT_OUT_VARIABLE
                ),
                Err(_) => {}
            }
            if tract_linalg::knobs::TRACT_AMX_BF16.get() {
                return Err("TRACT_AMX_BF16 set");
            }
            if !std::arch::is_x86_feature_detected!("avx512f") {
                return Err("no AVX-512 on this CPU");
            }
            if !intel() {
                return Err("not an Intel CPU, not measured");
            }
            Ok(())
        })
    }

    /// The CPU vendor as Linux reports it (`vendor_id` in /proc/cpuinfo).
    fn intel() -> bool {
        std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|info| {
            info.lines()
                .find(|l| l.starts_with("vendor_id"))
                .is_some_and(|l| l.contains("GenuineIntel"))
        })
    }

    fn preferred(
        _isa: &IsaSet,
        accumulator: DatumType,
        query: &Query,
        _suitable: &[Suitable],
    ) -> Option<&'static str> {
        super::small_product_kernel(accumulator, query.m, query.k, query.n)
    }

    inventory::submit! {
        MmmTier {
            arch: Some(Arch::X86_64),
            // Above tract's x86 tiers (1 to 8); it only answers where `answers()` holds.
            precedence: 9,
            name: super::TIER_NAME,
            applies: |isa| isa.has(Isa::X86_64Avx512f) && answers().is_ok(),
            preferred,
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod host {
    pub(super) fn answers() -> Result<(), &'static str> {
        Err("not x86-64")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_f32_products_get_the_wide_tile() {
        // The classifier's 16-to-16 pointwise convolution at 60x60, BlazeFace's 24-to-24.
        for (m, k, n) in [(3600, 16, 16), (900, 32, 32), (4096, 24, 28), (32, 1, 6)] {
            assert_eq!(
                small_product_kernel(DatumType::F32, Some(m), Some(k), Some(n)),
                Some(SMALL_PRODUCT_KERNEL),
                "{m}x{k}x{n}"
            );
        }
    }

    #[test]
    fn other_products_stay_with_tract() {
        let (f32, i32) = (DatumType::F32, DatumType::I32);
        // k above SMALL_K, too few columns or rows for one tile, unknown dimensions, integers.
        for (dt, m, k, n) in [
            (f32, Some(225), Some(64), Some(64)),
            (f32, Some(256), Some(88), Some(2)),
            (f32, Some(3600), Some(16), Some(5)),
            (f32, Some(16), Some(16), Some(16)),
            (f32, None, Some(16), Some(16)),
            (f32, Some(3600), None, Some(16)),
            (i32, Some(3600), Some(16), Some(16)),
        ] {
            assert_eq!(
                small_product_kernel(dt, m, k, n),
                None,
                "{dt:?} {m:?}x{k:?}x{n:?}"
            );
        }
    }

    /// The tier reaches tract's registry (a linker that dropped it would leave tract's choice
    /// everywhere), and on a host where it answers tract's dispatch runs the wide tile.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn tract_dispatch_follows_the_tier_where_it_answers() {
        use tract_linalg::MmmDispatch;
        use tract_onnx::prelude::tract_linalg;
        assert!(
            tract_linalg::mmm_tiers::declared().any(|t| t.name == TIER_NAME),
            "the tier is not in tract's registry"
        );
        let picked = MmmDispatch::native()
            .preferred_kernel(DatumType::F32, Some(3600), Some(16), Some(16))
            .map(|k| k.name().to_string());
        if host::answers().is_ok() {
            assert_eq!(
                picked.as_deref(),
                Some(SMALL_PRODUCT_KERNEL),
                "{}",
                describe()
            );
        }
    }
}
