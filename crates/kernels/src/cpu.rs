//! Which instruction set the kernels use, chosen once per process.
//!
//! The best level the CPU supports is detected at first use and cached. The
//! environment variable `SEED_KERNELS` (`scalar`, `avx2`, `avx512`, `avx512vnni`)
//! caps it, so tests and benchmarks can compare levels on one machine; a level
//! above what the CPU has is capped to what it has.

use std::fmt;
use std::sync::OnceLock;

/// An instruction-set level of the kernels, from slowest to fastest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Portable Rust: the reference every other level is tested against.
    Scalar,
    /// AVX2 + FMA + F16C (x86-64 from 2013 on).
    Avx2,
    /// AVX-512 F/BW/VL (and AVX2, FMA, F16C), 8-bit dot products with `vpmaddubsw`.
    Avx512,
    /// [`Isa::Avx512`] plus VNNI: 8-bit dot products with `vpdpbusd`.
    Avx512Vnni,
}

impl Isa {
    /// Every level, slowest first.
    pub const ALL: [Isa; 4] = [Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Avx512Vnni];

    /// The name `SEED_KERNELS` accepts for this level.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Avx512Vnni => "avx512vnni",
        }
    }

    /// The level named `name` (as [`Isa::name`] spells it), if any.
    pub fn from_name(name: &str) -> Option<Isa> {
        Isa::ALL.into_iter().find(|isa| isa.name().eq_ignore_ascii_case(name.trim()))
    }

    /// Whether this CPU can run this level.
    pub fn is_available(self) -> bool {
        self <= detected_isa()
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The best level this CPU supports, ignoring `SEED_KERNELS`.
pub fn detected_isa() -> Isa {
    static DETECTED: OnceLock<Isa> = OnceLock::new();
    *DETECTED.get_or_init(detect)
}

/// The level the kernels use: the detected one, capped by `SEED_KERNELS`.
pub fn active_isa() -> Isa {
    static ACTIVE: OnceLock<Isa> = OnceLock::new();
    *ACTIVE.get_or_init(|| {
        let cap = std::env::var("SEED_KERNELS").ok().and_then(|v| Isa::from_name(&v));
        cap.map_or(detected_isa(), |cap| cap.min(detected_isa()))
    })
}

#[cfg(target_arch = "x86_64")]
fn detect() -> Isa {
    use std::arch::is_x86_feature_detected as has;
    if !(has!("avx2") && has!("fma") && has!("f16c")) {
        return Isa::Scalar;
    }
    if !(has!("avx512f") && has!("avx512bw") && has!("avx512vl")) {
        return Isa::Avx2;
    }
    if has!("avx512vnni") {
        Isa::Avx512Vnni
    } else {
        Isa::Avx512
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> Isa {
    Isa::Scalar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_levels_are_ordered() {
        for isa in Isa::ALL {
            assert_eq!(Isa::from_name(isa.name()), Some(isa));
            assert_eq!(isa.to_string(), isa.name());
        }
        assert_eq!(Isa::from_name(" AVX2 "), Some(Isa::Avx2));
        assert_eq!(Isa::from_name("sse"), None);
        assert!(Isa::Scalar < Isa::Avx2 && Isa::Avx512 < Isa::Avx512Vnni);
        assert!(Isa::Scalar.is_available());
        assert!(active_isa() <= detected_isa());
    }
}
