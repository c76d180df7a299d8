//! `/metrics` in Prometheus' text format: the engines' gauges, counters and
//! latency histograms, the server's own refusals, and (with a platform config)
//! requests and tokens by tenant and edition.
//!
//! With one model the engine series carry no label, as they always have; with
//! several, every engine series carries `model="<id>"`, one series per engine
//! (sum them for the server's totals).
//!
//! Beside Seed's own names, each engine's load is also given under the names of the
//! model-server protocol that the Gateway API Inference Extension's endpoint picker
//! and llm-d read by default — vLLM's, with vLLM's `model_name` label (see
//! [`render_vllm`]) — so a standard router can balance Seed replicas unconfigured. The tenant and edition labels take only
//! names from the configuration (anything else is `other`), so their
//! cardinality is bounded by the file, not by clients.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use engine::stats::{EngineStats, Histogram};

use crate::config::LOCAL_TENANT;
use crate::state::ServerCounters;

/// Adds one to a server counter.
pub fn count(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Prometheus' content type for the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The label value of a name outside the configuration.
pub const OTHER: &str = "other";

/// Requests and tokens by (tenant, edition), for a server with a platform config; a server
/// without one keeps nothing and renders nothing.
#[derive(Debug, Default)]
pub struct Labelled {
    /// The configured tenant ids and edition names (`None`: no platform config).
    known: Option<(BTreeSet<String>, BTreeSet<String>)>,
    /// (tenant, edition) → [requests, prompt tokens, cached prompt tokens, completion tokens].
    counts: Mutex<BTreeMap<(String, String), [u64; 4]>>,
}

impl Labelled {
    /// Counters whose labels are the tenants and editions of `platform` (and `other`).
    pub fn new(platform: Option<&platform::Config>) -> Self {
        let known = platform.map(|p| {
            let mut tenants: BTreeSet<String> = p.tenants.iter().map(|t| t.id.clone()).collect();
            tenants.insert(LOCAL_TENANT.to_string());
            (tenants, p.editions.iter().map(|e| e.name.clone()).collect())
        });
        Labelled { known, counts: Mutex::new(BTreeMap::new()) }
    }

    /// Whether anything is counted (a platform config is present).
    pub fn enabled(&self) -> bool {
        self.known.is_some()
    }

    /// Counts one finished request (any finish reason, cancelled included) of `tenant` on
    /// `edition`; names outside the configuration count as `other`.
    pub fn record(&self, tenant: &str, edition: &str, prompt: u64, cached: u64, completion: u64) {
        let Some((tenants, editions)) = &self.known else { return };
        let bound = |set: &BTreeSet<String>, name: &str| {
            if set.contains(name) {
                name.to_string()
            } else {
                OTHER.to_string()
            }
        };
        let key = (bound(tenants, tenant), bound(editions, edition));
        let mut counts = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let c = counts.entry(key).or_default();
        for (slot, v) in c.iter_mut().zip([1, prompt, cached, completion]) {
            *slot += v;
        }
    }

    fn render(&self, o: &mut String) {
        if !self.enabled() {
            return;
        }
        let counts = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        for (i, (name, help)) in [
            ("seed_tenant_requests_total", "Finished requests (cancelled included), by tenant and edition."),
            ("seed_tenant_prompt_tokens_total", "Prompt tokens of finished requests, by tenant and edition."),
            ("seed_tenant_cached_tokens_total", "Prompt tokens served from the prefix cache, by tenant and edition."),
            ("seed_tenant_completion_tokens_total", "Generated tokens, by tenant and edition."),
        ]
        .into_iter()
        .enumerate()
        {
            header(o, name, "counter", help);
            for ((tenant, edition), c) in &counts {
                let (t, e) = (escape(tenant), escape(edition));
                let _ = writeln!(o, "{name}{{tenant=\"{t}\",edition=\"{e}\"}} {}", c[i]);
            }
        }
    }
}

/// An engine series: name, Prometheus type, help, and how to read it from the stats.
type Family = (&'static str, &'static str, &'static str, fn(&EngineStats) -> u64);

/// Renders everything: `engines` are the loaded models' (id, stats), none while loading.
pub fn render(engines: &[(&str, &EngineStats)], server: &ServerCounters, ready: bool, labelled: &Labelled) -> String {
    let mut out = String::with_capacity(4096);
    let o = &mut out;
    metric(o, "seed_ready", "gauge", "1 when every model is loaded and requests are admitted.", u64::from(ready));
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
    labelled.render(o);
    if engines.is_empty() {
        return out;
    }
    // One model: no label (as ever); several: `model="id"` on every engine series.
    let labels: Vec<(String, &EngineStats)> = if engines.len() == 1 {
        vec![(String::new(), engines[0].1)]
    } else {
        engines.iter().map(|(id, s)| (format!("model=\"{}\"", escape(id)), *s)).collect()
    };
    let g = EngineStats::get;
    let gauges: [Family; 12] = [
        ("seed_requests_running", "gauge", "Sequences in the running batch.", |s| EngineStats::get(&s.running)),
        ("seed_requests_waiting", "gauge", "Requests waiting to be admitted.", |s| EngineStats::get(&s.waiting)),
        ("seed_kv_blocks_used", "gauge", "KV cache blocks held by sequences.", |s| EngineStats::get(&s.kv_blocks_used)),
        ("seed_kv_blocks_total", "gauge", "KV cache blocks in the pool.", |s| EngineStats::get(&s.kv_blocks_total)),
        ("seed_prefix_cache_queries_total", "counter", "Prompt blocks looked up in the prefix cache.", |s| {
            EngineStats::get(&s.prefix_queried)
        }),
        ("seed_prefix_cache_hits_total", "counter", "Prompt blocks found in the prefix cache.", |s| {
            EngineStats::get(&s.prefix_hits)
        }),
        (
            "seed_prefix_cache_query_tokens_total",
            "counter",
            "Prompt positions looked up in the prefix cache (all but each prompt's last).",
            |s| EngineStats::get(&s.prefix_query_tokens),
        ),
        (
            "seed_prefix_cache_hit_tokens_total",
            "counter",
            "Prompt positions taken from the prefix cache (whole blocks and parts of blocks).",
            |s| EngineStats::get(&s.prefix_hit_tokens),
        ),
        ("seed_prompt_tokens_total", "counter", "Prompt tokens of finished requests.", |s| {
            EngineStats::get(&s.prompt_tokens)
        }),
        ("seed_generation_tokens_total", "counter", "Generated tokens.", |s| EngineStats::get(&s.generation_tokens)),
        ("seed_preemptions_total", "counter", "Sequences preempted for lack of KV blocks.", |s| {
            EngineStats::get(&s.preemptions)
        }),
        ("seed_engine_steps_total", "counter", "Engine steps (batched forward passes).", |s| {
            EngineStats::get(&s.steps)
        }),
    ];
    for (name, kind, help, read) in gauges {
        header(o, name, kind, help);
        for (l, s) in &labels {
            let _ = writeln!(o, "{name}{} {}", braces(l), read(s));
        }
    }
    header(
        o,
        "seed_prefix_cache_hit_rate",
        "gauge",
        "Prompt positions taken from the prefix cache / looked up, since start.",
    );
    for (l, s) in &labels {
        let (q, h) = (g(&s.prefix_query_tokens), g(&s.prefix_hit_tokens));
        let rate = if q == 0 { 0.0 } else { h as f64 / q as f64 };
        let _ = writeln!(o, "seed_prefix_cache_hit_rate{} {rate}", braces(l));
    }
    header(o, "seed_requests_finished_total", "counter", "Requests finished, by reason.");
    for (l, s) in &labels {
        for (reason, c) in ["stop", "length", "cancelled", "error"].iter().zip(&s.finished) {
            let _ = writeln!(o, "seed_requests_finished_total{{{}finish_reason=\"{reason}\"}} {}", comma(l), g(c));
        }
    }
    render_vllm(o, engines);
    for (name, help, pick) in [
        (
            "seed_time_to_first_token_seconds",
            "Time from submission to the first token.",
            (|s| &s.ttft) as fn(&EngineStats) -> &Histogram,
        ),
        ("seed_inter_token_latency_seconds", "Time between a request's consecutive tokens.", |s| &s.itl),
    ] {
        header(o, name, "histogram", help);
        for (l, s) in &labels {
            histogram(o, name, l, pick(s));
        }
    }
    out
}

/// A vLLM-named series: name, Prometheus type, help, and its value read from the stats.
type VllmFamily = (&'static str, &'static str, &'static str, fn(&EngineStats) -> String);

/// The model-server protocol's metrics under vLLM's names, one series per engine
/// labelled `model_name` as vLLM labels them: queue and batch sizes, the KV pool's
/// use as a fraction (vLLM's `kv_cache_usage_perc` is a fraction too), its block size
/// and block count (`cache_config_info`, an info metric whose value is 1), and the
/// prefix cache's queried and hit prompt tokens. A router expects one model per replica.
fn render_vllm(o: &mut String, engines: &[(&str, &EngineStats)]) {
    let g = EngineStats::get;
    let families: [VllmFamily; 5] = [
        (
            "vllm:num_requests_waiting",
            "gauge",
            "Requests waiting to be admitted (Seed's seed_requests_waiting).",
            |s| EngineStats::get(&s.waiting).to_string(),
        ),
        ("vllm:num_requests_running", "gauge", "Sequences in the running batch (Seed's seed_requests_running).", |s| {
            EngineStats::get(&s.running).to_string()
        }),
        ("vllm:kv_cache_usage_perc", "gauge", "Fraction of the KV cache blocks in use (1 = all).", |s| {
            let (used, total) = (EngineStats::get(&s.kv_blocks_used), EngineStats::get(&s.kv_blocks_total));
            (if total == 0 { 0.0 } else { used as f64 / total as f64 }).to_string()
        }),
        ("vllm:prefix_cache_queries_total", "counter", "Prompt tokens looked up in the prefix cache.", |s| {
            EngineStats::get(&s.prefix_query_tokens).to_string()
        }),
        ("vllm:prefix_cache_hits_total", "counter", "Prompt tokens found in the prefix cache.", |s| {
            EngineStats::get(&s.prefix_hit_tokens).to_string()
        }),
    ];
    for (name, kind, help, read) in families {
        header(o, name, kind, help);
        for (id, s) in engines {
            let _ = writeln!(o, "{name}{{model_name=\"{}\"}} {}", escape(id), read(s));
        }
    }
    header(
        o,
        "vllm:cache_config_info",
        "gauge",
        "The KV cache's configuration, in labels: block size in tokens, blocks.",
    );
    for (id, s) in engines {
        let _ = writeln!(
            o,
            "vllm:cache_config_info{{model_name=\"{}\",block_size=\"{}\",num_gpu_blocks=\"{}\"}} 1",
            escape(id),
            g(&s.kv_block_size),
            g(&s.kv_blocks_total)
        );
    }
}

/// `{labels}`, or nothing for no labels.
fn braces(labels: &str) -> String {
    if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    }
}

/// `labels,`, or nothing for no labels (labels that precede another).
fn comma(labels: &str) -> String {
    if labels.is_empty() {
        String::new()
    } else {
        format!("{labels},")
    }
}

/// A label value with Prometheus' escapes.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn header(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn metric(o: &mut String, name: &str, kind: &str, help: &str, v: u64) {
    header(o, name, kind, help);
    let _ = writeln!(o, "{name} {v}");
}

fn histogram(o: &mut String, name: &str, labels: &str, h: &Histogram) {
    let (buckets, sum, count) = h.snapshot();
    for (bound, c) in buckets {
        let le = if bound.is_infinite() { "+Inf".to_string() } else { bound.to_string() };
        let _ = writeln!(o, "{name}_bucket{{{}le=\"{le}\"}} {c}", comma(labels));
    }
    let _ = writeln!(o, "{name}_sum{} {sum}\n{name}_count{} {count}", braces(labels), braces(labels));
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
        s.prefix_query_tokens.store(4, Ordering::Relaxed);
        s.prefix_hit_tokens.store(1, Ordering::Relaxed);
        s.ttft.observe(0.02);
        s.ttft.observe(3.0);
        let page = render(&[("m", &s)], &ServerCounters::default(), true, &Labelled::default());
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
    fn routers_find_the_model_server_protocol_under_vllms_names() {
        let s = EngineStats::default();
        s.kv_blocks_total.store(64, Ordering::Relaxed);
        s.kv_blocks_used.store(16, Ordering::Relaxed);
        s.kv_block_size.store(16, Ordering::Relaxed);
        s.waiting.store(3, Ordering::Relaxed);
        s.running.store(5, Ordering::Relaxed);
        s.prefix_query_tokens.store(40, Ordering::Relaxed);
        s.prefix_hit_tokens.store(10, Ordering::Relaxed);
        let page = render(&[("smollm2", &s)], &ServerCounters::default(), true, &Labelled::default());
        for line in [
            "vllm:num_requests_waiting{model_name=\"smollm2\"} 3\n",
            "vllm:num_requests_running{model_name=\"smollm2\"} 5\n",
            "vllm:kv_cache_usage_perc{model_name=\"smollm2\"} 0.25\n",
            "vllm:prefix_cache_queries_total{model_name=\"smollm2\"} 40\n",
            "vllm:prefix_cache_hits_total{model_name=\"smollm2\"} 10\n",
            "vllm:cache_config_info{model_name=\"smollm2\",block_size=\"16\",num_gpu_blocks=\"64\"} 1\n",
            "# TYPE vllm:num_requests_waiting gauge\n",
            "# TYPE vllm:prefix_cache_hits_total counter\n",
        ] {
            assert!(page.contains(line), "missing {line:?} in\n{page}");
        }
        // Seed's own names stay, unlabelled for one model.
        assert_eq!(sample(&page, "seed_requests_waiting"), Some(3.0));
        // An empty pool is 0 % used, not NaN.
        let empty = render(&[("m", &EngineStats::default())], &ServerCounters::default(), true, &Labelled::default());
        assert!(empty.contains("vllm:kv_cache_usage_perc{model_name=\"m\"} 0\n"), "{empty}");
    }

    #[test]
    fn loading_page_has_only_server_metrics() {
        let page = render(&[], &ServerCounters::default(), false, &Labelled::default());
        assert_eq!(sample(&page, "seed_ready"), Some(0.0));
        assert!(sample(&page, "seed_kv_blocks_total").is_none());
    }

    #[test]
    fn several_engines_label_every_series_with_their_model() {
        let (a, b) = (EngineStats::default(), EngineStats::default());
        a.kv_blocks_total.store(10, Ordering::Relaxed);
        b.kv_blocks_total.store(20, Ordering::Relaxed);
        b.ttft.observe(0.02);
        let page = render(&[("gemma", &a), ("smol", &b)], &ServerCounters::default(), true, &Labelled::default());
        assert!(page.contains("seed_kv_blocks_total{model=\"gemma\"} 10\n"), "{page}");
        assert!(page.contains("seed_kv_blocks_total{model=\"smol\"} 20\n"), "{page}");
        assert!(page.contains("seed_time_to_first_token_seconds_count{model=\"smol\"} 1\n"), "{page}");
        assert!(page.contains("seed_time_to_first_token_seconds_bucket{model=\"smol\",le=\"0.025\"} 1\n"));
        assert!(page.contains("seed_requests_finished_total{model=\"gemma\",finish_reason=\"stop\"} 0\n"));
        // One HELP/TYPE per family, not per engine.
        assert_eq!(page.matches("# TYPE seed_kv_blocks_total gauge").count(), 1);
        assert!(sample(&page, "seed_kv_blocks_total").is_none(), "no unlabelled series beside labelled ones");
    }

    #[test]
    fn tenant_and_edition_labels_are_bounded_by_the_config() {
        let config = platform::Config::parse(
            r#"
            [[region]]
            name = "r"
            [[edition]]
            name = "cici"
            model = "m"
            regions = ["r"]
            [[tenant]]
            id = "acme"
            region = "r"
            editions = ["cici"]
            "#,
        )
        .expect("config");
        let l = Labelled::new(Some(&config));
        l.record("acme", "cici", 10, 2, 5);
        l.record("acme", "cici", 1, 0, 1);
        for i in 0..100 {
            l.record(&format!("intruder-{i}"), &format!("gpt-{i}"), 1, 0, 1);
        }
        let page = render(&[], &ServerCounters::default(), false, &l);
        assert!(page.contains("seed_tenant_requests_total{tenant=\"acme\",edition=\"cici\"} 2\n"), "{page}");
        assert!(page.contains("seed_tenant_prompt_tokens_total{tenant=\"acme\",edition=\"cici\"} 11\n"));
        assert!(page.contains("seed_tenant_cached_tokens_total{tenant=\"acme\",edition=\"cici\"} 2\n"));
        assert!(page.contains("seed_tenant_requests_total{tenant=\"other\",edition=\"other\"} 100\n"), "{page}");
        assert_eq!(page.lines().filter(|l| l.starts_with("seed_tenant_requests_total")).count(), 2);
        // Without a config nothing is kept.
        let none = Labelled::new(None);
        none.record("acme", "cici", 1, 0, 1);
        assert!(!render(&[], &ServerCounters::default(), false, &none).contains("seed_tenant_"));
    }
}
