//! Loops compiled once per instruction set, and the one the CPU runs picked when a model loads.
//!
//! Our own operators ([`super::depthwise`], [`super::pointwise`]) are plain Rust loops written
//! for the compiler to vectorise. On aarch64 (NEON and fused multiply-add are baseline) one
//! build does; on x86_64 the same loops are compiled three times, for AVX-512, AVX2 with FMA
//! and the x86-64 baseline, and `dispatch` (the workspace's second reviewed `unsafe`) runs
//! the build an operator was made with. Operators take an [`Isa`] only where
//! [`Isa::available`] found it on this CPU, which is what makes that sound.

/// The instruction set our loops are compiled for on this CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Isa {
    /// x86_64 with AVX-512F and FMA.
    Avx512,
    /// x86_64 with AVX2 and FMA.
    Avx2Fma,
    /// aarch64: NEON and fused multiply-add are baseline.
    Neon,
    /// Whatever the build targets (x86-64 baseline: SSE2, multiply then add).
    Baseline,
}

impl Isa {
    /// The best this CPU runs.
    pub fn detect() -> Isa {
        [Isa::Avx512, Isa::Avx2Fma, Isa::Neon]
            .into_iter()
            .find(|isa| isa.available())
            .unwrap_or(Isa::Baseline)
    }

    /// Every instruction set this CPU runs, best first (for tests and comparisons).
    pub fn all_available() -> Vec<Isa> {
        [Isa::Avx512, Isa::Avx2Fma, Isa::Neon, Isa::Baseline]
            .into_iter()
            .filter(|isa| isa.available())
            .collect()
    }

    /// Whether this CPU runs these loops.
    pub fn available(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            Isa::Neon => cfg!(target_arch = "aarch64"),
            Isa::Baseline => true,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// f32 lanes of this set's vectors: what `dispatch` gives `Loops::run` as `LANES`.
    pub fn lanes(self) -> usize {
        match self {
            Isa::Avx512 => 16,
            Isa::Avx2Fma => 8,
            Isa::Neon | Isa::Baseline => 4,
        }
    }

    /// A short name for logs and `emotion-edge bench`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512",
            Isa::Avx2Fma => "avx2+fma",
            Isa::Neon => "neon",
            Isa::Baseline => "baseline",
        }
    }
}

/// `a * b + c`, fused where the instruction set has it.
pub(super) trait MulAdd {
    fn mul_add(a: f32, b: f32, c: f32) -> f32;
}

/// One rounding (FMA, NEON's FMLA).
pub(super) struct Fused;
impl MulAdd for Fused {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
}

/// Multiply, then add (x86-64 baseline has no fused multiply-add; `f32::mul_add` would call
/// the C library there). Not built on aarch64, where fused multiply-add is baseline.
#[cfg(not(target_arch = "aarch64"))]
pub(super) struct Separate;
#[cfg(not(target_arch = "aarch64"))]
impl MulAdd for Separate {
    #[inline(always)]
    fn mul_add(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
}

/// Loops compiled once per instruction set: `run` is inlined into [`dispatch`]'s
/// per-instruction-set functions. `LANES` is the f32 lanes of the set's vectors (16 for
/// AVX-512, 8 for AVX2, 4 for NEON and SSE), for loops that size register tiles by it.
pub(super) trait Loops {
    fn run<M: MulAdd, const LANES: usize>(self);
}

/// Runs `loops` compiled for `isa`.
#[allow(unsafe_code)]
pub(super) fn dispatch<L: Loops>(isa: Isa, loops: L) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: every `isa` reaching here is an operator's, and our operators take
        // `Isa::Avx512` only where `Isa::available` found AVX-512F and FMA on this CPU.
        Isa::Avx512 => unsafe { x86::avx512(loops) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above, for AVX2 and FMA.
        Isa::Avx2Fma => unsafe { x86::avx2(loops) },
        // One build of the loops on aarch64, whose baseline has NEON and fused multiply-add.
        #[cfg(target_arch = "aarch64")]
        _ => loops.run::<Fused, 4>(),
        #[cfg(not(target_arch = "aarch64"))]
        _ => loops.run::<Separate, 4>(),
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Fused, Loops};

    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) fn avx512<L: Loops>(loops: L) {
        loops.run::<Fused, 16>()
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) fn avx2<L: Loops>(loops: L) {
        loops.run::<Fused, 8>()
    }
}
