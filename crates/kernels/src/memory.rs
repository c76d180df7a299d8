//! Large, long-lived buffers backed by transparent huge pages.
//!
//! A decode step streams every weight once: ~100 MB for SmolLM2, in 4 KiB pages
//! 25,000 translations per token, most of them misses in the TLB. Where the
//! system leaves huge pages to the program's choice (Linux's `madvise` mode, the
//! common default), a buffer asked for them before it is first touched is backed
//! by 2 MiB pages: 50 translations for the same bytes. [`HugeBuf`] is such a
//! buffer (elsewhere, or when the system says no, an ordinary zeroed one), and
//! [`SlabArena`] packs a model's many small matrices side by side into them.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

/// The huge page size asked for (x86-64 and most arm64 systems).
pub const HUGE_PAGE: usize = 2 << 20;

/// A zero-filled buffer of `T` that starts on a [`HUGE_PAGE`] boundary and was
/// advised for huge pages before it was first written.
pub struct HugeBuf<T> {
    storage: Vec<T>,
    start: usize,
    len: usize,
}

impl<T: bytemuck::Zeroable + Copy> HugeBuf<T> {
    /// `len` zeroes. A buffer of a huge page or more costs up to one huge page
    /// more address space (the alignment); a smaller one is an ordinary buffer.
    /// Memory is committed as it is first written: a large zeroed allocation
    /// comes from fresh, untouched pages (the allocator's `calloc`), and the
    /// advice is given before any write, so those faults take huge pages.
    pub fn zeroed(len: usize) -> Self {
        let size = std::mem::size_of::<T>();
        assert!(size > 0 && HUGE_PAGE.is_multiple_of(size), "HugeBuf of a {size}-byte type");
        if len.saturating_mul(size) < HUGE_PAGE {
            return HugeBuf { storage: bytemuck::zeroed_vec(len), start: 0, len };
        }
        let pad = HUGE_PAGE / size;
        let storage: Vec<T> = bytemuck::zeroed_vec(len + pad);
        let addr = storage.as_ptr() as usize;
        let skip = addr.next_multiple_of(HUGE_PAGE) - addr;
        assert!(skip.is_multiple_of(size), "allocation not aligned for its type");
        let start = skip / size;
        imp::advise_huge(storage.as_ptr().wrapping_add(start).cast(), len * size);
        HugeBuf { storage, start, len }
    }
}

impl<T> Deref for HugeBuf<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.storage[self.start..self.start + self.len]
    }
}

impl<T> DerefMut for HugeBuf<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.storage[self.start..self.start + self.len]
    }
}

impl<T> std::fmt::Debug for HugeBuf<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HugeBuf").field("len", &self.len).finish_non_exhaustive()
    }
}

/// Hands out zeroed, disjoint runs of `u64` words from huge-page slabs, for many
/// long-lived buffers too small for huge pages of their own (a small model's
/// weight matrices are a few hundred KiB each): packed side by side, they share
/// the slabs' 2 MiB pages. A run keeps its slab alive; the arena only keeps the
/// slab it is filling.
pub struct SlabArena {
    slab_words: usize,
    current: Option<(Arc<Slab>, usize)>,
}

/// One slab: a [`HugeBuf`] never touched as a whole after it is made, only
/// through the disjoint runs handed out.
struct Slab {
    base: *mut u64,
    len: usize,
    _buf: HugeBuf<u64>,
}

// SAFETY: the slab's words are reached only through `SlabWords`, whose runs are
// disjoint (the arena hands each word out once), each run's `&mut` access needs
// `&mut SlabWords`, and `_buf` is never touched while runs exist.
unsafe impl Send for Slab {}
// SAFETY: as above.
unsafe impl Sync for Slab {}

/// A run of words handed out by a [`SlabArena`].
pub struct SlabWords {
    slab: Arc<Slab>,
    start: usize,
    len: usize,
}

impl SlabArena {
    /// An arena whose slabs hold `slab_bytes` (at least one huge page; a run
    /// longer than that gets a slab of its own size).
    pub fn new(slab_bytes: usize) -> Self {
        SlabArena { slab_words: slab_bytes.max(HUGE_PAGE) / 8, current: None }
    }

    /// `len` zeroed words. Runs start on 64-byte boundaries.
    pub fn alloc(&mut self, len: usize) -> SlabWords {
        let need = len.next_multiple_of(8);
        let fits = self.current.as_ref().is_some_and(|(slab, used)| used + need <= slab.len);
        if !fits {
            let mut buf = HugeBuf::<u64>::zeroed(need.max(self.slab_words));
            let (base, len) = (buf.as_mut_ptr(), buf.len());
            self.current = Some((Arc::new(Slab { base, len, _buf: buf }), 0));
        }
        let (slab, used) = self.current.as_mut().expect("a slab with room");
        let run = SlabWords { slab: Arc::clone(slab), start: *used, len };
        *used += need;
        run
    }
}

impl Deref for SlabWords {
    type Target = [u64];
    fn deref(&self) -> &[u64] {
        debug_assert!(self.start + self.len <= self.slab.len);
        // SAFETY: `start..start + len` lies in the slab (the arena checked it), its
        // words are initialised (zeroed at creation), and no `&mut` to them can
        // exist while `self` is borrowed shared (see `Slab`).
        unsafe { std::slice::from_raw_parts(self.slab.base.add(self.start), self.len) }
    }
}

impl DerefMut for SlabWords {
    fn deref_mut(&mut self) -> &mut [u64] {
        // SAFETY: as in `deref`; the run is this value's alone, borrowed mutably.
        unsafe { std::slice::from_raw_parts_mut(self.slab.base.add(self.start), self.len) }
    }
}

#[cfg(target_os = "linux")]
mod imp {
    /// Asks for huge pages over `len` bytes at `addr` (a huge-page boundary); a
    /// refusal (no THP support, `never` mode) leaves ordinary pages.
    pub fn advise_huge(addr: *const u8, len: usize) {
        // SAFETY: `madvise` only changes how the kernel backs this range of our own
        // allocation (reserved, not yet written); it reads and writes no memory.
        unsafe {
            libc::madvise(addr.cast_mut().cast(), len, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    pub fn advise_huge(_: *const u8, _: usize) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_buffer_is_zeroed_aligned_and_writable() {
        for len in [0usize, 1, 1000, HUGE_PAGE / 8, HUGE_PAGE / 8 + 3] {
            let mut b = HugeBuf::<u64>::zeroed(len);
            assert_eq!(b.len(), len);
            assert!(b.iter().all(|&w| w == 0));
            // Only a buffer of a huge page or more is placed on a boundary.
            assert!(len < HUGE_PAGE / 8 || (b.as_ptr() as usize).is_multiple_of(HUGE_PAGE));
            b.iter_mut().enumerate().for_each(|(i, w)| *w = i as u64);
            assert!(b.iter().enumerate().all(|(i, &w)| w == i as u64));
        }
        let h = HugeBuf::<half::f16>::zeroed(5);
        assert_eq!(&h[..], &[half::f16::ZERO; 5]);
    }

    #[test]
    fn arena_runs_are_zeroed_disjoint_and_outlive_the_arena() {
        let mut arena = SlabArena::new(HUGE_PAGE);
        let mut runs: Vec<SlabWords> =
            [3usize, 100, 0, HUGE_PAGE / 8 - 200, 5000, HUGE_PAGE / 4].iter().map(|&n| arena.alloc(n)).collect();
        drop(arena);
        for (i, r) in runs.iter_mut().enumerate() {
            assert!(r.iter().all(|&w| w == 0), "run {i} not zeroed");
            r.iter_mut().for_each(|w| *w = i as u64 + 1);
        }
        for (i, r) in runs.iter().enumerate() {
            assert!(r.iter().all(|&w| w == i as u64 + 1), "run {i} overwritten by another");
        }
        // The first runs share one slab; the one longer than a slab has its own.
        assert!(Arc::ptr_eq(&runs[0].slab, &runs[1].slab));
        assert_eq!(runs[5].len(), HUGE_PAGE / 4);
    }
}
