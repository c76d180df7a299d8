//! Counters and histograms the engine keeps for `/metrics`, readable from any
//! thread without locks.

use std::sync::atomic::{AtomicU64, Ordering};

/// A histogram with fixed upper bounds (Prometheus-style, cumulative on export).
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    /// Sum of observations in microunits (µs for seconds).
    sum_micro: AtomicU64,
    count: AtomicU64,
}

/// Latency buckets in seconds.
pub const LATENCY_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

impl Histogram {
    /// An empty histogram over `bounds` (ascending).
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micro: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Records one value.
    pub fn observe(&self, v: f64) {
        let i = self.bounds.iter().position(|&b| v <= b).unwrap_or(self.bounds.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micro.fetch_add((v.max(0.0) * 1e6) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// `(upper bound, cumulative count)` per bucket, `+Inf` last; the sum; the count.
    pub fn snapshot(&self) -> (Vec<(f64, u64)>, f64, u64) {
        let mut acc = 0;
        let mut out = Vec::with_capacity(self.counts.len());
        for (i, c) in self.counts.iter().enumerate() {
            acc += c.load(Ordering::Relaxed);
            out.push((self.bounds.get(i).copied().unwrap_or(f64::INFINITY), acc));
        }
        (out, self.sum_micro.load(Ordering::Relaxed) as f64 / 1e6, self.count.load(Ordering::Relaxed))
    }
}

/// Everything the engine reports.
#[derive(Debug)]
pub struct EngineStats {
    /// Sequences running.
    pub running: AtomicU64,
    /// Requests submitted and not yet running.
    pub waiting: AtomicU64,
    /// KV blocks held by sequences.
    pub kv_blocks_used: AtomicU64,
    /// KV blocks in the pool.
    pub kv_blocks_total: AtomicU64,
    /// Tokens per KV block.
    pub kv_block_size: AtomicU64,
    /// Prefix-cache blocks looked up.
    pub prefix_queried: AtomicU64,
    /// Prefix-cache blocks found.
    pub prefix_hits: AtomicU64,
    /// Prompt positions looked up in the prefix cache (all but each prompt's last).
    pub prefix_query_tokens: AtomicU64,
    /// Prompt positions taken from it, whole blocks and parts of blocks.
    pub prefix_hit_tokens: AtomicU64,
    /// Prompt tokens of finished requests.
    pub prompt_tokens: AtomicU64,
    /// Generated tokens.
    pub generation_tokens: AtomicU64,
    /// Requests finished, by reason: stop, length, cancelled, error.
    pub finished: [AtomicU64; 4],
    /// Sequences preempted.
    pub preemptions: AtomicU64,
    /// Engine steps run.
    pub steps: AtomicU64,
    /// Time to first token, seconds.
    pub ttft: Histogram,
    /// Time between tokens, seconds.
    pub itl: Histogram,
}

impl Default for EngineStats {
    fn default() -> Self {
        let z = || AtomicU64::new(0);
        EngineStats {
            running: z(),
            waiting: z(),
            kv_blocks_used: z(),
            kv_blocks_total: z(),
            kv_block_size: z(),
            prefix_queried: z(),
            prefix_hits: z(),
            prefix_query_tokens: z(),
            prefix_hit_tokens: z(),
            prompt_tokens: z(),
            generation_tokens: z(),
            finished: [z(), z(), z(), z()],
            preemptions: z(),
            steps: z(),
            ttft: Histogram::new(LATENCY_BUCKETS),
            itl: Histogram::new(LATENCY_BUCKETS),
        }
    }
}

impl EngineStats {
    /// Reads a counter.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    pub(crate) fn set(c: &AtomicU64, v: u64) {
        c.store(v, Ordering::Relaxed);
    }

    pub(crate) fn add(c: &AtomicU64, v: u64) {
        c.fetch_add(v, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::new(&[0.1, 1.0]);
        h.observe(0.05);
        h.observe(0.5);
        h.observe(5.0);
        let (b, sum, n) = h.snapshot();
        assert_eq!(b, vec![(0.1, 1), (1.0, 2), (f64::INFINITY, 3)]);
        assert_eq!(n, 3);
        assert!((sum - 5.55).abs() < 1e-6);
    }
}
