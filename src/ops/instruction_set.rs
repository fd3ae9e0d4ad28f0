//! The x86 instruction sets the vector kernels are written for, detected once per process; the
//! convolution's and the pooling's kernels dispatch on them, and the portable path serves
//! every other CPU. Loops the compiler vectorizes run in a copy built for the best of them
//! (`with_widest_vectors`).

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::activation::{relu6_candle, relu6_candle_pass};
    use rand::{rngs::StdRng, Rng, SeedableRng};

    /// `x·1.37 − 0.21` through ReLU6, and the candle gradient `x − 3` through it at `x`, as bits:
    /// two loops the compiler vectorizes, inlined into whichever copy calls them.
    #[inline(always)]
    fn run(x: &[f32]) -> Vec<u32> {
        let (mut z, mut g) = (vec![0.0f32; x.len()], vec![0.0f32; x.len()]);
        for (o, &v) in z.iter_mut().zip(x) {
            *o = relu6_candle(v * 1.37 - 0.21);
        }
        for (o, &v) in g.iter_mut().zip(x) {
            *o = 0.0 + relu6_candle_pass(v - 3.0, v);
        }
        z.iter().chain(&g).map(|v| v.to_bits()).collect()
    }

    /// A BatchNorm-style loop (`x·scale + shift`, then ReLU6 and its candle gradient) gives the
    /// same bits in every compiled copy this CPU can run as in the baseline one, on values with
    /// ties at 0 and 6, signed zeros, NaN and infinities.
    #[test]
    fn every_compiled_copy_gives_the_baseline_bits() {
        let mut rng = StdRng::seed_from_u64(5);
        let mut x: Vec<f32> = (0..1003).map(|_| rng.random_range(-6.0..14.0)).collect();
        x[..6].copy_from_slice(&[0.0, -0.0, 6.0, f32::NAN, f32::INFINITY, -f32::INFINITY]);
        let base = run(&x);
        #[cfg(target_arch = "x86_64")]
        for &isa in Isa::available() {
            // SAFETY: `available` lists only instruction sets this CPU has.
            let got = match isa {
                Isa::Avx512 => unsafe {
                    with_avx512(
                        #[inline(always)]
                        || run(&x),
                    )
                },
                Isa::Avx2 => unsafe {
                    with_avx2(
                        #[inline(always)]
                        || run(&x),
                    )
                },
                Isa::Portable => run(&x),
            };
            assert_eq!(got, base, "{isa:?}");
        }
        assert_eq!(
            with_widest_vectors(
                #[inline(always)]
                || run(&x)
            ),
            base
        );
    }
}
