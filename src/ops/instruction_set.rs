//! The x86 instruction sets the vector kernels are written for, detected once per process; the
//! convolution's and the pooling's kernels dispatch on them, and the portable path serves
//! every other CPU.

/// The instruction sets the kernels are written for, best first.
#[derive(Clone, Copy, PartialEq, Debug)]
pub(crate) enum Isa {
    Avx512,
    /// AVX2 with FMA: a 16-lane vector as two 8-lane halves.
    Avx2,
    Portable,
}

impl Isa {
    /// The ones this CPU has, best first (the portable path always), detected once: the
    /// pooling asks per plane.
    pub(crate) fn available() -> &'static [Isa] {
        static ALL: std::sync::OnceLock<Vec<Isa>> = std::sync::OnceLock::new();
        ALL.get_or_init(|| {
            let mut all = Vec::new();
            #[cfg(target_arch = "x86_64")]
            {
                if is_x86_feature_detected!("avx512f") {
                    all.push(Isa::Avx512);
                }
                if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                    all.push(Isa::Avx2);
                }
            }
            all.push(Isa::Portable);
            all
        })
    }

    /// The best one this CPU has: the one the kernels run on.
    pub(crate) fn best() -> Isa {
        Isa::available()[0]
    }
}

/// Whether the CPU has AVX-512F.
pub(crate) fn has_avx512() -> bool {
    Isa::best() == Isa::Avx512
}

/// Whether the CPU has AVX2 (and FMA), with or without AVX-512.
pub(crate) fn has_avx2() -> bool {
    Isa::available().contains(&Isa::Avx2)
}

/// Runs `f` compiled for the best instruction set this CPU has: a loop in `f` that the
/// compiler vectorizes then uses 16 (AVX-512) or 8 (AVX2) lanes instead of the baseline's 4.
/// The bits are the same on every path: Rust never fuses a multiply and an add, and the
/// compiler may vectorize a float loop only where that keeps each value's order of operations.
///
/// `f` is inlined into a copy of this call per instruction set, so it should be the loop itself
/// (one piece of work), not a call that leaves the copy.
#[inline(always)]
pub(crate) fn with_widest_vectors<R>(f: impl FnOnce() -> R) -> R {
    match Isa::best() {
        // SAFETY: `best` is an instruction set this CPU has (detected at run time).
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { with_avx512(f) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => unsafe { with_avx2(f) },
        _ => f(),
    }
}

/// `f` compiled with AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn with_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// `f` compiled with AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}
