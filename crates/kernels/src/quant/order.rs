//! The order in which ggml's x86 kernels add floats, which Seed reproduces bit for
//! bit (see `docs` in `matmul`): a small model quantizes every activation to 8 bits
//! again, so one ulp of difference in a dot product can flip a rounding later on.
//!
//! The dot products of the 32-element formats keep 8 f32 lanes; lane `l` holds the
//! exact integer sum of elements `4l..4l+3` of each block, scaled and added block by
//! block with one fused multiply-add, and the lanes are added pairwise at the end
//! ([`hsum8`]). The integer sums are exact, so any code may compute them; only the
//! float steps must follow this order.

use crate::GgmlType;

/// Whether llama.cpp computes a matrix of `ty` with `rows` rows through its repacked
/// kernels, whose order differs from the dot products': on x86 with AVX2 it repacks
/// Q4_0 and Q4_K weight matrices whose row count is a multiple of 8 when it loads
/// them (`ggml_repack_get_optimal_repack_type`), and every batch size goes through
/// those kernels.
///
/// For Q4_K llama.cpp has two orders there: its gemm kernel (the tokens of whole
/// groups of 4 in a batch) advances each output's chain once per pair of sub-blocks,
/// its gemv kernel (a lone token, and the last `n_tokens % 4`) once per super-block,
/// so in llama.cpp a token's numbers depend on its place in the batch. Seed computes
/// every token in the gemv order — what llama.cpp gives a token decoded alone — so
/// they never do (batch invariance).
pub fn is_repacked(ty: GgmlType, rows: usize) -> bool {
    matches!(ty, GgmlType::Q4_0 | GgmlType::Q4_K) && rows.is_multiple_of(8)
}

/// ggml's `hsum_float_8`: `((a4 + a0) + (a6 + a2)) + ((a5 + a1) + (a7 + a3))`.
#[inline]
pub fn hsum8(a: &[f32; 8]) -> f32 {
    ((a[4] + a[0]) + (a[6] + a[2])) + ((a[5] + a[1]) + (a[7] + a[3]))
}

/// The sums of each 4 consecutive products of a 32-element block: lane `l` of a
/// 256-bit integer dot product.
#[inline]
pub fn group_dots(w: &[i32; 32], a: &[i8]) -> [i32; 8] {
    std::array::from_fn(|l| (4 * l..4 * l + 4).map(|k| w[k] * i32::from(a[k])).sum())
}

/// One block of the 8-lane chain: `acc[l] = d·isum[l] + acc[l]`, fused.
#[inline]
pub fn fma8(acc: &mut [f32; 8], d: f32, isum: &[i32; 8]) {
    for (a, &s) in acc.iter_mut().zip(isum) {
        *a = d.mul_add(s as f32, *a);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hsum8_pairs_lane_l_with_lane_l_plus_4() {
        // 1 + 2^-24 rounds (to even) back to 1, so the grouping shows in the result:
        // lane 4 is lost against lane 0, lanes 5 and 7 survive as a pair.
        let tiny = f32::EPSILON / 2.0;
        let a = [1.0, 0.0, 0.0, 0.0, tiny, tiny, tiny, tiny];
        assert_eq!(hsum8(&a), 1.0 + 2.0 * tiny);
        let in_order = a.iter().fold(0.0f32, |s, v| s + v);
        assert_eq!(in_order, 1.0);
        assert_eq!(hsum8(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]), 36.0);
    }

    #[test]
    fn group_dots_cover_four_elements_each() {
        let w: [i32; 32] = std::array::from_fn(|k| k as i32);
        let a = [1i8; 32];
        assert_eq!(group_dots(&w, &a), [6, 22, 38, 54, 70, 86, 102, 118]);
    }
}
