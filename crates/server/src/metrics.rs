//! `/metrics` in Prometheus' text format: the engine's gauges, counters and
//! latency histograms, and the server's own refusals.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use engine::stats::{EngineStats, Histogram};

use crate::state::ServerCounters;

/// Adds one to a server counter.
pub fn count(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Prometheus' content type for the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders everything; `stats` is `None` while the model loads.
pub fn render(stats: Option<&EngineStats>, server: &ServerCounters, ready: bool) -> String {
    let mut out = String::with_capacity(4096);
    let o = &mut out;
    metric(o, "seed_ready", "gauge", "1 when the model is loaded and requests are admitted.", u64::from(ready));
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    header(o, "seed_requests_rejected_total", "counter", "Requests refused by the server, by reason.");
    for (reason, c) in [
        ("queue_full", &server.rejected_busy),
        ("quota", &server.rejected_quota),
        ("unavailable", &server.rejected_unavailable),
        ("invalid", &server.rejected_invalid),
    ] {
        let _ = writeln!(o, "seed_requests_rejected_total{{reason=\"{reason}\"}} {}", get(c));
    }
    let Some(s) = stats else { return out };
    let g = EngineStats::get;
    metric(o, "seed_requests_running", "gauge", "Sequences in the running batch.", g(&s.running));
    metric(o, "seed_requests_waiting", "gauge", "Requests waiting to be admitted.", g(&s.waiting));
    metric(o, "seed_kv_blocks_used", "gauge", "KV cache blocks held by sequences.", g(&s.kv_blocks_used));
    metric(o, "seed_kv_blocks_total", "gauge", "KV cache blocks in the pool.", g(&s.kv_blocks_total));
    let (q, h) = (g(&s.prefix_queried), g(&s.prefix_hits));
    metric(o, "seed_prefix_cache_queries_total", "counter", "Prompt blocks looked up in the prefix cache.", q);
    metric(o, "seed_prefix_cache_hits_total", "counter", "Prompt blocks found in the prefix cache.", h);
    header(o, "seed_prefix_cache_hit_rate", "gauge", "Prefix-cache hits / queries since start.");
    let rate = if q == 0 { 0.0 } else { h as f64 / q as f64 };
    let _ = writeln!(o, "seed_prefix_cache_hit_rate {rate}");
    metric(o, "seed_prompt_tokens_total", "counter", "Prompt tokens of finished requests.", g(&s.prompt_tokens));
    metric(o, "seed_generation_tokens_total", "counter", "Generated tokens.", g(&s.generation_tokens));
    header(o, "seed_requests_finished_total", "counter", "Requests finished, by reason.");
    for (reason, c) in ["stop", "length", "cancelled", "error"].iter().zip(&s.finished) {
        let _ = writeln!(o, "seed_requests_finished_total{{finish_reason=\"{reason}\"}} {}", g(c));
    }
    metric(o, "seed_preemptions_total", "counter", "Sequences preempted for lack of KV blocks.", g(&s.preemptions));
    metric(o, "seed_engine_steps_total", "counter", "Engine steps (batched forward passes).", g(&s.steps));
    histogram(o, "seed_time_to_first_token_seconds", "Time from submission to the first token.", &s.ttft);
    histogram(o, "seed_inter_token_latency_seconds", "Time between a request's consecutive tokens.", &s.itl);
    out
}

fn header(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn metric(o: &mut String, name: &str, kind: &str, help: &str, v: u64) {
    header(o, name, kind, help);
    let _ = writeln!(o, "{name} {v}");
}

fn histogram(o: &mut String, name: &str, help: &str, h: &Histogram) {
    header(o, name, "histogram", help);
    let (buckets, sum, count) = h.snapshot();
    for (bound, c) in buckets {
        let le = if bound.is_infinite() { "+Inf".to_string() } else { bound.to_string() };
        let _ = writeln!(o, "{name}_bucket{{le=\"{le}\"}} {c}");
    }
    let _ = writeln!(o, "{name}_sum {sum}\n{name}_count {count}");
}

/// Reads one unlabelled sample from a rendered page (for tests and tools).
pub fn sample(page: &str, name: &str) -> Option<f64> {
    page.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_has_every_family_and_cumulative_histograms() {
        let s = EngineStats::default();
        s.kv_blocks_total.store(64, Ordering::Relaxed);
        s.prefix_queried.store(4, Ordering::Relaxed);
        s.prefix_hits.store(1, Ordering::Relaxed);
        s.ttft.observe(0.02);
        s.ttft.observe(3.0);
        let page = render(Some(&s), &ServerCounters::default(), true);
        assert_eq!(sample(&page, "seed_kv_blocks_total"), Some(64.0));
        assert_eq!(sample(&page, "seed_kv_blocks_used"), Some(0.0));
        assert_eq!(sample(&page, "seed_prefix_cache_hit_rate"), Some(0.25));
        assert_eq!(sample(&page, "seed_time_to_first_token_seconds_count"), Some(2.0));
        assert!(page.contains("seed_time_to_first_token_seconds_bucket{le=\"0.025\"} 1\n"));
        assert!(page.contains("seed_time_to_first_token_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(page.contains("seed_requests_finished_total{finish_reason=\"length\"} 0\n"));
        for family in [
            "seed_requests_running",
            "seed_requests_waiting",
            "seed_prompt_tokens_total",
            "seed_generation_tokens_total",
            "seed_inter_token_latency_seconds_sum",
        ] {
            assert!(sample(&page, family).is_some(), "{family} missing");
        }
        // Every sample line is `name{labels} value` with a numeric value.
        for line in page.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap_or_default();
            assert!(value.parse::<f64>().is_ok(), "bad sample line: {line}");
        }
    }

    #[test]
    fn loading_page_has_only_server_metrics() {
        let page = render(None, &ServerCounters::default(), false);
        assert_eq!(sample(&page, "seed_ready"), Some(0.0));
        assert!(sample(&page, "seed_kv_blocks_total").is_none());
    }
}
