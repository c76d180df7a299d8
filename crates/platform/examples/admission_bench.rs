//! What the region store adds to a request: the admission (quotas checked, the usage row
//! written under its lease) and the completion of the row at the end, timed one call at a time
//! (p50, p99) and with many clients at once (admitted requests per second), on a SQLite file and
//! on a PostgreSQL server started for the run (initdb into a temporary folder, Unix socket).
//!
//! ```sh
//! cargo run --release -p platform --features testing --example admission_bench [-- CALLS CLIENTS]
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use platform::config::Quotas;
use platform::store::usage::Admit;
use platform::store::{Location, UsageRecord};
use platform::testing::PgServer;
use platform::Store;

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

fn record() -> UsageRecord {
    UsageRecord {
        tenant: String::new(),
        key_id: None,
        edition: String::new(),
        created: 0,
        prompt_tokens: 40,
        cached_tokens: 0,
        completion_tokens: 12,
        finish_reason: "stop".into(),
        cost: 0.0,
    }
}

/// One request's store work: admit under quotas that allow it, then close the row.
fn one(store: &Store, tenant: &str, q: &Quotas, now: u64) -> (Duration, Duration) {
    let a = Admit {
        tenant,
        key_id: Some("key_bench"),
        edition: "cici",
        prompt_tokens: 40,
        charge: 40 + 256,
        cost: 0.0,
        quotas: Some(q),
        now,
        lease_until: now + 30,
    };
    let t = Instant::now();
    let id = store.admit(&a).expect("store").expect("admitted");
    let admitted = t.elapsed();
    let t = Instant::now();
    store.close_usage(id, &record()).expect("close");
    (admitted, t.elapsed())
}

fn bench(name: &str, open: &(dyn Fn() -> Store + Sync), calls: usize, clients: usize) {
    // Limits that every request passes, so each admission does all its reads.
    let q = Quotas {
        requests_per_minute: Some(u64::MAX / 4),
        tokens_per_minute: Some(u64::MAX / 4),
        tokens_per_month: Some(u64::MAX / 4),
        concurrent_requests: Some(1 << 20),
    };
    let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let store = open();
    for _ in 0..50 {
        one(&store, "warm", &q, now()); // connections and statement caches
    }
    let (mut admit, mut close): (Vec<Duration>, Vec<Duration>) =
        (0..calls).map(|_| one(&store, "solo", &q, now())).unzip();
    admit.sort();
    close.sort();
    println!(
        "{name:<10} one at a time: admit p50 {:.2} ms p99 {:.2} ms; close p50 {:.2} ms p99 {:.2} ms ({calls} requests)",
        percentile(&admit, 0.5),
        percentile(&admit, 0.99),
        percentile(&close, 0.5),
        percentile(&close, 0.99)
    );
    // Many clients, each its own tenant, as many small requests from a region's replicas.
    let handles: Vec<Arc<Store>> = (0..clients.min(4)).map(|_| Arc::new(open())).collect();
    let start = Instant::now();
    let per_client = calls / clients;
    let mut all: Vec<Duration> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..clients)
            .map(|c| {
                let (store, q) = (Arc::clone(&handles[c % handles.len()]), &q);
                scope.spawn(move || {
                    let tenant = format!("tenant{c}");
                    (0..per_client).map(|_| one(&store, &tenant, q, now()).0).collect::<Vec<_>>()
                })
            })
            .collect();
        threads.into_iter().flat_map(|t| t.join().expect("no panic")).collect()
    });
    let took = start.elapsed();
    all.sort();
    println!(
        "{name:<10} {clients} clients over {} handles: {:.0} requests/s admitted and closed; admit p50 {:.2} ms p99 {:.2} ms",
        handles.len(),
        all.len() as f64 / took.as_secs_f64(),
        percentile(&all, 0.5),
        percentile(&all, 0.99)
    );
}

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let (calls, clients) = (args.first().copied().unwrap_or(2000), args.get(1).copied().unwrap_or(16));
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("bench.sqlite");
    bench("sqlite", &|| Store::open(&Location::Sqlite(file.clone())).expect("sqlite"), calls, clients);
    let pg = PgServer::start_with_fsync(true).expect("a PostgreSQL server");
    let url = pg.create_database("bench").expect("database");
    bench("postgres", &|| Store::open(&Location::parse(&url, None).expect("url")).expect("postgres"), calls, clients);
}
