//! The tile drivers every architecture's matrix kernels share: macros, not
//! functions taking closures, because a closure would not inherit a kernel's
//! target features and its intrinsics would not be inlined.

/// Walks `rows` × `0..n_tokens` in tiles of `$rt` rows × `$ct` tokens, calling
/// `$tile::<generics.., R, C>(args.., r, t)` for each; the edges use 1-row and
/// 1-token tiles.
macro_rules! drive_tiles {
    ($rows:expr, $nt:expr, $rt:literal, $ct:literal, $tile:ident [$($g:tt),*] ($($arg:expr),*)) => {{
        let rows: ::std::ops::Range<usize> = $rows;
        let nt: usize = $nt;
        let mut r = rows.start;
        while rows.end - r >= $rt {
            let mut t = 0;
            while t + $ct <= nt {
                $tile::<$($g,)* $rt, $ct>($($arg,)* r, t);
                t += $ct;
            }
            while t < nt {
                $tile::<$($g,)* $rt, 1>($($arg,)* r, t);
                t += 1;
            }
            r += $rt;
        }
        while r < rows.end {
            let mut t = 0;
            while t + $ct <= nt {
                $tile::<$($g,)* 1, $ct>($($arg,)* r, t);
                t += $ct;
            }
            while t < nt {
                $tile::<$($g,)* 1, 1>($($arg,)* r, t);
                t += 1;
            }
            r += 1;
        }
    }};
}
pub(crate) use drive_tiles;

/// `for $c in 0..$n { $body }` for `$n <= 8`, written out: with a constant index
/// the accumulators stay in registers, where LLVM left a loop this long rolled
/// and kept them on the stack.
macro_rules! each_token {
    ($c:ident in 0..$n:expr => $body:block) => {
        each_token!(@ $c, $n, $body; 0 1 2 3 4 5 6 7)
    };
    (@ $c:ident, $n:expr, $body:block; $($i:literal)*) => {
        const { assert!($n <= 8, "tiles have at most 8 tokens") };
        $( if $i < $n { let $c: usize = $i; $body } )*
    };
}
pub(crate) use each_token;
