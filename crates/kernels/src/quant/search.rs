//! The scale searches of ggml's reference quantizers (`ggml-quants.c`), the ones
//! `llama-quantize` runs when it has no importance matrix.
//!
//! A model file is only reproducible if every float operation happens in the same
//! order with the same rounding, so these follow ggml operation for operation:
//! f32 throughout, products evaluated left to right (`w·x·l` is `(w·x)·l`), no
//! fused multiply-add (ggml's base library is built without FMA contraction), and
//! rounding by [`nearest_int`]'s float trick (ties to even), not by `f32::round`.

use super::signed_max;

/// Rounds to the nearest integer, ties to even, the way ggml does: adding 1.5·2²³
/// moves the integer part into the low mantissa bits. Exact for |x| < 2²².
#[inline]
pub fn nearest_int(x: f32) -> i32 {
    debug_assert!(x.abs() <= 4_194_303.0, "nearest_int({x}) out of range");
    let bits = (x + 12_582_912.0f32).to_bits() as i32;
    (bits & 0x007F_FFFF) - 0x0040_0000
}

/// Below this largest magnitude a group counts as all zero (ggml's `GROUP_MAX_EPS`).
pub const GROUP_MAX_EPS: f32 = 1e-15;

/// ggml's `make_qx_quants` with `rmse_type` 1 and no importance weights (what
/// Q6_K's reference quantizer calls): symmetric quants `l ∈ [−nmax, nmax)` stored
/// as `l + nmax` in `out`, and the scale that minimises the `x²`-weighted squared
/// error over 19 trial inverse scales around `−nmax / max`.
pub fn make_qx_quants<const N: usize>(nmax: i32, x: &[f32; N], out: &mut [i8; N]) -> f32 {
    let max = signed_max(x);
    let amax = max.abs();
    if amax < GROUP_MAX_EPS {
        out.fill(0);
        return 0.0;
    }
    // Element-wise work in loops the compiler can vectorize; each sum one
    // sequential chain in element order, as in ggml.
    let w: [f32; N] = x.map(|v| v * v);
    let wx: [f32; N] = std::array::from_fn(|i| w[i] * x[i]);
    let quants = |iscale: f32| -> [i32; N] { x.map(|v| nearest_int(iscale * v).clamp(-nmax, nmax - 1)) };
    let sums = |l: &[i32; N]| {
        let lx: [f32; N] = std::array::from_fn(|i| wx[i] * l[i] as f32);
        let l2: [f32; N] = std::array::from_fn(|i| w[i] * l[i] as f32 * l[i] as f32);
        let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
        for i in 0..N {
            sumlx += lx[i];
            suml2 += l2[i];
        }
        (sumlx, suml2)
    };
    let store = |l: &[i32; N], out: &mut [i8; N]| {
        for (o, &l) in out.iter_mut().zip(l) {
            *o = (l + nmax) as i8;
        }
    };
    let l = quants(-(nmax as f32) / max);
    store(&l, out);
    let (sumlx, suml2) = sums(&l);
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in (-9..=9).filter(|&is| is != 0) {
        let l = quants(-(nmax as f32 + 0.1 * is as f32) / max);
        let (sumlx, suml2) = sums(&l);
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            store(&l, out);
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// ggml's `make_q3_quants` with `do_rmse` (what Q3_K's reference quantizer
/// calls): symmetric quants `l ∈ [−nmax, nmax)` stored as `l + nmax`, refined by up
/// to 5 passes that move single quants while the `x²`-weighted fit improves.
pub fn make_q3_quants<const N: usize>(nmax: i32, x: &[f32; N], out: &mut [i8; N]) -> f32 {
    let max = signed_max(x);
    let amax = max.abs();
    if amax < GROUP_MAX_EPS {
        out.fill(0);
        return 0.0;
    }
    let iscale = -(nmax as f32) / max;
    let mut l = [0i32; N];
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for i in 0..N {
        l[i] = nearest_int(iscale * x[i]).clamp(-nmax, nmax - 1);
        let w = x[i] * x[i];
        sumlx += w * x[i] * l[i] as f32;
        suml2 += w * l[i] as f32 * l[i] as f32;
    }
    for _ in 0..5 {
        let mut changed = 0;
        for i in 0..N {
            let w = x[i] * x[i];
            let mut slx = sumlx - w * x[i] * l[i] as f32;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * l[i] as f32 * l[i] as f32;
                let new_l = nearest_int(x[i] * sl2 / slx).clamp(-nmax, nmax - 1);
                if new_l != l[i] {
                    slx += w * x[i] * new_l as f32;
                    sl2 += w * new_l as f32 * new_l as f32;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        l[i] = new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        changed += 1;
                    }
                }
            }
        }
        if changed == 0 {
            break;
        }
    }
    for (o, &l) in out.iter_mut().zip(&l) {
        *o = (l + nmax) as i8;
    }
    if suml2 > 0.0 {
        sumlx / suml2
    } else {
        0.0
    }
}

/// The parameters of one [`make_qkx2_quants`] search.
#[derive(Clone, Copy, Debug)]
pub struct Qkx2 {
    /// Largest quant (15 for 4 bits, 31 for 5).
    pub nmax: i32,
    /// First trial offset added to `nmax`.
    pub rmin: f32,
    /// Step between trial offsets.
    pub rdelta: f32,
    /// Trials after the first (`nstep + 1` in all).
    pub nstep: i32,
    /// Weigh absolute errors instead of squared ones (ggml's `use_mad`, Q2_K's choice).
    pub mad: bool,
}

/// ggml's `make_qkx2_quants`: asymmetric
/// quants `l ∈ [0, nmax]` in `out` for `x ≈ scale·l − min`, found by trying
/// `nstep + 1` inverse scales and solving the weighted least-squares scale and
/// offset for each. Returns `(scale, min)` with `min ≥ 0` (what is subtracted).
pub fn make_qkx2_quants<const N: usize>(
    p: Qkx2,
    x: &[f32; N],
    weights: &[f32; N],
    out: &mut [u8; N],
    aux: &mut [u8; N],
) -> (f32, f32) {
    const { assert!(N > 0) };
    let (mut min, mut max) = (x[0], x[0]);
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..N {
        min = min.min(x[i]);
        max = max.max(x[i]);
        sum_w += weights[i];
        sum_x += weights[i] * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        out.fill(0);
        return (0.0, -min);
    }
    // Element-wise work goes in separate loops the compiler can vectorize; every
    // sum stays one sequential chain in element order, as in ggml.
    let quants = |iscale: f32, min: f32, q: &mut [u8; N]| {
        for (q, &v) in q.iter_mut().zip(x) {
            *q = nearest_int(iscale * (v - min)).clamp(0, p.nmax) as u8;
        }
    };
    let error = |scale: f32, min: f32, q: &[u8; N]| {
        let terms: [f32; N] = std::array::from_fn(|i| {
            let diff = scale * f32::from(q[i]) + min - x[i];
            weights[i] * if p.mad { diff.abs() } else { diff * diff }
        });
        terms.iter().fold(0.0f32, |acc, &t| acc + t)
    };
    let nmax = p.nmax as f32;
    let iscale = nmax / (max - min);
    let mut scale = 1.0 / iscale;
    quants(iscale, min, out);
    let mut best_error = error(scale, min, out);
    for is in 0..=p.nstep {
        let iscale = (p.rmin + p.rdelta * is as f32 + nmax) / (max - min);
        quants(iscale, min, aux);
        let wl: [f32; N] = std::array::from_fn(|i| weights[i] * f32::from(aux[i]));
        let wl2: [f32; N] = std::array::from_fn(|i| wl[i] * f32::from(aux[i]));
        let wlx: [f32; N] = std::array::from_fn(|i| wl[i] * x[i]);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for i in 0..N {
            sum_l += wl[i];
            sum_l2 += wl2[i];
            sum_xl += wlx[i];
        }
        let det = sum_w * sum_l2 - sum_l * sum_l;
        if det > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let cur_error = error(this_scale, this_min, aux);
            if cur_error < best_error {
                out.copy_from_slice(aux);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// The weights the K-quant reference quantizers give the 32 values of a sub-block:
/// `rms(x) + |x_i|`.
pub fn rms_plus_abs_weights(x: &[f32; 32]) -> [f32; 32] {
    let mut sum_x2 = 0.0f32;
    for &v in x {
        sum_x2 += v * v;
    }
    let av_x = (sum_x2 / 32.0).sqrt();
    x.map(|v| av_x + v.abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_int_rounds_ties_to_even() {
        assert_eq!(nearest_int(0.5), 0);
        assert_eq!(nearest_int(1.5), 2);
        assert_eq!(nearest_int(2.5), 2);
        assert_eq!(nearest_int(-0.5), 0);
        assert_eq!(nearest_int(-1.5), -2);
        assert_eq!(nearest_int(-2.49), -2);
        assert_eq!(nearest_int(31.7), 32);
    }

    #[test]
    fn qx_quants_of_zeros_are_zero() {
        let mut out = [7i8; 16];
        assert_eq!(make_qx_quants(32, &[0.0f32; 16], &mut out), 0.0);
        assert_eq!(out, [0; 16]);
    }

    #[test]
    fn qkx2_reconstructs_a_grid_exactly() {
        // Values on a grid of step 0.5 from −1: the search finds scale 0.5, min 1.
        let x: [f32; 32] = std::array::from_fn(|i| -1.0 + 0.5 * (i % 16) as f32);
        let w = rms_plus_abs_weights(&x);
        let (mut out, mut aux) = ([0u8; 32], [0u8; 32]);
        let p = Qkx2 { nmax: 15, rmin: -1.0, rdelta: 0.1, nstep: 20, mad: false };
        let (scale, min) = make_qkx2_quants(p, &x, &w, &mut out, &mut aux);
        for (i, &v) in x.iter().enumerate() {
            assert!((scale * f32::from(out[i]) - min - v).abs() < 1e-5, "element {i}");
        }
    }
}
