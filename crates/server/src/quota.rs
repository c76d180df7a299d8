//! Per-tenant quotas: requests per minute, tokens per minute, tokens per month
//! and concurrent requests, checked and reserved in one step.
//!
//! A request reserves its prompt tokens plus `max_tokens × n` before it runs;
//! every limit is checked and every counter bumped under one lock, so a burst
//! of concurrent requests cannot slip past a limit between check and reserve.
//! When the request ends — finished, failed or its client gone — the
//! [`Reservation`] is dropped and gives back what was not used (and its
//! concurrency slot). The minute limits hold over every sliding 60 seconds
//! (per-second slots of the last minute, so a burst at a minute's end and another
//! at the next one's start cannot pass twice the limit); the month is
//! the UTC calendar month, whose usage so far comes from a [`MonthlyUsage`]
//! (the region stores' usage records, [`StoreUsage`]; [`InMemoryUsage`] in tests).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use platform::Quotas;

/// Which limit a request hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// `requests_per_minute`.
    RequestsPerMinute,
    /// `tokens_per_minute`.
    TokensPerMinute,
    /// `tokens_per_month`.
    TokensPerMonth,
    /// `concurrent_requests`.
    ConcurrentRequests,
}

impl Limit {
    /// The quota's name in the configuration (and the error's `code`).
    pub fn name(self) -> &'static str {
        match self {
            Limit::RequestsPerMinute => "requests_per_minute",
            Limit::TokensPerMinute => "tokens_per_minute",
            Limit::TokensPerMonth => "tokens_per_month",
            Limit::ConcurrentRequests => "concurrent_requests",
        }
    }
}

/// A refusal: the limit, a sentence for the client, and when to retry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exceeded {
    /// The limit hit.
    pub limit: Limit,
    /// What happened, with the numbers.
    pub message: String,
    /// Seconds until a retry can succeed (at least 1).
    pub retry_after: u64,
}

/// Tokens a tenant used in a month before this process counted them: the seam
/// to the usage store.
pub trait MonthlyUsage: Send + Sync {
    /// Tokens `tenant` used from `month_start` (Unix seconds, the first second
    /// of a UTC month) until now.
    fn tokens_this_month(&self, tenant: &str, month_start: u64) -> u64;
}

/// A [`MonthlyUsage`] held in memory: zero unless told otherwise (tests, or a
/// server without a usage store).
#[derive(Debug, Default)]
pub struct InMemoryUsage(Mutex<HashMap<(String, u64), u64>>);

impl InMemoryUsage {
    /// Records that `tenant` had used `tokens` in the month starting at `month_start`.
    pub fn set(&self, tenant: &str, month_start: u64, tokens: u64) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).insert((tenant.to_string(), month_start), tokens);
    }
}

impl MonthlyUsage for InMemoryUsage {
    fn tokens_this_month(&self, tenant: &str, month_start: u64) -> u64 {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(tenant.to_string(), month_start))
            .copied()
            .unwrap_or(0)
    }
}

/// A [`MonthlyUsage`] read from the tenants' region stores: the prompt and
/// completion tokens of every request recorded since the month began. A store
/// that cannot be read counts as zero, with a warning (the quota then errs on the
/// tenant's side rather than refusing service).
pub struct StoreUsage {
    /// Each tenant's region store.
    stores: HashMap<String, Arc<platform::store::Store>>,
}

impl StoreUsage {
    /// The stores of every tenant of `config` that has one in `stores` (by region).
    pub fn new(config: &platform::Config, stores: &crate::config::Stores) -> Self {
        let stores = config
            .tenants
            .iter()
            .filter_map(|t| stores.regions.get(&t.region).map(|s| (t.id.clone(), Arc::clone(s))))
            .collect();
        StoreUsage { stores }
    }
}

impl MonthlyUsage for StoreUsage {
    fn tokens_this_month(&self, tenant: &str, month_start: u64) -> u64 {
        let Some(store) = self.stores.get(tenant) else { return 0 };
        let (from, to) = (platform::store::day_of(month_start), platform::store::day_of(crate::state::unix_now()));
        match store.usage_totals(Some(tenant), &from, &to) {
            Ok(totals) => totals.iter().map(|u| u.prompt_tokens + u.completion_tokens).sum(),
            Err(e) => {
                eprintln!("warning: the month's usage of tenant `{tenant}` could not be read ({e}); counting from 0");
                0
            }
        }
    }
}

/// The length of the sliding window of the per-minute limits, in seconds.
const WINDOW: u64 = 60;

/// What was admitted in one second: requests and the tokens still charged for them.
#[derive(Debug, Clone, Copy)]
struct Slot {
    second: u64,
    requests: u64,
    tokens: u64,
}

/// One tenant's counters.
#[derive(Debug, Default)]
struct Counters {
    /// The seconds of the last [`WINDOW`] in which requests were admitted, oldest first.
    window: VecDeque<Slot>,
    /// Start of the month the month counter is for.
    month: u64,
    tokens_this_month: u64,
    in_flight: u64,
}

impl Counters {
    /// Forgets the seconds that have left the window ending at `now`.
    fn slide(&mut self, now: u64) {
        while self.window.front().is_some_and(|s| s.second + WINDOW <= now) {
            self.window.pop_front();
        }
    }

    /// Requests and tokens admitted in the window.
    fn in_window(&self) -> (u64, u64) {
        self.window.iter().fold((0, 0), |(r, t), s| (r + s.requests, t.saturating_add(s.tokens)))
    }

    /// Seconds until `fits(requests, tokens)` holds of the window once the oldest seconds
    /// have left it (at least 1; a whole window if it never does).
    fn retry_after(&self, now: u64, fits: impl Fn(u64, u64) -> bool) -> u64 {
        let (mut requests, mut tokens) = self.in_window();
        for s in &self.window {
            requests -= s.requests;
            tokens = tokens.saturating_sub(s.tokens);
            if fits(requests, tokens) {
                return (s.second + WINDOW).saturating_sub(now).max(1);
            }
        }
        WINDOW
    }

    /// Counts one request of `tokens` admitted at `now`.
    fn admit(&mut self, now: u64, tokens: u64) {
        match self.window.back_mut() {
            Some(s) if s.second == now => {
                s.requests += 1;
                s.tokens = s.tokens.saturating_add(tokens);
            }
            _ => self.window.push_back(Slot { second: now, requests: 1, tokens }),
        }
    }
}

struct Inner {
    quotas: HashMap<String, Quotas>,
    counters: Mutex<HashMap<String, Counters>>,
    usage: Arc<dyn MonthlyUsage>,
    clock: Box<dyn Fn() -> u64 + Send + Sync>,
}

/// Every tenant's quotas and counters; cheap to clone.
#[derive(Clone)]
pub struct QuotaKeeper(Arc<Inner>);

impl std::fmt::Debug for QuotaKeeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuotaKeeper").field("tenants", &self.0.quotas.len()).finish_non_exhaustive()
    }
}

impl QuotaKeeper {
    /// Quotas by tenant id, the month's usage so far from `usage`, the wall clock.
    pub fn new(quotas: HashMap<String, Quotas>, usage: Arc<dyn MonthlyUsage>) -> Self {
        Self::with_clock(quotas, usage, crate::state::unix_now)
    }

    /// As [`QuotaKeeper::new`] with a clock in Unix seconds (for tests).
    pub fn with_clock(
        quotas: HashMap<String, Quotas>,
        usage: Arc<dyn MonthlyUsage>,
        clock: impl Fn() -> u64 + Send + Sync + 'static,
    ) -> Self {
        QuotaKeeper(Arc::new(Inner { quotas, counters: Mutex::new(HashMap::new()), usage, clock: Box::new(clock) }))
    }

    /// The quotas of every tenant in a platform configuration.
    pub fn from_config(config: &platform::Config, usage: Arc<dyn MonthlyUsage>) -> Self {
        Self::new(config.tenants.iter().map(|t| (t.id.clone(), t.quotas)).collect(), usage)
    }

    /// Checks every limit of `tenant` and, when all allow it, counts one request
    /// of up to `tokens` tokens; the first limit that refuses is named. A tenant
    /// without quotas is not limited.
    pub fn reserve(&self, tenant: &str, tokens: u64) -> Result<Reservation, Exceeded> {
        let Some(q) = self.0.quotas.get(tenant) else {
            return Ok(Reservation { keeper: None, tenant: String::new(), tokens: 0, used: 0, second: 0, month: 0 });
        };
        let now = (self.0.clock)();
        let month = month_start(now);
        let mut all = self.0.counters.lock().unwrap_or_else(PoisonError::into_inner);
        let c = all.entry(tenant.to_string()).or_default();
        c.slide(now);
        let (requests_in_window, tokens_in_window) = c.in_window();
        if c.month != month {
            // The store's count, read once per month per process; from then on
            // this process adds its own reservations.
            c.month = month;
            c.tokens_this_month = self.0.usage.tokens_this_month(tenant, month);
        }
        if let Some(max) = q.concurrent_requests {
            if c.in_flight + 1 > max {
                return Err(Exceeded {
                    limit: Limit::ConcurrentRequests,
                    message: format!(
                        "tenant `{tenant}` has {} requests in flight; its concurrent_requests limit is {max}",
                        c.in_flight
                    ),
                    retry_after: 1,
                });
            }
        }
        if let Some(max) = q.requests_per_minute {
            if requests_in_window + 1 > max {
                return Err(Exceeded {
                    limit: Limit::RequestsPerMinute,
                    message: format!(
                        "tenant `{tenant}` reached its requests_per_minute limit of {max} (over the last 60 seconds)"
                    ),
                    retry_after: c.retry_after(now, |r, _| r < max),
                });
            }
        }
        if let Some(max) = q.tokens_per_minute {
            if tokens_in_window.saturating_add(tokens) > max {
                return Err(Exceeded {
                    limit: Limit::TokensPerMinute,
                    message: format!(
                        "this request may use up to {tokens} tokens (prompt + max_tokens × n); tenant `{tenant}` has \
                         {} of its tokens_per_minute limit of {max} left (over the last 60 seconds)",
                        max.saturating_sub(tokens_in_window)
                    ),
                    retry_after: c.retry_after(now, |_, t| t.saturating_add(tokens) <= max),
                });
            }
        }
        if let Some(max) = q.tokens_per_month {
            if c.tokens_this_month.saturating_add(tokens) > max {
                return Err(Exceeded {
                    limit: Limit::TokensPerMonth,
                    message: format!(
                        "this request may use up to {tokens} tokens (prompt + max_tokens × n); tenant `{tenant}` has \
                         {} of its tokens_per_month budget of {max} left",
                        max.saturating_sub(c.tokens_this_month)
                    ),
                    retry_after: next_month_start(now).saturating_sub(now).max(1),
                });
            }
        }
        c.in_flight += 1;
        c.admit(now, tokens);
        c.tokens_this_month = c.tokens_this_month.saturating_add(tokens);
        Ok(Reservation { keeper: Some(self.clone()), tenant: tenant.to_string(), tokens, used: 0, second: now, month })
    }

    /// `tenant`'s (requests in flight, tokens counted in the last 60 seconds, tokens counted
    /// this month).
    pub fn snapshot(&self, tenant: &str) -> (u64, u64, u64) {
        let now = (self.0.clock)();
        let mut all = self.0.counters.lock().unwrap_or_else(PoisonError::into_inner);
        all.get_mut(tenant).map_or((0, 0, 0), |c| {
            c.slide(now);
            (c.in_flight, c.in_window().1, c.tokens_this_month)
        })
    }

    fn release(&self, r: &Reservation) {
        let unused = r.tokens.saturating_sub(r.used);
        let mut all = self.0.counters.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(c) = all.get_mut(&r.tenant) else { return };
        c.in_flight = c.in_flight.saturating_sub(1);
        // Refunds go to the second and month that were charged, if they still count.
        if let Some(s) = c.window.iter_mut().find(|s| s.second == r.second) {
            s.tokens = s.tokens.saturating_sub(unused);
        }
        if c.month == r.month {
            c.tokens_this_month = c.tokens_this_month.saturating_sub(unused);
        }
    }
}

/// A request's hold on its tenant's quotas: a concurrency slot and its
/// reserved tokens. Dropping it frees the slot and refunds the tokens not
/// [`Reservation::used`].
#[derive(Debug)]
pub struct Reservation {
    keeper: Option<QuotaKeeper>,
    tenant: String,
    tokens: u64,
    used: u64,
    /// The second it was admitted (its slot in the minute window).
    second: u64,
    month: u64,
}

impl Reservation {
    /// A reservation that holds nothing (no tenant, or no quotas).
    pub fn none() -> Self {
        Reservation { keeper: None, tenant: String::new(), tokens: 0, used: 0, second: 0, month: 0 }
    }

    /// Counts `tokens` more as actually used (not refunded at the end).
    pub fn used(&mut self, tokens: u64) {
        self.used = self.used.saturating_add(tokens);
    }

    /// Tokens reserved.
    pub fn tokens(&self) -> u64 {
        self.tokens
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(k) = self.keeper.take() {
            k.release(self);
        }
    }
}

/// The first second of the UTC month holding `now` (Unix seconds).
pub fn month_start(now: u64) -> u64 {
    let days = now / 86_400;
    let (y, m, _) = civil_from_days(days);
    days_from_civil(y, m, 1) * 86_400
}

/// The first second of the UTC month after the one holding `now`.
pub fn next_month_start(now: u64) -> u64 {
    let (y, m, _) = civil_from_days(now / 86_400);
    let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    days_from_civil(y, m, 1) * 86_400
}

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01 (proleptic Gregorian).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// Days since 1970-01-01 of a date from 1970 on.
fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Barrier;

    fn keeper(q: Quotas, clock: Arc<AtomicU64>) -> QuotaKeeper {
        QuotaKeeper::with_clock(HashMap::from([("t".to_string(), q)]), Arc::new(InMemoryUsage::default()), move || {
            clock.load(Ordering::SeqCst)
        })
    }

    #[test]
    fn the_month_so_far_comes_from_the_tenants_store() {
        let dir = std::env::temp_dir().join(format!("seed-quota-{}-{}", std::process::id(), crate::state::unix_now()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Arc::new(platform::Store::open_file(&dir.join("r.sqlite")).unwrap());
        let now = crate::state::unix_now();
        let record = |tenant: &str, created: u64, prompt: u64, completion: u64| platform::store::UsageRecord {
            tenant: tenant.into(),
            key_id: None,
            edition: "e".into(),
            created,
            prompt_tokens: prompt,
            cached_tokens: 0,
            completion_tokens: completion,
            finish_reason: "stop".into(),
            cost: 0.0,
        };
        store.record_usage(&record("t", now, 100, 20)).unwrap();
        store.record_usage(&record("t", now, 5, 1)).unwrap();
        store.record_usage(&record("other", now, 1000, 1000)).unwrap();
        // 40 days ago: before this month began, whatever today is.
        store.record_usage(&record("t", now - 40 * 86_400, 7000, 7000)).unwrap();
        let usage = StoreUsage { stores: HashMap::from([("t".to_string(), Arc::clone(&store))]) };
        let month_start = month_start(now);
        assert_eq!(usage.tokens_this_month("t", month_start), 126);
        assert_eq!(usage.tokens_this_month("nobody", month_start), 0);
        // A keeper with a budget of 130 then has 4 tokens left.
        let q = quotas(None, None, Some(130), None);
        let k = QuotaKeeper::new(HashMap::from([("t".to_string(), q)]), Arc::new(usage));
        let held = k.reserve("t", 4);
        assert!(held.is_ok());
        assert_eq!(k.reserve("t", 1).map(|_| ()).unwrap_err().limit, Limit::TokensPerMonth);
        std::fs::remove_dir_all(&dir).ok();
    }

    fn quotas(rpm: Option<u64>, tpm: Option<u64>, month: Option<u64>, conc: Option<u64>) -> Quotas {
        Quotas { requests_per_minute: rpm, tokens_per_minute: tpm, tokens_per_month: month, concurrent_requests: conc }
    }

    #[test]
    fn a_burst_of_100_against_a_limit_of_10_admits_10() {
        let k = keeper(quotas(None, None, None, Some(10)), Arc::new(AtomicU64::new(1_700_000_000)));
        let start = Arc::new(Barrier::new(100));
        let held = Arc::new(Barrier::new(100));
        let threads: Vec<_> = (0..100)
            .map(|_| {
                let (k, start, held) = (k.clone(), start.clone(), held.clone());
                std::thread::spawn(move || {
                    start.wait();
                    let r = k.reserve("t", 5);
                    // Everyone holds what they got until all have tried.
                    held.wait();
                    r.map_err(|e| e.limit)
                })
            })
            .collect();
        let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let admitted = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(admitted, 10);
        assert!(results.iter().filter_map(|r| r.as_ref().err()).all(|&l| l == Limit::ConcurrentRequests));
        drop(results);
        assert_eq!(k.snapshot("t").0, 0, "every slot is free again");
    }

    #[test]
    fn requests_per_minute_hold_over_every_sliding_minute() {
        let t0 = 1_700_000_030; // the middle of a calendar minute
        let clock = Arc::new(AtomicU64::new(t0));
        let k = keeper(quotas(Some(3), None, None, None), clock.clone());
        drop(k.reserve("t", 1).unwrap());
        clock.store(t0 + 20, Ordering::SeqCst);
        drop(k.reserve("t", 1).unwrap());
        drop(k.reserve("t", 1).unwrap());
        let e = k.reserve("t", 1).unwrap_err();
        assert_eq!(e.limit, Limit::RequestsPerMinute);
        // The first request leaves the window 60 s after it came: 40 s from now.
        assert_eq!(e.retry_after, 40);
        assert!(e.message.contains("requests_per_minute limit of 3"), "{}", e.message);
        // A new calendar minute (t0 + 30) frees nothing: the window slides.
        clock.store(t0 + 35, Ordering::SeqCst);
        assert_eq!(k.reserve("t", 1).unwrap_err().retry_after, 25);
        clock.store(t0 + 60, Ordering::SeqCst);
        assert!(k.reserve("t", 1).is_ok(), "the first request has left the window");
        let e = k.reserve("t", 1).unwrap_err();
        assert_eq!(e.retry_after, 20, "the next two leave at t0 + 80");
        clock.store(t0 + 80, Ordering::SeqCst);
        assert!(k.reserve("t", 1).is_ok() && k.reserve("t", 1).is_ok());
    }

    #[test]
    fn tokens_per_minute_wait_for_enough_of_the_window_to_pass() {
        let t0 = 1_700_000_000;
        let clock = Arc::new(AtomicU64::new(t0));
        let k = keeper(quotas(None, Some(100), None, None), clock.clone());
        let mut a = k.reserve("t", 60).unwrap();
        a.used(60);
        drop(a);
        clock.store(t0 + 10, Ordering::SeqCst);
        let mut b = k.reserve("t", 30).unwrap();
        b.used(30);
        drop(b);
        // 90 in the window: 50 more fit once the first 60 have left (t0 + 60).
        let e = k.reserve("t", 50).unwrap_err();
        assert_eq!((e.limit, e.retry_after), (Limit::TokensPerMinute, 50));
        // A request larger than the limit never fits: a whole window.
        assert_eq!(k.reserve("t", 500).unwrap_err().retry_after, 60);
        assert_eq!(k.snapshot("t").1, 90);
        clock.store(t0 + 60, Ordering::SeqCst);
        assert_eq!(k.snapshot("t").1, 30);
        assert!(k.reserve("t", 50).is_ok());
    }

    #[test]
    fn unused_tokens_are_refunded_and_used_ones_are_not() {
        let k = keeper(quotas(None, Some(100), None, None), Arc::new(AtomicU64::new(1_700_000_000)));
        let mut r = k.reserve("t", 80).unwrap();
        let e = k.reserve("t", 30).unwrap_err();
        assert_eq!(e.limit, Limit::TokensPerMinute);
        assert!(e.message.contains("20 of its tokens_per_minute limit of 100 left"), "{}", e.message);
        r.used(25);
        drop(r); // finished (or the client left) after 25 tokens
        assert_eq!(k.snapshot("t").1, 25);
        assert!(k.reserve("t", 75).is_ok());
    }

    #[test]
    fn the_month_starts_from_the_stores_count() {
        let now = 1_700_000_000; // 2023-11-14
        let usage = Arc::new(InMemoryUsage::default());
        usage.set("t", month_start(now), 990);
        let q = HashMap::from([("t".to_string(), quotas(None, None, Some(1000), None))]);
        let k = QuotaKeeper::with_clock(q, usage, move || now);
        let e = k.reserve("t", 11).unwrap_err();
        assert_eq!(e.limit, Limit::TokensPerMonth);
        assert_eq!(e.retry_after, next_month_start(now) - now);
        assert!(k.reserve("t", 10).is_ok());
    }

    #[test]
    fn tenants_without_quotas_are_not_limited() {
        let k = keeper(quotas(Some(1), Some(1), Some(1), Some(1)), Arc::new(AtomicU64::new(0)));
        let held: Vec<_> = (0..50).map(|_| k.reserve("other", 1_000_000).unwrap()).collect();
        assert_eq!(held.len(), 50);
    }

    #[test]
    fn calendar_months() {
        // 2023-11-14T22:13:20Z → 2023-11-01 and 2023-12-01.
        assert_eq!(month_start(1_700_000_000), 1_698_796_800);
        assert_eq!(next_month_start(1_700_000_000), 1_701_388_800);
        // December rolls over to January: 2023-12-31T23:59:59Z.
        assert_eq!(next_month_start(1_704_067_199), 1_704_067_200);
        assert_eq!(month_start(1_704_067_200), 1_704_067_200);
        // 2024-02-29 (leap day) is in February.
        assert_eq!(month_start(1_709_208_000), 1_706_745_600);
    }
}
