//! ARM64 kernels: NEON on every ARM64 CPU, `sdot` where it has the dot-product
//! extension, `smmla` where it has the 8-bit matrix multiply.
//!
//! They read the activations in ggml's block layouts (as the scalar kernels do) and
//! keep ggml's x86 order of float operations (see `quant::order`): each lane of 4
//! products is an exact integer sum however it is formed, so every level gives the
//! scalar kernels' bits, and the tests say so with `==`.
//!
//! Every function here that uses intrinsics is either `#[target_feature]` or
//! `#[inline(always)]` and only reached from such a function, and the entry points
//! are only handed out by [`select`] for a level the CPU has.

// Tile loops index several arrays (rows, tokens, accumulators) by the same `i`/`c`.
#![allow(clippy::needless_range_loop)]

mod k;
mod q32;

use std::arch::aarch64::*;
use std::arch::asm;

use crate::cpu::Isa;
use crate::matmul::{GemmFn, Layout, Out, Prep};
use crate::quant::order::is_repacked;
use crate::GgmlType;

/// The kernel for a matrix of `ty` with `rows` rows at level `isa`: activation
/// layout, kernel, row tile. `None` where the scalar kernel is the one (another
/// architecture's level, an interleaved layout, the float types).
pub(crate) fn select(ty: GgmlType, rows: usize, layout: Layout, isa: Isa) -> Option<(Prep, GemmFn, usize)> {
    use GgmlType::*;
    if layout != Layout::Rows {
        return None;
    }
    let repacked = is_repacked(ty, rows);
    let by_level = |neon: GemmFn, dotprod: GemmFn, i8mm: GemmFn| match isa {
        Isa::Neon => Some(neon),
        Isa::NeonDotprod => Some(dotprod),
        Isa::NeonI8mm => Some(i8mm),
        _ => None,
    };
    let kernel = match ty {
        Q4_0 if repacked => by_level(q32::q4_0r_neon, q32::q4_0r_dotprod, q32::q4_0r_i8mm),
        Q4_0 => by_level(q32::q4_0_neon, q32::q4_0_dotprod, q32::q4_0_dotprod),
        Q4_1 => by_level(q32::q4_1_neon, q32::q4_1_dotprod, q32::q4_1_dotprod),
        Q5_0 => by_level(q32::q5_0_neon, q32::q5_0_dotprod, q32::q5_0_dotprod),
        Q8_0 => by_level(q32::q8_0_neon, q32::q8_0_dotprod, q32::q8_0_dotprod),
        Q4_K if repacked => by_level(k::q4_kr_neon, k::q4_kr_dotprod, k::q4_kr_i8mm),
        Q4_K => by_level(k::q4_k_neon, k::q4_k_dotprod, k::q4_k_dotprod),
        Q5_K => by_level(k::q5_k_neon, k::q5_k_dotprod, k::q5_k_dotprod),
        Q6_K => by_level(k::q6_k_neon, k::q6_k_dotprod, k::q6_k_dotprod),
        _ => None,
    }?;
    let row_tile = if matches!(ty, Q4_K | Q5_K | Q6_K) { k::ROWS } else { q32::ROWS };
    Some((Prep::Blocks, kernel, row_tile))
}

/// How a level forms 4 lanes of 4 signed 8-bit products each: lane `l` of `dot(a, b)`
/// is `Σ a[4l+k]·b[4l+k]`, exactly, whichever way.
pub(crate) trait Dot {
    /// The 4 lane sums of `a·b`.
    unsafe fn dot(a: int8x16_t, b: int8x16_t) -> int32x4_t;
}

/// NEON alone: widening multiplies (`smull`, `smull2`; a product of two i8 fits an
/// i16) and two rounds of pairwise adds.
pub(crate) struct Smull;

impl Dot for Smull {
    #[inline(always)]
    unsafe fn dot(a: int8x16_t, b: int8x16_t) -> int32x4_t {
        let lo = vmull_s8(vget_low_s8(a), vget_low_s8(b));
        let hi = vmull_high_s8(a, b);
        // [p0+p1, p2+p3, p4+p5, p6+p7] and the same of p8..p15, then pairs of those.
        vpaddq_s32(vpaddlq_s16(lo), vpaddlq_s16(hi))
    }
}

/// The dot-product extension's `sdot`. (Its intrinsic is not stable in Rust yet, so
/// it is written as inline assembly; it is only reached from `dotprod` functions.)
pub(crate) struct Sdot;

impl Dot for Sdot {
    #[inline(always)]
    unsafe fn dot(a: int8x16_t, b: int8x16_t) -> int32x4_t {
        // SAFETY: a register-only instruction; the caller runs with `dotprod` enabled.
        unsafe { accumulate!("sdot", vdupq_n_s32(0), a, b) }
    }
}

/// `acc` after the accumulating instruction `$op acc.4s, a.16b, b.16b`, as inline assembly
/// (the intrinsics of `sdot` and `smmla` are not stable in Rust yet).
macro_rules! accumulate {
    ($op:literal, $acc:expr, $a:expr, $b:expr) => {{
        let mut acc: int32x4_t = $acc;
        asm!(
            concat!($op, " {acc:v}.4s, {a:v}.16b, {b:v}.16b"),
            acc = inout(vreg) acc,
            a = in(vreg) $a,
            b = in(vreg) $b,
            options(pure, nomem, nostack, preserves_flags)
        );
        acc
    }};
}
use accumulate;

/// `acc + A·Bᵀ` for `A`, `B` two rows of 8 signed bytes each (`a`: row 0 in bytes
/// 0..8, row 1 in 8..16; `b` likewise): lanes `[a0·b0, a0·b1, a1·b0, a1·b1]`, with the
/// 8-bit matrix multiply's `smmla`. Only reached from `i8mm` functions.
#[inline(always)]
pub(crate) unsafe fn smmla(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    // SAFETY: a register-only instruction; the caller runs with `i8mm` enabled.
    unsafe { accumulate!("smmla", acc, a, b) }
}

/// Writes the lanes `[r0·t, r0·t+1, r1·t, r1·t+1]` of an [`smmla`] tile's results.
///
/// # Safety
/// As [`Out::set`] for rows `r0`, `r0 + 1` and tokens `t`, `t + 1`.
#[inline(always)]
pub(crate) unsafe fn store_2x2(out: &Out, v: float32x4_t, r0: usize, t: usize) {
    let mut lanes = [0.0f32; 4];
    vst1q_f32(lanes.as_mut_ptr(), v);
    for (k, x) in lanes.into_iter().enumerate() {
        out.set(t + k % 2, r0 + k / 2, x);
    }
}

/// The 8-byte halves of `x` and `y` regrouped for [`smmla`]: `(x.lo ‖ y.lo, x.hi ‖ y.hi)`.
#[inline(always)]
pub(crate) unsafe fn zip_halves(x: int8x16_t, y: int8x16_t) -> (int8x16_t, int8x16_t) {
    let (x, y) = (vreinterpretq_s64_s8(x), vreinterpretq_s64_s8(y));
    (vreinterpretq_s8_s64(vzip1q_s64(x, y)), vreinterpretq_s8_s64(vzip2q_s64(x, y)))
}

/// ggml's `hsum_float_8` of the 8 lanes `lo ‖ hi`: `((a4 + a0) + (a6 + a2)) + ((a5 + a1) + (a7 + a3))`.
#[inline(always)]
pub(crate) unsafe fn hsum8(lo: float32x4_t, hi: float32x4_t) -> f32 {
    let s = vaddq_f32(hi, lo);
    let t = vadd_f32(vget_low_f32(s), vget_high_f32(s));
    vget_lane_f32::<0>(t) + vget_lane_f32::<1>(t)
}

/// The f16 at `p` (any alignment) as f32.
#[inline(always)]
pub(crate) unsafe fn f16_at(p: *const u8) -> f32 {
    half::f16::from_bits(p.cast::<u16>().read_unaligned()).to_f32()
}

/// Writes each level's entry point of a kernel body generic over its formats and,
/// last, its [`Dot`]: `entries!(name_neon, name_dotprod, body[Format, ..])`, and with
/// `; name_i8mm, body8[Format, ..]` an i8mm one whose body takes no `Dot`.
macro_rules! entries {
    ($neon:ident, $dotprod:ident, $body:ident [$($g:ty),*] $(; $i8mm:ident, $body8:ident [$($g8:ty),*])?) => {
        /// The NEON level's kernel (see the module docs).
        pub(super) unsafe fn $neon(w: &QMatrix<'_>, acts: &Acts<'_>, rows: Range<usize>, out: &Out) {
            // SAFETY: NEON is part of every ARM64 CPU; the caller keeps `matmul`'s contract.
            unsafe { $body::<$($g,)* $crate::arm::Smull>(w, acts, rows, out) }
        }
        /// The dotprod level's kernel (see the module docs).
        #[target_feature(enable = "dotprod")]
        pub(super) unsafe fn $dotprod(w: &QMatrix<'_>, acts: &Acts<'_>, rows: Range<usize>, out: &Out) {
            // SAFETY: `select` hands this out only at a level with `dotprod`.
            unsafe { $body::<$($g,)* $crate::arm::Sdot>(w, acts, rows, out) }
        }
        $(
        /// The i8mm level's kernel (see the module docs).
        #[target_feature(enable = "dotprod,i8mm")]
        pub(super) unsafe fn $i8mm(w: &QMatrix<'_>, acts: &Acts<'_>, rows: Range<usize>, out: &Out) {
            // SAFETY: `select` hands this out only at a level with `i8mm` (and `dotprod`).
            unsafe { $body8::<$($g8),*>(w, acts, rows, out) }
        }
        )?
    };
}
pub(crate) use entries;

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(seed: u32) -> [i8; 16] {
        // Every corner: −128, 127, 0, and a spread between.
        std::array::from_fn(|i| match (i as u32 + seed) % 5 {
            0 => -128,
            1 => 127,
            2 => 0,
            _ => ((i as u32 * 37 + seed * 101) % 256) as u8 as i8,
        })
    }

    fn lanes(v: int32x4_t) -> [i32; 4] {
        let mut out = [0i32; 4];
        // SAFETY: NEON is part of every ARM64 CPU; `out` holds 4 lanes.
        unsafe { vst1q_s32(out.as_mut_ptr(), v) };
        out
    }

    #[target_feature(enable = "dotprod")]
    unsafe fn sdot(a: int8x16_t, b: int8x16_t) -> int32x4_t {
        // SAFETY: the caller checked this CPU has `dotprod`.
        unsafe { Sdot::dot(a, b) }
    }

    #[target_feature(enable = "i8mm")]
    unsafe fn mmla(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
        // SAFETY: the caller checked this CPU has `i8mm`.
        unsafe { smmla(acc, a, b) }
    }

    #[test]
    fn every_level_forms_the_exact_sums_of_four_products() {
        for seed in 0..8 {
            let (a, b) = (bytes(seed), bytes(seed * 3 + 1));
            let want: [i32; 4] =
                std::array::from_fn(|l| (4 * l..4 * l + 4).map(|k| i32::from(a[k]) * i32::from(b[k])).sum());
            // SAFETY: NEON is part of every ARM64 CPU.
            let (va, vb) = unsafe { (vld1q_s8(a.as_ptr()), vld1q_s8(b.as_ptr())) };
            // SAFETY: as above.
            assert_eq!(lanes(unsafe { Smull::dot(va, vb) }), want, "smull, seed {seed}");
            if Isa::NeonDotprod.is_available() {
                // SAFETY: this CPU has `dotprod`.
                assert_eq!(lanes(unsafe { sdot(va, vb) }), want, "sdot, seed {seed}");
            }
            if Isa::NeonI8mm.is_available() {
                let two = |x: &[i8; 16], i: usize, y: &[i8; 16], j: usize| -> i32 {
                    (0..8).map(|k| i32::from(x[8 * i + k]) * i32::from(y[8 * j + k])).sum()
                };
                // SAFETY: this CPU has `i8mm`.
                let got = lanes(unsafe { mmla(vdupq_n_s32(5), va, vb) });
                assert_eq!(
                    got,
                    [5 + two(&a, 0, &b, 0), 5 + two(&a, 0, &b, 1), 5 + two(&a, 1, &b, 0), 5 + two(&a, 1, &b, 1)]
                );
            }
        }
    }

    #[test]
    fn every_quantized_format_has_a_kernel_at_every_arm_level() {
        use GgmlType::*;
        for isa in [Isa::Neon, Isa::NeonDotprod, Isa::NeonI8mm] {
            for ty in [Q4_0, Q4_1, Q5_0, Q8_0, Q4_K, Q5_K, Q6_K] {
                for rows in [8, 9] {
                    assert!(select(ty, rows, Layout::Rows, isa).is_some(), "{ty} {isa} {rows} rows");
                }
            }
            assert!(select(F32, 8, Layout::Rows, isa).is_none(), "floats take the scalar kernels");
        }
        assert!(select(Q4_1, 16, Layout::Interleaved16, Isa::NeonDotprod).is_none());
        assert!(select(Q4_1, 16, Layout::Rows, Isa::Avx2).is_none());
    }
}
