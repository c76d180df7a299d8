//! x86-64 kernels: AVX2 (+FMA, F16C) and AVX-512 (F/BW/VL, optionally VNNI).
//!
//! Every function here that uses intrinsics is either `#[target_feature]` or
//! `#[inline(always)]` and only reached from such a function, and the entry points
//! are only handed out by [`select`] for a level the CPU has.

// Tile loops index several arrays (rows, tokens, accumulators) by the same `i`/`c`.
#![allow(clippy::needless_range_loop)]

pub(crate) mod quantize;

mod avx2;
mod avx2_k;
mod avx2_x16;
mod avx512;
mod avx512_k;
mod avx512_q4_0r;
mod avx512_q4_k;
mod avx512_x16;
mod float;

use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};

use crate::cpu::Isa;
use crate::matmul::{GemmFn, Layout, Prep};
use crate::quant::order::is_repacked;
use crate::GgmlType;

/// The SIMD kernel for a matrix of `ty` with `rows` rows at level `isa`: activation
/// layout, kernel, row tile. `None` for the scalar level.
pub(crate) fn select(ty: GgmlType, rows: usize, layout: Layout, isa: Isa) -> Option<(Prep, GemmFn, usize)> {
    match isa {
        Isa::Scalar | Isa::Neon | Isa::NeonDotprod | Isa::NeonI8mm => None,
        Isa::Avx2 | Isa::AvxVnni => select_256(ty, rows, layout, isa),
        Isa::Avx512 | Isa::Avx512Vnni => select_512(ty, rows, layout, isa),
    }
}

/// [`select`] at the 256-bit levels: the AVX2 kernels, with `vpdpbusd` at AVX-VNNI.
fn select_256(ty: GgmlType, rows: usize, layout: Layout, isa: Isa) -> Option<(Prep, GemmFn, usize)> {
    use avx512::Format;
    use GgmlType::*;
    let q8 = Prep::Q8 { shift: 0 };
    // The integer kernel of this level among a format's three builds.
    let pick = |plain: GemmFn, vex: GemmFn, evex: GemmFn| match (isa, isa.vnni256_is_vex()) {
        (Isa::AvxVnni, true) => vex,
        (Isa::AvxVnni, false) => evex,
        _ => plain,
    };
    match (layout, ty) {
        (Layout::Rows, _) => {}
        (Layout::Interleaved16, Q4_1) => {
            return Some((q8, pick(avx2_x16::q4_1, avx2_x16::q4_1_vex, avx2_x16::q4_1_evex), avx2_x16::ROWS))
        }
        (Layout::Interleaved16, Q5_0) => {
            let prep = Prep::Q8 { shift: avx512::Q5_0::SHIFT };
            return Some((prep, pick(avx2_x16::q5_0, avx2_x16::q5_0_vex, avx2_x16::q5_0_evex), avx2_x16::ROWS));
        }
        (Layout::Interleaved16, Q8_0) if isa == Isa::AvxVnni => {
            let prep = Prep::Q8 { shift: avx512::Q8_0::SHIFT };
            let k = if isa.vnni256_is_vex() { avx2_x16::q8_0_vex } else { avx2_x16::q8_0_evex };
            return Some((prep, k, avx2_x16::ROWS));
        }
        _ => return None,
    }
    let repacked = is_repacked(ty, rows);
    Some(match ty {
        Q4_0 if repacked => (
            q8,
            pick(avx2::gemm_q4_0_repacked, avx2::gemm_q4_0_repacked_vex, avx2::gemm_q4_0_repacked_evex),
            avx2::ROWS,
        ),
        Q4_0 => (q8, pick(avx2::gemm_q4_0, avx2::gemm_q4_0_vex, avx2::gemm_q4_0_evex), avx2::ROWS),
        Q4_1 => (q8, pick(avx2::gemm_q4_1, avx2::gemm_q4_1_vex, avx2::gemm_q4_1_evex), avx2::ROWS),
        Q5_0 => (q8, pick(avx2::gemm_q5_0, avx2::gemm_q5_0_vex, avx2::gemm_q5_0_evex), avx2::ROWS),
        Q5_1 => (q8, pick(avx2::gemm_q5_1, avx2::gemm_q5_1_vex, avx2::gemm_q5_1_evex), avx2::ROWS),
        Q8_0 => (q8, pick(avx2::gemm_q8_0, avx2::gemm_q8_0_vex, avx2::gemm_q8_0_evex), avx2::ROWS),
        Q4_K if repacked => (Prep::Q8K, avx2_k::gemm_q4_k_repacked, avx2_k::ROWS),
        Q4_K => (Prep::Q8K, avx2_k::gemm_q4_k, avx2_k::ROWS),
        Q5_K => (Prep::Q8K, avx2_k::gemm_q5_k, avx2_k::ROWS),
        Q6_K => (Prep::Q8K, avx2_k::gemm_q6_k, avx2_k::ROWS),
        F32 | F16 | BF16 => (Prep::Float, float::avx2_gemm(ty), float::ROWS),
        _ => return None,
    })
}

/// [`select`] at the AVX-512 levels.
fn select_512(ty: GgmlType, rows: usize, layout: Layout, isa: Isa) -> Option<(Prep, GemmFn, usize)> {
    use avx512::Format;
    use GgmlType::*;
    let q8 = |shift: u32| Prep::Q8 { shift };
    let vnni = isa == Isa::Avx512Vnni;
    if layout == Layout::Interleaved16 {
        return match (vnni, ty) {
            (false, Q4_1) => Some((q8(0), avx512_x16::q4_1_plain, avx512_x16::ROWS)),
            (true, Q4_1) => Some((q8(0), avx512_x16::q4_1_vnni, avx512_x16::ROWS)),
            (false, Q5_0) => Some((q8(avx512::Q5_0::SHIFT), avx512_x16::q5_0_plain, avx512_x16::ROWS)),
            (true, Q5_0) => Some((q8(avx512::Q5_0::SHIFT), avx512_x16::q5_0_vnni, avx512_x16::ROWS)),
            (true, Q8_0) => Some((q8(avx512::Q8_0::SHIFT), avx512_x16::q8_0_vnni, avx512_x16::ROWS)),
            _ => None,
        };
    }
    if layout == Layout::Interleaved4 {
        return match (vnni, ty) {
            (false, Q4_1) => Some((q8(0), avx512::q4_1x4_plain, 4)),
            (true, Q4_1) => Some((q8(0), avx512::q4_1x4_vnni, 4)),
            (false, Q5_0) => Some((q8(avx512::Q5_0::SHIFT), avx512::q5_0x4_plain, 4)),
            (true, Q5_0) => Some((q8(avx512::Q5_0::SHIFT), avx512::q5_0x4_vnni, 4)),
            _ => None,
        };
    }
    let repacked = is_repacked(ty, rows);
    Some(match ty {
        Q4_0 if repacked => {
            let k = if vnni { avx512_q4_0r::q4_0_vnni } else { avx512_q4_0r::q4_0_plain };
            (q8(avx512::Q4_0::SHIFT), k, avx512::ROWS)
        }
        Q4_0 => {
            let k = if vnni { avx512::q4_0_vnni } else { avx512::q4_0_plain };
            (q8(avx512::Q4_0::SHIFT), k, avx512::ROWS)
        }
        Q4_1 => (q8(0), if vnni { avx512::q4_1_vnni } else { avx512::q4_1_plain }, avx512::ROWS),
        Q5_1 => (q8(0), if vnni { avx512::q5_1_vnni } else { avx512::q5_1_plain }, avx512::ROWS),
        Q5_0 => {
            let k = if vnni { avx512::q5_0_vnni } else { avx512::q5_0_plain };
            (q8(avx512::Q5_0::SHIFT), k, avx512::ROWS)
        }
        // Without VNNI, ggml's AVX2 Q8_0 dot product is the faster one.
        Q8_0 if vnni => (q8(avx512::Q8_0::SHIFT), avx512::q8_0_vnni, avx512::ROWS),
        Q8_0 => (q8(0), avx2::gemm_q8_0, avx2::ROWS),
        Q4_K if repacked => (Prep::Q8K, if vnni { avx512_q4_k::q4_k_vnni } else { avx512_q4_k::q4_k_plain }, 4),
        Q4_K => (Prep::Q8K, avx2_k::gemm_q4_k, avx2_k::ROWS),
        // ggml has no AVX-512 Q5_K dot product: its AVX2 one runs at every level.
        Q5_K => (Prep::Q8K, avx2_k::gemm_q5_k, avx2_k::ROWS),
        Q6_K => {
            (Prep::Q8K, if vnni { avx512_k::gemm_q6_k::<true> } else { avx512_k::gemm_q6_k::<false> }, avx512_k::ROWS)
        }
        F32 | F16 | BF16 => (Prep::Float, float::avx512_gemm(ty), float::ROWS),
        _ => return None,
    })
}

pub(crate) use crate::tiles::{drive_tiles, each_token};

/// Walks the 16-row groups of `$rows` of `$w` (a matrix in `Layout::Interleaved16`)
/// and, for each, the runs of consecutive tokens that share an order (`Out::fast`),
/// running `$body` with `$group` (the group's first byte), `$nb` (blocks per row),
/// `$r0` (its first output row), `$t..$end` (the run) and `$fast` bound. A macro, not
/// a function taking a closure: a closure would not inherit the kernel's target
/// features, and its intrinsics would not be inlined.
macro_rules! for_each_group_run {
    ($w:expr, $rows:expr, $out:expr, |$group:ident, $nb:ident, $r0:ident, $t:ident, $end:ident, $fast:ident| $body:block) => {{
        let rows: ::std::ops::Range<usize> = $rows;
        debug_assert!(rows.start.is_multiple_of(16) && rows.end.is_multiple_of(16), "groups are whole");
        let $nb = $w.cols() / 32;
        let nt = $out.n_tokens;
        for $r0 in rows.step_by(16) {
            let $group = $w.data().as_ptr().add($r0 * $w.row_size());
            let mut $t = 0;
            while $t < nt {
                let $fast = $out.fast($t);
                let $end = ($t..nt).find(|&u| $out.fast(u) != $fast).unwrap_or(nt);
                $body
                $t = $end;
            }
        }
    }};
}
pub(crate) use for_each_group_run;

/// How far ahead of a tile's progress [`prefetch_ahead`] reaches, in bytes.
pub(crate) const PREFETCH_DISTANCE: usize = 3072;

/// Asks for the cache lines `PREFETCH_DISTANCE` bytes past `base + done`, `len`
/// bytes of them: the bytes a tile of consecutive rows will read a few tiles from
/// now. A tile reads its rows' blocks side by side, so the hardware sees several
/// short streams that end before its own prefetcher has warmed up; reading ahead
/// in the matrix's linear order keeps the memory system busy instead.
#[inline(always)]
pub(crate) unsafe fn prefetch_ahead(base: *const u8, done: usize, len: usize) {
    let ahead = base.wrapping_add(done + PREFETCH_DISTANCE);
    let mut off = 0;
    while off < len {
        // A prefetch never faults, so the address may lie past the matrix.
        _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(off).cast());
        off += 64;
    }
}
