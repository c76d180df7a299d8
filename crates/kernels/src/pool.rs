//! A small thread pool built for hundreds of short parallel regions per token.
//!
//! A decode step of a small model runs a few hundred matrix products of a few
//! microseconds each, so the cost of waking threads matters as much as the
//! arithmetic. The design follows ggml's: `run(f)` calls `f(thread_index)` once on
//! every thread, the caller included (it is thread 0), and each region splits its
//! own work by that index. Workers spin on an epoch counter for a short while after
//! each region, so back-to-back regions cost a cache-line round trip, and park on a
//! condition variable when the model goes idle, so an idle server burns no CPU.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a worker spins for the next region before it parks.
const SPIN_FOR: Duration = Duration::from_micros(500);

/// Polls of a shared flag before a waiting thread starts yielding its core on each
/// poll. A region usually ends within this many polls; past it, the thread we wait
/// for may have been descheduled (more runnable threads than cores), and spinning
/// on would hold the core it needs for a whole time slice.
const PURE_SPINS: u32 = 256;

/// One poll of a wait loop: a pause, or after [`PURE_SPINS`] polls, a yield.
#[inline]
fn backoff(spins: &mut u32) {
    *spins = spins.saturating_add(1);
    if *spins > PURE_SPINS {
        std::thread::yield_now();
    } else {
        std::hint::spin_loop();
    }
}

/// The job of the current region: a borrowed closure with its lifetime erased.
/// It is only dereferenced between the epoch bump that publishes it and the
/// `pending` count that `run` waits on, while the borrow is still alive.
type JobPtr = *const (dyn Fn(usize) + Sync);

struct Shared {
    /// Bumped once per region; workers run the job when they see it change.
    epoch: AtomicU64,
    /// The current region's closure (see [`JobPtr`]).
    job: UnsafeCell<Option<JobPtr>>,
    /// Workers that have not finished the current region.
    pending: AtomicUsize,
    /// Set if a worker's job panicked during the current region.
    panicked: AtomicBool,
    shutdown: AtomicBool,
    /// Parking for idle workers: the mutex orders "check epoch, then wait" against
    /// "bump epoch, then notify", so no wake-up is lost.
    sleep: Mutex<()>,
    /// Workers parked (or about to park) on `wake`. `run` bumps the epoch and then
    /// reads this, a parking worker counts itself and then reads the epoch, both
    /// `SeqCst`: so either `run` sees the sleeper and notifies it, or the sleeper
    /// sees the new epoch. Regions with every worker spinning make no syscall.
    sleepers: AtomicUsize,
    wake: Condvar,
}

// SAFETY: `job` is written only by the thread inside `run` while no worker reads it
// (all workers have finished the previous region: `pending == 0`), and read by
// workers only after the release/acquire pair on `epoch` publishes the write.
#[allow(unsafe_code)]
unsafe impl Sync for Shared {}
// SAFETY: the raw pointer in `job` refers to a `Sync` closure; see above.
#[allow(unsafe_code)]
unsafe impl Send for Shared {}

/// A fixed set of worker threads that run one parallel region at a time.
pub struct ThreadPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    n_threads: usize,
    /// The CPU of each thread index, for a pinned pool (else empty).
    cpus: Vec<usize>,
    /// Serialises concurrent callers of `run` (the pool runs one region at a time).
    region: Mutex<()>,
}

impl ThreadPool {
    /// A pool of `n_threads` threads in all, the calling thread included; `0` is
    /// taken as 1 (everything runs on the caller).
    pub fn new(n_threads: usize) -> Self {
        Self::build(n_threads, Vec::new())
    }

    /// A pool of one thread per entry of `cpus`, each worker restricted to its
    /// CPU: worker `i` to `cpus[i]`, and the thread that calls [`run`](Self::run)
    /// to `cpus[0]` once it calls [`pin_caller`](Self::pin_caller) (see
    /// [`crate::affinity`] for why). A CPU the system refuses leaves that thread
    /// unpinned. An empty list is [`ThreadPool::new`]`(1)`.
    pub fn pinned(cpus: &[usize]) -> Self {
        Self::build(cpus.len(), cpus.to_vec())
    }

    fn build(n_threads: usize, cpus: Vec<usize>) -> Self {
        let n_threads = n_threads.max(1);
        let shared = Arc::new(Shared {
            epoch: AtomicU64::new(0),
            job: UnsafeCell::new(None),
            pending: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            sleep: Mutex::new(()),
            sleepers: AtomicUsize::new(0),
            wake: Condvar::new(),
        });
        let workers = (1..n_threads)
            .map(|index| {
                let shared = Arc::clone(&shared);
                let cpu = cpus.get(index).copied();
                std::thread::Builder::new()
                    .name(format!("seed-worker-{index}"))
                    .spawn(move || {
                        if let Some(cpu) = cpu {
                            crate::affinity::set_current_thread_cpus(&[cpu]);
                        }
                        worker_loop(&shared, index)
                    })
                    .expect("spawning a worker thread")
            })
            .collect();
        ThreadPool { shared, workers, n_threads, cpus, region: Mutex::new(()) }
    }

    /// Restricts the calling thread to the CPU of thread index 0, for a pool made
    /// by [`ThreadPool::pinned`]; `false` (nothing changed) for any other pool or
    /// if the system refuses.
    pub fn pin_caller(&self) -> bool {
        self.cpus.first().is_some_and(|&cpu| crate::affinity::set_current_thread_cpus(&[cpu]))
    }

    /// A pool with one thread per available CPU.
    pub fn with_available_parallelism() -> Self {
        Self::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// Threads that take part in each region, the caller included.
    pub fn n_threads(&self) -> usize {
        self.n_threads
    }

    /// Calls `f(i)` once for every thread index `i` in `0..n_threads()`, in parallel,
    /// and returns when all calls have returned. The caller runs `f(0)`.
    ///
    /// # Panics
    /// Re-raises a panic from `f` on any thread, after every thread has finished.
    pub fn run(&self, f: &(dyn Fn(usize) + Sync)) {
        if self.n_threads == 1 {
            f(0);
            return;
        }
        let _region = self.region.lock().unwrap_or_else(|e| e.into_inner());
        let shared = &*self.shared;
        // Erase the closure's lifetime: workers use it only until `pending` reaches
        // zero below, and we do not return before then.
        let ptr: *const (dyn Fn(usize) + Sync + '_) = f;
        #[allow(unsafe_code)]
        // SAFETY: only the pointer's lifetime bound changes (same layout); see above.
        let ptr: JobPtr = unsafe { std::mem::transmute(ptr) };
        #[allow(unsafe_code)]
        // SAFETY: no worker reads `job` now: the previous region ended with
        // `pending == 0` and the next epoch has not been published yet.
        unsafe {
            *shared.job.get() = Some(ptr);
        }
        shared.panicked.store(false, Ordering::Relaxed);
        shared.pending.store(self.n_threads - 1, Ordering::Relaxed);
        shared.epoch.fetch_add(1, Ordering::SeqCst);
        if shared.sleepers.load(Ordering::SeqCst) > 0 {
            // Taking the lock orders this notify after a parking worker's epoch check.
            drop(shared.sleep.lock().unwrap_or_else(|e| e.into_inner()));
            shared.wake.notify_all();
        }

        let mine = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(0)));

        let mut spins = 0u32;
        while shared.pending.load(Ordering::Acquire) != 0 {
            backoff(&mut spins);
        }
        if let Err(payload) = mine {
            std::panic::resume_unwind(payload);
        }
        if shared.panicked.load(Ordering::Relaxed) {
            panic!("a thread-pool worker panicked in a parallel region");
        }
    }

    /// Splits `0..n` into contiguous chunks, one per thread, and calls
    /// `f(range)` for each non-empty chunk in parallel.
    pub fn for_each_chunk(&self, n: usize, f: &(dyn Fn(std::ops::Range<usize>) + Sync)) {
        let t = self.n_threads;
        if t == 1 || n <= 1 {
            if n > 0 {
                f(0..n);
            }
            return;
        }
        self.run(&|i| {
            let r = chunk(n, t, i);
            if !r.is_empty() {
                f(r);
            }
        });
    }
}

impl ThreadPool {
    /// Splits `data`, made of `unit`-sized items, into one contiguous run of items
    /// per thread and calls `f(items, slice)` for each non-empty run in parallel,
    /// where `slice` is `data[items.start * unit .. items.end * unit]`. This is how
    /// callers outside this crate write disjoint parts of one buffer in parallel
    /// without `unsafe`.
    ///
    /// # Panics
    /// If `data.len()` is not a multiple of `unit`.
    pub fn split_mut<T: Send>(
        &self,
        data: &mut [T],
        unit: usize,
        f: &(dyn Fn(std::ops::Range<usize>, &mut [T]) + Sync),
    ) {
        assert!(unit > 0 && data.len().is_multiple_of(unit), "split_mut: {} items of {unit}", data.len());
        let n = data.len() / unit;
        let t = self.n_threads;
        if t == 1 || n <= 1 {
            if n > 0 {
                f(0..n, data);
            }
            return;
        }
        let base = SendPtr(data.as_mut_ptr());
        self.run(&|i| {
            let items = chunk(n, t, i);
            if items.is_empty() {
                return;
            }
            let base = &base;
            #[allow(unsafe_code)]
            // SAFETY: `chunk` gives each thread a disjoint range of items inside
            // `0..n`, so the slices never overlap and stay inside `data`, which
            // outlives the region (`run` returns only after every thread is done).
            let slice = unsafe { std::slice::from_raw_parts_mut(base.0.add(items.start * unit), items.len() * unit) };
            f(items, slice);
        });
    }
}

impl ThreadPool {
    /// Like [`ThreadPool::split_mut`], but the threads take `grain` items at a time
    /// from a shared counter until none are left, so items of uneven cost (causal
    /// attention rows: later rows attend to more positions) keep every thread busy.
    /// With one thread (or at most `grain` items) everything is one call.
    ///
    /// # Panics
    /// If `data.len()` is not a multiple of `unit`, or `grain` is 0.
    pub fn split_mut_dynamic<T: Send>(
        &self,
        data: &mut [T],
        unit: usize,
        grain: usize,
        f: &(dyn Fn(std::ops::Range<usize>, &mut [T]) + Sync),
    ) {
        assert!(
            unit > 0 && grain > 0 && data.len().is_multiple_of(unit),
            "split_mut_dynamic: {} items of {unit}",
            data.len()
        );
        let n = data.len() / unit;
        if self.n_threads == 1 || n <= grain {
            if n > 0 {
                f(0..n, data);
            }
            return;
        }
        let base = SendPtr(data.as_mut_ptr());
        let next = AtomicUsize::new(0);
        self.run(&|_| {
            let base = &base;
            loop {
                let start = next.fetch_add(grain, Ordering::Relaxed);
                if start >= n {
                    break;
                }
                let end = (start + grain).min(n);
                #[allow(unsafe_code)]
                // SAFETY: the counter hands out each range of items exactly once, so the
                // slices are disjoint and inside `data`, which outlives the region.
                let slice = unsafe { std::slice::from_raw_parts_mut(base.0.add(start * unit), (end - start) * unit) };
                f(start..end, slice);
            }
        });
    }
}

impl ThreadPool {
    /// Calls `f(i, &mut data[ranges[i]])` for every range, in parallel, the threads
    /// taking ranges in list order from a shared counter (put the costly ones
    /// first). The ranges must not overlap; gaps between them are left alone.
    ///
    /// # Panics
    /// If two ranges overlap or one reaches past `data`.
    pub fn split_mut_ranges<T: Send>(
        &self,
        data: &mut [T],
        ranges: &[std::ops::Range<usize>],
        f: &(dyn Fn(usize, &mut [T]) + Sync),
    ) {
        let mut order: Vec<usize> = (0..ranges.len()).collect();
        order.sort_unstable_by_key(|&i| ranges[i].start);
        for w in order.windows(2) {
            assert!(ranges[w[0]].end <= ranges[w[1]].start, "split_mut_ranges: ranges overlap");
        }
        if let Some(&i) = order.last() {
            assert!(ranges[i].end <= data.len(), "split_mut_ranges: range past the data");
        }
        assert!(ranges.iter().all(|r| r.start <= r.end), "split_mut_ranges: reversed range");
        let base = SendPtr(data.as_mut_ptr());
        let next = AtomicUsize::new(0);
        self.run(&|_| {
            let base = &base;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(r) = ranges.get(i) else { break };
                #[allow(unsafe_code)]
                // SAFETY: the ranges were checked to be disjoint and inside `data`,
                // each is handed out once, and `data` outlives the region.
                let slice = unsafe { std::slice::from_raw_parts_mut(base.0.add(r.start), r.len()) };
                f(i, slice);
            }
        });
    }
}

/// A raw pointer that may cross threads; see the SAFETY note in `split_mut`.
struct SendPtr<T>(*mut T);
// SAFETY: used only to hand disjoint sub-slices of a `&mut [T]` (T: Send) to the
// pool's threads for the duration of one region.
#[allow(unsafe_code)]
unsafe impl<T: Send> Sync for SendPtr<T> {}

/// The `i`-th of `parts` near-equal contiguous chunks of `0..n`.
pub fn chunk(n: usize, parts: usize, i: usize) -> std::ops::Range<usize> {
    let base = n / parts;
    let extra = n % parts;
    let start = i * base + i.min(extra);
    let len = base + usize::from(i < extra);
    start..start + len
}

fn worker_loop(shared: &Shared, index: usize) {
    // The epoch starts at 0 and the first region publishes 1; a worker that starts
    // late must still run that region, so it must not read the counter here.
    let mut seen = 0u64;
    loop {
        // Spin for the next region, then park.
        let started = Instant::now();
        let mut spins = 0u32;
        let epoch = loop {
            let e = shared.epoch.load(Ordering::Acquire);
            if e != seen || shared.shutdown.load(Ordering::Relaxed) {
                break e;
            }
            if spins.is_multiple_of(64) && started.elapsed() > SPIN_FOR {
                let mut guard = shared.sleep.lock().unwrap_or_else(|e| e.into_inner());
                shared.sleepers.fetch_add(1, Ordering::SeqCst);
                loop {
                    let e = shared.epoch.load(Ordering::SeqCst);
                    if e != seen || shared.shutdown.load(Ordering::Relaxed) {
                        break;
                    }
                    guard = shared.wake.wait(guard).unwrap_or_else(|e| e.into_inner());
                }
                shared.sleepers.fetch_sub(1, Ordering::SeqCst);
                drop(guard);
            }
            backoff(&mut spins);
        };
        if shared.shutdown.load(Ordering::Relaxed) {
            return;
        }
        seen = epoch;
        #[allow(unsafe_code)]
        // SAFETY: the epoch bump (acquired above) published `job`, and the caller
        // keeps the closure alive until we decrement `pending` below.
        let job = unsafe { (*shared.job.get()).map(|p| &*p) };
        if let Some(job) = job {
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(index))).is_err() {
                shared.panicked.store(true, Ordering::Relaxed);
            }
        }
        shared.pending.fetch_sub(1, Ordering::Release);
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        {
            let _guard = self.shared.sleep.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.shutdown.store(true, Ordering::Relaxed);
        }
        self.shared.wake.notify_all();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl std::fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadPool").field("n_threads", &self.n_threads).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_thread_runs_once_per_region() {
        let pool = ThreadPool::new(3);
        for _ in 0..1000 {
            let hits: Vec<AtomicUsize> = (0..3).map(|_| AtomicUsize::new(0)).collect();
            pool.run(&|i| {
                hits[i].fetch_add(1, Ordering::Relaxed);
            });
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
        }
    }

    #[test]
    fn chunks_cover_the_range_exactly() {
        for n in 0..50 {
            for parts in 1..7 {
                let mut next = 0;
                for i in 0..parts {
                    let r = chunk(n, parts, i);
                    assert_eq!(r.start, next);
                    next = r.end;
                }
                assert_eq!(next, n);
            }
        }
    }

    #[test]
    fn a_pinned_pool_runs_each_thread_index_on_its_cpu() {
        let allowed = crate::affinity::allowed_cpus();
        if allowed.is_empty() {
            return; // not a platform that can say
        }
        // Two thread indices, both on the last CPU when there is only one.
        let cpus = [allowed[0], *allowed.last().expect("not empty")];
        std::thread::spawn(move || {
            let pool = ThreadPool::pinned(&cpus);
            assert_eq!(pool.n_threads(), 2);
            assert!(pool.pin_caller());
            let seen = Mutex::new(vec![Vec::new(); 2]);
            pool.run(&|i| seen.lock().expect("not poisoned")[i] = crate::affinity::allowed_cpus());
            let seen = seen.into_inner().expect("not poisoned");
            assert_eq!(seen, [vec![cpus[0]], vec![cpus[1]]]);
        })
        .join()
        .expect("the pool's caller");
        assert!(!ThreadPool::new(2).pin_caller(), "an unpinned pool pins nothing");
    }

    #[test]
    fn for_each_chunk_sums_correctly_after_workers_park() {
        let pool = ThreadPool::new(2);
        let total = AtomicUsize::new(0);
        pool.for_each_chunk(1000, &|r| {
            total.fetch_add(r.sum::<usize>(), Ordering::Relaxed);
        });
        assert_eq!(total.load(Ordering::Relaxed), 999 * 1000 / 2);
        std::thread::sleep(Duration::from_millis(5)); // workers park
        total.store(0, Ordering::Relaxed);
        pool.for_each_chunk(10, &|r| {
            total.fetch_add(r.len(), Ordering::Relaxed);
        });
        assert_eq!(total.load(Ordering::Relaxed), 10);
    }

    #[test]
    fn split_mut_hands_out_disjoint_slices_covering_everything() {
        for threads in 1..4 {
            let pool = ThreadPool::new(threads);
            for n in [0usize, 1, 2, 5, 17] {
                let mut data = vec![0usize; n * 3];
                pool.split_mut(&mut data, 3, &|items, slice| {
                    assert_eq!(slice.len(), items.len() * 3);
                    for (k, v) in slice.iter_mut().enumerate() {
                        *v += items.start * 3 + k + 1;
                    }
                });
                assert_eq!(data, (1..=n * 3).collect::<Vec<_>>(), "threads {threads} n {n}");
            }
        }
    }

    #[test]
    fn split_mut_dynamic_covers_everything_once() {
        for threads in 1..4 {
            let pool = ThreadPool::new(threads);
            for (n, grain) in [(0usize, 1usize), (1, 1), (7, 2), (100, 3), (64, 64)] {
                let mut data = vec![0usize; n * 2];
                pool.split_mut_dynamic(&mut data, 2, grain, &|items, slice| {
                    assert_eq!(slice.len(), items.len() * 2);
                    for (k, v) in slice.iter_mut().enumerate() {
                        *v += items.start * 2 + k + 1;
                    }
                });
                assert_eq!(data, (1..=n * 2).collect::<Vec<_>>(), "threads {threads} n {n} grain {grain}");
            }
        }
    }

    #[test]
    fn split_mut_ranges_fills_each_range_and_leaves_gaps() {
        let pool = ThreadPool::new(2);
        let mut data = vec![0usize; 20];
        let ranges = [10..15, 0..3, 3..3, 16..20];
        pool.split_mut_ranges(&mut data, &ranges, &|i, s| s.fill(i + 1));
        assert_eq!(data, [2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 4, 4, 4, 4]);
        let overlap = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.split_mut_ranges(&mut data, &[0..5, 4..6], &|_, _| {});
        }));
        assert!(overlap.is_err());
    }

    #[test]
    fn a_worker_panic_reaches_the_caller() {
        let pool = ThreadPool::new(2);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.run(&|i| {
                if i == 1 {
                    panic!("boom");
                }
            })
        }));
        assert!(result.is_err());
        // The pool still works afterwards.
        let n = AtomicUsize::new(0);
        pool.run(&|_| {
            n.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(n.load(Ordering::Relaxed), 2);
    }
}
