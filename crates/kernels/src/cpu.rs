//! Which instruction set the kernels use, chosen once per process, in one place.
//!
//! Every kernel family (matmul, attention, norms, RoPE, activations) asks
//! [`active_isa`] and nothing else. The best level the CPU supports is detected
//! at first use and cached. The environment variable `SEED_KERNELS` (`scalar`,
//! `avx2`, `avxvnni`, `avx512`, `avx512vnni` on x86-64; `scalar`, `neon`,
//! `dotprod`, `i8mm` on ARM64) caps it, so tests and benchmarks can compare
//! levels on one machine; a level this CPU cannot run gives the best one below it
//! that it can, and a level of the other architecture is reported and ignored.

use std::fmt;
use std::sync::OnceLock;

/// An instruction-set level of the kernels, from slowest to fastest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Portable Rust: the reference every other level is tested against.
    Scalar,
    /// AVX2 + FMA + F16C (x86-64 from 2013 on): 8-bit dot products with
    /// `vpmaddubsw`/`vpmaddwd`, 256-bit registers.
    Avx2,
    /// [`Isa::Avx2`] plus `vpdpbusd` on 256-bit registers: AVX-VNNI (Intel from Alder
    /// Lake on, AMD Zen 5), or the same instruction from AVX-512 VNNI + VL on CPUs
    /// that have those instead (Zen 4, Ice Lake), so the level runs on both.
    AvxVnni,
    /// AVX-512 F/BW/VL (and AVX2, FMA, F16C), 8-bit dot products with `vpmaddubsw`.
    Avx512,
    /// [`Isa::Avx512`] plus VNNI: 8-bit dot products with `vpdpbusd`.
    Avx512Vnni,
    /// ARM64 Advanced SIMD (every ARM64 CPU): 8-bit dot products with widening
    /// multiplies (`smull`) and pairwise adds, 128-bit registers.
    Neon,
    /// [`Isa::Neon`] plus the dot-product extension (ARMv8.2 `dotprod`: Graviton 2 on,
    /// Ampere Altra, Apple M1 on): 8-bit dot products with `sdot`.
    NeonDotprod,
    /// [`Isa::NeonDotprod`] plus the 8-bit matrix multiply (ARMv8.6 `i8mm`: Graviton 3
    /// on, Apple M2 on): `smmla` for 2 rows × 2 tokens where only whole-block sums count.
    NeonI8mm,
}

impl Isa {
    /// Every level: the scalar one, then each architecture's, slowest first.
    pub const ALL: [Isa; 8] = [
        Isa::Scalar,
        Isa::Avx2,
        Isa::AvxVnni,
        Isa::Avx512,
        Isa::Avx512Vnni,
        Isa::Neon,
        Isa::NeonDotprod,
        Isa::NeonI8mm,
    ];

    /// The name `SEED_KERNELS` accepts for this level.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::AvxVnni => "avxvnni",
            Isa::Avx512 => "avx512",
            Isa::Avx512Vnni => "avx512vnni",
            Isa::Neon => "neon",
            Isa::NeonDotprod => "dotprod",
            Isa::NeonI8mm => "i8mm",
        }
    }

    /// The architecture whose CPUs may run this level (`None` for the scalar one,
    /// which runs everywhere).
    pub fn arch(self) -> Option<Arch> {
        match self {
            Isa::Scalar => None,
            Isa::Avx2 | Isa::AvxVnni | Isa::Avx512 | Isa::Avx512Vnni => Some(Arch::X86_64),
            Isa::Neon | Isa::NeonDotprod | Isa::NeonI8mm => Some(Arch::Aarch64),
        }
    }

    /// The level named `name` (as [`Isa::name`] spells it), if any.
    pub fn from_name(name: &str) -> Option<Isa> {
        Isa::ALL.into_iter().find(|isa| isa.name().eq_ignore_ascii_case(name.trim()))
    }

    /// Whether this CPU can run this level. (The levels are not nested: a CPU may
    /// have AVX-512 without any VNNI, and AVX-VNNI without AVX-512.)
    pub fn is_available(self) -> bool {
        features().has(self)
    }

    /// Whether this level's 256-bit `vpdpbusd` is the AVX-VNNI (VEX) encoding, not
    /// AVX-512 VNNI's (EVEX). Only meaningful for [`Isa::AvxVnni`].
    pub fn vnni256_is_vex(self) -> bool {
        features().avxvnni
    }
}

/// An architecture with SIMD levels of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// x86-64: AVX2, AVX-VNNI, AVX-512.
    X86_64,
    /// ARM64: NEON, dotprod, i8mm.
    Aarch64,
}

/// The vector registers a level's element-wise kernels (attention, norms, RoPE,
/// activations) use: those kernels have one implementation per width, not per level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Width {
    /// Portable Rust.
    Scalar,
    /// AVX2 + FMA + F16C, 256-bit registers.
    W256,
    /// AVX-512F, 512-bit registers.
    W512,
}

impl Isa {
    /// The register width of this level's element-wise kernels.
    pub fn width(self) -> Width {
        match self {
            Isa::Scalar => Width::Scalar,
            Isa::Avx2 | Isa::AvxVnni => Width::W256,
            Isa::Avx512 | Isa::Avx512Vnni => Width::W512,
            // ARM64 has matrix kernels of its own; its element-wise kernels are the
            // portable ones (which the compiler vectorizes where the order allows).
            Isa::Neon | Isa::NeonDotprod | Isa::NeonI8mm => Width::Scalar,
        }
    }
}

/// Every width this CPU runs, narrowest first (for tests that compare them).
pub fn available_widths() -> Vec<Width> {
    let mut widths: Vec<Width> = Isa::ALL.into_iter().filter(|i| i.is_available()).map(Isa::width).collect();
    widths.dedup();
    widths
}

/// The width of the active level's element-wise kernels.
pub fn active_width() -> Width {
    active_isa().width()
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The CPU features the levels need, detected once.
#[derive(Clone, Copy, Debug, Default)]
struct Features {
    avx2: bool,
    avxvnni: bool,
    avx512: bool,
    avx512vnni: bool,
    neon: bool,
    dotprod: bool,
    i8mm: bool,
}

impl Features {
    fn has(self, isa: Isa) -> bool {
        match isa {
            Isa::Scalar => true,
            Isa::Avx2 => self.avx2,
            Isa::AvxVnni => self.avx2 && (self.avxvnni || (self.avx512 && self.avx512vnni)),
            Isa::Avx512 => self.avx2 && self.avx512,
            Isa::Avx512Vnni => self.avx2 && self.avx512 && self.avx512vnni,
            Isa::Neon => self.neon,
            Isa::NeonDotprod => self.neon && self.dotprod,
            Isa::NeonI8mm => self.neon && self.dotprod && self.i8mm,
        }
    }
}

fn features() -> Features {
    static FEATURES: OnceLock<Features> = OnceLock::new();
    *FEATURES.get_or_init(detect)
}

/// The best level this CPU supports, ignoring `SEED_KERNELS`.
pub fn detected_isa() -> Isa {
    Isa::ALL.into_iter().filter(|isa| isa.is_available()).max().unwrap_or(Isa::Scalar)
}

/// The best level this CPU supports that is no faster than `cap` (a level of this
/// CPU's architecture, or the scalar one).
fn best_up_to(cap: Isa) -> Isa {
    Isa::ALL
        .into_iter()
        .filter(|isa| *isa <= cap && (isa.arch().is_none() || isa.arch() == cap.arch()) && isa.is_available())
        .max()
        .unwrap_or(Isa::Scalar)
}

/// Whether `isa` is a level of the architecture this program was built for.
fn of_this_arch(isa: Isa) -> bool {
    isa.arch().is_none_or(|a| a == THIS_ARCH)
}

#[cfg(target_arch = "aarch64")]
const THIS_ARCH: Arch = Arch::Aarch64;
#[cfg(not(target_arch = "aarch64"))]
const THIS_ARCH: Arch = Arch::X86_64;

/// The level every kernel uses: the detected one, capped by `SEED_KERNELS`. An
/// unknown `SEED_KERNELS` value is reported once on stderr and ignored.
pub fn active_isa() -> Isa {
    static ACTIVE: OnceLock<Isa> = OnceLock::new();
    *ACTIVE.get_or_init(|| match std::env::var("SEED_KERNELS") {
        Err(_) => detected_isa(),
        Ok(v) => match Isa::from_name(&v) {
            Some(cap) if of_this_arch(cap) => best_up_to(cap),
            Some(_) => {
                eprintln!("warning: SEED_KERNELS={v:?} is a level of another architecture; using {}", detected_isa());
                detected_isa()
            }
            None => {
                let names: Vec<&str> = Isa::ALL.iter().map(|i| i.name()).collect();
                eprintln!("warning: SEED_KERNELS={v:?} is not one of {}; using {}", names.join(", "), detected_isa());
                detected_isa()
            }
        },
    })
}

#[cfg(target_arch = "x86_64")]
fn detect() -> Features {
    use std::arch::is_x86_feature_detected as has;
    Features {
        avx2: has!("avx2") && has!("fma") && has!("f16c"),
        avxvnni: has!("avxvnni"),
        avx512: has!("avx512f") && has!("avx512bw") && has!("avx512vl"),
        avx512vnni: has!("avx512vnni"),
        ..Features::default()
    }
}

#[cfg(target_arch = "aarch64")]
fn detect() -> Features {
    use std::arch::is_aarch64_feature_detected as has;
    Features { neon: has!("neon"), dotprod: has!("dotprod"), i8mm: has!("i8mm"), ..Features::default() }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn detect() -> Features {
    Features::default()
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
        assert!(Isa::Scalar < Isa::Avx2 && Isa::Avx2 < Isa::AvxVnni && Isa::Avx512 < Isa::Avx512Vnni);
        assert!(Isa::Scalar.is_available());
        assert!(active_isa() <= detected_isa() && active_isa().is_available());
    }

    #[test]
    fn a_level_needs_its_own_features_not_only_a_faster_level() {
        let skylake_x = Features { avx2: true, avx512: true, ..Features::default() };
        let alder_lake = Features { avx2: true, avxvnni: true, ..Features::default() };
        let zen4 = Features { avx2: true, avx512: true, avx512vnni: true, ..Features::default() };
        let zen1 = Features { avx2: true, ..Features::default() };
        let has = |f: Features| Isa::ALL.into_iter().filter(|i| f.has(*i)).collect::<Vec<_>>();
        assert_eq!(has(skylake_x), [Isa::Scalar, Isa::Avx2, Isa::Avx512]);
        assert_eq!(has(alder_lake), [Isa::Scalar, Isa::Avx2, Isa::AvxVnni]);
        assert_eq!(has(zen4), Isa::ALL[..5]);
        assert_eq!(has(zen1), [Isa::Scalar, Isa::Avx2]);
        assert_eq!(has(Features::default()), [Isa::Scalar]);
        let graviton2 = Features { neon: true, dotprod: true, ..Features::default() };
        assert_eq!(has(graviton2), [Isa::Scalar, Isa::Neon, Isa::NeonDotprod]);
    }

    #[test]
    fn a_cap_stays_within_its_architecture() {
        // On any CPU: capping at a level of the other architecture never gives one of its
        // own above the scalar level by accident, and capping at this one's stays on it.
        for cap in Isa::ALL {
            let got = best_up_to(cap);
            assert!(got <= cap && got.is_available(), "{cap} gave {got}");
            assert!(got.arch().is_none() || got.arch() == cap.arch(), "{cap} gave {got}");
        }
        assert!(of_this_arch(Isa::Scalar) && of_this_arch(detected_isa()));
    }
}
