//! Per-tenant quotas, as rules: which limit an admission would break, what to tell the client,
//! and when a retry can succeed. The counts they are applied to live in the region's store (its
//! usage rows and month counters), and a store applies them inside the transaction that admits
//! the request ([`crate::store::Usage::admit`]), so every replica of a region shares one count.
//!
//! A request is charged its prompt tokens plus `max_tokens × n` when admitted and, once it ends,
//! what it used. The minute limits hold over every sliding 60 seconds (a calendar minute would
//! let a burst at one minute's end and another at the next one's start pass twice the limit);
//! the month is the UTC calendar month.

use crate::config::Quotas;

/// The length of the sliding window of the per-minute limits, in seconds.
pub const WINDOW: u64 = 60;

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

/// What was admitted in one second of the window: requests, and the tokens charged for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Unix second.
    pub second: u64,
    /// Requests admitted in it.
    pub requests: u64,
    /// Tokens charged for them (reserved while running, used once ended).
    pub tokens: u64,
}

/// A tenant's counts at the moment of an admission.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    /// The seconds of the last [`WINDOW`] in which requests were admitted, oldest first.
    pub window: Vec<Slot>,
    /// Requests running now.
    pub in_flight: u64,
    /// Tokens charged this calendar month.
    pub month: u64,
}

impl Counts {
    fn in_window(&self) -> (u64, u64) {
        self.window.iter().fold((0, 0), |(r, t), s| (r + s.requests, t.saturating_add(s.tokens)))
    }

    /// Seconds until `fits(requests, tokens)` holds of the window once its oldest seconds have
    /// left it (at least 1; a whole window if it never does).
    fn retry_after(&self, now: u64, fits: impl Fn(u64, u64) -> bool) -> u64 {
        let (mut requests, mut tokens) = self.in_window();
        for s in &self.window {
            requests = requests.saturating_sub(s.requests);
            tokens = tokens.saturating_sub(s.tokens);
            if fits(requests, tokens) {
                return (s.second + WINDOW).saturating_sub(now).max(1);
            }
        }
        WINDOW
    }
}

/// Whether `tenant`, with `counts` at `now`, may start one more request charged `tokens`
/// under quotas `q`; the first limit that refuses is named.
pub fn check(q: &Quotas, tenant: &str, counts: &Counts, now: u64, tokens: u64) -> Result<(), Exceeded> {
    let (requests_in_window, tokens_in_window) = counts.in_window();
    if let Some(max) = q.concurrent_requests {
        if counts.in_flight + 1 > max {
            return Err(Exceeded {
                limit: Limit::ConcurrentRequests,
                message: format!(
                    "tenant `{tenant}` has {} requests in flight; its concurrent_requests limit is {max}",
                    counts.in_flight
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
                retry_after: counts.retry_after(now, |r, _| r < max),
            });
        }
    }
    if let Some(max) = q.tokens_per_minute {
        if tokens_in_window.saturating_add(tokens) > max {
            return Err(Exceeded {
                limit: Limit::TokensPerMinute,
                message: format!(
                    "this request may use up to {tokens} tokens (prompt + max_tokens × n); tenant `{tenant}` has {} \
                     of its tokens_per_minute limit of {max} left (over the last 60 seconds)",
                    max.saturating_sub(tokens_in_window)
                ),
                retry_after: counts.retry_after(now, |_, t| t.saturating_add(tokens) <= max),
            });
        }
    }
    if let Some(max) = q.tokens_per_month {
        if counts.month.saturating_add(tokens) > max {
            return Err(Exceeded {
                limit: Limit::TokensPerMonth,
                message: format!(
                    "this request may use up to {tokens} tokens (prompt + max_tokens × n); tenant `{tenant}` has {} \
                     of its tokens_per_month budget of {max} left",
                    max.saturating_sub(counts.month)
                ),
                retry_after: next_month_start(now).saturating_sub(now).max(1),
            });
        }
    }
    Ok(())
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

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01 (proleptic Gregorian), the
/// eras shifted to start on March 1st.
pub(crate) fn civil_from_days(days: u64) -> (u64, u64, u64) {
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

    fn quotas(rpm: Option<u64>, tpm: Option<u64>, month: Option<u64>, conc: Option<u64>) -> Quotas {
        Quotas { requests_per_minute: rpm, tokens_per_minute: tpm, tokens_per_month: month, concurrent_requests: conc }
    }

    fn slots(v: &[(u64, u64, u64)]) -> Vec<Slot> {
        v.iter().map(|&(second, requests, tokens)| Slot { second, requests, tokens }).collect()
    }

    #[test]
    fn the_first_limit_that_refuses_is_named_with_its_numbers() {
        let q = quotas(Some(3), Some(100), Some(1000), Some(2));
        let t0 = 1_700_000_000;
        let c = Counts { window: slots(&[(t0 - 40, 1, 60), (t0 - 20, 1, 30)]), in_flight: 2, month: 991 };
        let e = check(&q, "t", &c, t0, 5).expect_err("two in flight");
        assert_eq!((e.limit, e.retry_after), (Limit::ConcurrentRequests, 1));
        let c = Counts { in_flight: 1, ..c };
        // 90 tokens in the window: 5 fit, 11 do not until the first 60 leave (20 s from now).
        let e = check(&q, "t", &c, t0, 11).expect_err("tokens per minute");
        assert_eq!((e.limit, e.retry_after), (Limit::TokensPerMinute, 20));
        assert!(e.message.contains("10 of its tokens_per_minute limit of 100 left"), "{}", e.message);
        // A request larger than the limit never fits: a whole window.
        assert_eq!(check(&q, "t", &c, t0, 500).expect_err("never").retry_after, WINDOW);
        let e = check(&q, "t", &c, t0, 10).expect_err("month");
        assert_eq!((e.limit, e.retry_after), (Limit::TokensPerMonth, next_month_start(t0) - t0));
        assert!(check(&q, "t", &Counts { month: 980, ..c.clone() }, t0, 10).is_ok());
    }

    #[test]
    fn requests_per_minute_wait_for_the_oldest_to_leave_the_window() {
        let q = quotas(Some(3), None, None, None);
        let t0 = 1_700_000_030;
        let c = Counts { window: slots(&[(t0, 1, 1), (t0 + 20, 2, 2)]), ..Counts::default() };
        let e = check(&q, "t", &c, t0 + 20, 1).expect_err("three in the window");
        assert_eq!(e.retry_after, 40);
        assert!(e.message.contains("requests_per_minute limit of 3"), "{}", e.message);
        assert_eq!(check(&q, "t", &c, t0 + 35, 1).expect_err("still").retry_after, 25);
        // Once the first has left, the next two leave at t0 + 80.
        let c = Counts { window: slots(&[(t0 + 20, 2, 2), (t0 + 60, 1, 1)]), ..Counts::default() };
        assert_eq!(check(&q, "t", &c, t0 + 60, 1).expect_err("full again").retry_after, 20);
    }

    #[test]
    fn no_quotas_no_limit() {
        let c = Counts { window: slots(&[(0, 1_000_000, u64::MAX)]), in_flight: 1 << 40, month: u64::MAX };
        assert!(check(&Quotas::default(), "t", &c, 10, u64::MAX).is_ok());
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
